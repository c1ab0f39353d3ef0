//! The safe API over the C handles: [`Listener`], [`Conn`], [`Options`],
//! and the zero-copy guards [`RecvView`] and [`Reservation`].

use core::ffi::c_void;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr;
use core::time::Duration;
use std::ffi::CString;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::stats::Stats;
use crate::sys;

/// How long a waiting call polls before it sleeps on a futex
/// ([`Options::spin`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Spin {
    /// The library's default (50 us, up to 1 ms on a winning streak), then
    /// sleep.
    #[default]
    Default,
    /// Sleep at once: lowest CPU, highest latency.
    SleepAtOnce,
    /// Poll this long, then sleep. `Duration::ZERO` is [`Spin::SleepAtOnce`].
    For(Duration),
    /// Never sleep: lowest latency, one busy core per waiting side
    /// (timeouts and peer death are still honoured).
    Forever,
}

/// A listener limit ([`Options::max_conns`] and friends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Limit {
    /// The library's default (see each option).
    #[default]
    Default,
    /// At most this many (connections, bytes, handshakes); must be >= 1.
    AtMost(u64),
    /// No limit.
    Unlimited,
}

impl Limit {
    /// The `goipc_options` value (0 default, negative none), checked
    /// against the field's range: the library refuses `max_conns` and
    /// `max_pending_handshakes` above `i32::MAX`.
    fn to_raw(self, name: &str, max: i64) -> Result<i64> {
        match self {
            Limit::Default => Ok(0),
            Limit::Unlimited => Ok(-1),
            Limit::AtMost(n) => match i64::try_from(n) {
                Ok(v) if (1..=max).contains(&v) => Ok(v),
                _ => Err(Error::InvalidArgument(format!(
                    "goipc: {name} must be in [1, {max}] (or Limit::Default, Limit::Unlimited), not {n}"
                ))),
            },
        }
    }
}

/// Connection options (`goipc_options`). Start from `Options::default()`
/// and set what you need:
///
/// ```
/// let mut opts = goipc::Options::default();
/// opts.max_message_size = 64 << 10;
/// opts.spin = goipc::Spin::Forever;
/// ```
///
/// For a dialer, `ring_size` and `max_message_size` define the
/// connection. A listener ignores `ring_size`, refuses dialers whose
/// `max_message_size` is above its own, and applies the rest to every
/// connection it accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Bytes per direction, a power of two in [4096, 2^30]; 0: default
    /// (4 MiB, raised to hold at least four maximum-size messages).
    pub ring_size: usize,
    /// Largest message in bytes; 0: default (1 MiB).
    pub max_message_size: usize,
    /// Poll budget of waiting calls.
    pub spin: Spin,
    /// Bound on the connection handshake; `None` (or zero): default (5 s).
    pub handshake_timeout: Option<Duration>,
    /// Accept peers of any uid (default: same uid only, SO_PEERCRED).
    pub allow_any_uid: bool,
    /// Testing only: announce another protocol version; 0 is normal.
    pub protocol_version_override: u32,
    /// Listener only (a dialer ignores the limits): open connections;
    /// default 4096. A client beyond a limit gets [`Error::Limit`] naming
    /// it; the other connections are unaffected.
    pub max_conns: Limit,
    /// Listener only: bytes of one connection's segment; default 64 MiB +
    /// 4 KiB.
    pub max_segment_size: Limit,
    /// Listener only: segment bytes over all connections; default 16 GiB.
    pub max_mapped_bytes: Limit,
    /// Listener only: handshakes in progress, the oldest is dropped
    /// beyond; default 64.
    pub max_pending_handshakes: Limit,
    /// Calls ([`Conn::call`] and friends) in flight at once on this end of
    /// each connection made with these options (a listener's value
    /// applies to the connections it accepts); 0: default (64), at most
    /// [`MAX_INFLIGHT_CALLS_LIMIT`]. A call beyond them waits, within its
    /// timeout, until one of them ends; its request is not sent before.
    pub max_inflight_calls: usize,
    /// As a receiver, return the space of the messages read to the sender
    /// a sixteenth of the ring at a time while more are queued, and all of
    /// it once every message seen was read. Default (`false`): each
    /// receive returns its space at once, and a sender whose send found
    /// the ring full is told after one receive. For a stream's receiver
    /// that keeps receiving: a stream whose ring stays full moves 1.1-1.5x
    /// the messages per second; a sender may wait for up to a sixteenth of
    /// the ring this end has read from until this end receives again
    /// (docs/PROTOCOL.md, "Freed space in pieces (opt-in)").
    pub free_space_in_pieces: bool,
}

/// The largest [`Options::max_inflight_calls`]: a call slot's index is 16
/// bits of the call id.
// Restated: include/goipc.h gives this bound in prose only ("at most
// 65536"), with no #define to check it against (tests/header.rs checks
// every GOIPC_* constant). tests/calls.rs checks that the library takes
// it and refuses one more.
pub const MAX_INFLIGHT_CALLS_LIMIT: usize = 1 << 16;

