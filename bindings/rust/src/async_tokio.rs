//! The `tokio` feature: [`AsyncConn`] and [`AsyncListener`], goipc
//! connections that wait in a tokio runtime instead of blocking a thread.
//!
//! ```no_run
//! # async fn demo() -> goipc::Result<()> {
//! let conn = goipc::AsyncConn::dial("/tmp/pong.sock", None).await?;
//! conn.send(b"hello").await?;
//! let answer: Vec<u8> = conn.recv().await?;
//! # let _ = answer;
//! # Ok(())
//! # }
//! ```
//!
//! # How a call waits
//!
//! Every send or receive first makes one library call with a zero timeout
//! (unless another future waits in its direction: it queues behind it, see
//! below): when the message is there (or the ring has room) that call is
//! the whole operation and the future is ready on its first poll.
//! Otherwise the call armed the connection's descriptor
//! ([`Conn::notify_fd`], an eventfd); the future polls for a short
//! adaptive budget ([`Options::spin`], default 20 µs, halved after a poll
//! that found nothing down to 1/16, doubled after one that succeeded) and
//! then waits on [`tokio::io::unix::AsyncFd`]. No thread per connection,
//! none per call.
//!
//! **Cancellation.** A future dropped while it waits was between library
//! calls, never inside one: a dropped `recv` took no message (the next
//! `recv` returns it), a dropped `send` sent nothing; one that completed
//! sent all of it. `tokio::time::timeout` and `select!` are safe.
//!
//! **Ending.** [`AsyncConn::close`] (from any task) and the peer closing or
//! dying wake every waiting future, with [`Error::Closed`] and
//! [`Error::PeerClosed`] (after every message the peer sent was received).
//!
//! **One descriptor, two directions.** The library keeps the descriptor's
//! readiness per direction: a call in one direction never consumes the
//! other's wakeup. Within a direction futures queue (a fair
//! `tokio::sync::Mutex` per direction): the one holding the direction
//! makes the calls and waits on the descriptor; the others wait for the
//! lock without calling the library, because a call that finds nothing
//! resets the direction's readiness, which the waiting one relies on.
//! Sent messages thus go out in the order of the calls, received ones are
//! handed out in that order too. See docs/RUST.md.
//!
//! **Calls.** [`AsyncConn::call`] sends its request as a send does
//! (`goipc_call_ex` with a zero timeout, queued behind waiting sends, and
//! woken when another call ends if every call slot was in use), then
//! waits for its own reply with `goipc_call_end` (zero timeout) each time
//! the descriptor is readable. Calls do not queue: the library routes
//! each reply to its call by id, so every waiting call looks again when
//! the descriptor fires and when any call ends. They share the receive
//! direction's readiness with each other and with a waiting `recv`, and
//! a library call that finds nothing resets it (a reply it routed to
//! another call on its way, or a message that came for the `recv`, then
//! loses its wakeup): so a look that found nothing while messages moved
//! makes the others look again, as does a call that found a message at
//! the head of the ring for the `recv`, and a `recv` that ends (it may
//! have moved the head past a message the replies queued behind). A
//! call future dropped after its request went out cancels the call
//! (`goipc_call_cancel`): its slot is free at once and its reply, if it
//! comes, dropped.
//!
//! **Accepting.** Handshakes complete in the background, in Go; the
//! listener's descriptor ([`Listener::notify_fd`], an eventfd) is readable
//! exactly while a finished one is queued (or the listener is closed).
//! [`AsyncListener::accept`] takes a queued client with one library call
//! and otherwise waits on that descriptor with `AsyncFd`: an idle listener
//! costs no wakeups, and a client is accepted as soon as its handshake
//! completes. **Dialing** runs the blocking handshake (a few milliseconds)
//! on tokio's blocking pool.
//!
//! Both types need a tokio runtime with IO enabled (`Runtime::new`,
//! `#[tokio::main]`, `enable_io`).

