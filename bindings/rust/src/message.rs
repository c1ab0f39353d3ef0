//! The kit's FlatBuffers messages (schema/goipc.fbs, docs/MESSAGES.md): a
//! `Message` (file identifier `GIPC`) whose `body` is a `Ping` or a `Pong`.
//!
//! Building uses the `flatbuffers` crate (=25.12.19) with the generated
//! code in `src/generated/goipc_generated.rs` ([`fb`]), adding fields one
//! by one in schema order, so the bytes equal the Go and Python writers'
//! (`interop_tests/wire`). Reading always goes through the verifying
//! `flatbuffers::root`.
//!
//! [`Messenger`] sends and receives them on a [`Conn`] with one call into
//! the library per message: a send hands the finished builder bytes to
//! `goipc_send`; a receive copies the message out of the ring into the
//! messenger's own buffer with `goipc_recv`, then verifies and reads that
//! copy. Verifying a private copy is deliberate: the ring is shared memory
//! the peer process can write, and the generated accessors re-read offsets
//! after verification, so verifying in place would let a hostile peer
//! change a checked offset under the reader. The copy is the size of the
//! message (136 bytes for a Pong with a 64-byte payload) and costs less
//! than the release call a view would need.

use core::time::Duration;
use std::time::Instant;

use flatbuffers::FlatBufferBuilder;

use crate::conn::{Conn, ceil_ms};
use crate::error::{Error, Result};
pub use crate::generated::goipc::fb;

/// The file identifier of every goipc message.
pub const IDENTIFIER: &str = "GIPC";

/// Builds a `Message`/`Ping` in `b` (reset first) and returns its bytes.
pub fn build_ping<'b>(b: &'b mut FlatBufferBuilder<'_>, seq: u64, sent_ns: i64, payload: &[u8]) -> &'b [u8] {
    b.reset();
    let payload = b.create_vector(payload);
    // Schema order, as the Go and Python writers add them (the generated
    // Ping::create adds the largest first: a different, valid layout).
    let mut p = fb::PingBuilder::new(b);
    p.add_seq(seq);
    p.add_sent_ns(sent_ns);
    p.add_payload(payload);
    let body = p.finish().as_union_value();
    finish(b, fb::Body::Ping, body)
}

/// Builds a `Message`/`Pong` in `b` (reset first) and returns its bytes.
pub fn build_pong<'b>(
    b: &'b mut FlatBufferBuilder<'_>,
    seq: u64,
    ping_sent_ns: i64,
    received_ns: i64,
    payload: &[u8],
) -> &'b [u8] {
    b.reset();
    let payload = b.create_vector(payload);
    let mut p = fb::PongBuilder::new(b);
    p.add_seq(seq);
    p.add_ping_sent_ns(ping_sent_ns);
    p.add_received_ns(received_ns);
    p.add_payload(payload);
    let body = p.finish().as_union_value();
    finish(b, fb::Body::Pong, body)
}

fn finish<'b>(
    b: &'b mut FlatBufferBuilder<'_>,
    t: fb::Body,
    body: flatbuffers::WIPOffset<flatbuffers::UnionWIPOffset>,
) -> &'b [u8] {
    let mut m = fb::MessageBuilder::new(b);
    m.add_body(body);
    m.add_body_type(t);
    let root = m.finish();
    fb::finish_message_buffer(b, root);
    b.finished_data()
}

/// Checks the `GIPC` identifier and verifies `buf` with
/// `flatbuffers::root`. Unknown body types (from a newer peer) verify:
/// look at `body_type()`.
///
/// Errors: [`Error::NotAMessage`], [`Error::InvalidMessage`].
pub fn parse(buf: &[u8]) -> Result<fb::Message<'_>> {
    if buf.len() < 8 || !fb::message_buffer_has_identifier(buf) {
        return Err(Error::NotAMessage { len: buf.len() });
    }
    Ok(fb::root_as_message(buf)?)
}

/// [`parse`], and the body as a Ping ([`Error::UnexpectedBody`] if not).
pub fn parse_ping(buf: &[u8]) -> Result<fb::Ping<'_>> {
    let m = parse(buf)?;
    m.body_as_ping().ok_or(Error::UnexpectedBody { expected: fb::Body::Ping, got: m.body_type() })
}