impl Options {
    /// The C struct, initialised by `goipc_options_init_sized` (with the
    /// size of the struct this crate declares, so that the library reads
    /// every field we set) and then filled. Errors: a limit out of range.
    fn to_raw(&self) -> Result<sys::goipc_options> {
        let mut o = sys::goipc_options::zeroed();
        // SAFETY: o is a valid, writable goipc_options of exactly that
        // size; the call only writes its fields and does not call into Go.
        unsafe { sys::goipc_options_init_sized(&mut o, core::mem::size_of::<sys::goipc_options>()) };
        o.ring_size = self.ring_size as u64;
        o.max_message_size = self.max_message_size as u64;
        o.spin_ns = match self.spin {
            Spin::Default => 0,
            Spin::SleepAtOnce => -1,
            Spin::For(d) if d.is_zero() => -1,
            Spin::For(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Spin::Forever => i64::MAX,
        };
        o.handshake_timeout_ms = self.handshake_timeout.map_or(0, ceil_ms);
        o.allow_any_uid = i32::from(self.allow_any_uid);
        o.protocol_version_override = self.protocol_version_override;
        let i32_max = i64::from(i32::MAX);
        o.max_conns = self.max_conns.to_raw("max_conns", i32_max)?;
        o.max_segment_size = self.max_segment_size.to_raw("max_segment_size", i64::MAX)?;
        o.max_mapped_bytes = self.max_mapped_bytes.to_raw("max_mapped_bytes", i64::MAX)?;
        o.max_pending_handshakes = self.max_pending_handshakes.to_raw("max_pending_handshakes", i32_max)?;
        if self.max_inflight_calls > MAX_INFLIGHT_CALLS_LIMIT {
            return Err(Error::InvalidArgument(format!(
                "goipc: max_inflight_calls must be at most {MAX_INFLIGHT_CALLS_LIMIT} (0: the default, 64), not {}",
                self.max_inflight_calls
            )));
        }
        o.max_inflight_calls = self.max_inflight_calls as i64;
        o.free_space_in_pieces = i32::from(self.free_space_in_pieces);
        Ok(o)
    }
}

/// A timeout in the C ABI's milliseconds, rounded up so that a positive
/// duration never becomes 0 ("do not wait"); saturates at `i64::MAX`.
pub(crate) fn ceil_ms(d: Duration) -> i64 {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// `None`: wait as long as it takes (-1).
pub(crate) fn timeout_ms(t: Option<Duration>) -> i64 {
    t.map_or(-1, ceil_ms)
}

/// Longest socket path: sun_path holds 108 bytes with the NUL.
const MAX_PATH: usize = 107;

fn c_path(path: &Path) -> Result<CString> {
    let bytes = path.as_os_str().as_bytes();
    // Checked here for a clear error: the library reports a long path as
    // GOIPC_ERR_SYSTEM with errno EINVAL (from bind/connect).
    if bytes.len() > MAX_PATH {
        return Err(Error::InvalidArgument(format!(
            "goipc: socket path is {} bytes, at most {MAX_PATH} fit: {path:?}",
            bytes.len()
        )));
    }
    CString::new(bytes).map_err(|_| Error::InvalidArgument(format!("goipc: path {path:?} contains a NUL byte")))
}

pub(crate) fn check(status: i32) -> Result<()> {
    if status == sys::GOIPC_OK { Ok(()) } else { Err(Error::last(status)) }
}

/// Refuses to run against a library built for another ABI version
/// (checked once per process, before the first listen or dial).
fn check_abi() -> Result<()> {
    static OK: AtomicBool = AtomicBool::new(false);
    if OK.load(Ordering::Relaxed) {
        return Ok(());
    }
    // SAFETY: goipc_abi_version takes no arguments and never fails.
    let v = unsafe { sys::goipc_abi_version() };
    if v != sys::GOIPC_ABI_VERSION {
        return Err(Error::NotSupported(format!(
            "goipc: libgoipc.so has ABI version {v}, this binding was written for {}",
            sys::GOIPC_ABI_VERSION
        )));
    }
    OK.store(true, Ordering::Relaxed);
    Ok(())
}

/// The ABI version of the loaded libgoipc.so (`goipc_abi_version`);
/// this crate works with [`sys::GOIPC_ABI_VERSION`].
pub fn abi_version() -> i32 {
    // SAFETY: no arguments, never fails.
    unsafe { sys::goipc_abi_version() }
}

// ---- Listener ---------------------------------------------------------

/// A listening Unix socket that accepts goipc connections. Dropping it
/// stops listening and removes the socket file; connections already
/// accepted stay open.
///
/// `Listener` is `Send + Sync`: every C function may be called from any
/// thread, and any number of threads may accept on one listener at once.
#[derive(Debug)]
pub struct Listener {
    h: sys::goipc_listener,
}

impl Listener {
    /// Listens on `path` (a filesystem path of at most 107 bytes) with the
    /// default options. A stale socket file left by a dead listener is
    /// replaced.
    ///
    /// Errors: [`Error::AddressInUse`] (a live listener serves the path, or
    /// it exists and is not a socket), [`Error::InvalidArgument`] (empty
    /// path, NUL byte, too long), [`Error::Permission`], [`Error::System`].
    ///
    /// ```no_run
    /// // An echo consumer: one client at a time, until it hangs up.
    /// let listener = goipc::Listener::bind("/tmp/echo.sock")?;
    /// loop {
    ///     let conn = listener.accept()?;
    ///     loop {
    ///         match conn.recv() {
    ///             Ok(msg) => conn.send(&msg)?,
    ///             Err(goipc::Error::PeerClosed) => break,
    ///             Err(e) => return Err(e),
    ///         }
    ///     }
    /// }
    /// # #[allow(unreachable_code)]
    /// # Ok::<(), goipc::Error>(())
    /// ```
    pub fn bind(path: impl AsRef<Path>) -> Result<Listener> {
        Listener::bind_raw(path.as_ref(), None)
    }

    /// [`Listener::bind`] with options. Their `max_message_size`, `spin`,
    /// `handshake_timeout`, `allow_any_uid` and `protocol_version_override`
    /// apply to every accepted connection; the limits (`max_conns` ..)
    /// bound what the listener accepts ([`Error::Limit`] for a client
    /// beyond one; [`Error::InvalidArgument`] for a limit out of range).
    pub fn bind_with(path: impl AsRef<Path>, opts: &Options) -> Result<Listener> {
        Listener::bind_raw(path.as_ref(), Some(opts))
    }

    fn bind_raw(path: &Path, opts: Option<&Options>) -> Result<Listener> {
        check_abi()?;
        let p = c_path(path)?;
        let raw = opts.map(Options::to_raw).transpose()?;
        let o = raw.as_ref().map_or(ptr::null(), |o| o as *const sys::goipc_options);
        let mut h: sys::goipc_listener = 0;
        // SAFETY: p is NUL-terminated and outlives the call; o is NULL or
        // points to an initialised goipc_options; h is writable.
        check(unsafe { sys::goipc_listen_ex(p.as_ptr(), o, &mut h) })?;
        Ok(Listener { h })
    }

    /// Waits as long as it takes for a client and completes its handshake.
    ///
    /// Errors for one failed client ([`Error::Protocol`],
    /// [`Error::Permission`], [`Error::PeerClosed`], [`Error::System`]) leave
    /// the listener usable: keep accepting.
    pub fn accept(&self) -> Result<Conn> {
        self.accept_raw(-1)
    }

    /// [`Listener::accept`] waiting at most `timeout` ([`Error::Timeout`]);
    /// `Duration::ZERO` takes only a client already waiting.
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Conn> {
        self.accept_raw(ceil_ms(timeout))
    }

    fn accept_raw(&self, ms: i64) -> Result<Conn> {
        let mut c: sys::goipc_conn = 0;
        // SAFETY: self.h is a listener handle we own; c is writable.
        check(unsafe { sys::goipc_accept(self.h, ms, &mut c) })?;
        Ok(Conn { h: c })
    }

    /// Stops listening and removes the socket file, reporting the
    /// library's status (drop does the same and ignores it).
    pub fn close(self) -> Result<()> {
        let me = ManuallyDrop::new(self);
        // SAFETY: me.h is ours and not used after this.
        check(unsafe { sys::goipc_listener_close(me.h) })
    }

    /// How many failed handshakes [`Listener::accept`] will never report
    /// (`goipc_listener_dropped_errors`): at most 64 failures wait for
    /// accept, and one that ends while that many wait is counted here
    /// instead (its client got its own error either way). A server that
    /// logs accept's errors should log this count too, so that every
    /// refused client is accounted for when its accepting thread falls
    /// behind a flood of bad clients.
    pub fn dropped_errors(&self) -> Result<u64> {
        let mut n: u64 = 0;
        // SAFETY: self.h is ours; n is writable.
        check(unsafe { sys::goipc_listener_dropped_errors(self.h, &mut n) })?;
        Ok(n)
    }

    /// The listener's notification descriptor (`goipc_listener_fd`): it is
    /// readable exactly while [`Listener::accept_timeout`] with
    /// `Duration::ZERO` would not return [`Error::Timeout`] (a client's
    /// handshake completed or failed, or the listener is closed). For event
    /// loops (epoll, mio, tokio's `AsyncFd`: the `tokio` feature's
    /// `AsyncListener` does it) that accept without a blocked thread and
    /// without polling on a timer.
    ///
    /// Rules: readiness is exact and level-triggered; it turns quiet when
    /// an accept takes the last queued client. After a wakeup accept with
    /// `Duration::ZERO` until one returns [`Error::Timeout`] (another
    /// thread may have taken the client), then wait again. The descriptor
    /// belongs to the listener (hence the borrow): never read, write or
    /// close it, and deregister it before the `Listener` is closed (which
    /// makes it readable, then closes it). Every call returns the same
    /// descriptor; the first creates it (an eventfd of this process).
    ///
    /// Errors: [`Error::System`] (eventfd failed).
    pub fn notify_fd(&self) -> Result<BorrowedFd<'_>> {
        let mut fd: core::ffi::c_int = -1;
        // SAFETY: self.h is ours; fd is writable.
        check(unsafe { sys::goipc_listener_fd(self.h, &mut fd) })?;
        // SAFETY: on success fd is an open descriptor owned by the
        // listener, closed only by goipc_listener_close, which needs the
        // Listener by value (or its drop): it outlives the borrow of self.
        Ok(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// The C handle, for calls through [`crate::sys`]. Do not close it.
    pub fn as_raw(&self) -> sys::goipc_listener {
        self.h
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // SAFETY: self.h is ours; close never fails in a way we could act on.
        unsafe { sys::goipc_listener_close(self.h) };
    }
}

// ---- Conn -------------------------------------------------------------

/// One goipc connection: a pair of shared-memory rings to the peer
/// process. Dropping it closes it; the peer then gets
/// [`Error::PeerClosed`] once it has received what was sent.
///
/// # Threads
///
/// `Conn` is `Send + Sync`. The handle is a plain integer and every C
/// function may be called from any thread; the library serialises sends
/// with each other and receives with each other, and runs a send in
/// parallel with a receive. So share `&Conn` between one sender thread and
/// one receiver thread (the intended use); more threads are correct but
/// take turns. A [`RecvView`] (a [`Reservation`]) holds the receive (send)
/// side: other threads' receives and calls (sends) wait until it is
/// dropped (receives and calls within their timeout, sends whatever their
/// timeout), and the thread holding it gets
/// [`Error::InvalidArgument`] if it receives (sends) again meanwhile.
/// Closing needs the `Conn` by value, so it cannot happen while a guard or
/// another thread still borrows it.
///
/// # Timeouts
///
/// Methods that may wait come in pairs: `send` waits as long as it takes
/// (a dead peer still ends the wait with [`Error::PeerClosed`]);
/// `send_timeout` waits at most the given duration (rounded up to whole
/// milliseconds) and returns [`Error::Timeout`], leaving the connection
/// usable; `Duration::ZERO` never waits.
#[derive(Debug)]
pub struct Conn {
    pub(crate) h: sys::goipc_conn,
}

impl Conn {
    /// Connects to the listener at `path` and completes the handshake.
    /// `timeout`: `None` waits as long as the handshake timeout allows
    /// (default 5 s); `Some(d)` bounds connect + handshake (zero always
    /// times out: a handshake has to wait for the listener's reply).
    ///
    /// Errors: [`Error::System`] (errno ENOENT: no such path; ECONNREFUSED:
    /// nobody listens), [`Error::Timeout`], [`Error::Protocol`] (not a goipc
    /// listener, another protocol version), [`Error::Permission`],
    /// [`Error::InvalidArgument`] (bad path, or the listener refused our
    /// maximum message size), [`Error::PeerClosed`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// // A consumer listens there, e.g. `goipc pong --listen /tmp/pong.sock`.
    /// let conn = goipc::Conn::dial("/tmp/pong.sock", Some(Duration::from_secs(5)))?;
    /// conn.send(b"hello")?;
    /// let reply = conn.recv_timeout(Duration::from_secs(1))?;
    /// assert_eq!(reply, b"hello");
    /// # Ok::<(), goipc::Error>(())
    /// ```
    pub fn dial(path: impl AsRef<Path>, timeout: Option<Duration>) -> Result<Conn> {
        Conn::dial_raw(path.as_ref(), None, timeout)
    }

    /// [`Conn::dial`] with options; the dialer's `ring_size` and
    /// `max_message_size` define the connection.
    pub fn dial_with(path: impl AsRef<Path>, opts: &Options, timeout: Option<Duration>) -> Result<Conn> {
        Conn::dial_raw(path.as_ref(), Some(opts), timeout)
    }

    fn dial_raw(path: &Path, opts: Option<&Options>, timeout: Option<Duration>) -> Result<Conn> {
        check_abi()?;
        let p = c_path(path)?;
        let raw = opts.map(Options::to_raw).transpose()?;
        let o = raw.as_ref().map_or(ptr::null(), |o| o as *const sys::goipc_options);
        let mut h: sys::goipc_conn = 0;
        // SAFETY: p is NUL-terminated and outlives the call; o is NULL or an
        // initialised goipc_options; h is writable.
        check(unsafe { sys::goipc_dial_ex(p.as_ptr(), o, timeout_ms(timeout), &mut h) })?;
        Ok(Conn { h })
    }

    /// The largest message, in bytes, this connection carries (both
    /// directions).
    pub fn max_message_size(&self) -> Result<usize> {
        let mut n = 0usize;
        // SAFETY: self.h is ours; n is writable.
        check(unsafe { sys::goipc_conn_max_message_size(self.h, &mut n) })?;
        Ok(n)
    }

    /// This end's counters: messages and bytes sent and received, times it
    /// parked, wakeups it sent, ring capacity and bytes in use, and who is
    /// parked now. Never waits; callable from any thread.
    ///
    /// Errors: [`Error::Closed`].
    pub fn stats(&self) -> Result<Stats> {
        let mut s = sys::goipc_stats::for_call();
        // SAFETY: self.h is ours; s is a goipc_stats whose struct_size is
        // its own size, so the library writes at most that many bytes.
        check(unsafe { sys::goipc_conn_stats(self.h, &mut s) })?;
        Ok(Stats::from_c(&s))
    }

    /// Sends `data` as one message (copied into shared memory). Waits
    /// while the peer's ring is full (backpressure: nothing is dropped).
    /// One call into the library.
    ///
    /// Errors: [`Error::MessageTooLarge`] (nothing sent, still usable),
    /// [`Error::PeerClosed`], [`Error::Protocol`], [`Error::InvalidArgument`]
    /// (this thread holds a [`Reservation`]).
    pub fn send(&self, data: &[u8]) -> Result<()> {
        self.send_raw(data, -1)
    }

    /// [`Conn::send`] waiting at most `timeout` for ring space
    /// ([`Error::Timeout`]: nothing written).
    pub fn send_timeout(&self, data: &[u8], timeout: Duration) -> Result<()> {
        self.send_raw(data, ceil_ms(timeout))
    }

    pub(crate) fn send_raw(&self, data: &[u8], ms: i64) -> Result<()> {
        // SAFETY: data is valid for data.len() bytes for the call (the
        // library copies it); a non-NULL dangling pointer with len 0 is fine.
        check(unsafe { sys::goipc_send(self.h, data.as_ptr().cast::<c_void>(), data.len(), ms) })
    }

    /// Receives the next message into a new `Vec` of its exact size (two
    /// calls into the library: a view, copied, then released; use
    /// [`Conn::recv_into`] or [`Conn::recv_view`] on a hot path).
    pub fn recv(&self) -> Result<Vec<u8>> {
        self.recv_view_raw(-1).map(|v| v.to_vec())
    }

    /// [`Conn::recv`] waiting at most `timeout` ([`Error::Timeout`]).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.recv_view_raw(ceil_ms(timeout)).map(|v| v.to_vec())
    }

    /// Receives the next message into `buf` and returns its length. One
    /// call into the library, no allocation.
    ///
    /// If the message is larger than `buf`, returns
    /// [`Error::BufferTooSmall`] with the size needed and leaves it queued.
    ///
    /// ```no_run
    /// # let conn = goipc::Conn::dial("/tmp/pong.sock", None)?;
    /// let mut buf = vec![0u8; conn.max_message_size()?];
    /// conn.send(b"ping")?;
    /// let n = conn.recv_into(&mut buf)?; // no allocation per message
    /// assert_eq!(&buf[..n], b"ping");
    /// # Ok::<(), goipc::Error>(())
    /// ```
    pub fn recv_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into_raw(buf, -1)
    }

    /// [`Conn::recv_into`] waiting at most `timeout` ([`Error::Timeout`]).
    pub fn recv_into_timeout(&self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_into_raw(buf, ceil_ms(timeout))
    }

    pub(crate) fn recv_into_raw(&self, buf: &mut [u8], ms: i64) -> Result<usize> {
        let mut n = 0usize;
        // SAFETY: buf is valid and writable for buf.len() bytes; n is
        // writable. The library writes at most cap bytes.
        let st = unsafe { sys::goipc_recv(self.h, buf.as_mut_ptr().cast::<c_void>(), buf.len(), &mut n, ms) };
        match st {
            sys::GOIPC_OK => Ok(n),
            sys::GOIPC_ERR_BUFFER_TOO_SMALL => Err(Error::BufferTooSmall { needed: n }),
            _ => Err(Error::last(st)),
        }
    }

    /// Sends every message of `msgs` in order, each as one message, with
    /// one call into the library: they are copied into shared memory and
    /// published together, so the peer's ring moves, and a sleeping peer is
    /// woken, once per batch instead of once per message. For streams of
    /// small messages (see docs/RUST.md, "Batches"); the peer receives
    /// them one by one as usual. No allocation for up to 64 messages.
    ///
    /// Waits for ring space as [`Conn::send`] does, at most `timeout` for
    /// the whole batch (`None`: as long as it takes); a batch may be larger
    /// than the ring. Returns how many messages were sent: all of them, or,
    /// when the timeout expired after some were sent, that many (the first
    /// ones; send the rest again).
    ///
    /// Errors: [`Error::Timeout`] (nothing sent), [`Error::MessageTooLarge`]
    /// (a message is above the maximum; every message is checked first, so
    /// nothing was sent), [`Error::PeerClosed`], [`Error::Closed`],
    /// [`Error::Protocol`], [`Error::InvalidArgument`] (this thread holds a
    /// [`Reservation`]).
    ///
    /// ```no_run
    /// # let conn = goipc::Conn::dial("/tmp/sink.sock", None)?;
    /// let msgs: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_le_bytes().to_vec()).collect();
    /// let mut sent = 0;
    /// while sent < msgs.len() {
    ///     sent += conn.send_batch(&msgs[sent..], None)?;
    /// }
    /// # Ok::<(), goipc::Error>(())
    /// ```
    pub fn send_batch<M: AsRef<[u8]>>(&self, msgs: &[M], timeout: Option<Duration>) -> Result<usize> {
        fn iovec(m: &[u8]) -> sys::goipc_iovec {
            sys::goipc_iovec { data: m.as_ptr().cast::<c_void>(), len: m.len() }
        }
        const ON_STACK: usize = 64;
        let ms = timeout_ms(timeout);
        if msgs.len() <= ON_STACK {
            let mut arr = [sys::goipc_iovec { data: ptr::null(), len: 0 }; ON_STACK];
            for (slot, m) in arr.iter_mut().zip(msgs) {
                *slot = iovec(m.as_ref());
            }
            self.send_iovecs(&arr[..msgs.len()], ms)
        } else {
            let v: Vec<sys::goipc_iovec> = msgs.iter().map(|m| iovec(m.as_ref())).collect();
            self.send_iovecs(&v, ms)
        }
    }

    fn send_iovecs(&self, iov: &[sys::goipc_iovec], ms: i64) -> Result<usize> {
        let mut sent = 0usize;
        // SAFETY: iov holds iov.len() iovecs, each pointing at a slice the
        // caller lends for the call (the library copies them); sent is
        // writable.
        let st = unsafe { sys::goipc_send_batch(self.h, iov.as_ptr(), iov.len(), &mut sent, ms) };
        match st {
            sys::GOIPC_OK => Ok(sent),
            sys::GOIPC_ERR_TIMEOUT if sent > 0 => Ok(sent),
            _ => Err(Error::last(st)),
        }
    }

    /// Receives up to `sizes.len()` messages with one call into the
    /// library: waits at most `timeout` (`None`: as long as it takes) for
    /// the first, then takes the messages already published behind it,
    /// without waiting again, as many as fit in `buf`. Returns how many it
    /// took (at least 1): message `i` is `sizes[i]` bytes, and they lie
    /// back to back at the start of `buf`. Their ring space goes back to
    /// the peer once per batch. For draining streams of small messages (see
    /// docs/RUST.md, "Batches"). No allocation.
    ///
    /// A later message that does not fit what is left of `buf` ends the
    /// batch and is the next call's first. A first message larger than
    /// `buf` returns [`Error::BufferTooSmall`] with its size and stays
    /// queued (a `buf` of [`Conn::max_message_size`] bytes always holds it).
    ///
    /// Errors: [`Error::InvalidArgument`] (`sizes` is empty, or this thread
    /// holds a [`RecvView`]), [`Error::Timeout`], [`Error::PeerClosed`]
    /// (after every message the peer sent was received),
    /// [`Error::BufferTooSmall`], [`Error::Closed`], [`Error::Protocol`].
    ///
    /// ```no_run
    /// # let conn = goipc::Conn::dial("/tmp/pong.sock", None)?;
    /// let mut buf = vec![0u8; 64 * 1024];
    /// let mut sizes = [0usize; 64];
    /// let n = conn.recv_batch(&mut buf, &mut sizes, None)?;
    /// let mut off = 0;
    /// for &len in &sizes[..n] {
    ///     let msg = &buf[off..off + len];
    ///     off += len;
    ///     # let _ = msg;
    /// }
    /// # Ok::<(), goipc::Error>(())
    /// ```
    pub fn recv_batch(&self, buf: &mut [u8], sizes: &mut [usize], timeout: Option<Duration>) -> Result<usize> {
        let mut count = 0usize;
        // SAFETY: buf is writable for buf.len() bytes and sizes for
        // sizes.len() entries; the library writes within them (and count).
        let st = unsafe {
            sys::goipc_recv_batch(
                self.h,
                buf.as_mut_ptr().cast::<c_void>(),
                buf.len(),
                sizes.as_mut_ptr(),
                sizes.len(),
                &mut count,
                timeout_ms(timeout),
            )
        };
        match st {
            sys::GOIPC_OK => Ok(count),
            sys::GOIPC_ERR_BUFFER_TOO_SMALL => Err(Error::BufferTooSmall { needed: sizes[0] }),
            _ => Err(Error::last(st)),
        }
    }

    /// Receives the next message into `buf`, replacing its contents and
    /// growing it if needed. One call into the library when the capacity
    /// suffices (the usual case once warm), two when it must grow.
    pub(crate) fn recv_vec_raw(&self, buf: &mut Vec<u8>, ms: i64) -> Result<()> {
        buf.clear();
        loop {
            let mut n = 0usize;
            let cap = buf.capacity();
            // SAFETY: the spare capacity of buf (cap bytes from its start,
            // as len is 0) is writable; the library writes at most cap bytes
            // and reports in n how many it wrote.
            let st = unsafe { sys::goipc_recv(self.h, buf.as_mut_ptr().cast::<c_void>(), cap, &mut n, ms) };
            match st {
                sys::GOIPC_OK => {
                    debug_assert!(n <= cap);
                    // SAFETY: the library initialised the first n <= cap bytes.
                    unsafe { buf.set_len(n.min(cap)) };
                    return Ok(());
                }
                // The message stays queued: grow and take it (no wait now).
                sys::GOIPC_ERR_BUFFER_TOO_SMALL if n > cap => buf.reserve_exact(n),
                sys::GOIPC_ERR_BUFFER_TOO_SMALL => return Err(Error::BufferTooSmall { needed: n }),
                _ => return Err(Error::last(st)),
            }
        }
    }

    /// Receives the next message in place, without copying: the guard
    /// derefs to the bytes in the shared ring and gives the space back to
    /// the peer when dropped. Two calls into the library (view, release).
    ///
    /// The bytes are shared memory: the peer's library does not touch them
    /// until the release, but a hostile peer process could. Parse
    /// untrusted data from a copy ([`Conn::recv_into`]) if that matters.
    ///
    /// Holding the guard holds the receive side (see [Threads](Conn#threads)).
    ///
    /// ```no_run
    /// # let conn = goipc::Conn::dial("/tmp/pong.sock", None)?;
    /// let view = conn.recv_view()?; // derefs to &[u8], in the ring
    /// let first = view.first().copied();
    /// drop(view); // gives the space back to the peer
    /// # let _ = first;
    /// # Ok::<(), goipc::Error>(())
    /// ```
    pub fn recv_view(&self) -> Result<RecvView<'_>> {
        self.recv_view_raw(-1)
    }

