//! Calls: a request answered by exactly one reply, routed back to its
//! caller by a call id (docs/PROTOCOL.md, "Calls"). Any number of threads
//! may call at once on one [`Conn`] (it is `Sync`): each gets the reply
//! to its own request, whatever order the peer answers in.

use core::ffi::c_void;
use core::mem::MaybeUninit;
use core::time::Duration;

use crate::conn::{Conn, check, timeout_ms};
use crate::error::{Error, Result};
use crate::sys;

/// The reply buffer a [`Conn::call`] starts with: most replies fit, a
/// larger one costs one more library call (the reply is kept for it).
pub(crate) const FIRST_REPLY_CAPACITY: usize = 4096;

/// What one non-waiting step of a call (for an event loop) found.
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallStep {
    /// The request could not be sent yet (every call slot in use, or the
    /// ring full): nothing is pending.
    NotSent,
    /// The call is in flight, its reply not in yet.
    Pending,
    /// The reply, this many bytes, is in the buffer: the call is over.
    Replied(usize),
    /// The reply is in but larger than the buffer: it is kept, this many
    /// bytes, and the call stays pending.
    Kept(usize),
}

impl Conn {
    /// Sends `req` as a call request and returns the peer's reply. One
    /// call into the library when the reply fits the vector's first 4 KiB
    /// (a larger reply is kept and taken with one more call).
    ///
    /// `timeout` bounds the whole call (`None`: as long as it takes); when
    /// it expires the call is over and a late reply is dropped
    /// ([`Conn::dropped_replies`]). `req` may be up to
    /// `max_message_size() - 8` bytes. A plain message or request the peer
    /// sends ahead of the reply must be received by someone: the reply
    /// waits behind it (the head-of-line rule).
    ///
    /// Errors: [`Error::Timeout`], [`Error::PeerClosed`] (every call in
    /// flight gets it, promptly, when the peer closes or dies),
    /// [`Error::MessageTooLarge`], [`Error::Closed`], [`Error::Protocol`],
    /// [`Error::InvalidArgument`] (this thread holds a view or a
    /// reservation on the connection).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// // `goipc pong --listen /tmp/pong.sock` echoes a call's request.
    /// let conn = goipc::Conn::dial("/tmp/pong.sock", None)?;
    /// let reply = conn.call(b"hello", Some(Duration::from_secs(1)))?;
    /// assert_eq!(reply, b"hello");
    /// # Ok::<(), goipc::Error>(())
    /// ```
    pub fn call(&self, req: &[u8], timeout: Option<Duration>) -> Result<Vec<u8>> {
        let mut out: Vec<u8> = Vec::with_capacity(FIRST_REPLY_CAPACITY);
        let mut pending = 0u64;
        let (mut st, mut n) = self.call_ex(req, out.spare_capacity_mut(), timeout_ms(timeout), &mut pending);
        if st == sys::GOIPC_ERR_BUFFER_TOO_SMALL && pending != 0 {
            // The reply is kept for us: take it with a buffer of its size
            // (it is in: the call does not wait).
            out.reserve_exact(n);
            (st, n) = self.call_end(pending, out.spare_capacity_mut(), 0);
        }
        if st != sys::GOIPC_OK {
            let err = Error::last(st);
            if pending != 0 {
                // A call left pending (by a timeout, or still pending
                // after a failed call_end): end it.
                self.cancel_call(pending);
            }
            return Err(err);
        }
        debug_assert!(n <= out.capacity());
        // SAFETY: the library wrote the n <= capacity bytes of the reply at
        // the start of the spare capacity (len 0).
        unsafe { out.set_len(n) };
        Ok(out)
    }

    /// `goipc_call_ex` with the reply copied into `out`: the status and
    /// the reply's length (or the size needed).
    fn call_ex(&self, req: &[u8], out: &mut [MaybeUninit<u8>], ms: i64, pending: &mut u64) -> (i32, usize) {
        let mut n = 0usize;
        // SAFETY: req is readable and out writable for their lengths; the
        // library writes at most out.len() initialised bytes into out, and
        // none after the call returns; n and pending are writable.
        let st = unsafe {
            sys::goipc_call_ex(
                self.h,
                req.as_ptr().cast::<c_void>(),
                req.len(),
                out.as_mut_ptr().cast::<c_void>(),
                out.len(),
                &mut n,
                ms,
                pending,
            )
        };
        (st, n)
    }

    /// `goipc_call_end` for the pending call `call` with the reply copied
    /// into `out`: the status and the reply's length (or the size needed).
    fn call_end(&self, call: u64, out: &mut [MaybeUninit<u8>], ms: i64) -> (i32, usize) {
        let mut n = 0usize;
        // SAFETY: out writable for its length, written with initialised
        // bytes during the call only; n is writable.
        let st = unsafe { sys::goipc_call_end(self.h, call, out.as_mut_ptr().cast::<c_void>(), out.len(), &mut n, ms) };
        (st, n)
    }