/// [`parse`], and the body as a Pong ([`Error::UnexpectedBody`] if not).
pub fn parse_pong(buf: &[u8]) -> Result<fb::Pong<'_>> {
    let m = parse(buf)?;
    m.body_as_pong().ok_or(Error::UnexpectedBody { expected: fb::Body::Pong, got: m.body_type() })
}

/// A body type this version of the schema knows.
fn known(b: fb::Body) -> bool {
    b.0 <= fb::Body::ENUM_MAX
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

unsafe extern "C" {
    // glibc; struct timespec is two 64-bit fields on 64-bit Linux (this
    // crate asserts a 64-bit target in sys.rs).
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

const CLOCK_MONOTONIC: i32 = 1;

/// CLOCK_MONOTONIC in nanoseconds: the clock of every Ping's `sent_ns` and
/// Pong's `received_ns`, in every language.
pub fn monotonic_ns() -> i64 {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is writable; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Sends and receives Ping/Pong messages on a connection, reusing one
/// builder and one receive buffer (no allocation once warm).
///
/// `Messenger` is `Send + Sync`, and its methods take `&mut self`: use one
/// per thread, for example a sender thread and a receiver thread each with
/// its own on the same `&Conn`. Received messages borrow the messenger's
/// buffer until the next call.
///
/// ```no_run
/// let conn = goipc::Conn::dial("/tmp/pong.sock", None)?;
/// let mut m = goipc::Messenger::new(&conn);
/// m.send_ping(1, b"hello")?;
/// let pong = m.recv_pong()?;
/// assert_eq!(pong.seq(), 1);
/// assert_eq!(pong.payload().map(|p| p.bytes()), Some(&b"hello"[..]));
/// # Ok::<(), goipc::Error>(())
/// ```
pub struct Messenger<'c> {
    conn: &'c Conn,
    builder: FlatBufferBuilder<'static>,
    rx: Vec<u8>,
}

impl core::fmt::Debug for Messenger<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Messenger").field("conn", self.conn).finish_non_exhaustive()
    }
}

impl<'c> Messenger<'c> {
    /// A messenger on `conn`.
    pub fn new(conn: &'c Conn) -> Messenger<'c> {
        Messenger { conn, builder: FlatBufferBuilder::with_capacity(256), rx: Vec::with_capacity(256) }
    }

    /// The connection.
    pub fn conn(&self) -> &'c Conn {
        self.conn
    }

    /// Sends a Ping with `sent_ns` = [`monotonic_ns`] now. Errors: as
    /// [`Conn::send`] ([`Error::MessageTooLarge`] if the payload makes the
    /// message larger than the connection's maximum).
    pub fn send_ping(&mut self, seq: u64, payload: &[u8]) -> Result<()> {
        self.send_ping_raw(seq, payload, -1)
    }

    /// [`Messenger::send_ping`] waiting at most `timeout` for ring space.
    pub fn send_ping_timeout(&mut self, seq: u64, payload: &[u8], timeout: Duration) -> Result<()> {
        self.send_ping_raw(seq, payload, ceil_ms(timeout))
    }

    fn send_ping_raw(&mut self, seq: u64, payload: &[u8], ms: i64) -> Result<()> {
        let bytes = build_ping(&mut self.builder, seq, monotonic_ns(), payload);
        self.conn.send_raw(bytes, ms)
    }

    /// Sends a Pong answering the Ping (`seq`, `ping_sent_ns`);
    /// `received_ns` is when the Ping was read (0: now).
    pub fn send_pong(&mut self, seq: u64, ping_sent_ns: i64, received_ns: i64, payload: &[u8]) -> Result<()> {
        self.send_pong_raw(seq, ping_sent_ns, received_ns, payload, -1)
    }