use core::future::Future;
use core::mem::MaybeUninit;
use core::pin::Pin;
use core::sync::atomic::Ordering::{Relaxed, SeqCst};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use core::task::Poll;
use core::time::Duration;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Mutex, Notify};

use crate::call::{CallStep, FIRST_REPLY_CAPACITY};
use crate::conn::{Conn, Listener, Options, Spin};
use crate::error::{Error, Result};
use crate::sys;

/// Default polling budget before a wait parks in the runtime.
const DEFAULT_SPIN: Duration = Duration::from_micros(20);

const RECV: usize = 0;
const SEND: usize = 1;

/// Who waits in a park loop: the head of a direction (the future holding
/// its turn), or a call waiting for its own reply (those do not queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiter {
    Head(usize),
    Caller,
}

/// The polling budget for `spin`; `Spin::Forever` would block a runtime
/// thread for good.
fn poll_budget(spin: Spin) -> Result<Duration> {
    match spin {
        Spin::Default => Ok(DEFAULT_SPIN),
        Spin::SleepAtOnce => Ok(Duration::ZERO),
        Spin::For(d) => Ok(d),
        Spin::Forever => Err(Error::InvalidArgument(
            "goipc: Spin::Forever would block a tokio worker thread for good; use a finite Spin::For".into(),
        )),
    }
}

fn io_error(e: std::io::Error) -> Error {
    Error::System { errno: e.raw_os_error().unwrap_or(0), message: format!("goipc: tokio AsyncFd: {e}") }
}

/// "Not now" (a zero-timeout call that timed out) as `None`.
fn attempt<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(Error::Timeout) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A goipc connection for tokio. Create it with [`AsyncConn::dial`],
/// [`AsyncListener::accept`] or [`AsyncConn::new`] (from a blocking
/// [`Conn`], inside a runtime). `Send + Sync`: share it (`Arc`) between
/// tasks; any number may send and receive at once. Dropping it closes the
/// connection.
#[derive(Debug)]
pub struct AsyncConn {
    /// A duplicate of the connection's descriptor, registered with the
    /// runtime: closing the connection (which closes the library's copy)
    /// can then never pull a descriptor out from under the reactor.
    /// Declared first: dropped (deregistered) before `conn` closes.
    fd: AsyncFd<OwnedFd>,
    conn: Conn,
    /// Per direction: held by the future that makes the calls (and waits
    /// on the descriptor); the others queue for it, first come first served.
    turn: [Mutex<()>; 2],
    /// Wakes the waiting futures when the connection is closed.
    closing: Notify,
    closed: AtomicBool,
    /// Configured polling budget, and the current one per direction (ns).
    spin_ns: u64,
    budget_ns: [AtomicU64; 2],
    /// Size of the last message received: the capacity `recv` allocates.
    recv_hint: AtomicUsize,
    /// Futures in a park loop: all of them, the receive head (0 or 1),
    /// calls waiting for their replies. Read by the wakeups below to skip
    /// a `notify_waiters` nobody waits for.
    parked: AtomicUsize,
    parked_recv_head: AtomicUsize,
    parked_callers: AtomicUsize,
    /// A call ended: its slot is free (the library does not signal that
    /// on the descriptor, and a call start may wait for a slot), and its
    /// attempts that found nothing may have reset the readiness others
    /// wait for: every parked future looks again.
    call_ended: Notify,
    /// Calls waiting for replies and the receive head share the receive
    /// direction's readiness, and a library call that finds nothing
    /// resets it: a reply it routed to another call on its way (the
    /// library makes the descriptor readable for it, then the reset
    /// drains that), or a message that arrived for the receive, then
    /// loses its wakeup. So they make each other look again (see
    /// `after_failed_look`): `look_recv_head` wakes the parked receive
    /// head, `look_callers` the parked calls.
    look_recv_head: Notify,
    look_callers: Notify,
}