    /// One `goipc_call_start` with timeout 0 (for `AsyncConn`): sends
    /// `req` (unless no call slot is free or the ring is full:
    /// [`CallStep::NotSent`]) without looking for the reply, which cannot
    /// be there yet ([`CallStep::Pending`]; the caller's first
    /// [`Conn::try_call_end`] looks, and arms the descriptor if it is not
    /// in). `*pending` is set to the call's id while it is in flight and
    /// to 0 otherwise.
    #[cfg(feature = "tokio")]
    pub(crate) fn try_call_start(&self, req: &[u8], pending: &mut u64) -> Result<CallStep> {
        // SAFETY: req is readable for its length during the call; pending
        // is writable.
        let st = unsafe { sys::goipc_call_start(self.h, req.as_ptr().cast::<c_void>(), req.len(), 0, pending) };
        match st {
            sys::GOIPC_OK => Ok(CallStep::Pending),
            sys::GOIPC_ERR_TIMEOUT => Ok(CallStep::NotSent),
            st => Err(Error::last(st)),
        }
    }

    /// One `goipc_call_end` with timeout 0 (for `AsyncConn`) for the pending call `*call`:
    /// its reply copied into `out` if it is in. Sets `*call` to 0 when the
    /// result ends the call (a reply, or any error);
    /// [`CallStep::Pending`] and [`CallStep::Kept`] leave it pending.
    #[cfg(feature = "tokio")]
    pub(crate) fn try_call_end(&self, call: &mut u64, out: &mut [MaybeUninit<u8>]) -> Result<CallStep> {
        match self.call_end(*call, out, 0) {
            (sys::GOIPC_ERR_TIMEOUT, _) => Ok(CallStep::Pending),
            (sys::GOIPC_ERR_BUFFER_TOO_SMALL, n) => Ok(CallStep::Kept(n)),
            (st, n) => {
                *call = 0;
                check(st).map(|()| CallStep::Replied(n))
            }
        }
    }

    /// Ends the pending call `call` without its reply (`goipc_call_cancel`):
    /// its slot is free at once, and the reply, if it comes, is dropped.
    pub(crate) fn cancel_call(&self, call: u64) {
        // SAFETY: a plain call on our handle; an id that no longer names a
        // pending call (or a closed connection) is an error, ignored: the
        // call is over either way.
        unsafe { sys::goipc_call_cancel(self.h, call) };
    }

    /// [`Conn::call`] with the reply copied straight into `buf`; returns
    /// its length. One call into the library, no allocation.
    ///
    /// A reply larger than `buf` is [`Error::BufferTooSmall`] with the size
    /// needed; the call is over and the reply dropped (a buffer of
    /// `max_message_size() - 8` bytes never sees this).
    pub fn call_into(&self, req: &[u8], buf: &mut [u8], timeout: Option<Duration>) -> Result<usize> {
        let mut n = 0usize;
        // SAFETY: req is readable and buf writable for their lengths, for
        // the duration of the call only; n is writable.
        let st = unsafe {
            sys::goipc_call(
                self.h,
                req.as_ptr().cast::<c_void>(),
                req.len(),
                buf.as_mut_ptr().cast::<c_void>(),
                buf.len(),
                &mut n,
                timeout_ms(timeout),
            )
        };
        match st {
            sys::GOIPC_OK => Ok(n),
            sys::GOIPC_ERR_BUFFER_TOO_SMALL => Err(Error::BufferTooSmall { needed: n }),
            _ => Err(Error::last(st)),
        }
    }