    /// [`Conn::recv_view`] waiting at most `timeout` ([`Error::Timeout`]).
    pub fn recv_view_timeout(&self, timeout: Duration) -> Result<RecvView<'_>> {
        self.recv_view_raw(ceil_ms(timeout))
    }

    fn recv_view_raw(&self, ms: i64) -> Result<RecvView<'_>> {
        let mut p: *const c_void = ptr::null();
        let mut n = 0usize;
        // SAFETY: p and n are writable; on success the library keeps
        // [p, p+n) valid and unchanged by our side until goipc_release.
        check(unsafe { sys::goipc_recv_view(self.h, &mut p, &mut n, ms) })?;
        let ptr = if p.is_null() { ptr::NonNull::<u8>::dangling().as_ptr() as *const u8 } else { p.cast::<u8>() };
        Ok(RecvView { conn: self, ptr, len: n })
    }

    /// Reserves room for a message of up to `len` bytes in the ring, to be
    /// filled in place and published with [`Reservation::commit`]; dropping
    /// the guard without committing sends nothing. The slice starts 8-byte
    /// aligned; its initial contents are whatever the ring held.
    ///
    /// Holding the guard holds the send side (see [Threads](Conn#threads)).
    /// Errors: as [`Conn::send`].
    ///
    /// ```no_run
    /// # let conn = goipc::Conn::dial("/tmp/pong.sock", None)?;
    /// let mut r = conn.reserve(16)?; // derefs to &mut [u8], in the ring
    /// r[..5].copy_from_slice(b"hello");
    /// r.commit(5)?; // publishes the first 5 bytes as one message
    /// # Ok::<(), goipc::Error>(())
    /// ```
    pub fn reserve(&self, len: usize) -> Result<Reservation<'_>> {
        self.reserve_raw(len, -1)
    }

    /// [`Conn::reserve`] waiting at most `timeout` for space.
    pub fn reserve_timeout(&self, len: usize, timeout: Duration) -> Result<Reservation<'_>> {
        self.reserve_raw(len, ceil_ms(timeout))
    }

    fn reserve_raw(&self, len: usize, ms: i64) -> Result<Reservation<'_>> {
        let mut p: *mut c_void = ptr::null_mut();
        // SAFETY: p is writable; on success [p, p+len) belongs to us until
        // commit or abort.
        check(unsafe { sys::goipc_reserve(self.h, len, ms, &mut p) })?;
        let ptr = if p.is_null() { ptr::NonNull::<u8>::dangling().as_ptr() } else { p.cast::<u8>() };
        Ok(Reservation { conn: self, ptr, len, done: false })
    }

    /// Closes the connection, reporting the library's status (drop does the
    /// same and ignores it).
    pub fn close(self) -> Result<()> {
        let me = ManuallyDrop::new(self);
        // SAFETY: me.h is ours and never used after this.
        check(unsafe { sys::goipc_conn_close(me.h) })
    }

    /// The connection's notification descriptor (`goipc_conn_fd`): it
    /// becomes readable when a call with a zero timeout that returned
    /// [`Error::Timeout`] may now succeed (a message arrived, ring space
    /// was freed, the peer closed or died). For event loops (epoll, mio,
    /// tokio's `AsyncFd`: the `tokio` feature's `AsyncConn` does it) that
    /// wait on many connections without a thread each.
    ///
    /// Rules: readiness is level-triggered and may be spurious; after a
    /// wakeup call with `Duration::ZERO` until one returns
    /// [`Error::Timeout`] (that call arms the descriptor and resets the
    /// readiness of its own direction only; calls that succeed leave it
    /// alone), then wait again. The descriptor belongs to the
    /// connection (hence the borrow): never read, write or close it, and
    /// deregister it before the `Conn` is closed. Every call returns the
    /// same descriptor; the first creates it (an eventfd of this process).
    ///
    /// Errors: [`Error::System`] (eventfd failed).
    pub fn notify_fd(&self) -> Result<BorrowedFd<'_>> {
        let mut fd: core::ffi::c_int = -1;
        // SAFETY: self.h is ours; fd is writable.
        check(unsafe { sys::goipc_conn_fd(self.h, &mut fd) })?;
        // SAFETY: on success fd is an open descriptor owned by the
        // connection, closed only by goipc_conn_close, which needs the Conn
        // by value (or its drop): it outlives the borrow of self.
        Ok(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// The C handle, for calls through [`crate::sys`] (for example the C
    /// typed helpers). Do not close it: the `Conn` owns it.
    pub fn as_raw(&self) -> sys::goipc_conn {
        self.h
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: self.h is ours. No guard can be alive (they borrow self),
        // except one leaked with mem::forget, whose pointer is then unused.
        unsafe { sys::goipc_conn_close(self.h) };
    }
}