impl AsyncConn {
    /// Wraps a blocking connection, with the default polling budget. Must
    /// be called inside a tokio runtime with IO enabled (tokio's `AsyncFd`
    /// panics otherwise).
    ///
    /// Errors: [`Error::System`] (the descriptor could not be created,
    /// duplicated or registered), [`Error::Closed`].
    pub fn new(conn: Conn) -> Result<AsyncConn> {
        AsyncConn::with_spin(conn, Spin::Default)
    }

    /// [`AsyncConn::new`] with a polling budget: how long a waiting call
    /// polls before it parks (`Spin::SleepAtOnce`: never; `Spin::For(d)`;
    /// `Spin::Default`: 20 µs). `Spin::Forever` is refused
    /// ([`Error::InvalidArgument`]): it would hold a runtime thread.
    pub fn with_spin(conn: Conn, spin: Spin) -> Result<AsyncConn> {
        let budget = poll_budget(spin)?;
        let fd = register(conn.notify_fd()?)?;
        let spin_ns = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
        Ok(AsyncConn {
            fd,
            conn,
            turn: [Mutex::new(()), Mutex::new(())],
            closing: Notify::new(),
            closed: AtomicBool::new(false),
            spin_ns,
            budget_ns: [AtomicU64::new(spin_ns), AtomicU64::new(spin_ns)],
            recv_hint: AtomicUsize::new(256),
            parked: AtomicUsize::new(0),
            parked_recv_head: AtomicUsize::new(0),
            parked_callers: AtomicUsize::new(0),
            call_ended: Notify::new(),
            look_recv_head: Notify::new(),
            look_callers: Notify::new(),
        })
    }

    /// Connects to the listener at `path` (the blocking handshake runs on
    /// tokio's blocking pool; dropping the future closes the connection it
    /// may still make). `timeout` as for [`Conn::dial`].
    pub async fn dial(path: impl AsRef<Path>, timeout: Option<Duration>) -> Result<AsyncConn> {
        AsyncConn::dial_with(path, &Options::default(), timeout).await
    }

    /// [`AsyncConn::dial`] with options; `opts.spin` is the polling
    /// budget (see [`AsyncConn::with_spin`]).
    pub async fn dial_with(path: impl AsRef<Path>, opts: &Options, timeout: Option<Duration>) -> Result<AsyncConn> {
        poll_budget(opts.spin)?;
        let path: PathBuf = path.as_ref().to_owned();
        let o = opts.clone();
        let conn = tokio::task::spawn_blocking(move || Conn::dial_with(&path, &o, timeout))
            .await
            .map_err(|e| Error::System { errno: 0, message: format!("goipc: dial task failed: {e}") })??;
        AsyncConn::with_spin(conn, opts.spin)
    }

    /// The underlying blocking connection (for its properties; its
    /// blocking calls would hold a runtime thread).
    pub fn conn(&self) -> &Conn {
        &self.conn
    }

    /// The largest message, in bytes, this connection carries.
    pub fn max_message_size(&self) -> Result<usize> {
        self.conn.max_message_size()
    }

    /// Sends `data` as one message, waiting while the peer's ring is full.
    /// Errors: as [`Conn::send`].
    pub async fn send(&self, data: &[u8]) -> Result<()> {
        self.run(SEND, || attempt(self.conn.send_raw(data, 0))).await
    }

    /// Receives the next message into a new `Vec` (one library call when
    /// the message fits the capacity allocated from the last message's
    /// size, two when it must grow). Errors: as [`Conn::recv`].
    pub async fn recv(&self) -> Result<Vec<u8>> {
        let try_recv = || {
            let mut buf = Vec::with_capacity(self.recv_hint.load(Relaxed));
            let r = attempt(self.conn.recv_vec_raw(&mut buf, 0))?;
            Ok(r.map(|()| {
                self.recv_hint.store(buf.len().max(64), Relaxed);
                buf
            }))
        };
        self.run(RECV, try_recv).await
    }