    /// A typed call: sends a FlatBuffers Ping (`seq`, `payload`, sent now)
    /// as a call request, and returns the reply's Pong as (seq, payload
    /// length), the payload copied into `buf`. One call into the library
    /// (`goipc_call_ping`: the Ping is built in place, the Pong verified).
    /// `goipc pong` answers it. A reply that is not a valid Pong is
    /// [`Error::Protocol`] for this call only. See also
    /// [`crate::Messenger::call_ping`], which returns the verified Pong.
    pub fn call_ping(
        &self,
        seq: u64,
        payload: &[u8],
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<(u64, usize)> {
        let (mut pong_seq, mut n) = (0u64, 0usize);
        // SAFETY: payload readable and buf writable for their lengths
        // during the call; the out-parameters are writable.
        let st = unsafe {
            sys::goipc_call_ping(
                self.h,
                seq,
                payload.as_ptr().cast::<c_void>(),
                payload.len(),
                &mut pong_seq,
                buf.as_mut_ptr().cast::<c_void>(),
                buf.len(),
                &mut n,
                timeout_ms(timeout),
            )
        };
        match st {
            sys::GOIPC_OK => Ok((pong_seq, n)),
            sys::GOIPC_ERR_BUFFER_TOO_SMALL => Err(Error::BufferTooSmall { needed: n }),
            _ => Err(Error::last(st)),
        }
    }

    /// Server side: receives the next call request into `buf`, returning
    /// its call id and length. Answer with [`Conn::reply`], from any
    /// thread, in any order. Plain messages are left for
    /// [`Conn::recv`]. A request larger than `buf` is
    /// [`Error::BufferTooSmall`] and stays queued.
    pub fn recv_request(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<(u64, usize)> {
        let (mut id, mut n) = (0u64, 0usize);
        // SAFETY: buf writable for its length during the call; the
        // out-parameters are writable.
        let st = unsafe {
            sys::goipc_recv_request(
                self.h,
                &mut id,
                buf.as_mut_ptr().cast::<c_void>(),
                buf.len(),
                &mut n,
                timeout_ms(timeout),
            )
        };
        match st {
            sys::GOIPC_OK => Ok((id, n)),
            sys::GOIPC_ERR_BUFFER_TOO_SMALL => Err(Error::BufferTooSmall { needed: n }),
            _ => Err(Error::last(st)),
        }
    }

    /// Sends `data` as the reply to the call request `call` (its id from
    /// [`Conn::recv_request`]), waiting for ring space up to `timeout`.
    pub fn reply(&self, call: u64, data: &[u8], timeout: Option<Duration>) -> Result<()> {
        // SAFETY: data readable for its length during the call.
        check(unsafe {
            sys::goipc_reply(self.h, call, data.as_ptr().cast::<c_void>(), data.len(), timeout_ms(timeout))
        })
    }

    /// Typed server side: receives the next call request as a Ping, its
    /// payload copied into `buf`. One call into the library
    /// (`goipc_recv_ping_request`: the Ping is verified in place in the
    /// ring, only the payload copied). Answer a [`PingRequest::Ping`] with
    /// [`Conn::reply_pong`], from any thread, in any order.
    ///
    /// A request that is not a valid Ping is [`PingRequest::NotPing`]: it
    /// left the queue, but its caller waits for a reply, so answer it with
    /// [`Conn::reply`] (its bytes are in `buf`) or let its call time out.
    /// A Ping whose payload is larger than `buf` is
    /// [`Error::BufferTooSmall`] (`needed`: the payload size) and stays
    /// queued. Other errors: as [`Conn::recv_request`].
    pub fn recv_ping_request(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<PingRequest> {
        // call stays 0 (never a call id) unless the library names a request.
        let (mut call, mut seq, mut sent_ns, mut len) = (0u64, 0u64, 0i64, 0usize);
        // SAFETY: buf writable for its length during the call; the
        // out-parameters are writable.
        let st = unsafe {
            sys::goipc_recv_ping_request(
                self.h,
                &mut call,
                &mut seq,
                &mut sent_ns,
                buf.as_mut_ptr().cast::<c_void>(),
                buf.len(),
                &mut len,
                timeout_ms(timeout),
            )
        };
        match st {
            sys::GOIPC_OK => Ok(PingRequest::Ping { call, seq, sent_ns, len }),
            sys::GOIPC_ERR_BUFFER_TOO_SMALL => Err(Error::BufferTooSmall { needed: len }),
            sys::GOIPC_ERR_PROTOCOL if call != 0 => Ok(PingRequest::NotPing { call, len }),
            _ => Err(Error::last(st)),
        }
    }

    /// Answers the call request `call` with a Pong (`seq`, `ping_sent_ns`,
    /// `received_ns`, `payload`), built in place in the ring by the
    /// library (`goipc_reply_pong`, one call): usually the fields of the
    /// [`PingRequest::Ping`] it answers. `received_ns` 0 means now
    /// (CLOCK_MONOTONIC). Errors: as [`Conn::reply`];
    /// [`Error::InvalidArgument`] for call 0 (never a call id);
    /// [`Error::MessageTooLarge`] when the Pong does not fit
    /// `max_message_size() - 8` bytes.
    pub fn reply_pong(
        &self,
        call: u64,
        seq: u64,
        ping_sent_ns: i64,
        received_ns: i64,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<()> {
        // SAFETY: payload readable for its length during the call.
        check(unsafe {
            sys::goipc_reply_pong(
                self.h,
                call,
                seq,
                ping_sent_ns,
                received_ns,
                payload.as_ptr().cast::<c_void>(),
                payload.len(),
                timeout_ms(timeout),
            )
        })
    }

    /// Replies this end received that no call was waiting for (their call
    /// timed out): dropped, never delivered to another call.
    pub fn dropped_replies(&self) -> Result<u64> {
        let mut n = 0u64;
        // SAFETY: n is writable.
        check(unsafe { sys::goipc_conn_dropped_replies(self.h, &mut n) })?;
        Ok(n)
    }
}

/// A call request received by [`Conn::recv_ping_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingRequest {
    /// A Ping, its payload in the caller's buffer (`buf[..len]`): answer
    /// it with [`Conn::reply_pong`].
    Ping {
        /// The call's id.
        call: u64,
        /// Ping.seq.
        seq: u64,
        /// Ping.sent_ns (CLOCK_MONOTONIC of the sender).
        sent_ns: i64,
        /// The payload's length.
        len: usize,
    },
    /// A request that is not a valid Ping; it left the queue. Its first
    /// `len.min(buf.len())` bytes are in the caller's buffer; answer it
    /// with [`Conn::reply`] (its caller waits) or let its call time out.
    NotPing {
        /// The call's id.
        call: u64,
        /// The request's full length.
        len: usize,
    },
}
