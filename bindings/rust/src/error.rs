//! [`Error`]: one variant per C status code (include/goipc.h), plus the
//! binding's own checks of received FlatBuffers messages.

use core::ffi::CStr;
use core::fmt;

use crate::fb;
use crate::sys;

/// `Result<T, goipc::Error>`.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// A failed goipc call.
///
/// The variants mirror the C status codes one for one ([`Error::status`]
/// maps back), except the last three, which this crate returns itself for
/// a received message that is not a valid goipc FlatBuffers message of the
/// expected kind (the C typed helpers report those as
/// `GOIPC_ERR_PROTOCOL`). Where the library gave a detail message
/// (`goipc_last_error_message`, taken on the failing thread right after
/// the call) the variant carries it; [`Error::Timeout`],
/// [`Error::Closed`] and [`Error::PeerClosed`] carry nothing, because they
/// are ordinary control flow (a polling loop gets `Timeout` often) and
/// their meaning is complete without it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `GOIPC_ERR_INVALID_ARGUMENT`: misuse (bad options, a path with a NUL
    /// byte or longer than a socket path can be, a listener that refused
    /// our maximum message size, receiving on a thread that holds a view).
    InvalidArgument(String),
    /// `GOIPC_ERR_TIMEOUT`: the timeout expired (or was zero and the call
    /// would have had to wait). The connection stays usable.
    Timeout,
    /// `GOIPC_ERR_CLOSED`: the handle was closed by this process.
    Closed,
    /// `GOIPC_ERR_PEER_CLOSED`: the peer closed the connection or its
    /// process died (also by SIGKILL). Messages it had fully sent were
    /// delivered first. Drop the connection and reconnect.
    PeerClosed,
    /// `GOIPC_ERR_MESSAGE_TOO_LARGE`: larger than the connection's maximum
    /// message size; nothing was sent, the connection stays usable.
    MessageTooLarge(String),
    /// `GOIPC_ERR_BUFFER_TOO_SMALL`: the next message needs `needed` bytes;
    /// it stays queued, receive it again with a larger buffer.
    BufferTooSmall {
        /// Size of the queued message in bytes.
        needed: usize,
    },
    /// `GOIPC_ERR_PROTOCOL`: the peer broke the protocol or speaks another
    /// version. The connection is unusable (for `accept`: only that
    /// client; keep accepting).
    Protocol(String),
    /// `GOIPC_ERR_PERMISSION`: uid policy or EACCES.
    Permission {
        /// The errno, when the operating system reported one, else 0.
        errno: i32,
        /// The library's detail message.
        message: String,
    },
    /// `GOIPC_ERR_SYSTEM`: an operating-system error (`errno`, for example
    /// ENOENT or ECONNREFUSED when nothing listens at a dialed path), or an
    /// internal error (errno 0).
    System {
        /// The errno (0 for an internal error).
        errno: i32,
        /// The library's detail message.
        message: String,
    },
    /// `GOIPC_ERR_ADDRESS_IN_USE`: a live listener serves the path, or it
    /// exists and is not a socket.
    AddressInUse(String),
    /// `GOIPC_ERR_NOT_SUPPORTED`: not supported here (not Linux, a forked
    /// child of a process that had loaded the library, a library with
    /// another ABI version).
    NotSupported(String),
    /// `GOIPC_ERR_LIMIT`: a listener refused the connection because one of
    /// its limits is reached (`max_conns`, `max_segment_size`,
    /// `max_mapped_bytes`, or it ran out of file descriptors); the message
    /// names the limit and its value. Other connections are unaffected:
    /// retry later or raise the listener's limit ([`crate::Options`]).
    /// From `dial`; `accept` returns it for the refused client and the
    /// listener stays usable.
    Limit(String),
    /// A status code this binding does not know (a newer library).
    Unknown {
        /// The status code.
        status: i32,
        /// The library's detail message.
        message: String,
    },
    /// A received message failed the FlatBuffers verifier
    /// (`flatbuffers::root`). That message is consumed; the connection
    /// stays usable.
    InvalidMessage(Box<flatbuffers::InvalidFlatbuffer>),
    /// A received message does not carry the `GIPC` file identifier (or is
    /// shorter than 8 bytes): not a goipc message. Consumed; the
    /// connection stays usable.
    NotAMessage {
        /// Length of the message received.
        len: usize,
    },
    /// A valid message whose body is not the kind asked for (a Pong where
    /// a Ping was expected, or no body). Consumed; the connection stays
    /// usable.
    UnexpectedBody {
        /// The body type asked for.
        expected: fb::Body,
        /// The body type received (`NONE` for none).
        got: fb::Body,
    },
}