    /// Receives the next message into `buf` and returns its length;
    /// [`Error::BufferTooSmall`] leaves it queued. Errors: as
    /// [`Conn::recv_into`].
    pub async fn recv_into(&self, buf: &mut [u8]) -> Result<usize> {
        let mut try_recv = || attempt(self.conn.recv_into_raw(buf, 0));
        self.run_mut(RECV, &mut try_recv).await
    }

    /// Sends `req` as a call request and returns the peer's reply, waiting
    /// in the runtime: for a free call slot and ring space (queued behind
    /// waiting sends, as a send), then for the reply. Any number of tasks
    /// may call at once on one `AsyncConn`; each gets the reply to its own
    /// request, whatever order the peer answers in. Replies of up to 4 KiB
    /// need no second library call (a larger one is kept for one more).
    ///
    /// **Cancellation.** Dropping the future (`tokio::time::timeout`,
    /// `select!`) before the request went out sends nothing; after, it
    /// cancels the call (`goipc_call_cancel`): its call slot is free at
    /// once and the reply, if it comes, is dropped
    /// ([`Conn::dropped_replies`]). The request may then still reach the
    /// peer, which answers it in vain.
    ///
    /// `req` may be up to `max_message_size() - 8` bytes. As for
    /// [`Conn::call`], a plain message or request the peer sends ahead of
    /// the reply must be received by someone (the head-of-line rule).
    ///
    /// Errors: [`Error::PeerClosed`] (every call in flight gets it,
    /// promptly, when the peer closes or dies), [`Error::Closed`],
    /// [`Error::MessageTooLarge`], [`Error::Protocol`].
    ///
    /// ```no_run
    /// # async fn demo(conn: &goipc::AsyncConn) -> goipc::Result<()> {
    /// // `goipc pong` answers a call with its request.
    /// let reply = conn.call(b"hello").await?;
    /// assert_eq!(reply, b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn call(&self, req: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(FIRST_REPLY_CAPACITY);
        let n = self.call_with(req, ReplyBuf::Grow(&mut out)).await?;
        // SAFETY: the library wrote the reply's n bytes at the start of the
        // vector's capacity (ReplyBuf::Grow makes room for a kept one).
        unsafe { out.set_len(n) };
        Ok(out)
    }

    /// [`AsyncConn::call`] with the reply copied into `buf`; returns its
    /// length. No allocation. A reply larger than `buf` is
    /// [`Error::BufferTooSmall`] with the size needed; the call is over
    /// and the reply dropped (a buffer of `max_message_size() - 8` bytes
    /// never sees this). Cancellation and errors: as [`AsyncConn::call`].
    pub async fn call_into(&self, req: &[u8], buf: &mut [u8]) -> Result<usize> {
        self.call_with(req, ReplyBuf::Fixed(buf)).await
    }

    async fn call_with(&self, req: &[u8], mut buf: ReplyBuf<'_>) -> Result<usize> {
        // Cancels the call on every way out while it is pending (the
        // future dropped included), then wakes the parked futures.
        let mut call = CallInFlight { conn: self, id: 0 };
        // The request goes out as a send does: queued behind waiting sends;
        // a start that finds no free call slot is woken when a call ends.
        // Some(None): sent, the reply not in yet.
        // The start only sends (goipc_call_start): the reply cannot be in
        // yet, and wait_reply's first look arms the descriptor for it.
        let mut try_start = || match self.conn.try_call_start(req, &mut call.id)? {
            CallStep::NotSent => Ok(None),
            _ => Ok(Some(())),
        };
        self.run_mut(SEND, &mut try_start).await?;
        self.wait_reply(&mut || self.take_reply(&mut call.id, &mut buf)).await
    }

    /// Takes the reply of the pending call `*id` if it is in (a kept one
    /// that does not fit `buf` included, when `buf` can grow); None while
    /// it is not.
    fn take_reply(&self, id: &mut u64, buf: &mut ReplyBuf<'_>) -> Result<Option<usize>> {
        loop {
            match self.conn.try_call_end(id, buf.space())? {
                CallStep::Replied(n) => return Ok(Some(n)),
                CallStep::Kept(needed) => buf.make_room(needed)?,
                CallStep::Pending | CallStep::NotSent => return Ok(None),
            }
        }
    }

    /// A call's wait for its own reply, after its start found it not
    /// there: polls for the receive direction's budget, then parks.
    async fn wait_reply(&self, try_end: &mut impl FnMut() -> Result<Option<usize>>) -> Result<usize> {
        if let Some(done) = self.poll_budget(RECV, try_end) {
            return done;
        }
        self.park_loop(Waiter::Caller, try_end).await
    }

    /// Closes the connection: futures waiting on it return
    /// [`Error::Closed`], later calls too; the peer gets
    /// [`Error::PeerClosed`] after what was sent. Closing twice is
    /// harmless. (Drop closes as well.)
    pub fn close(&self) {
        if self.closed.swap(true, SeqCst) {
            return;
        }
        // SAFETY: the handle is ours. No view or reservation of it exists
        // (this type hands none out), and goipc_conn_close may run while
        // other threads are inside calls on it: they return CLOSED. The
        // Conn's drop closes it again, which returns GOIPC_ERR_CLOSED.
        unsafe { sys::goipc_conn_close(self.conn.as_raw()) };
        self.closing.notify_waiters();
    }

    async fn run<T>(&self, dir: usize, mut try_op: impl FnMut() -> Result<Option<T>>) -> Result<T> {
        self.run_mut(dir, &mut try_op).await
    }

    async fn run_mut<T>(&self, dir: usize, try_op: &mut impl FnMut() -> Result<Option<T>>) -> Result<T> {
        // Held until the operation ends (or the future is dropped): a
        // future that finds the direction taken queues without calling the
        // library, since a call that finds nothing would reset the
        // readiness the holder waits for.
        let _turn = match self.turn[dir].try_lock() {
            Ok(turn) => turn,
            Err(_) => self.turn[dir].lock().await,
        };
        let done = self.run_turn(dir, try_op).await;
        if dir == RECV && self.parked_callers.load(SeqCst) > 0 {
            // A receive that found nothing may have reset a wakeup of the
            // calls waiting for replies, and one that took a plain message
            // may have freed the replies queued behind it (head of line: a
            // call that finds a message at the head returns at once, and
            // nothing makes the descriptor readable when the head moves).
            self.look_callers.notify_waiters();
        }
        done
    }

    /// `run_mut` once the direction's turn is held.
    async fn run_turn<T>(&self, dir: usize, try_op: &mut impl FnMut() -> Result<Option<T>>) -> Result<T> {
        // The fast path: one call.
        match try_op() {
            Ok(None) => {}
            done => return done.map(|v| v.expect("Some")),
        }
        if let Some(done) = self.poll_budget(dir, try_op) {
            return done;
        }
        self.park_loop(Waiter::Head(dir), try_op).await
    }

    /// Polls for the direction's budget; Some when the operation ended.
    fn poll_budget<T>(&self, dir: usize, try_op: &mut impl FnMut() -> Result<Option<T>>) -> Option<Result<T>> {
        let budget = self.budget_ns[dir].load(Relaxed);
        if budget == 0 {
            return None;
        }
        let start = Instant::now();
        loop {
            match try_op() {
                Ok(None) => {}
                done => {
                    self.budget_ns[dir].store((budget * 2).min(self.spin_ns), Relaxed);
                    return Some(done.map(|v| v.expect("Some")));
                }
            }
            if start.elapsed().as_nanos() as u64 >= budget {
                self.budget_ns[dir].store((budget / 2).max(self.spin_ns / 16), Relaxed);
                return None;
            }
        }
    }

    /// After a look by `who` (the receive head or a call) that found
    /// nothing, makes the futures sharing the receive direction's
    /// readiness look again when that look may have taken their wakeup.
    ///
    /// `seen` is how many messages the connection had received after
    /// `who`'s previous look (None before its first look, which follows
    /// the fast path and the poll budget: those looks may have reset
    /// readiness too). Only a look when messages moved can have routed a
    /// reply (or drained the wakeup of a message someone took): then the
    /// parked calls and receive head look again. And a call that leaves
    /// the ring not empty found a message or request at the head, which
    /// the receive head may be waiting for. A look with no traffic since
    /// the previous one wakes nobody, so futures that find nothing do not
    /// wake each other for ever.
    ///
    /// `notify_waiters` wakes the futures whose `Notified` exists: a
    /// future counts itself parked before it makes one and looks, so one
    /// that the counters skip looks after this look.
    ///
    /// A receive head with no call parked has nobody to wake: it returns
    /// before the library call, so a connection that makes no calls parks
    /// its receives as before calls came. Its `seen` then stays behind,
    /// which can only make a later look wake the calls once more.
    fn after_failed_look(&self, who: Waiter, seen: &mut Option<u64>) {
        if who == Waiter::Head(RECV) && self.parked_callers.load(SeqCst) == 0 {
            return;
        }
        let (moved, ring_not_empty) = match self.conn.stats() {
            Ok(st) => {
                let moved = *seen != Some(st.received.messages);
                *seen = Some(st.received.messages);
                (moved, st.received.in_use > 0)
            }
            Err(_) => (true, true), // closed: everyone finds out
        };
        if moved && self.parked_callers.load(SeqCst) > 0 {
            self.look_callers.notify_waiters();
        }
        if who == Waiter::Caller && (moved || ring_not_empty) && self.parked_recv_head.load(SeqCst) > 0 {
            self.look_recv_head.notify_waiters();
        }
    }

    /// A call ended (see `call_ended`).
    fn on_call_ended(&self) {
        if self.parked.load(SeqCst) > 0 {
            self.call_ended.notify_waiters();
        }
    }

    /// The parked count and the look-again wakeup of `who`'s role (the
    /// receive head's, or the calls'); the send head has neither.
    fn role(&self, who: Waiter) -> Option<(&AtomicUsize, &Notify)> {
        match who {
            Waiter::Head(RECV) => Some((&self.parked_recv_head, &self.look_recv_head)),
            Waiter::Caller => Some((&self.parked_callers, &self.look_callers)),
            Waiter::Head(_) => None,
        }
    }

    /// Waits on the descriptor (and for the wakeups of `who`) and calls
    /// again until the operation ends. A head holds its direction's turn.
    async fn park_loop<T>(&self, who: Waiter, try_op: &mut impl FnMut() -> Result<Option<T>>) -> Result<T> {
        let _parked = ParkedCount::new(self, who);
        let look_again = self.role(who).map(|(_, wakeup)| wakeup);
        let mut seen = None; // see after_failed_look
        loop {
            // Each Notified receives the notify_waiters that follow its
            // creation, polled or not: all exist before the call below.
            let closing = self.closing.notified();
            let call_ended = self.call_ended.notified();
            let look_again = look_again.map(Notify::notified);
            let look_again = async move {
                match look_again {
                    Some(n) => n.await,
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(closing, call_ended, look_again);
            // Registered with the reactor before the call that decides to
            // wait: an event after this point wakes this future even if
            // another future clears the shared readiness first.
            let readable = self.fd.readable();
            tokio::pin!(readable);
            let early = poll_once(readable.as_mut()).await;
            if self.closed.load(SeqCst) {
                return Err(Error::Closed);
            }
            match try_op() {
                Ok(None) => {}
                done => return done.map(|v| v.expect("Some")),
            }
            if who != Waiter::Head(SEND) {
                self.after_failed_look(who, &mut seen);
            }
            let ready = match early {
                Poll::Ready(ready) => Some(ready),
                Poll::Pending => tokio::select! {
                    biased;
                    ready = &mut readable => Some(ready),
                    () = &mut closing => None,
                    () = &mut call_ended => None,
                    () = &mut look_again => None,
                },
            };
            if let Some(ready) = ready {
                // The call of the next round follows: readiness that
                // arrives after this point has a newer tick and is kept.
                ready.map_err(io_error)?.clear_ready();
            }
        }
    }
}

/// Counts a future in `AsyncConn::park_loop` while it lives.
struct ParkedCount<'a> {
    conn: &'a AsyncConn,
    who: Waiter,
}