// ---- Zero-copy guards -------------------------------------------------

/// A received message read in place in the ring ([`Conn::recv_view`]).
/// Derefs to the message bytes; dropping it releases the space to the peer
/// (`goipc_release`).
#[derive(Debug)]
pub struct RecvView<'a> {
    conn: &'a Conn,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the view is a read-only slice of memory that stays mapped and
// untouched by our side until release (the Conn, which owns the mapping,
// is borrowed for 'a and so cannot be closed), and goipc_release may be
// called from any thread ("May be called from another thread than the one
// that took the view"). Sharing &RecvView only hands out &[u8].
unsafe impl Send for RecvView<'_> {}
// SAFETY: as above; shared access is read-only.
unsafe impl Sync for RecvView<'_> {}

impl RecvView<'_> {
    /// Releases the view, reporting the library's status (drop does the
    /// same and ignores it).
    pub fn release(self) -> Result<()> {
        let me = ManuallyDrop::new(self);
        // SAFETY: the view is open on me.conn; the slice is not used after.
        check(unsafe { sys::goipc_release(me.conn.h) })
    }
}

impl Deref for RecvView<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is non-NULL and valid for len bytes until release
        // (goipc_recv_view), which happens only when self is dropped.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl AsRef<[u8]> for RecvView<'_> {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for RecvView<'_> {
    fn drop(&mut self) {
        // SAFETY: the view is open on self.conn; the slice dies with self.
        unsafe { sys::goipc_release(self.conn.h) };
    }
}