    /// [`Messenger::send_pong`] waiting at most `timeout` for ring space.
    pub fn send_pong_timeout(
        &mut self,
        seq: u64,
        ping_sent_ns: i64,
        received_ns: i64,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<()> {
        self.send_pong_raw(seq, ping_sent_ns, received_ns, payload, ceil_ms(timeout))
    }

    fn send_pong_raw(&mut self, seq: u64, ping_sent_ns: i64, received_ns: i64, payload: &[u8], ms: i64) -> Result<()> {
        let received_ns = if received_ns == 0 { monotonic_ns() } else { received_ns };
        let bytes = build_pong(&mut self.builder, seq, ping_sent_ns, received_ns, payload);
        self.conn.send_raw(bytes, ms)
    }

    /// A Ping call: sends a Ping (`seq`, `payload`, `sent_ns` now), built
    /// with the FlatBuffers builder, as a call request
    /// ([`Conn::call`]), and returns the reply verified as a Pong. A reply
    /// that is not a valid Pong is reported ([`Error::UnexpectedBody`],
    /// [`Error::InvalidMessage`], [`Error::NotAMessage`]) for this call
    /// only. `goipc pong` answers Ping calls with Pongs.
    pub fn call_ping(&mut self, seq: u64, payload: &[u8], timeout: Option<Duration>) -> Result<fb::Pong<'_>> {
        let req = build_ping(&mut self.builder, seq, monotonic_ns(), payload);
        self.rx = self.conn.call(req, timeout)?;
        parse_pong(&self.rx)
    }

    /// Receives the next message, verified (any body type, including ones
    /// this version does not know). A message that fails verification is
    /// consumed and reported ([`Error::NotAMessage`],
    /// [`Error::InvalidMessage`]); the connection stays usable.
    pub fn recv(&mut self) -> Result<fb::Message<'_>> {
        self.conn.recv_vec_raw(&mut self.rx, -1)?;
        parse(&self.rx)
    }

    /// [`Messenger::recv`] waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<fb::Message<'_>> {
        self.conn.recv_vec_raw(&mut self.rx, ceil_ms(timeout))?;
        parse(&self.rx)
    }

    /// Receives the next Ping. Messages with a body type this version does
    /// not know (a newer peer) are skipped, as the C typed helpers do; a
    /// Pong, a body-less message or one that fails verification is consumed
    /// and reported ([`Error::UnexpectedBody`], [`Error::InvalidMessage`],
    /// [`Error::NotAMessage`]).
    pub fn recv_ping(&mut self) -> Result<fb::Ping<'_>> {
        self.recv_body(fb::Body::Ping, -1)?;
        // The body type was checked by recv_body.
        Ok(self.verified().body_as_ping().expect("body checked"))
    }

    /// [`Messenger::recv_ping`] waiting at most `timeout` in all.
    pub fn recv_ping_timeout(&mut self, timeout: Duration) -> Result<fb::Ping<'_>> {
        self.recv_body(fb::Body::Ping, ceil_ms(timeout))?;
        Ok(self.verified().body_as_ping().expect("body checked"))
    }

    /// Receives the next Pong (see [`Messenger::recv_ping`]).
    pub fn recv_pong(&mut self) -> Result<fb::Pong<'_>> {
        self.recv_body(fb::Body::Pong, -1)?;
        Ok(self.verified().body_as_pong().expect("body checked"))
    }

    /// [`Messenger::recv_pong`] waiting at most `timeout` in all.
    pub fn recv_pong_timeout(&mut self, timeout: Duration) -> Result<fb::Pong<'_>> {
        self.recv_body(fb::Body::Pong, ceil_ms(timeout))?;
        Ok(self.verified().body_as_pong().expect("body checked"))
    }

    /// Receives into self.rx until a message with a known body arrives and
    /// checks that it is `want`. On Ok, self.rx holds a verified message
    /// with that body.
    fn recv_body(&mut self, want: fb::Body, ms: i64) -> Result<()> {
        let deadline = (ms > 0).then(|| Instant::now() + Duration::from_millis(ms as u64));
        let mut wait = ms;
        loop {
            self.conn.recv_vec_raw(&mut self.rx, wait)?;
            let got = parse(&self.rx)?.body_type();
            if got == want {
                return Ok(());
            }
            if known(got) {
                return Err(Error::UnexpectedBody { expected: want, got });
            }
            // A newer peer's message: skip it, within the same deadline.
            if let Some(d) = deadline {
                wait = ceil_ms(d.saturating_duration_since(Instant::now()));
            }
        }
    }

    /// The message in self.rx, which recv_body verified.
    fn verified(&self) -> fb::Message<'_> {
        // SAFETY: self.rx was verified by flatbuffers::root in recv_body
        // and is private memory that nothing modified since.
        unsafe { fb::root_as_message_unchecked(&self.rx) }
    }
}

// Messenger is Send + Sync: it owns its builder and buffer and borrows a
// Conn, which is Sync; every method that uses them takes &mut self.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Messenger<'static>>();
};