impl<'a> ParkedCount<'a> {
    fn new(conn: &'a AsyncConn, who: Waiter) -> ParkedCount<'a> {
        conn.parked.fetch_add(1, SeqCst);
        if let Some((n, _)) = conn.role(who) {
            n.fetch_add(1, SeqCst);
        }
        ParkedCount { conn, who }
    }
}

impl Drop for ParkedCount<'_> {
    fn drop(&mut self) {
        if let Some((n, _)) = self.conn.role(self.who) {
            n.fetch_sub(1, SeqCst);
        }
        self.conn.parked.fetch_sub(1, SeqCst);
    }
}

/// The call of an [`AsyncConn::call`] future. Dropped on every way out
/// (the future dropped while it waits included): cancels the call if it
/// is still pending, so its slot is freed and a late reply dropped, then
/// lets the parked futures look again (`AsyncConn::call_ended`).
struct CallInFlight<'a> {
    conn: &'a AsyncConn,
    /// The pending call's id; 0 before the request is sent and once the
    /// call is over.
    id: u64,
}

impl Drop for CallInFlight<'_> {
    fn drop(&mut self) {
        if self.id != 0 {
            self.conn.conn.cancel_call(self.id);
        }
        self.conn.on_call_ended();
    }
}

/// Where a call's reply goes.
enum ReplyBuf<'a> {
    /// A vector (empty, with capacity) that grows for a larger reply.
    Grow(&'a mut Vec<u8>),
    /// The caller's buffer: a larger reply is refused.
    Fixed(&'a mut [u8]),
}

impl ReplyBuf<'_> {
    /// The room the library may write the reply into.
    fn space(&mut self) -> &mut [MaybeUninit<u8>] {
        match self {
            ReplyBuf::Grow(v) => v.spare_capacity_mut(),
            // SAFETY: same layout; the library writes only initialised
            // bytes into it, and nothing else writes through this view, so
            // `buf` stays initialised.
            ReplyBuf::Fixed(buf) => unsafe { &mut *(core::ptr::from_mut::<[u8]>(buf) as *mut [MaybeUninit<u8>]) },
        }
    }

    /// A kept reply of `needed` bytes: room for it, or
    /// [`Error::BufferTooSmall`] for the caller's buffer (the call is then
    /// cancelled as the future ends).
    fn make_room(&mut self, needed: usize) -> Result<()> {
        match self {
            ReplyBuf::Grow(v) => {
                v.reserve_exact(needed);
                Ok(())
            }
            ReplyBuf::Fixed(_) => Err(Error::BufferTooSmall { needed }),
        }
    }
}