impl Error {
    /// The C status code this error corresponds to (`GOIPC_ERR_*`). The
    /// binding's message checks map to `GOIPC_ERR_PROTOCOL`, as the C
    /// typed helpers report them.
    pub fn status(&self) -> i32 {
        match self {
            Error::InvalidArgument(_) => sys::GOIPC_ERR_INVALID_ARGUMENT,
            Error::Timeout => sys::GOIPC_ERR_TIMEOUT,
            Error::Closed => sys::GOIPC_ERR_CLOSED,
            Error::PeerClosed => sys::GOIPC_ERR_PEER_CLOSED,
            Error::MessageTooLarge(_) => sys::GOIPC_ERR_MESSAGE_TOO_LARGE,
            Error::BufferTooSmall { .. } => sys::GOIPC_ERR_BUFFER_TOO_SMALL,
            Error::Protocol(_) => sys::GOIPC_ERR_PROTOCOL,
            Error::Permission { .. } => sys::GOIPC_ERR_PERMISSION,
            Error::System { .. } => sys::GOIPC_ERR_SYSTEM,
            Error::AddressInUse(_) => sys::GOIPC_ERR_ADDRESS_IN_USE,
            Error::NotSupported(_) => sys::GOIPC_ERR_NOT_SUPPORTED,
            Error::Limit(_) => sys::GOIPC_ERR_LIMIT,
            Error::Unknown { status, .. } => *status,
            Error::InvalidMessage(_) | Error::NotAMessage { .. } | Error::UnexpectedBody { .. } => {
                sys::GOIPC_ERR_PROTOCOL
            }
        }
    }

    /// The errno the operating system reported, if any (only
    /// [`Error::System`] and [`Error::Permission`] carry one; 0 means
    /// none).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::System { errno, .. } | Error::Permission { errno, .. } if *errno != 0 => Some(*errno),
            _ => None,
        }
    }

    /// Builds the error for a failed call (`status != GOIPC_OK`), reading
    /// the calling thread's detail message and errno. Must be called on the
    /// thread that made the call, before any other goipc call.
    /// `BUFFER_TOO_SMALL` needs the size from the call's out-parameter:
    /// callers that can get it build [`Error::BufferTooSmall`] themselves.
    pub(crate) fn last(status: i32) -> Error {
        match status {
            sys::GOIPC_ERR_TIMEOUT => Error::Timeout,
            sys::GOIPC_ERR_CLOSED => Error::Closed,
            sys::GOIPC_ERR_PEER_CLOSED => Error::PeerClosed,
            sys::GOIPC_ERR_BUFFER_TOO_SMALL => Error::BufferTooSmall { needed: 0 },
            _ => {
                // SAFETY: both are thread-local reads in the C shim, valid
                // at any time; the message is NUL-terminated and valid
                // until the next goipc call on this thread, and copied here.
                let (message, errno) = unsafe {
                    let p = sys::goipc_last_error_message();
                    let m = if p.is_null() { String::new() } else { CStr::from_ptr(p).to_string_lossy().into_owned() };
                    (m, sys::goipc_last_errno())
                };
                Error::from_parts(status, errno, message)
            }
        }
    }

    /// The error for `status` with the given details (no library call).
    pub(crate) fn from_parts(status: i32, errno: i32, message: String) -> Error {
        match status {
            sys::GOIPC_ERR_INVALID_ARGUMENT => Error::InvalidArgument(message),
            sys::GOIPC_ERR_TIMEOUT => Error::Timeout,
            sys::GOIPC_ERR_CLOSED => Error::Closed,
            sys::GOIPC_ERR_PEER_CLOSED => Error::PeerClosed,
            sys::GOIPC_ERR_MESSAGE_TOO_LARGE => Error::MessageTooLarge(message),
            sys::GOIPC_ERR_BUFFER_TOO_SMALL => Error::BufferTooSmall { needed: 0 },
            sys::GOIPC_ERR_PROTOCOL => Error::Protocol(message),
            sys::GOIPC_ERR_PERMISSION => Error::Permission { errno, message },
            sys::GOIPC_ERR_SYSTEM => Error::System { errno, message },
            sys::GOIPC_ERR_ADDRESS_IN_USE => Error::AddressInUse(message),
            sys::GOIPC_ERR_NOT_SUPPORTED => Error::NotSupported(message),
            sys::GOIPC_ERR_LIMIT => Error::Limit(message),
            _ => Error::Unknown { status, message },
        }
    }
}