/// Room for one message, reserved in the ring ([`Conn::reserve`]). Derefs
/// mutably to the reserved bytes; [`Reservation::commit`] publishes a
/// prefix of them, and dropping the guard without committing sends
/// nothing (`goipc_abort_reserve`).
#[derive(Debug)]
pub struct Reservation<'a> {
    conn: &'a Conn,
    ptr: *mut u8,
    len: usize,
    done: bool,
}

// SAFETY: the reserved bytes belong to this guard alone until commit or
// abort (the library and the peer do not touch them), the mapping outlives
// the borrow of the Conn, and goipc_commit / goipc_abort_reserve may be
// called from any thread. &Reservation hands out only &[u8].
unsafe impl Send for Reservation<'_> {}
// SAFETY: as above; shared access is read-only.
unsafe impl Sync for Reservation<'_> {}

impl Reservation<'_> {
    /// Publishes the first `n` bytes as one message.
    ///
    /// `n` larger than the reservation is [`Error::InvalidArgument`] and
    /// sends nothing (the reservation is then dropped).
    pub fn commit(mut self, n: usize) -> Result<()> {
        if n > self.len {
            return Err(Error::InvalidArgument(format!(
                "goipc: commit of {n} bytes, but only {} were reserved",
                self.len
            )));
        }
        self.done = true;
        // SAFETY: the reservation is open on self.conn and n <= len; the
        // slice is not used afterwards (self is consumed).
        check(unsafe { sys::goipc_commit(self.conn.h, n) })
    }

    /// Drops the reservation without sending, reporting the library's
    /// status (drop does the same and ignores it).
    pub fn abort(mut self) -> Result<()> {
        self.done = true;
        // SAFETY: the reservation is open on self.conn; self is consumed.
        check(unsafe { sys::goipc_abort_reserve(self.conn.h) })
    }
}