/// Registers a duplicate of a library-owned descriptor with the runtime:
/// closing the connection or listener (which closes the library's copy)
/// can then never pull a descriptor out from under the reactor.
fn register(fd: BorrowedFd<'_>) -> Result<AsyncFd<OwnedFd>> {
    let owned = fd.try_clone_to_owned().map_err(io_error)?;
    // SAFETY: `owned` is an open descriptor that the AsyncFd owns from
    // here on: it stays open, the same file, until the AsyncFd drops.
    unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }.map_err(|e| io_error(e.into_parts().1))
}

/// Polls `f` once with the current task's waker (registering it, if `f`
/// is pending).
async fn poll_once<F: Future + ?Sized>(mut f: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await
}

/// A goipc listener for tokio: [`AsyncListener::accept`] returns each
/// client's [`AsyncConn`]. Dropping it (or [`AsyncListener::close`])
/// stops listening; accepted connections stay open.
#[derive(Debug)]
pub struct AsyncListener {
    /// A duplicate of the listener's descriptor, registered with the
    /// runtime (see `register`). Declared first: dropped (deregistered)
    /// before `listener` closes.
    fd: AsyncFd<OwnedFd>,
    listener: Listener,
    spin: Spin,
    closed: AtomicBool,
}

impl AsyncListener {
    /// Listens on `path` (see [`Listener::bind`]). Binding does not wait,
    /// but registers the listener's descriptor: call it inside a tokio
    /// runtime with IO enabled (tokio's `AsyncFd` panics otherwise).
    pub fn bind(path: impl AsRef<Path>) -> Result<AsyncListener> {
        AsyncListener::bind_with(path, &Options::default())
    }