/// The library's static description of a status code
/// (`goipc_strerror`), for example
/// `"GOIPC_ERR_TIMEOUT: the timeout expired"`. Any value is accepted.
pub fn strerror(status: i32) -> &'static str {
    // SAFETY: goipc_strerror accepts any value and returns a static,
    // non-empty, NUL-terminated string owned by the library, never freed.
    unsafe {
        let p = sys::goipc_strerror(status);
        if p.is_null() {
            return "goipc: unknown status code";
        }
        CStr::from_ptr(p).to_str().unwrap_or("goipc: unknown status code")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The library's detail messages start with "goipc: " already.
        let detail = |f: &mut fmt::Formatter<'_>, m: &str, what: &str| {
            if m.is_empty() { write!(f, "goipc: {what}") } else { f.write_str(m) }
        };
        match self {
            Error::InvalidArgument(m) => detail(f, m, "invalid argument"),
            Error::Timeout => f.write_str("goipc: timed out"),
            Error::Closed => f.write_str("goipc: handle closed"),
            Error::PeerClosed => f.write_str("goipc: peer closed the connection"),
            Error::MessageTooLarge(m) => detail(f, m, "message larger than the connection's maximum message size"),
            Error::BufferTooSmall { needed } => {
                write!(f, "goipc: buffer too small: the next message is {needed} bytes")
            }
            Error::Protocol(m) => detail(f, m, "protocol error"),
            Error::Permission { message, .. } => detail(f, message, "permission denied"),
            Error::System { errno, message } => {
                detail(f, message, "operating system error")?;
                if *errno != 0 { write!(f, " (errno {errno})") } else { Ok(()) }
            }
            Error::AddressInUse(m) => detail(f, m, "address in use"),
            Error::NotSupported(m) => detail(f, m, "not supported"),
            Error::Limit(m) => detail(f, m, "a listener limit is reached"),
            Error::Unknown { status, message } => {
                write!(f, "goipc: status {status} ({})", strerror(*status))?;
                if message.is_empty() { Ok(()) } else { write!(f, ": {message}") }
            }
            Error::InvalidMessage(e) => write!(f, "goipc: received message fails FlatBuffers verification: {e}"),
            Error::NotAMessage { len } => {
                write!(f, "goipc: received {len}-byte message is not a goipc message (no GIPC file identifier)")
            }
            Error::UnexpectedBody { expected, got } => {
                write!(f, "goipc: received a message with body {got:?}, expected {expected:?}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InvalidMessage(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<flatbuffers::InvalidFlatbuffer> for Error {
    fn from(e: flatbuffers::InvalidFlatbuffer) -> Error {
        Error::InvalidMessage(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every C status code maps to a variant that maps back to it, with a
    /// distinct, non-empty description; unknown codes are kept.
    #[test]
    fn every_status_maps_and_back() {
        let mut seen = std::collections::HashSet::new();
        for &(name, v) in sys::CONSTANTS {
            // Only the status codes: not the version, OK, or the sweeper's
            // direction bits.
            if name == "GOIPC_ABI_VERSION" || name == "GOIPC_OK" || name.starts_with("GOIPC_SWEEP_") {
                continue;
            }
            let e = Error::from_parts(v as i32, 5, format!("goipc: detail of {name}"));
            assert_eq!(e.status(), v as i32, "{name}: {e:?}");
            assert!(!matches!(e, Error::Unknown { .. }), "{name} has no variant");
            assert!(seen.insert(core::mem::discriminant(&e)), "{name} shares a variant");
            let text = e.to_string();
            assert!(text.starts_with("goipc: "), "{name}: {text}");
        }
        let e = Error::from_parts(77, 0, String::new());
        assert_eq!(e, Error::Unknown { status: 77, message: String::new() });
        assert_eq!(e.status(), 77);
        assert!(e.to_string().contains("77"));
    }

    #[test]
    fn details_and_errno() {
        let e = Error::from_parts(sys::GOIPC_ERR_SYSTEM, 2, "goipc: dial /x: no such file".into());
        assert_eq!(e.errno(), Some(2));
        assert_eq!(e.to_string(), "goipc: dial /x: no such file (errno 2)");
        let e = Error::from_parts(sys::GOIPC_ERR_PERMISSION, 0, String::new());
        assert_eq!(e.errno(), None);
        assert_eq!(e.to_string(), "goipc: permission denied");
        assert_eq!(Error::Timeout.errno(), None);
        // Control-flow errors carry no detail (no library call, no alloc).
        assert_eq!(Error::from_parts(sys::GOIPC_ERR_TIMEOUT, 9, "x".into()), Error::Timeout);
        assert_eq!(Error::from_parts(sys::GOIPC_ERR_CLOSED, 9, "x".into()), Error::Closed);
        assert_eq!(Error::from_parts(sys::GOIPC_ERR_PEER_CLOSED, 9, "x".into()), Error::PeerClosed);
    }

    #[test]
    fn message_errors_are_protocol_and_chain_their_source() {
        use std::error::Error as _;
        let bad = crate::message::parse(&[200u8, 0, 0, 0, b'G', b'I', b'P', b'C']).unwrap_err(); // root past the end
        assert!(matches!(bad, Error::InvalidMessage(_)), "{bad:?}");
        assert_eq!(bad.status(), sys::GOIPC_ERR_PROTOCOL);
        assert!(bad.source().is_some());
        let e = Error::NotAMessage { len: 3 };
        assert_eq!(e.status(), sys::GOIPC_ERR_PROTOCOL);
        assert!(e.source().is_none());
        let e = Error::UnexpectedBody { expected: crate::fb::Body::Ping, got: crate::fb::Body::Pong };
        assert_eq!(e.status(), sys::GOIPC_ERR_PROTOCOL);
        assert_eq!(e.to_string(), "goipc: received a message with body Pong, expected Ping");
    }

    #[test]
    fn error_is_a_std_error_and_send_sync() {
        fn takes(_: Box<dyn std::error::Error + Send + Sync + 'static>) {}
        takes(Box::new(Error::Timeout));
    }
}