impl Deref for Reservation<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is non-NULL and valid for len bytes until commit or
        // abort; the bytes are initialised (mapped shared memory).
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl DerefMut for Reservation<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in deref; the reserved bytes are ours alone to write.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.done {
            // SAFETY: the reservation is still open on self.conn.
            unsafe { sys::goipc_abort_reserve(self.conn.h) };
        }
    }
}

// Send/Sync as stated in the docs above, checked at compile time.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Conn>();
    send_sync::<Listener>();
    send_sync::<RecvView<'static>>();
    send_sync::<Reservation<'static>>();
    send_sync::<Error>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_milliseconds() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(ceil_ms(Duration::ZERO), 0);
        assert_eq!(ceil_ms(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_ms(Duration::from_micros(999)), 1);
        assert_eq!(ceil_ms(Duration::from_millis(1)), 1);
        assert_eq!(ceil_ms(Duration::from_micros(1001)), 2);
        assert_eq!(ceil_ms(Duration::from_secs(3)), 3000);
        assert_eq!(ceil_ms(Duration::MAX), i64::MAX);
    }

    #[test]
    fn options_to_raw() {
        let d = Options::default().to_raw().unwrap();
        assert_eq!(d.struct_size as usize, core::mem::size_of::<sys::goipc_options>());
        assert_eq!((d.ring_size, d.max_message_size, d.spin_ns, d.handshake_timeout_ms), (0, 0, 0, 0));
        assert_eq!((d.allow_any_uid, d.protocol_version_override, d.reserved0), (0, 0, 0));
        let o = Options {
            ring_size: 1 << 20,
            max_message_size: 4096,
            spin: Spin::For(Duration::from_micros(3)),
            handshake_timeout: Some(Duration::from_micros(1500)),
            allow_any_uid: true,
            protocol_version_override: 9,
            max_conns: Limit::AtMost(3),
            max_segment_size: Limit::Unlimited,
            max_mapped_bytes: Limit::AtMost(1 << 40),
            max_pending_handshakes: Limit::Default,
            max_inflight_calls: 5,
            free_space_in_pieces: true,
        };
        let r = o.to_raw().unwrap();
        assert_eq!((r.max_inflight_calls, d.max_inflight_calls), (5, 0));
        assert_eq!((r.free_space_in_pieces, d.free_space_in_pieces, r.reserved1), (1, 0, 0));
        assert_eq!((r.ring_size, r.max_message_size, r.spin_ns), (1 << 20, 4096, 3000));
        assert_eq!((r.handshake_timeout_ms, r.allow_any_uid, r.protocol_version_override), (2, 1, 9));
        assert_eq!(
            (r.max_conns, r.max_segment_size, r.max_mapped_bytes, r.max_pending_handshakes),
            (3, -1, 1 << 40, 0)
        );
        assert_eq!((d.max_conns, d.max_segment_size, d.max_mapped_bytes, d.max_pending_handshakes), (0, 0, 0, 0));
        let spin = |s| Options { spin: s, ..Options::default() }.to_raw().unwrap().spin_ns;
        assert_eq!(spin(Spin::Default), 0);
        assert_eq!(spin(Spin::SleepAtOnce), -1);
        assert_eq!(spin(Spin::For(Duration::ZERO)), -1);
        assert_eq!(spin(Spin::Forever), i64::MAX);
        assert_eq!(spin(Spin::For(Duration::MAX)), i64::MAX);
    }

    #[test]
    fn limits_out_of_range_are_invalid_arguments() {
        let bad = [
            Options { max_conns: Limit::AtMost(0), ..Options::default() },
            Options { max_conns: Limit::AtMost(1 << 31), ..Options::default() },
            Options { max_pending_handshakes: Limit::AtMost(1 << 31), ..Options::default() },
            Options { max_segment_size: Limit::AtMost(1 << 63), ..Options::default() },
            Options { max_mapped_bytes: Limit::AtMost(0), ..Options::default() },
        ];
        for (o, name) in
            bad.iter().zip(["max_conns", "max_conns", "max_pending_handshakes", "max_segment_size", "max_mapped_bytes"])
        {
            match o.to_raw() {
                Err(Error::InvalidArgument(m)) => assert!(m.contains(name), "{m}"),
                other => panic!("{o:?}: {other:?}"),
            }
        }
        let calls = |n| Options { max_inflight_calls: n, ..Options::default() }.to_raw();
        assert_eq!(calls(MAX_INFLIGHT_CALLS_LIMIT).unwrap().max_inflight_calls, 1 << 16);
        for n in [MAX_INFLIGHT_CALLS_LIMIT + 1, usize::MAX] {
            match calls(n) {
                Err(Error::InvalidArgument(m)) => assert!(m.contains("max_inflight_calls"), "{m}"),
                other => panic!("max_inflight_calls {n}: {other:?}"),
            }
        }
        let top = Options { max_conns: Limit::AtMost(i32::MAX as u64), ..Options::default() };
        assert_eq!(top.to_raw().unwrap().max_conns, i64::from(i32::MAX));
    }
}