    /// [`AsyncListener::bind`] with options (see [`Listener::bind_with`]);
    /// `opts.spin` is the polling budget of accepted connections.
    pub fn bind_with(path: impl AsRef<Path>, opts: &Options) -> Result<AsyncListener> {
        poll_budget(opts.spin)?;
        let listener = Listener::bind_with(path, opts)?;
        let fd = register(listener.notify_fd()?)?;
        Ok(AsyncListener { fd, listener, spin: opts.spin, closed: AtomicBool::new(false) })
    }

    /// Waits for a client whose handshake has completed. Per-client
    /// errors ([`Error::Limit`], [`Error::Protocol`], ...) leave the
    /// listener usable; [`Error::Closed`] once it is closed. Cancel-safe:
    /// a dropped future took no client (it waits only between library
    /// calls, never holding a client).
    pub async fn accept(&self) -> Result<AsyncConn> {
        loop {
            if self.closed.load(SeqCst) {
                return Err(Error::Closed);
            }
            match self.listener.accept_timeout(Duration::ZERO) {
                Ok(conn) => return AsyncConn::with_spin(conn, self.spin),
                Err(Error::Timeout) => {}
                Err(e) => return Err(e),
            }
            // That accept found the queue empty, so the descriptor is
            // quiet now and turns readable for the next client. The
            // runtime's cached readiness may still be from before: clearing
            // it (only if no newer event came) and calling again makes the
            // next wait a real one. Close makes the descriptor readable
            // too (goipc_listener_close), which ends every pending wait.
            self.fd.readable().await.map_err(io_error)?.clear_ready();
        }
    }

    /// Stops listening and removes the socket file; pending accepts
    /// return [`Error::Closed`]. Closing twice is harmless.
    pub fn close(&self) {
        if self.closed.swap(true, SeqCst) {
            return;
        }
        // SAFETY: the handle is ours; the Listener's drop closes it again
        // (GOIPC_ERR_CLOSED, ignored). Accept calls in flight return CLOSED.
        unsafe { sys::goipc_listener_close(self.listener.as_raw()) };
    }

    /// The underlying blocking listener.
    pub fn listener(&self) -> &Listener {
        &self.listener
    }
}

// Shared between tasks of a multi-threaded runtime.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<AsyncConn>();
    send_sync::<AsyncListener>();
};

// The futures are Send (spawnable on a multi-threaded runtime).
#[allow(dead_code)]
fn futures_are_send(c: &AsyncConn, l: &AsyncListener, buf: &mut [u8]) {
    fn send<F: Future + Send>(_: F) {}
    send(c.send(b""));
    send(c.recv());
    send(c.recv_into(buf));
    send(c.call(b""));
    send(c.call_into(b"", buf));
    send(l.accept());
    send(AsyncConn::dial("x", None));
}

impl AsRawFd for AsyncConn {
    /// The registered duplicate of the connection's descriptor.
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}
