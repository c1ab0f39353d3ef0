"""Connections, listeners and zero-copy views over the C ABI of libgoipc.so.

Blocking calls
--------------
Every call that can wait takes ``timeout``: ``None`` waits as long as it
takes, ``0`` never waits, a positive number of seconds waits at most that
long; on expiry it raises :class:`goipc.TimeoutError` (an instance of the
built-in :class:`TimeoutError`) and the connection stays usable.

A wait is a loop of library calls of at most :data:`WAIT_SLICE` (100 ms)
each, so that the interpreter runs its signal handlers in between: Ctrl-C
raises KeyboardInterrupt within about 100 ms even in ``recv()`` without a
timeout. When the message (or ring space) is already there, the first call
succeeds: one call into the library per send or receive.

Every call releases the GIL (ctypes.CDLL), so other threads run while one
waits.

Threads: a connection may be used by several threads at once; sends are
serialised with each other and receives with each other, and a send runs
in parallel with a receive (one sender thread and one receiver thread is
the intended use).
"""

from __future__ import annotations

import ctypes
import itertools
import math
import os
import sys
import threading
import time
import warnings
import weakref
from ctypes import c_char, c_int64, c_size_t, c_ubyte, c_uint64, c_void_p
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from . import _lib
from . import errors as _errors
from . import messages
from . import stats as _stats
from .messages import Ping, Pong

__all__ = ["Conn", "Listener", "View", "Reservation", "Ping", "Pong", "dial", "listen", "WAIT_SLICE"]

#: The longest single wait inside the library, in seconds: blocking calls
#: return to the interpreter (signal handlers, Ctrl-C) at least this often.
WAIT_SLICE = 0.1
_SLICE_MS = 100

_OK = _errors.OK
_TIMEOUT = _errors.ERR_TIMEOUT
_BUFFER_TOO_SMALL = _errors.ERR_BUFFER_TOO_SMALL

# Receive scratch buffer: starts at this size and grows up to the
# connection's maximum message size when a larger message arrives.
_SCRATCH_INITIAL = 64 * 1024

_state = _lib.state
_monotonic = time.monotonic
_byref = ctypes.byref
# Timeouts of 0..WAIT_SLICE ms as the c_int64 objects the fast calls pass.
_C_MS = tuple(c_int64(ms) for ms in range(_SLICE_MS + 1))


def _rest(timeout: Optional[float], ms: int) -> Optional[float]:
    """What is left of ``timeout`` after a first call that waited ``ms``
    and timed out; raises that call's TimeoutError if nothing is left."""
    t = _check_timeout(timeout)
    if t is None:
        return None
    t -= ms / 1000.0
    if t <= 0:
        raise _lib.last_error(_TIMEOUT)
    return t
_tuple_new = tuple.__new__

# c_size_t objects for the lengths the fast calls pass (never mutated):
# looking one up costs a third of making one.
_SIZES: Dict[int, c_size_t] = {}
_SIZES_MAX = 1 << 16


def _size_c(n: int) -> c_size_t:
    c = c_size_t(n)
    if n <= _SIZES_MAX:
        _SIZES[n] = c
    return c


_KIND_RAW, _KIND_PONG, _KIND_PING = 0, 1, 2
_U64_MAX = (1 << 64) - 1

# True in a child forked after the library was loaded (mirror of
# _lib.state.forked, as a module global: the per-message paths test it).
_forked = False


def _after_fork_in_child() -> None:
    global _forked
    if _state.lib is not None:
        _forked = True


def _fork_detected() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)
_lib.fork_detected_hooks.append(_fork_detected)


class _Scratch:
    """A receive buffer and the out-parameters of one receive call, each
    with its prebuilt byref() for the fast calls."""

    __slots__ = ("arr", "cap", "cap_c", "len", "len_ref", "seq", "seq_ref", "sent", "pend", "pend_ref")

    def __init__(self, size: int) -> None:
        self.arr = (c_char * size)()  # slicing a c_char array gives bytes
        self.cap = size
        self.cap_c = c_size_t(size)
        self.len = c_size_t()
        self.len_ref = _byref(self.len)
        self.seq = c_uint64()
        self.seq_ref = _byref(self.seq)
        self.sent = c_int64()
        self.pend = c_uint64()  # goipc_call_ex's pending call id
        self.pend_ref = _byref(self.pend)
_c_char_from_buffer = c_char.from_buffer


class _BatchScratch:
    """recv_batch's buffer (the messages back to back), its sizes array
    and the count out-parameter."""

    __slots__ = ("arr", "cap", "sizes", "count")

    def __init__(self, size: int, sizes: Optional[ctypes.Array] = None) -> None:
        self.arr = (c_char * size)()
        self.cap = size
        self.sizes = sizes if sizes is not None else (c_size_t * 64)()
        self.count = c_size_t()


def _check_max_count(max_count: Any) -> None:
    if type(max_count) is not int or max_count < 1:
        raise _errors.make_error(_errors.ERR_INVALID_ARGUMENT, "goipc: max_count must be an int >= 1, not %r" % (max_count,))


class _BatchToSend:
    """send_batch's messages as goipc_iovecs over one joined buffer, and
    how many of them are sent so far."""

    __slots__ = ("blob", "arr", "n", "done", "sent")

    def __init__(self, messages: Iterable[Any]) -> None:
        msgs = messages if type(messages) is list else list(messages)
        n = len(msgs)
        self.blob, lens = _join_messages(msgs)  # the iovecs point into it: keep it
        self.arr = (_lib.IOVec * n)()
        if n:
            base = ctypes.cast(self.blob, c_void_p).value
            words = (c_size_t * (2 * n)).from_buffer(self.arr)
            words[0::2] = list(_accumulate(lens[:-1], initial=base))
            words[1::2] = lens
        self.n = n
        self.done = 0
        self.sent = c_size_t()

    def call(self, f: Any, h: int, ms: int) -> int:
        """goipc_send_batch ``f`` of the messages not sent yet; returns its
        status."""
        done = self.done
        rest = self.arr if done == 0 else (_lib.IOVec * (self.n - done)).from_buffer(self.arr, done * _IOVEC_SIZE)
        st = f(h, rest, self.n - done, self.sent, ms)
        self.done = done + self.sent.value
        return st

    def error(self, st: int) -> _errors.Error:
        err = _lib.last_error(st)
        err.sent = self.done  # type: ignore[attr-defined]
        return err


_IOVEC_SIZE = ctypes.sizeof(_lib.IOVec)
_PLAIN_TYPES = frozenset((bytes, bytearray))
_accumulate = itertools.accumulate


def _join_messages(msgs: List[Any]) -> Tuple[bytes, List[int]]:
    """send_batch's messages as one bytes object and their lengths in
    bytes."""
    if _PLAIN_TYPES.issuperset(map(type, msgs)):
        lens = list(map(len, msgs))  # len is the size in bytes for these
    else:
        # _send_arg checks the others' type and contiguity as send() does.
        lens = [len(m) if type(m) in _PLAIN_TYPES else _send_arg(m)[1] for m in msgs]
    return b"".join(msgs), lens

PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


# ---- argument conversion -------------------------------------------------


def _encode_path(path: PathArg) -> bytes:
    p = os.fsencode(path)
    if not p:
        raise ValueError("goipc: path must not be empty")
    if b"\0" in p:
        raise ValueError("goipc: path must not contain NUL bytes")
    return p


def _check_timeout(timeout: Optional[float]) -> Optional[float]:
    """Validates a timeout in seconds; returns None for 'no limit'."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("goipc: timeout must be None or a number of seconds, not %s" % type(timeout).__name__)
    if timeout != timeout:
        raise ValueError("goipc: timeout must not be NaN")
    if timeout < 0:
        raise ValueError("goipc: timeout must be None or >= 0, not %r" % (timeout,))
    if timeout == math.inf:
        return None
    return float(timeout)


def _ms_ceil(seconds: float) -> int:
    """Seconds to whole milliseconds, rounded up (a 0.1 ms timeout still
    waits 1 ms rather than not at all)."""
    return int(math.ceil(seconds * 1000.0))


def _first_ms(timeout: Optional[float]) -> int:
    """The timeout of the first library call of a wait (validates it)."""
    if timeout is None:
        return _SLICE_MS
    tt = type(timeout)
    if tt is float or tt is int:
        # The common cases without the full validation (NaN, negative
        # numbers and other types fall through to it).
        if timeout >= WAIT_SLICE:
            return _SLICE_MS
        if timeout > 0:
            return math.ceil(timeout * 1000.0)
        if timeout == 0:
            return 0
    t = _check_timeout(timeout)
    if t is None:
        return _SLICE_MS
    return min(_ms_ceil(t), _SLICE_MS)


def _next_ms(timeout: Optional[float], t0: float) -> int:
    """The timeout of the next library call after one that timed out, or
    -1 when the caller's timeout has expired."""
    _lib.check_fork()
    if timeout is None or timeout == math.inf:
        return _SLICE_MS
    left = timeout - (_monotonic() - t0)
    if left <= 0:
        return -1
    return min(_ms_ceil(left), _SLICE_MS)


def _wait(call: Callable[[int], int], timeout: Optional[float], t0: float) -> int:
    """Repeats ``call(ms)`` while it times out, in slices of at most
    WAIT_SLICE, until ``timeout`` (seconds since t0) expires. Returns the
    last status. The loop's back-edge is where the interpreter runs signal
    handlers (KeyboardInterrupt)."""
    while True:
        ms = _next_ms(timeout, t0)
        if ms < 0:
            return _TIMEOUT
        st = call(ms)
        if st != _TIMEOUT:
            return st


def _send_arg(data: Any) -> Tuple[Any, int]:
    """(pointer argument, length) for any bytes-like object, without a copy
    except for read-only buffers that are not bytes (ctypes can only point
    into bytes or writable buffers)."""
    t = type(data)
    if t is bytes:
        return data, len(data)
    if t is bytearray:
        n = len(data)
        return (_byref(c_char.from_buffer(data)) if n else None), n
    if isinstance(data, str):
        raise TypeError("goipc: a bytes-like object is required, not 'str' (encode it first)")
    try:
        mv = memoryview(data)
    except TypeError:
        raise TypeError("goipc: a bytes-like object is required, not %r" % type(data).__name__) from None
    if not mv.c_contiguous:
        raise ValueError("goipc: the buffer must be C-contiguous")
    n = mv.nbytes
    if n == 0:
        return None, 0
    if mv.readonly:
        return mv.tobytes(), n
    return _byref(c_char.from_buffer(mv)), n


def _send_call_args(data: Any) -> Tuple[Any, c_size_t]:
    """(pointer, c_size_t length) of a message for the fast send functions,
    made once per message (a read-only buffer is copied here, not at every
    attempt)."""
    if type(data) is bytes:
        ptr, n = data, len(data)
    else:
        ptr, n = _send_arg(data)
    return ptr, _SIZES.get(n) or _size_c(n)


def _recv_call_args(buffer: Any) -> Tuple[Any, c_size_t]:
    """(pointer, c_size_t capacity) of a caller's receive buffer for the
    fast receive function (the buffer stays exported while the pointer
    lives, so it cannot be resized meanwhile)."""
    ptr, cap = _recv_arg(buffer)
    return ptr, _SIZES.get(cap) or _size_c(cap)


def _recv_arg(buffer: Any) -> Tuple[Any, int]:
    """(pointer argument, capacity) for a writable bytes-like object. The
    c_char made by from_buffer holds a buffer export for the duration of
    the call (the object cannot be resized meanwhile); a byref to it is
    the cheapest pointer ctypes makes to a bytearray."""
    if type(buffer) is bytearray:
        n = len(buffer)
        return (_byref(c_char.from_buffer(buffer)) if n else None), n
    try:
        mv = memoryview(buffer)
    except TypeError:
        raise TypeError("goipc: a writable bytes-like object is required, not %r" % type(buffer).__name__) from None
    if mv.readonly:
        raise TypeError("goipc: the buffer is read-only (%s); pass a bytearray or a writable memoryview" % type(buffer).__name__)
    if not mv.c_contiguous:
        raise ValueError("goipc: the buffer must be C-contiguous")
    n = mv.nbytes
    if n == 0:
        return None, 0
    return _byref(c_char.from_buffer(mv)), n


class _CallState:
    """A call made in slices by an event loop (goipc.aio): the request's
    pointer and length, the scratch buffer of the reply, the pending id."""

    __slots__ = ("ptr", "n", "sc", "pending")

    def __init__(self) -> None:
        self.pending = 0


# _try_call_start's "sent, the reply is not there yet".
_PENDING = object()


def _no_calls() -> _errors.Error:
    return _errors.make_error(
        _errors.ERR_NOT_SUPPORTED,
        "goipc: the loaded libgoipc.so has no calls (goipc_call...): rebuild it (make lib)",
    )


def _check_seq(seq: int) -> None:
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise TypeError("goipc: seq must be an int, not %s" % type(seq).__name__)
    if not 0 <= seq < 1 << 64:
        raise ValueError("goipc: seq must be in [0, 2**64), not %d" % seq)


def _check_i64(name: str, v: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError("goipc: %s must be an int, not %s" % (name, type(v).__name__))
    if not -(1 << 63) <= v < 1 << 63:
        raise ValueError("goipc: %s must fit in 64 signed bits" % name)


def _check_live() -> ctypes.CDLL:
    """The library, after the fork check (for the entry points that are
    not per-message: they also compare the pid)."""
    lib = _lib.load()
    _lib.check_fork()
    return lib


def _event_fd(function: str, handle: int) -> int:
    """The descriptor that goipc_conn_fd or goipc_listener_fd (function)
    gives for handle."""
    lib = _check_live()
    out = ctypes.c_int()
    st = getattr(lib, function)(handle, out)
    if st:
        raise _lib.last_error(st)
    return out.value


# ---- options -------------------------------------------------------------


def _make_options(
    *,
    ring_size: Optional[int] = None,
    max_message_size: Optional[int] = None,
    spin: Optional[float] = None,
    handshake_timeout: Optional[float] = None,
    allow_any_uid: bool = False,
    protocol_version_override: int = 0,
    max_inflight_calls: Optional[int] = None,
    free_space_in_pieces: bool = False,
) -> ctypes.Array:
    """A goipc_options initialised by goipc_options_init_sized with the size
    of the struct this binding mirrors, with the given fields set."""
    lib = _lib.load()
    raw = (c_char * _lib.OPTIONS_BUFFER_SIZE)()
    lib.goipc_options_init_sized(raw, _lib.OPTIONS_BUFFER_SIZE)
    o = _lib.Options.from_buffer(raw)
    # ctypes stores an int into a fixed-width field modulo 2**bits: every
    # integer option is range-checked first, or 2**64 + 65536 would become
    # 65536.
    if ring_size is not None:
        o.ring_size = _option_int("ring_size", ring_size, _U64)
    if max_message_size is not None:
        o.max_message_size = _option_int("max_message_size", max_message_size, _U64)
    if spin is not None:
        # Python: seconds; 0 = park at once, inf = poll forever.
        # C: ns; 0 = default, < 0 = park at once, INT64_MAX = poll forever.
        if spin != spin or spin < 0:
            raise ValueError("goipc: spin must be None, 0, a positive number of seconds or math.inf")
        if spin == 0:
            o.spin_ns = -1
        elif spin == math.inf or spin * 1e9 >= (1 << 63) - 1:
            o.spin_ns = (1 << 63) - 1
        else:
            o.spin_ns = max(1, int(spin * 1e9))
    if handshake_timeout is not None:
        if handshake_timeout != handshake_timeout or handshake_timeout <= 0 or handshake_timeout == math.inf:
            raise ValueError("goipc: handshake_timeout must be a positive, finite number of seconds")
        ms = _ms_ceil(handshake_timeout)
        if ms > _I64[1]:
            raise ValueError(
                "goipc: handshake_timeout must be at most %d seconds (a signed 64-bit count of ms), not %r"
                % (_I64[1] // 1000, handshake_timeout)
            )
        o.handshake_timeout_ms = ms
    o.allow_any_uid = 1 if allow_any_uid else 0
    o.protocol_version_override = _option_int("protocol_version_override", protocol_version_override, _U32)
    if max_inflight_calls is not None:
        o.max_inflight_calls = _option_int("max_inflight_calls", max_inflight_calls, _INFLIGHT_CALLS)
    o.free_space_in_pieces = 1 if free_space_in_pieces else 0
    return raw


# Ranges (inclusive) of the goipc_options integer fields.
_U32 = (0, (1 << 32) - 1)
_U64 = (0, (1 << 64) - 1)
# Calls in flight per connection end: at least one; at most 65536 (a slot's
# index is 16 bits of the call id). None is the library's default, 64.
_INFLIGHT_CALLS = (1, 1 << 16)
_I64 = (-(1 << 63), (1 << 63) - 1)


def _option_int(name: str, v: int, bounds: Tuple[int, int]) -> int:
    """v, checked to be an int within bounds (the C field's range)."""
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError("goipc: %s must be an int, not %s" % (name, type(v).__name__))
    lo, hi = bounds
    if not lo <= v <= hi:
        raise ValueError("goipc: %s must be in [%d, %d] (the range of its C field), not %d" % (name, lo, hi, v))
    return v


# Listener limits, in C: 0 = the default, negative = no limit. The C ABI
# refuses max_conns and max_pending_handshakes above INT32_MAX.
_INT32_MAX = (1 << 31) - 1
_INT64_MAX = _I64[1]


def _limit_option(name: str, value: Optional[float], hi: int) -> int:
    """A listener limit as its goipc_options value: None -> 0 (default),
    math.inf -> -1 (no limit), an int in [1, hi] -> itself."""
    if value is None:
        return 0
    if value == math.inf:
        return -1
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(
            "goipc: %s must be None, an int or math.inf, not %s" % (name, type(value).__name__)
        )
    if not 1 <= value <= hi:
        raise ValueError(
            "goipc: %s must be in [1, %d] (None: the default; math.inf: no limit), not %d" % (name, hi, value)
        )
    return value


# ---- listener ------------------------------------------------------------


class Listener:
    """A listening Unix socket that accepts goipc connections.

    Create it with :func:`goipc.listen`. Use it as a context manager, or
    call :meth:`close`: closing stops listening and removes the socket
    file; connections already accepted stay open. Any number of threads may
    call :meth:`accept` at once.
    """

    def __init__(self, handle: int, path: str) -> None:
        self._h = handle
        self._closed = False
        self._fd = -1
        self.path = path
        """The socket path (as given to :func:`goipc.listen`)."""

    @property
    def handle(self) -> int:
        """The library's listener handle (for diagnostics)."""
        return self._h

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def accept(self, timeout: Optional[float] = None) -> "Conn":
        """Waits for a client, completes its handshake and returns the new
        connection.

        Args:
            timeout: seconds to wait for a client (None: as long as it
                takes; 0: only a client already waiting).

        Raises:
            TimeoutError: no client within the timeout.
            ClosedError: the listener is or gets closed.
            ProtocolError, PermissionDeniedError, PeerClosedError,
            SystemCallError: the handshake with one client failed; the
                listener stays usable, keep accepting.
            ForkError: in a forked child.
        """
        lib = _check_live()
        out = c_uint64()
        t0 = _monotonic()
        timeout = _check_timeout(timeout)
        h = self._h
        st = lib.goipc_accept(h, _first_ms(timeout), out)
        if st == _TIMEOUT:
            st = _wait(lambda ms: lib.goipc_accept(h, ms, out), timeout, t0)
        if st:
            raise _lib.last_error(st)
        return Conn._new(out.value)

    @property
    def dropped_errors(self) -> int:
        """How many failed handshakes :meth:`accept` will never report
        (``goipc_listener_dropped_errors``): at most 64 failures wait for
        accept, and one that ends while that many wait is counted here
        instead (its client got its own error either way). A server that
        logs accept's errors should log this count too, so that every
        refused client is accounted for when its accepting thread falls
        behind a flood of bad clients.

        Raises:
            ClosedError: the listener was closed.
        """
        if self._closed:
            raise _errors.make_error(_errors.ERR_CLOSED, "goipc: dropped_errors of a closed listener")
        lib = _check_live()
        out = c_uint64()
        st = lib.goipc_listener_dropped_errors(self._h, out)
        if st:
            raise _lib.last_error(st)
        return out.value

    def fileno(self) -> int:
        """A file descriptor that is readable while :meth:`accept` with
        ``timeout=0`` would not raise TimeoutError: a client's handshake
        completed (or failed: accept reports that too), or the listener is
        closed (``goipc_listener_fd``). For event loops (selectors,
        asyncio: :class:`goipc.aio.AsyncListener` waits on it) that accept
        without a thread and without polling on a timer.

        The rules: readiness is exact and level-triggered; it turns quiet
        when accept takes the last queued client. When it is readable,
        call ``accept(timeout=0)`` until it raises TimeoutError (another
        thread may have taken the client), then wait again. The descriptor
        belongs to the listener: do not read, write or close it, and
        unregister it from selectors before :meth:`close`, which closes it
        (after making it readable, so a thread blocked in a poll on it
        wakes). Every call returns the same descriptor; the first one
        creates it (an eventfd of this process).

        Raises:
            ClosedError: the listener was closed.
            SystemCallError: the eventfd could not be created.
        """
        if self._closed:
            raise _errors.make_error(_errors.ERR_CLOSED, "goipc: fileno() of a closed listener")
        if self._fd < 0:
            self._fd = _event_fd("goipc_listener_fd", self._h)
        return self._fd

    def close(self) -> None:
        """Stops listening and removes the socket file. Calls blocked in
        :meth:`accept` raise ClosedError. Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        lib = _check_live()
        st = lib.goipc_listener_close(self._h)
        if st and st != _errors.ERR_CLOSED:
            raise _lib.last_error(st)

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<goipc.Listener path=%r%s>" % (self.path, " closed" if self._closed else "")

    def __del__(self) -> None:
        if getattr(self, "_closed", True) or _state.forked:
            return
        try:
            if os.getpid() != _state.pid:
                return
            warnings.warn("unclosed %r" % (self,), ResourceWarning, source=self)
            self._closed = True
            _state.lib.goipc_listener_close(self._h)  # type: ignore[union-attr]
        except Exception:
            pass


def listen(
    path: PathArg,
    *,
    max_message_size: Optional[int] = None,
    spin: Optional[float] = None,
    handshake_timeout: Optional[float] = None,
    allow_any_uid: bool = False,
    protocol_version_override: int = 0,
    max_conns: Optional[float] = None,
    max_segment_size: Optional[float] = None,
    max_mapped_bytes: Optional[float] = None,
    max_pending_handshakes: Optional[float] = None,
    max_inflight_calls: Optional[int] = None,
    free_space_in_pieces: bool = False,
) -> Listener:
    """Listens on the Unix socket ``path`` (at most 107 bytes) and returns a
    :class:`Listener`. A stale socket file left by a dead listener is
    replaced.

    Args:
        path: filesystem path of the socket (str, bytes or path-like).
        max_message_size: largest message a client may ask for, in bytes
            (None: the library's default, 1 MiB).
        spin: how long a waiting call on accepted connections polls before
            it sleeps, in seconds (None: default 50 us; 0: sleep at once;
            math.inf: poll forever).
        handshake_timeout: bound on each handshake in seconds (None: 5 s).
        allow_any_uid: accept clients of any uid (default: same uid only).
        protocol_version_override: testing only: announce another protocol
            version, to check how peers report a version mismatch.
        max_conns: open connections at most (None: the library's default,
            4096; ``math.inf``: no limit). A client beyond it gets
            :class:`LimitError` naming the limit; the others are unaffected.
        max_segment_size: bytes of one connection's shared segment at most
            (None: 64 MiB + 4 KiB; ``math.inf``: no limit).
        max_mapped_bytes: segment bytes over all connections at most
            (None: 16 GiB; ``math.inf``: no limit).
        max_pending_handshakes: handshakes in progress at most, the oldest
            is dropped beyond (None: 64; ``math.inf``: no limit).
        Each limit is an int >= 1 (ValueError otherwise).
        max_inflight_calls: calls (:meth:`Conn.call` and friends) in
            flight at once on each accepted connection, counted at this
            end (None: the library's default, 64; else an int in [1,
            65536], ValueError otherwise). A call beyond them waits,
            within its timeout, until one ends; it is not sent before.
        free_space_in_pieces: as :func:`dial`'s, for every accepted
            connection.

    Raises:
        AddressInUseError: a live listener serves the path, or the path
            exists and is not a socket.
        PermissionDeniedError, SystemCallError, InvalidArgumentError.
        ForkError, LibraryError.
    """
    lib = _check_live()
    p = _encode_path(path)
    limits = {
        "max_conns": _limit_option("max_conns", max_conns, _INT32_MAX),
        "max_segment_size": _limit_option("max_segment_size", max_segment_size, _INT64_MAX),
        "max_mapped_bytes": _limit_option("max_mapped_bytes", max_mapped_bytes, _INT64_MAX),
        "max_pending_handshakes": _limit_option("max_pending_handshakes", max_pending_handshakes, _INT32_MAX),
    }
    out = c_uint64()
    if (
        max_message_size is None
        and spin is None
        and handshake_timeout is None
        and not allow_any_uid
        and not protocol_version_override
        and not any(limits.values())
        and max_inflight_calls is None
        and not free_space_in_pieces
    ):
        st = lib.goipc_listen(p, out)
    else:
        opts = _make_options(
            max_message_size=max_message_size,
            spin=spin,
            handshake_timeout=handshake_timeout,
            allow_any_uid=allow_any_uid,
            protocol_version_override=protocol_version_override,
            max_inflight_calls=max_inflight_calls,
            free_space_in_pieces=free_space_in_pieces,
        )
        o = _lib.Options.from_buffer(opts)
        for name, value in limits.items():
            setattr(o, name, value)
        st = lib.goipc_listen_ex(p, opts, out)
    if st:
        raise _lib.last_error(st)
    return Listener(out.value, os.fsdecode(path))


# ---- dial ------------------------------------------------------------------


def _dial_call(p: bytes, opts: Optional[ctypes.Array], ms: int) -> Tuple[int, int, Optional[_errors.Error]]:
    """One goipc_dial(_ex) call: (status, handle, error built on this
    thread, where the library's thread-local error message lives)."""
    lib = _state.lib
    assert lib is not None
    out = c_uint64()
    if opts is None:
        st = lib.goipc_dial(p, ms, out)
    else:
        st = lib.goipc_dial_ex(p, opts, ms, out)
    if st:
        return st, 0, _lib.last_error(st)
    return st, out.value, None


class _DialJob:
    """A dial run on a helper thread, so that the main thread can wait for
    it in short slices and take Ctrl-C (a handshake waits up to its
    timeout, 5 s by default, inside one library call)."""

    def __init__(self, p: bytes, opts: Optional[ctypes.Array], ms: int) -> None:
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.abandoned = False
        self.result: Tuple[int, int, Optional[_errors.Error]] = (_errors.ERR_SYSTEM, 0, None)
        self.args = (p, opts, ms)

    def run(self) -> None:
        try:
            r = _dial_call(*self.args)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            r = (_errors.ERR_SYSTEM, 0, _errors.make_error(_errors.ERR_SYSTEM, "goipc: dial failed: %r" % (e,)))
        with self.lock:
            self.result = r
            abandoned = self.abandoned
        if abandoned and r[0] == _OK:
            _state.lib.goipc_conn_close(r[1])  # type: ignore[union-attr]
        self.done.set()

    def wait(self) -> Tuple[int, int, Optional[_errors.Error]]:
        try:
            while not self.done.wait(WAIT_SLICE):
                pass
        except BaseException:
            with self.lock:
                self.abandoned = True
                r = self.result if self.done.is_set() else None
            if r is not None and r[0] == _OK:
                _state.lib.goipc_conn_close(r[1])  # type: ignore[union-attr]
            raise
        return self.result


def dial(
    path: PathArg,
    timeout: Optional[float] = None,
    *,
    max_message_size: Optional[int] = None,
    ring_size: Optional[int] = None,
    spin: Optional[float] = None,
    handshake_timeout: Optional[float] = None,
    allow_any_uid: bool = False,
    protocol_version_override: int = 0,
    max_inflight_calls: Optional[int] = None,
    free_space_in_pieces: bool = False,
) -> "Conn":
    """Connects to the listener at ``path`` and returns a :class:`Conn`.

    Args:
        path: the listener's socket path.
        timeout: bound on connect + handshake in seconds (None: the
            handshake timeout, 5 s by default). In the main thread the
            handshake runs on a helper thread, so Ctrl-C interrupts it.
        max_message_size: largest message in bytes, both directions (None:
            1 MiB). The dialer's value defines the connection; the
            listener refuses values above its own (InvalidArgumentError).
        ring_size: bytes per direction, a power of two in [4096, 2**30]
            (None: 4 MiB, raised to hold four maximum-size messages).
        spin: polling time before sleeping, in seconds (None: default 50
            us; 0: sleep at once; math.inf: poll forever, one busy core
            per waiting side).
        handshake_timeout: in seconds (None: 5 s).
        allow_any_uid: accept a listener of any uid.
        protocol_version_override: testing only: announce another protocol
            version, to check how peers report a version mismatch.
        max_inflight_calls: calls (:meth:`Conn.call` and friends) in
            flight at once on this end of the connection (None: the
            library's default, 64; else an int in [1, 65536], ValueError
            otherwise). A call beyond them waits, within its timeout,
            until one ends; it is not sent before.
        free_space_in_pieces: as a receiver, return the space of the
            messages read to the sender a sixteenth of the ring at a time
            while more are queued, and all of it once every message seen
            was read (default False: each receive returns its space at
            once, and a sender whose send found the ring full is told
            after one receive). For a stream's receiver that keeps
            receiving: a stream whose ring stays full moves 1.1-1.5x the
            messages per second; a sender may wait for up to a sixteenth
            of the ring this end has read from until this end receives
            again (docs/PROTOCOL.md, "Freed space in pieces (opt-in)").

    Raises:
        SystemCallError: errno ENOENT (no such path) or ECONNREFUSED
            (nobody listens).
        TimeoutError, PermissionDeniedError, ProtocolError (not a goipc
        listener, or another protocol version), PeerClosedError,
        InvalidArgumentError, ForkError, LibraryError.
    """
    _check_live()
    p = _encode_path(path)
    timeout = _check_timeout(timeout)
    opts = None
    if (
        max_message_size is not None
        or ring_size is not None
        or spin is not None
        or handshake_timeout is not None
        or allow_any_uid
        or protocol_version_override
        or max_inflight_calls is not None
        or free_space_in_pieces
    ):
        opts = _make_options(
            ring_size=ring_size,
            max_message_size=max_message_size,
            spin=spin,
            handshake_timeout=handshake_timeout,
            allow_any_uid=allow_any_uid,
            protocol_version_override=protocol_version_override,
            max_inflight_calls=max_inflight_calls,
            free_space_in_pieces=free_space_in_pieces,
        )
    ms = -1 if timeout is None else _ms_ceil(timeout)
    if threading.current_thread() is threading.main_thread() and (ms < 0 or ms > _SLICE_MS):
        job = _DialJob(p, opts, ms)
        threading.Thread(target=job.run, name="goipc-dial", daemon=True).start()
        st, h, err = job.wait()
    else:
        st, h, err = _dial_call(p, opts, ms)
    if st:
        assert err is not None
        raise err
    return Conn._new(h)


# ---- connection ------------------------------------------------------------


class Conn:
    """A goipc connection: messages in both directions over shared memory.

    Create it with :func:`goipc.dial` or :meth:`Listener.accept`. Use it as
    a context manager, or call :meth:`close`.

    Messages are whole: one :meth:`send` is one :meth:`recv` on the other
    side, of at most :attr:`max_message_size` bytes.
    """

    def __init__(self) -> None:
        raise TypeError("goipc.Conn is created by goipc.dial() or Listener.accept()")

    @classmethod
    def _new(cls, handle: int) -> "Conn":
        self = object.__new__(cls)
        self._h = handle
        self._closed = False
        self._fd = -1  # fileno(), once asked for
        # Open zero-copy spans (View, Reservation) and their ring arrays,
        # weakly: close() ends the spans, and refuses to unmap while an
        # array is alive (a memoryview slice still points into the ring).
        self._spans: "weakref.WeakSet[_RingSpan]" = weakref.WeakSet()
        self._arrays: Dict[int, "weakref.ref[ctypes.Array]"] = {}  # ctypes arrays are unhashable
        lib = _state.lib
        assert lib is not None
        n = c_size_t()
        st = lib.goipc_conn_max_message_size(handle, n)
        if st:
            err = _lib.last_error(st)
            lib.goipc_conn_close(handle)
            raise err
        self._max = n.value
        # The per-message functions, bound once (attribute lookups on the
        # hot path cost more than the checks they would save).
        self._f_send = lib.goipc_send
        self._f_recv = lib.goipc_recv
        if _state.has_typed:
            self._f_send_ping = lib.goipc_send_ping
            self._f_recv_pong = lib.goipc_recv_pong
        # The one-call fast paths (no timeout, data ready) use the fast
        # functions of _lib (no argtypes conversion) with arguments built
        # here as exact ctypes instances; everything else uses the declared
        # functions above.
        fast = _state.fast
        self._x_send = fast["goipc_send"]
        self._x_recv = fast["goipc_recv"]
        self._x_send_ping = fast.get("goipc_send_ping")
        self._x_recv_pong = fast.get("goipc_recv_pong")
        self._x_call_ex = fast.get("goipc_call_ex")
        self._x_call_start = fast.get("goipc_call_start")
        self._x_call_ping = fast.get("goipc_call_ping")
        self._hc = c_uint64(handle)
        # goipc._speedups (None without it): the same fast paths without
        # ctypes, for bytes and bytearray messages.
        self._sx = _state.speedups
        # Receive scratch buffers for recv()/recv_pong()/recv_ping(): one
        # library call fills one, then the message is copied out as bytes.
        # A receiving thread takes one from the pool with list.pop() (atomic
        # under the GIL, cheaper than a lock) and puts it back; a thread
        # that finds the pool empty (another thread is receiving) makes its
        # own. Normally the pool holds exactly one.
        self._pool: List[_Scratch] = [self._new_scratch()]
        # recv_batch's buffers, the same way (made on first use).
        self._batch_pool: List[_BatchScratch] = []
        return self

    # -- properties --

    @property
    def handle(self) -> int:
        """The library's connection handle (for diagnostics)."""
        return self._h

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def max_message_size(self) -> int:
        """The largest message, in bytes, this connection carries (both
        directions)."""
        return self._max

    def fileno(self) -> int:
        """A file descriptor that becomes readable when a call made with
        ``timeout=0`` that raised :class:`TimeoutError` may now succeed: a
        message arrived, ring space was freed, or the peer closed or died
        (``goipc_conn_fd``). For event loops (selectors, asyncio; see
        :mod:`goipc.aio`) that wait on many connections without a thread
        each.

        The rules: readiness is level-triggered and may be spurious; after
        the descriptor is readable, call with ``timeout=0`` until a call
        raises TimeoutError (that call arms the descriptor and resets the
        readiness of its own direction only; calls that succeed leave it
        alone), then wait again. The
        descriptor belongs to the connection: do not read, write or close
        it, and unregister it from selectors before :meth:`close`, which
        closes it. Every call returns the same descriptor; the first one
        creates it (an eventfd of this process).

        Raises:
            ClosedError: the connection was closed.
            SystemCallError: the eventfd could not be created.
        """
        if self._closed:
            raise _errors.make_error(_errors.ERR_CLOSED, "goipc: fileno() of a closed connection")
        if self._fd < 0:
            self._fd = _event_fd("goipc_conn_fd", self._h)
        return self._fd

    def stats(self) -> _stats.Stats:
        """This end's counters (:class:`goipc.Stats`): messages and bytes
        sent and received, times it parked, wakeups it sent, ring capacity
        and bytes in use, and who is parked now. Never waits; any thread.

        Raises:
            ClosedError: after :meth:`close`.
        """
        lib = _check_live()
        out = _lib.Stats(struct_size=ctypes.sizeof(_lib.Stats))
        st = lib.goipc_conn_stats(self._h, out)
        if st:
            raise _lib.last_error(st)
        return _stats.from_c(out)

    # -- sending --

    def send(self, data: Any, timeout: Optional[float] = None) -> None:
        """Sends ``data`` (any bytes-like object) as one message.

        The bytes are copied into shared memory; ``data`` is not kept. Waits
        while the peer's ring is full (nothing is dropped).

        Raises:
            MessageTooLargeError: above :attr:`max_message_size`; nothing
                sent, the connection stays usable.
            TimeoutError: the ring stayed full; nothing sent.
            PeerClosedError, ClosedError, ProtocolError, ForkError.
            TypeError: ``data`` is not bytes-like (a str, for instance).
        """
        if _forked:
            raise _lib.fork_error()
        t = type(data)
        if t is bytes or (t is bytearray and data):
            # Fast path: one call; the general path below if it must wait.
            ms = _SLICE_MS if timeout is None else _first_ms(timeout)
            sx = self._sx
            if sx is not None:
                st = sx.send(self._h, data, ms)
            else:
                n = len(data)
                ptr = data if t is bytes else _byref(_c_char_from_buffer(data))
                st = self._x_send(self._hc, ptr, _SIZES.get(n) or _size_c(n), _C_MS[ms])
            if st == _OK:
                return
            if st != _TIMEOUT:
                raise _lib.last_error(st)
            timeout = _rest(timeout, ms)
        ptr, n = _send_arg(data)
        send = self._f_send
        h = self._h
        if timeout is None:
            st = send(h, ptr, n, _SLICE_MS)
            while st == _TIMEOUT:
                _lib.check_fork()
                st = send(h, ptr, n, _SLICE_MS)
        else:
            t0 = _monotonic()
            st = send(h, ptr, n, _first_ms(timeout))
            if st == _TIMEOUT:
                st = _wait(lambda ms: send(h, ptr, n, ms), timeout, t0)
        if st:
            raise _lib.last_error(st)

    def send_batch(self, messages: Iterable[Any], timeout: Optional[float] = None) -> int:
        """Sends ``messages`` (an iterable of bytes-like objects) in order,
        each as one message, with one call into the library for the whole
        batch: the peer's ring moves, and a sleeping peer is woken, once
        per batch instead of once per message. For streams of small
        messages, where :meth:`send` spends most of its time crossing into
        the library (see docs/PYTHON.md, "Batches"). The peer receives them
        one by one, as if sent with :meth:`send`.

        The messages are joined into one buffer first (one copy, at C
        speed), then copied into shared memory. Waits for ring space like
        :meth:`send`, up to ``timeout`` for the whole batch; a batch may be
        larger than the ring.

        Returns how many messages were sent: all of them, or, when the
        timeout expired after some were sent, that many (the first ones;
        send the rest again). Every message is checked before any is sent.

        Raises:
            TimeoutError: the timeout expired before the first message could
                be sent.
            MessageTooLargeError: a message is above
                :attr:`max_message_size`; nothing sent.
            TypeError: a message is not bytes-like.
            PeerClosedError, ClosedError, ProtocolError, ForkError. Each
            exception has ``.sent``: how many messages were sent before it.
            NotSupportedError: the loaded library has no batch functions.
        """
        if _forked:
            raise _lib.fork_error()
        f = self._batch_function("goipc_send_batch")
        b = _BatchToSend(messages)
        h = self._h
        t0 = _monotonic()
        st = b.call(f, h, _first_ms(timeout))
        if st == _TIMEOUT:
            st = _wait(lambda ms: b.call(f, h, ms), timeout, t0)
        if st == _OK:
            return b.n
        if st == _TIMEOUT and b.done:
            return b.done
        raise b.error(st)

    def _try_send_batch(self, b: "_BatchToSend", f: Any) -> Optional[int]:
        """One goipc_send_batch (``f``, from :meth:`_batch_function`) of
        what is left of ``b``, without waiting: how many messages ``b``
        holds once all are sent, None while some are left (the ring is
        full)."""
        if _forked:
            raise _lib.fork_error()
        st = b.call(f, self._h, 0)
        if st == _OK:
            return b.n
        if st == _TIMEOUT:
            return None
        raise b.error(st)

    def _batch_function(self, name: str) -> Any:
        lib = _check_live()
        if not _state.has_batch:
            raise _errors.make_error(
                _errors.ERR_NOT_SUPPORTED,
                "goipc: the loaded libgoipc.so has no batch functions (%s): rebuild it (make lib)" % name,
            )
        return getattr(lib, name)

    # -- receiving --

    def recv_batch(self, max_count: int = 64, timeout: Optional[float] = None) -> List[bytes]:
        """Receives up to ``max_count`` messages with one call into the
        library: waits for the first like :meth:`recv` (``timeout``), then
        takes the messages already there behind it, without waiting again.
        Returns them in order, as bytes (a list of 1 to ``max_count``). For
        draining streams of small messages (see docs/PYTHON.md,
        "Batches"); any message size works (a large one may come alone).

        Raises:
            TimeoutError: no message within the timeout.
            PeerClosedError: the peer closed or died, after every message
                it sent was received.
            InvalidArgumentError: ``max_count`` is not an int >= 1, or a
                view of this connection is open in this thread.
            ClosedError, ProtocolError, ForkError, NotSupportedError (the
            loaded library has no batch functions).
        """
        if _forked:
            raise _lib.fork_error()
        _check_max_count(max_count)
        f = self._batch_function("goipc_recv_batch")
        t0 = _monotonic()
        ms = _SLICE_MS if timeout is None else _first_ms(timeout)
        while True:
            got = self._recv_batch_call(f, max_count, ms)
            if got is not None:
                return got
            ms = _next_ms(timeout, t0)
            if ms < 0:
                raise _lib.last_error(_TIMEOUT)

    def _try_recv_batch(self, max_count: int, f: Any) -> Optional[List[bytes]]:
        """One goipc_recv_batch (``f``, from :meth:`_batch_function`)
        without waiting: the messages, or None when none is there."""
        if _forked:
            raise _lib.fork_error()
        return self._recv_batch_call(f, max_count, 0)

    def _recv_batch_call(self, f: Any, max_count: int, ms: int) -> Optional[List[bytes]]:
        """One goipc_recv_batch waiting up to ms: the messages, or None on
        a timeout. A first message larger than the buffer is taken at once
        with one of the maximum message size."""
        pool = self._batch_pool
        try:
            sc = pool.pop()
        except IndexError:
            sc = _BatchScratch(min(_SCRATCH_INITIAL, max(self._max, 1)))
        try:
            if len(sc.sizes) < max_count:
                sc.sizes = (c_size_t * max_count)()
            while True:
                st = f(self._h, sc.arr, sc.cap, sc.sizes, max_count, sc.count, ms)
                if st == _OK:
                    break
                if st == _TIMEOUT:
                    return None
                if st == _BUFFER_TOO_SMALL and sc.cap < self._max:
                    # The first message stays queued: a buffer of the
                    # maximum message size holds any.
                    sc = _BatchScratch(self._max, sc.sizes)
                    ms = 0
                    continue
                raise _lib.last_error(st)
            arr = sc.arr
            offs = list(_accumulate(sc.sizes[: sc.count.value], initial=0))
            return [arr[a:b] for a, b in zip(offs, offs[1:])]
        finally:
            pool.append(sc)

    def recv(self, timeout: Optional[float] = None) -> bytes:
        """Receives the next message and returns a copy of it.

        Raises:
            TimeoutError: no message within the timeout.
            PeerClosedError: the peer closed or died, after every message
                it sent was received.
            ClosedError, ProtocolError, ForkError, InvalidArgumentError (a
            view of this connection is open in this thread).
        """
        if _forked:
            raise _lib.fork_error()
        sx = self._sx
        if sx is not None:
            # Fast path: one call, the message copied into a bytes object
            # in C (a large one falls to the general path below).
            ms = _SLICE_MS if timeout is None else _first_ms(timeout)
            m = sx.recv(self._h, ms)
            if m.__class__ is bytes:
                return m
            if m == _TIMEOUT:
                timeout = _rest(timeout, ms)
            elif m != _BUFFER_TOO_SMALL:
                raise _lib.last_error(m)
            return self._recv_general(timeout)
        pool = self._pool
        try:
            sc = pool.pop()
        except IndexError:
            sc = self._new_scratch()
        try:
            # Fast path: one call into the scratch buffer.
            ms = _SLICE_MS if timeout is None else _first_ms(timeout)
            st = self._x_recv(self._hc, sc.arr, sc.cap_c, sc.len_ref, _C_MS[ms])
            if st == _OK:
                return sc.arr[: sc.len.value]
            if st == _TIMEOUT:
                timeout = _rest(timeout, ms)
            elif st != _BUFFER_TOO_SMALL:
                raise _lib.last_error(st)
        finally:
            pool.append(sc)
        return self._recv_general(timeout)

    def _recv_general(self, timeout: Optional[float]) -> bytes:
        """recv() after a fast path that found no message (or one larger
        than its buffer) and left ``timeout`` to wait."""
        pool = self._pool
        try:
            sc = pool.pop()
        except IndexError:
            sc = self._new_scratch()
        try:
            sc = self._recv_wait(sc, timeout, _KIND_RAW)
            return sc.arr[: sc.len.value]
        finally:
            pool.append(sc)

    def _new_scratch(self) -> "_Scratch":
        """A scratch buffer for a thread that found the connection's in use
        (the library serialises the receives themselves)."""
        return _Scratch(min(_SCRATCH_INITIAL, max(self._max, 1)))

    def _recv_wait(self, sc: "_Scratch", timeout: Optional[float], kind: int) -> "_Scratch":
        """The general receive into scratch buffer ``sc``: waits in slices
        up to ``timeout``, and takes a message larger than the buffer with a
        larger one. Returns the scratch that holds the message (``sc`` or
        its replacement)."""
        lib = _state.lib
        assert lib is not None
        h = self._h
        t0 = _monotonic()
        timeout = _check_timeout(timeout)
        ms = _first_ms(timeout)
        while True:
            if kind == _KIND_RAW:
                st = lib.goipc_recv(h, sc.arr, sc.cap, sc.len, ms)
            elif kind == _KIND_PONG:
                st = lib.goipc_recv_pong(h, sc.seq, sc.arr, sc.cap, sc.len, ms)
            else:
                st = lib.goipc_recv_ping(h, sc.seq, sc.sent, sc.arr, sc.cap, sc.len, ms)
            if st == _OK:
                return sc
            if st == _TIMEOUT:
                ms = _next_ms(timeout, t0)
                if ms < 0:
                    raise _lib.last_error(st)
            elif st == _BUFFER_TOO_SMALL:
                # The message stays queued: take it with a larger buffer.
                need = sc.len.value
                sc = _Scratch(max(need, min(2 * sc.cap, self._max)))
                ms = 0
            else:
                raise _lib.last_error(st)

    def recv_into(self, buffer: Any, timeout: Optional[float] = None) -> int:
        """Receives the next message into ``buffer`` (any writable bytes-like
        object: bytearray, memoryview, array, mmap, numpy array) and returns
        its size in bytes. One call into the library, which copies the
        message straight from the ring into the buffer.

        Raises:
            BufferTooSmallError: the message is larger than the buffer; its
                size is in ``.needed`` and it stays queued (call again with
                a larger buffer).
            TypeError: the buffer is read-only or not bytes-like.
            and as :meth:`recv`.
        """
        if _forked:
            raise _lib.fork_error()
        if type(buffer) is bytearray and buffer and self._sx is not None:
            # Fast path without ctypes: the size, or minus the status.
            ms = _SLICE_MS if timeout is None else _first_ms(timeout)
            n = self._sx.recv_into(self._h, buffer, ms)
            if n >= 0:
                return n
            if n == -_TIMEOUT:
                timeout = _rest(timeout, ms)
            elif n != -_BUFFER_TOO_SMALL:
                raise _lib.last_error(-n)
            # A message larger than the buffer: the general path below
            # raises BufferTooSmallError with its size.
            ptr, cap = _recv_arg(buffer)
        elif type(buffer) is bytearray and buffer:
            ptr, cap = _byref(_c_char_from_buffer(buffer)), len(buffer)
            # Fast path: one call (the length lands in a scratch's c_size_t);
            # the general path below if it must wait.
            ms = _SLICE_MS if timeout is None else _first_ms(timeout)
            pool = self._pool
            try:
                sc = pool.pop()
            except IndexError:
                sc = self._new_scratch()
            try:
                st = self._x_recv(self._hc, ptr, _SIZES.get(cap) or _size_c(cap), sc.len_ref, _C_MS[ms])
                n = sc.len.value
            finally:
                pool.append(sc)
            if st == _OK:
                return n
            if st == _TIMEOUT:
                timeout = _rest(timeout, ms)
            else:
                err = _lib.last_error(st)
                if st == _BUFFER_TOO_SMALL:
                    err.needed = n  # type: ignore[attr-defined]
                raise err
        else:
            ptr, cap = _recv_arg(buffer)
        recv = self._f_recv
        h = self._h
        ln = c_size_t()
        if timeout is None:
            st = recv(h, ptr, cap, ln, _SLICE_MS)
            while st == _TIMEOUT:
                _lib.check_fork()
                st = recv(h, ptr, cap, ln, _SLICE_MS)
        else:
            t0 = _monotonic()
            st = recv(h, ptr, cap, ln, _first_ms(timeout))
            if st == _TIMEOUT:
                st = _wait(lambda ms: recv(h, ptr, cap, ln, ms), timeout, t0)
        if st:
            err = _lib.last_error(st)
            if st == _BUFFER_TOO_SMALL:
                err.needed = ln.value  # type: ignore[attr-defined]
            raise err
        return ln.value

    def recv_view(self, timeout: Optional[float] = None) -> "View":
        """Receives the next message without copying it: returns a
        :class:`View` whose ``data`` is a read-only memoryview into the
        shared ring, valid until the view is released.

        Use it as a context manager, which yields the memoryview::

            with conn.recv_view() as mv:
                handle(mv)          # do not keep mv or slices of it

        Until the view is released, this connection's receive side is held:
        another receive in this thread raises InvalidArgumentError, other
        threads' receives wait. Copy (``bytes(mv)``) what you keep. The
        peer process can still write to shared memory: copy before
        validating if that matters.

        Raises: as :meth:`recv`.
        """
        if _state.forked:
            raise _lib.fork_error()
        rv = _state.lib.goipc_recv_view  # type: ignore[union-attr]
        h = self._h
        ptr = c_void_p()
        ln = c_size_t()
        if timeout is None:
            st = rv(h, ptr, ln, _SLICE_MS)
            while st == _TIMEOUT:
                _lib.check_fork()
                st = rv(h, ptr, ln, _SLICE_MS)
        else:
            t0 = _monotonic()
            st = rv(h, ptr, ln, _first_ms(timeout))
            if st == _TIMEOUT:
                st = _wait(lambda ms: rv(h, ptr, ln, ms), timeout, t0)
        if st:
            raise _lib.last_error(st)
        return View(self, ptr.value, ln.value)

    def reserve(self, size: int, timeout: Optional[float] = None) -> "Reservation":
        """Reserves room for a message of up to ``size`` bytes in the ring,
        to be filled in place (zero-copy send). Returns a
        :class:`Reservation` whose ``data`` is a writable memoryview; call
        ``commit(n)`` to send its first n bytes or ``abort()`` to drop it.
        As a context manager it yields the memoryview, commits all of it
        on success and aborts on an exception::

            with conn.reserve(16) as mv:
                struct.pack_into("<QQ", mv, 0, a, b)

        Until it ends, this connection's send side is held.

        Raises: as :meth:`send`.
        """
        if _state.forked:
            raise _lib.fork_error()
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError("goipc: size must be an int")
        if size < 0:
            raise ValueError("goipc: size must be >= 0")
        res = _state.lib.goipc_reserve  # type: ignore[union-attr]
        h = self._h
        ptr = c_void_p()
        t0 = _monotonic()
        timeout = _check_timeout(timeout)
        st = res(h, size, _first_ms(timeout), ptr)
        if st == _TIMEOUT:
            st = _wait(lambda ms: res(h, size, ms, ptr), timeout, t0)
        if st:
            raise _lib.last_error(st)
        return Reservation(self, ptr.value, size)

    # -- calls: requests and replies with call ids --

    def call(self, data: Any, timeout: Optional[float] = None) -> bytes:
        """Sends ``data`` (bytes-like) as a call request and returns the
        peer's reply to it (docs/PROTOCOL.md, "Calls").

        Safe from many threads at once on one connection: each thread gets
        the reply to its own request, whatever order the peer answers in.
        One library call per round trip (goipc_call_ex) when the reply
        comes within WAIT_SLICE; a longer wait continues the same call in
        slices (goipc_call_end), so Ctrl-C works and the request is never
        sent twice. If the timeout expires (or an exception such as
        KeyboardInterrupt interrupts the wait), the call is cancelled: its
        reply, if it comes later, is dropped (:attr:`dropped_replies`).

        ``data`` may be up to ``max_message_size - 8`` bytes (the frame
        carries the 8-byte call id). A plain message, or a request, that
        the peer sends ahead of the reply must be received by someone
        (:meth:`recv`, :meth:`recv_request`): the reply waits behind it.

        Raises:
            TimeoutError: no reply within the timeout (the call is over).
            PeerClosedError: the peer closed or died first.
            MessageTooLargeError, ClosedError, ProtocolError, ForkError,
            NotSupportedError (a library without calls).
        """
        if _forked:
            raise _lib.fork_error()
        if self._x_call_ex is None:
            raise _no_calls()
        sx = self._sx
        if sx is not None and (type(data) is bytes or type(data) is bytearray):
            # Fast path: one call, the reply copied into a bytes object in
            # C; else (status, pending call, length) for the general path.
            ms = _SLICE_MS if timeout is None else _first_ms(timeout)
            r = sx.call(self._h, data, ms)
            if r.__class__ is bytes:
                return r
            return self._call_general(data, timeout, r, ms, None, 0)
        pool = self._pool
        try:
            sc = pool.pop()
        except IndexError:
            sc = self._new_scratch()
        try:
            t = type(data)
            if t is bytes or (t is bytearray and data):
                # Fast path: one call into the scratch buffer.
                ms = _SLICE_MS if timeout is None else _first_ms(timeout)
                n = len(data)
                ptr = data if t is bytes else _byref(_c_char_from_buffer(data))
                st = self._x_call_ex(
                    self._hc, ptr, _SIZES.get(n) or _size_c(n), sc.arr, sc.cap_c, sc.len_ref, _C_MS[ms], sc.pend_ref
                )
                if st == _OK:
                    return sc.arr[: sc.len.value]
                sc = self._call_wait(sc, ptr, n, timeout, st, ms, None, 0)
            else:
                ptr, n = _send_arg(data)
                sc = self._call_wait(sc, ptr, n, timeout, None, 0, None, 0)
            return sc.arr[: sc.len.value]
        finally:
            pool.append(sc)

    def call_into(self, data: Any, buffer: Any, timeout: Optional[float] = None) -> int:
        """:meth:`call` with the reply copied straight into ``buffer`` (any
        writable bytes-like object); returns the reply's length. One
        library call per round trip.

        Raises:
            BufferTooSmallError: the reply is larger than the buffer; its
                size is in ``.needed``. The call is over and the reply
                dropped (a buffer of ``max_message_size - 8`` bytes never
                sees this).
            and as :meth:`call`.
        """
        if _forked:
            raise _lib.fork_error()
        if self._x_call_ex is None:
            raise _no_calls()
        if type(buffer) is bytearray and buffer:
            sx = self._sx
            if sx is not None and (type(data) is bytes or type(data) is bytearray):
                # Fast path without ctypes: the size, or (status, pending
                # call, length) for the general path.
                ms = _SLICE_MS if timeout is None else _first_ms(timeout)
                r = sx.call_into(self._h, data, buffer, ms)
                if r.__class__ is int:
                    return r
                out, cap = _byref(_c_char_from_buffer(buffer)), len(buffer)
                return self._call_general(data, timeout, r, ms, out, cap)
            out, cap = _byref(_c_char_from_buffer(buffer)), len(buffer)
        else:
            out, cap = _recv_arg(buffer)
        pool = self._pool
        try:
            sc = pool.pop()
        except IndexError:
            sc = self._new_scratch()
        try:
            t = type(data)
            if t is bytes or (t is bytearray and data):
                ms = _SLICE_MS if timeout is None else _first_ms(timeout)
                n = len(data)
                ptr = data if t is bytes else _byref(_c_char_from_buffer(data))
                st = self._x_call_ex(
                    self._hc,
                    ptr,
                    _SIZES.get(n) or _size_c(n),
                    out,
                    _SIZES.get(cap) or _size_c(cap),
                    sc.len_ref,
                    _C_MS[ms],
                    sc.pend_ref,
                )
                if st == _OK:
                    return sc.len.value
                sc = self._call_wait(sc, ptr, n, timeout, st, ms, out, cap)
            else:
                ptr, n = _send_arg(data)
                sc = self._call_wait(sc, ptr, n, timeout, None, 0, out, cap)
            return sc.len.value
        finally:
            pool.append(sc)

    def _call_general(
        self, data: Any, timeout: Optional[float], r: Tuple[int, int, int], ms: int, out: Any, cap: int,
    ) -> Any:
        """call() or call_into() after a goipc._speedups call that did not
        end with the reply: ``r`` is its (status, pending call, length),
        ``ms`` what it waited. Returns the reply (bytes), or its length
        with ``out``."""
        pool = self._pool
        try:
            sc = pool.pop()
        except IndexError:
            sc = self._new_scratch()
        try:
            sc.pend.value, sc.len.value = r[1], r[2]
            ptr, n = _send_arg(data)
            sc = self._call_wait(sc, ptr, n, timeout, r[0], ms, out, cap)
            return sc.arr[: sc.len.value] if out is None else sc.len.value
        finally:
            pool.append(sc)

    def _call_wait(
        self, sc: "_Scratch", ptr: Any, n: int, timeout: Optional[float], st: Optional[int], first_ms: int,
        out: Any, cap: int,
    ) -> "_Scratch":
        """The general call: ``st`` is the status of a first goipc_call_ex
        that waited ``first_ms`` (None: not made yet). Sends the request
        if it was not sent, waits for the reply in slices
        (goipc_call_end), and cancels the call if the wait ends without
        it. The reply goes to ``out`` (``cap`` bytes) or, with out None,
        to the scratch, which is replaced by a larger one for a reply that
        does not fit. Returns the scratch that holds the result."""
        lib = _state.lib
        assert lib is not None
        h = self._h
        timeout = _check_timeout(timeout)
        if timeout is not None:
            timeout = max(timeout - first_ms / 1000.0, 0.0)
        t0 = _monotonic()
        pend = sc.pend.value if st is not None else 0
        try:
            if st is None:
                st = lib.goipc_call_ex(h, ptr, n, sc.arr if out is None else out, sc.cap if out is None else cap,
                                       sc.len, _first_ms(timeout), sc.pend)
                pend = sc.pend.value
            while st != _OK:
                if st == _BUFFER_TOO_SMALL and pend:
                    need = sc.len.value
                    if out is not None:
                        err = _lib.last_error(st)
                        err.needed = need  # type: ignore[attr-defined]
                        raise err  # the pending call is cancelled below
                    sc = _Scratch(need)  # the reply is kept: take it with a larger buffer
                    st = lib.goipc_call_end(h, pend, sc.arr, sc.cap, sc.len, 0)
                elif st == _TIMEOUT:
                    ms = _next_ms(timeout, t0)
                    if ms < 0:
                        raise _lib.last_error(st)
                    if pend:
                        st = lib.goipc_call_end(h, pend, sc.arr if out is None else out,
                                                sc.cap if out is None else cap, sc.len, ms)
                    else:  # not sent yet (every call slot in use, or the ring full)
                        st = lib.goipc_call_ex(h, ptr, n, sc.arr if out is None else out,
                                               sc.cap if out is None else cap, sc.len, ms, sc.pend)
                        pend = sc.pend.value
                else:
                    pend = 0  # any other status ends the call
                    err = _lib.last_error(st)
                    if st == _BUFFER_TOO_SMALL:
                        err.needed = sc.len.value  # type: ignore[attr-defined]
                    raise err
            pend = 0
            return sc
        finally:
            if pend:
                lib.goipc_call_cancel(h, pend)

    def call_ping(self, seq: int, payload: Any = b"", timeout: Optional[float] = None) -> Pong:
        """A typed call: sends a FlatBuffers Message/Ping (``seq``,
        ``payload``, sent_ns now) as a call request and returns the reply,
        which must be a Message/Pong, as a :class:`Pong` (seq, payload).
        One library call (goipc_call_ping): the Ping is built in place in
        the ring, the Pong verified in Go. `goipc pong` answers it.

        The wait is one library call: pass a timeout in code that must
        react to Ctrl-C while a slow peer answers.

        Raises:
            ProtocolError: the reply was not a valid Pong (this call only).
            and as :meth:`call`.
        """
        if _forked:
            raise _lib.fork_error()
        if self._x_call_ping is None:
            raise _no_calls()
        if type(seq) is not int or not 0 <= seq <= _U64_MAX:
            _check_seq(seq)
        t = _check_timeout(timeout)
        ms = -1 if t is None else _ms_ceil(t)
        ptr, n = (payload, len(payload)) if type(payload) is bytes else _send_arg(payload)
        pool = self._pool
        try:
            sc = pool.pop()
        except IndexError:
            sc = self._new_scratch()
        try:
            st = self._x_call_ping(
                self._hc, c_uint64(seq), ptr, _SIZES.get(n) or _size_c(n), sc.seq_ref, sc.arr, sc.cap_c, sc.len_ref,
                _C_MS[ms] if 0 <= ms <= _SLICE_MS else c_int64(ms),
            )
            if st == _BUFFER_TOO_SMALL:
                err = _lib.last_error(st)
                err.needed = sc.len.value  # type: ignore[attr-defined]
                raise err
            if st:
                raise _lib.last_error(st)
            return _tuple_new(Pong, (sc.seq.value, sc.arr[: sc.len.value], None, None))
        finally:
            pool.append(sc)

    def recv_request(self, timeout: Optional[float] = None) -> Tuple[int, bytes]:
        """Receives the next call request: returns ``(call_id, request)``.
        Answer it with :meth:`reply` (from any thread, in any order).
        Plain messages are left for :meth:`recv`.

        Raises: as :meth:`recv`.
        """
        if _forked:
            raise _lib.fork_error()
        if self._x_call_ex is None:
            raise _no_calls()
        lib = _state.lib
        assert lib is not None
        h = self._h
        return self._take_request(
            timeout,
            lambda sc, ms: lib.goipc_recv_request(h, sc.seq, sc.arr, sc.cap, sc.len, ms),
            lambda sc: (sc.seq.value, sc.arr[: sc.len.value]),
        )

    def _take_request(
        self,
        timeout: Optional[float],
        receive: Callable[["_Scratch", int], int],
        result: Callable[["_Scratch"], Any],
        failure: Callable[["_Scratch", int], BaseException] = lambda sc, st: _lib.last_error(st),
    ) -> Any:
        """The request receive loop: ``receive(sc, ms)`` (one library call
        into scratch buffer ``sc``) in slices until it succeeds, with a
        larger buffer when the request does not fit (it stays queued);
        returns ``result(sc)``, or raises ``failure(sc, status)``."""
        pool = self._pool
        try:
            sc = pool.pop()
        except IndexError:
            sc = self._new_scratch()
        try:
            t0 = _monotonic()
            timeout = _check_timeout(timeout)
            ms = _first_ms(timeout)
            while True:
                st = receive(sc, ms)
                if st == _OK:
                    return result(sc)
                if st == _TIMEOUT:
                    ms = _next_ms(timeout, t0)
                    if ms < 0:
                        raise _lib.last_error(st)
                elif st == _BUFFER_TOO_SMALL:  # the request stays queued
                    sc = _Scratch(max(sc.len.value, min(2 * sc.cap, self._max)))
                    ms = 0
                else:
                    raise failure(sc, st)
        finally:
            pool.append(sc)

    def reply(self, call_id: int, data: Any, timeout: Optional[float] = None) -> None:
        """Sends ``data`` as the reply to the call request ``call_id``
        (from :meth:`recv_request`). A reply nobody waits for any more is
        dropped by the peer.

        Raises: as :meth:`send`; ValueError for a call_id outside
        [0, 2**64).
        """
        if _forked:
            raise _lib.fork_error()
        if self._x_call_ex is None:
            raise _no_calls()
        _check_seq(call_id)
        fn = _state.lib.goipc_reply  # type: ignore[union-attr]
        ptr, n = _send_arg(data)
        h = self._h
        t0 = _monotonic()
        timeout = _check_timeout(timeout)
        st = fn(h, call_id, ptr, n, _first_ms(timeout))
        if st == _TIMEOUT:
            st = _wait(lambda ms: fn(h, call_id, ptr, n, ms), timeout, t0)
        if st:
            raise _lib.last_error(st)

    def recv_ping_request(self, timeout: Optional[float] = None) -> Tuple[int, Ping]:
        """Receives the next call request, which must be a Message/Ping:
        returns ``(call_id, Ping(seq, sent_ns, payload))``. Answer it with
        :meth:`reply_pong` (from any thread, in any order). One library call
        (goipc_recv_ping_request): the Ping is verified in place in the
        ring and only its payload copied.

        Raises:
            ProtocolError: the request was not a valid Ping. It left the
                queue, but its caller waits for a reply: the error's
                ``call_id`` and ``request`` (its bytes; None if it was
                larger than the receive buffer) let you answer it with
                :meth:`reply`. The connection stays usable. A
                ProtocolError of the connection itself has no
                ``call_id``.
            and as :meth:`recv_request`.
        """
        if not _state.has_typed_server:
            call_id, req = self.recv_request(timeout)
            try:
                return call_id, messages.parse_ping(req)
            except _errors.InvalidMessageError as e:
                err = _errors.make_error(_errors.ERR_PROTOCOL, "goipc: the request is not a valid Ping: %s" % e)
                err.call_id, err.request = call_id, req  # type: ignore[attr-defined]
                raise err from None
        if _forked:
            raise _lib.fork_error()
        lib = _state.lib
        assert lib is not None
        h = self._h

        def receive(sc: _Scratch, ms: int) -> int:
            sc.pend.value = 0  # call ids are never 0: tells a non-Ping request from a broken connection
            return lib.goipc_recv_ping_request(h, sc.pend, sc.seq, sc.sent, sc.arr, sc.cap, sc.len, ms)

        def failure(sc: _Scratch, st: int) -> BaseException:
            err = _lib.last_error(st)
            if st == _errors.ERR_PROTOCOL and sc.pend.value != 0:  # not a Ping: its id and bytes are handed over
                err.call_id = sc.pend.value  # type: ignore[attr-defined]
                n = sc.len.value
                err.request = sc.arr[:n] if n <= sc.cap else None  # type: ignore[attr-defined]
            return err

        return self._take_request(
            timeout,
            receive,
            lambda sc: (sc.pend.value, _tuple_new(Ping, (sc.seq.value, sc.sent.value, sc.arr[: sc.len.value]))),
            failure,
        )

    def reply_pong(
        self,
        call_id: int,
        seq: int,
        ping_sent_ns: int,
        payload: Any = b"",
        received_ns: int = 0,
        timeout: Optional[float] = None,
    ) -> None:
        """Answers the call request ``call_id`` (from
        :meth:`recv_ping_request`) with a Message/Pong (``seq``,
        ``ping_sent_ns``, ``received_ns``, ``payload``), built in place in
        the ring by the library (goipc_reply_pong, one call).
        ``received_ns`` is when the Ping was read (0: CLOCK_MONOTONIC now).

        Raises: as :meth:`reply`; InvalidArgumentError for call_id 0
        (never a call id).
        """
        if _forked:
            raise _lib.fork_error()
        if self._x_call_ex is None:
            raise _no_calls()
        _check_seq(call_id)
        _check_seq(seq)
        _check_i64("ping_sent_ns", ping_sent_ns)
        _check_i64("received_ns", received_ns)
        if not _state.has_typed_server:
            if call_id == 0:
                raise _errors.make_error(_errors.ERR_INVALID_ARGUMENT, "goipc: reply_pong: call id 0 is never issued")
            self.reply(call_id, messages.build_pong(seq, payload, ping_sent_ns, received_ns or None), timeout)
            return
        fn = _state.lib.goipc_reply_pong  # type: ignore[union-attr]
        ptr, n = _send_arg(payload)
        h = self._h
        t0 = _monotonic()
        timeout = _check_timeout(timeout)
        st = fn(h, call_id, seq, ping_sent_ns, received_ns, ptr, n, _first_ms(timeout))
        if st == _TIMEOUT:
            st = _wait(lambda ms: fn(h, call_id, seq, ping_sent_ns, received_ns, ptr, n, ms), timeout, t0)
        if st:
            raise _lib.last_error(st)

    @property
    def dropped_replies(self) -> int:
        """Replies this end received that no call was waiting for (their
        call timed out or was cancelled): dropped, never delivered to
        another call."""
        if self._x_call_ex is None:
            raise _no_calls()
        out = c_uint64()
        st = _check_live().goipc_conn_dropped_replies(self._h, out)
        if st:
            raise _lib.last_error(st)
        return out.value

    # -- typed messages: Ping / Pong (schema/goipc.fbs) --

    def send_ping(self, seq: int, payload: Any = b"", timeout: Optional[float] = None) -> None:
        """Sends a FlatBuffers Message/Ping with ``seq``, ``payload`` (bytes-
        like) and sent_ns = CLOCK_MONOTONIC now. Built in place in the ring
        by the library's goipc_send_ping (one call), or with the generated
        Python code if the library lacks that helper.

        Raises: as :meth:`send`; ValueError for a seq outside [0, 2**64).
        """
        if _forked:
            raise _lib.fork_error()
        if type(seq) is not int or not 0 <= seq <= _U64_MAX:
            _check_seq(seq)
        if not _state.has_typed:
            self.send(messages.build_ping(seq, payload), timeout)
            return
        if type(payload) is bytes:
            ms = _SLICE_MS if timeout is None else _first_ms(timeout)
            n = len(payload)
            st = self._x_send_ping(self._hc, c_uint64(seq), payload, _SIZES.get(n) or _size_c(n), _C_MS[ms])
            if st == _OK:
                return
            if st != _TIMEOUT:
                raise _lib.last_error(st)
            timeout = _rest(timeout, ms)
        if type(payload) is bytes:
            ptr, n = payload, len(payload)
        else:
            ptr, n = _send_arg(payload)
        fn = self._f_send_ping
        h = self._h
        if timeout is None:
            st = fn(h, seq, ptr, n, _SLICE_MS)
            while st == _TIMEOUT:
                _lib.check_fork()
                st = fn(h, seq, ptr, n, _SLICE_MS)
        else:
            t0 = _monotonic()
            st = fn(h, seq, ptr, n, _first_ms(timeout))
            if st == _TIMEOUT:
                st = _wait(lambda ms: fn(h, seq, ptr, n, ms), timeout, t0)
        if st:
            raise _lib.last_error(st)

    def send_pong(
        self, seq: int, ping_sent_ns: int, payload: Any = b"", received_ns: int = 0, timeout: Optional[float] = None
    ) -> None:
        """Sends a Message/Pong answering the Ping (``seq``,
        ``ping_sent_ns``) with ``payload``; ``received_ns`` is when the Ping
        was read (0: CLOCK_MONOTONIC now).

        Raises: as :meth:`send`.
        """
        if _state.forked:
            raise _lib.fork_error()
        _check_seq(seq)
        _check_i64("ping_sent_ns", ping_sent_ns)
        _check_i64("received_ns", received_ns)
        if not _state.has_typed:
            self.send(messages.build_pong(seq, payload, ping_sent_ns, received_ns or None), timeout)
            return
        ptr, n = _send_arg(payload)
        fn = _state.lib.goipc_send_pong  # type: ignore[union-attr]
        h = self._h
        t0 = _monotonic()
        st = fn(h, seq, ping_sent_ns, received_ns, ptr, n, _first_ms(timeout))
        if st == _TIMEOUT:
            st = _wait(lambda ms: fn(h, seq, ping_sent_ns, received_ns, ptr, n, ms), _check_timeout(timeout), t0)
        if st:
            raise _lib.last_error(st)

    def recv_pong(self, timeout: Optional[float] = None) -> Pong:
        """Receives the next message, which must be a Message/Pong, and
        returns it as a :class:`Pong` (seq, payload). Verified in Go and
        only the payload copied, in one library call (goipc_recv_pong);
        ``ping_sent_ns`` and ``received_ns`` are None on that path.

        Raises:
            ProtocolError: the message was not a valid Pong; it was dropped
                and the connection stays usable (call again).
            and as :meth:`recv`.
        """
        if not _state.has_typed:
            try:
                return messages.parse_pong(self.recv(timeout))
            except _errors.InvalidMessageError as e:
                raise _errors.make_error(_errors.ERR_PROTOCOL, "goipc: not a valid Pong: %s" % e) from None
        if _forked:
            raise _lib.fork_error()
        pool = self._pool
        try:
            sc = pool.pop()
        except IndexError:
            sc = self._new_scratch()
        try:
            # Fast path: one call into the scratch buffer.
            ms = _SLICE_MS if timeout is None else _first_ms(timeout)
            st = self._x_recv_pong(self._hc, sc.seq_ref, sc.arr, sc.cap_c, sc.len_ref, _C_MS[ms])
            if st == _OK:
                return _tuple_new(Pong, (sc.seq.value, sc.arr[: sc.len.value], None, None))
            if st == _TIMEOUT:
                timeout = _rest(timeout, ms)
            elif st != _BUFFER_TOO_SMALL:
                raise _lib.last_error(st)
            sc = self._recv_wait(sc, timeout, _KIND_PONG)
            return _tuple_new(Pong, (sc.seq.value, sc.arr[: sc.len.value], None, None))
        finally:
            pool.append(sc)

    def recv_ping(self, timeout: Optional[float] = None) -> Ping:
        """Receives the next message, which must be a Message/Ping, and
        returns it as a :class:`Ping` (seq, sent_ns, payload), through the
        library's goipc_recv_ping (one call).

        Raises:
            ProtocolError: the message was not a valid Ping; it was dropped
                and the connection stays usable (call again).
            and as :meth:`recv`.
        """
        if not _state.has_typed:
            try:
                return messages.parse_ping(self.recv(timeout))
            except _errors.InvalidMessageError as e:
                raise _errors.make_error(_errors.ERR_PROTOCOL, "goipc: not a valid Ping: %s" % e) from None
        if _forked:
            raise _lib.fork_error()
        pool = self._pool
        try:
            sc = pool.pop()
        except IndexError:
            sc = self._new_scratch()
        try:
            sc = self._recv_wait(sc, timeout, _KIND_PING)
            return _tuple_new(Ping, (sc.seq.value, sc.sent.value, sc.arr[: sc.len.value]))
        finally:
            pool.append(sc)

    # -- single attempts that never wait (for goipc.aio) --
    #
    # Each makes one library call with timeout 0 and reports "not now"
    # (GOIPC_ERR_TIMEOUT, which also arms fileno()) as None instead of
    # raising: an event loop gets it on every wait, and an exception costs
    # three more library calls (message, errno) and the raise.

    def _try_send(self, ptr: Any, n: c_size_t) -> Optional[bool]:
        """One send of a message prepared by :func:`_send_call_args`: True
        when sent, None when the ring is full."""
        if _forked:
            raise _lib.fork_error()
        sx = self._sx
        if sx is not None and ptr.__class__ is bytes:
            st = sx.send(self._h, ptr, 0)
        else:
            st = self._x_send(self._hc, ptr, n, _C_MS[0])
        if st == _OK:
            return True
        if st == _TIMEOUT:
            return None
        raise _lib.last_error(st)

    def _try_send_ping(self, seq: c_uint64, ptr: Any, n: c_size_t) -> Optional[bool]:
        """One goipc_send_ping: True when sent, None when the ring is full."""
        if _forked:
            raise _lib.fork_error()
        st = self._x_send_ping(self._hc, seq, ptr, n, _C_MS[0])
        if st == _OK:
            return True
        if st == _TIMEOUT:
            return None
        raise _lib.last_error(st)

    def _try_send_pong(self, seq: int, ping_sent_ns: int, received_ns: int, ptr: Any, n: int) -> Optional[bool]:
        """One goipc_send_pong: True when sent, None when the ring is full."""
        if _forked:
            raise _lib.fork_error()
        st = _state.lib.goipc_send_pong(self._h, seq, ping_sent_ns, received_ns, ptr, n, 0)  # type: ignore[union-attr]
        if st == _OK:
            return True
        if st == _TIMEOUT:
            return None
        raise _lib.last_error(st)

    def _try_recv_msg(self, kind: int) -> Any:
        """One receive into a scratch buffer: the message as bytes, Pong or
        Ping (by kind), or None when none is there. A message larger than
        the scratch buffer is taken at once with a larger one."""
        if _forked:
            raise _lib.fork_error()
        if kind == _KIND_RAW and self._sx is not None:
            m = self._sx.recv(self._h, 0)
            if m.__class__ is bytes:
                return m
            return self._recv_status(m)
        pool = self._pool
        try:
            sc = pool.pop()
        except IndexError:
            sc = self._new_scratch()
        try:
            if kind == _KIND_RAW:
                st = self._x_recv(self._hc, sc.arr, sc.cap_c, sc.len_ref, _C_MS[0])
            elif kind == _KIND_PONG:
                st = self._x_recv_pong(self._hc, sc.seq_ref, sc.arr, sc.cap_c, sc.len_ref, _C_MS[0])
            else:
                st = _state.lib.goipc_recv_ping(self._h, sc.seq, sc.sent, sc.arr, sc.cap, sc.len, 0)  # type: ignore[union-attr]
            if st == _TIMEOUT:
                return None
            if st == _BUFFER_TOO_SMALL:
                sc = self._recv_wait(sc, 0, kind)  # queued: no wait
            elif st != _OK:
                raise _lib.last_error(st)
            data = sc.arr[: sc.len.value]
            if kind == _KIND_RAW:
                return data
            if kind == _KIND_PONG:
                return _tuple_new(Pong, (sc.seq.value, data, None, None))
            return _tuple_new(Ping, (sc.seq.value, sc.sent.value, data))
        finally:
            pool.append(sc)

    def _recv_status(self, st: int) -> Optional[bytes]:
        """What a goipc._speedups recv with timeout 0 that returned status
        ``st`` means: None for no message, the message when it was larger
        than the extension's buffer (taken with a larger one), else the
        error raised."""
        if st == _TIMEOUT:
            return None
        if st != _BUFFER_TOO_SMALL:
            raise _lib.last_error(st)
        return self._recv_general(0)  # queued: no wait

    def _try_recv_into(self, ptr: Any, cap: c_size_t, ln: c_size_t, ln_ref: Any) -> Optional[int]:
        """One receive into a caller's buffer prepared by
        :func:`_recv_call_args`: the size, or None when no message is
        there. BufferTooSmallError (with .needed) as recv_into."""
        if _forked:
            raise _lib.fork_error()
        st = self._x_recv(self._hc, ptr, cap, ln_ref, _C_MS[0])
        if st == _OK:
            return ln.value
        if st == _TIMEOUT:
            return None
        err = _lib.last_error(st)
        if st == _BUFFER_TOO_SMALL:
            err.needed = ln.value  # type: ignore[attr-defined]
        raise err

    def _try_recv_into_buffer(self, buffer: bytearray) -> Optional[int]:
        """_try_recv_into through goipc._speedups, for a non-empty
        bytearray: the size, or None when no message is there.
        BufferTooSmallError (with .needed, from a second look through
        ctypes: the message stays queued) as recv_into."""
        if _forked:
            raise _lib.fork_error()
        n = self._sx.recv_into(self._h, buffer, 0)
        if n >= 0:
            return n
        if n == -_TIMEOUT:
            return None
        if n != -_BUFFER_TOO_SMALL:
            raise _lib.last_error(-n)
        ptr, cap = _recv_call_args(buffer)
        ln = c_size_t()
        return self._try_recv_into(ptr, cap, ln, _byref(ln))

    def _call_state(self, data: Any) -> "_CallState":
        """A call for an event loop (goipc.aio): its request and a scratch
        buffer from the pool (give it back with _end_call)."""
        if _forked:
            raise _lib.fork_error()
        if self._x_call_ex is None:
            raise _no_calls()
        cs = _CallState()
        cs.ptr, cs.n = _send_call_args(data)
        try:
            cs.sc = self._pool.pop()
        except IndexError:
            cs.sc = self._new_scratch()
        return cs

    def _pending_call_state(self, pending: int) -> "_CallState":
        """The _CallState of call ``pending``, started elsewhere (goipc.aio
        through goipc._speedups), for _try_call_end and _end_call."""
        cs = _CallState()
        cs.ptr, cs.n = None, None
        try:
            cs.sc = self._pool.pop()
        except IndexError:
            cs.sc = self._new_scratch()
        cs.pending = pending
        return cs

    def _try_call_start(self, cs: "_CallState") -> Any:
        """One goipc_call_start (or goipc_call_ex) that does not wait:
        _PENDING once the request is sent (cs.pending is the call's id),
        None when it could not be sent yet (every call slot in use, or the
        ring full); with goipc_call_ex, the reply (bytes) if it came at
        once, which it cannot in practice. goipc_call_start does not look
        for the reply: that look would find nothing and list the receive
        wait on the loop's sweeper (docs/PERFORMANCE.md section 21)."""
        if _forked:
            raise _lib.fork_error()
        if self._x_call_start is not None:
            sx = self._sx
            if sx is not None and cs.ptr.__class__ is bytes:
                r = sx.call_start(self._h, cs.ptr, 0)
                if r > 0:
                    cs.pending = r
                    return _PENDING
                st = -r
            else:
                sc = cs.sc
                st = self._x_call_start(self._hc, cs.ptr, cs.n, _C_MS[0], sc.pend_ref)
                if st == _OK:
                    cs.pending = sc.pend.value
                    return _PENDING
            cs.pending = 0
            if st == _TIMEOUT:
                return None
            raise _lib.last_error(st)
        sc = cs.sc
        sx = self._sx
        if sx is not None and cs.ptr.__class__ is bytes:
            r = sx.call(self._h, cs.ptr, 0)
            if r.__class__ is bytes:
                return r
            st, sc.pend.value, sc.len.value = r
        else:
            st = self._x_call_ex(self._hc, cs.ptr, cs.n, sc.arr, sc.cap_c, sc.len_ref, _C_MS[0], sc.pend_ref)
            if st == _OK:
                return sc.arr[: sc.len.value]
        cs.pending = sc.pend.value
        if st == _TIMEOUT:
            return _PENDING if cs.pending else None
        if st == _BUFFER_TOO_SMALL and cs.pending:
            return self._try_call_end(cs)  # the reply is kept: take it with a larger buffer
        raise _lib.last_error(st)

    def _try_call_end(self, cs: "_CallState") -> Optional[bytes]:
        """One goipc_call_end that does not wait: the reply, or None while
        it has not come. A reply larger than the scratch buffer is taken
        at once with a larger one."""
        if _forked:
            raise _lib.fork_error()
        sx = self._sx
        if sx is not None:
            r = sx.call_end(self._h, cs.pending, 0)
            if r.__class__ is bytes:
                cs.pending = 0
                return r
            st = r[0]
            if st == _TIMEOUT:
                return None
            if st != _BUFFER_TOO_SMALL:
                cs.pending = 0  # any other status ends the call
                raise _lib.last_error(st)
            cs.sc = _Scratch(r[2])  # kept: the general path below takes it
        lib = _state.lib
        assert lib is not None
        while True:
            sc = cs.sc
            st = lib.goipc_call_end(self._h, cs.pending, sc.arr, sc.cap, sc.len, 0)
            if st == _TIMEOUT:
                return None
            if st == _BUFFER_TOO_SMALL:
                cs.sc = _Scratch(sc.len.value)
                continue
            cs.pending = 0  # any other status ends the call
            if st != _OK:
                raise _lib.last_error(st)
            return cs.sc.arr[: cs.sc.len.value]

    def _end_call(self, cs: "_CallState") -> None:
        """Cancels the call if it is still pending (the reply, if it comes,
        is dropped) and gives the scratch buffer back."""
        if cs.pending and not _forked:
            _state.lib.goipc_call_cancel(self._h, cs.pending)  # type: ignore[union-attr]
            cs.pending = 0
        self._pool.append(cs.sc)

    # -- closing --

    def close(self) -> None:
        """Closes the connection. Calls blocked on it (in other threads)
        raise ClosedError; the peer gets PeerClosedError once it has
        received what was sent. An open view or reservation of this
        connection is released first (BufferError if slices of its
        memoryview are still alive: the connection then stays open).
        Closing twice is harmless."""
        if self._closed:
            return
        lib = _check_live()
        for span in list(self._spans):
            if not span.released:
                span._end_for_close()  # BufferError if its slices are alive
        if any(r() is not None for r in list(self._arrays.values())):
            raise BufferError(
                "goipc: slices of a view or reservation of this connection are still alive; "
                "delete them before closing (closing unmaps the memory they point to)"
            )
        self._closed = True
        st = lib.goipc_conn_close(self._h)
        if st and st != _errors.ERR_CLOSED:
            raise _lib.last_error(st)

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<goipc.Conn handle=%#x max_message_size=%d%s>" % (
            self._h,
            self._max,
            " closed" if self._closed else "",
        )

    def __del__(self) -> None:
        if getattr(self, "_closed", True) or _state.forked:
            return
        try:
            if os.getpid() != _state.pid:
                return
            warnings.warn("unclosed %r" % (self,), ResourceWarning, source=self)
            self._closed = True
            _state.lib.goipc_conn_close(self._h)  # type: ignore[union-attr]
        except Exception:
            pass


# ---- zero-copy views ---------------------------------------------------------


class _RingSpan:
    """Common part of View and Reservation: a memoryview over ring memory
    that must not outlive the library's view/reservation.

    The memoryview is made over a ctypes array at the ring address; the
    array holds a reference to the connection, so that slices of the
    memoryview (which keep the array alive) also keep the connection, and
    so its mapping, alive. Ending the span releases the memoryview and
    checks that no slice of it is still alive (BufferError otherwise:
    a slice would then point to memory the peer reuses).
    """

    _what = "span"

    def __init__(self, conn: Conn, ptr: Optional[int], n: int, readonly: bool) -> None:
        self._conn = conn
        arr = (c_ubyte * n).from_address(ptr or 0) if n else (c_ubyte * 0)()
        arr._goipc_conn = conn  # type: ignore[attr-defined]
        self._arr: Optional[ctypes.Array] = arr
        first = memoryview(arr)
        mv = first.cast("B")
        first.release()
        if readonly:
            ro = mv.toreadonly()
            mv.release()
            mv = ro
        self._mv: Optional[memoryview] = mv
        self._released = False
        self.nbytes = n
        """Size of the span in bytes."""
        conn._spans.add(self)
        arrays, key = conn._arrays, id(arr)
        arrays[key] = weakref.ref(arr, lambda _r: arrays.pop(key, None))

    @property
    def released(self) -> bool:
        """True once the span was released (committed, aborted)."""
        return self._released

    @property
    def data(self) -> memoryview:
        """The memoryview over the ring memory (ValueError once released)."""
        mv = self._mv
        if mv is None:
            raise ValueError("goipc: this %s was already released" % self._what)
        return mv

    def __len__(self) -> int:
        return self.nbytes

    def _detach(self) -> None:
        """Releases our memoryview and checks that no slice of it is alive.
        Raises BufferError (span still held) if one is."""
        mv = self._mv
        if mv is not None:
            mv.release()  # BufferError if exported (numpy.frombuffer, ...)
            self._mv = None
        if self._arr is not None and sys.getrefcount(self._arr) > 2:
            # Our attribute + getrefcount's argument: anything more is a
            # memoryview slice's buffer still holding the array.
            raise BufferError(
                "goipc: slices or views of this %s's memoryview are still alive; delete them "
                "(copy with bytes() what you keep) before releasing it" % self._what
            )
        self._arr = None

    # The library function that ends the span without sending anything.
    _end_fn = ""

    def _finish(self, fn: str, *args: Any) -> None:
        """Ends the span with the library function ``fn`` (release, commit
        or abort) and raises what it reports. BufferError, before anything
        ends, if slices of the memoryview are alive."""
        self._detach()
        self._released = True
        if _state.forked:
            raise _lib.fork_error()
        st = getattr(_state.lib, fn)(self._conn._h, *args)
        if st:
            raise _lib.last_error(st)

    def _end_for_close(self) -> None:
        self._detach()
        self._released = True
        getattr(_state.lib, self._end_fn)(self._conn._h)

    def __del__(self) -> None:
        if getattr(self, "_released", True) or _state.forked:
            return
        try:
            self._end_for_close()
        except BufferError:
            # Collected while slices of its memoryview live on: end the
            # span in the library when the last of them goes.
            if self._arr is not None:
                self._released = True
                weakref.finalize(self._arr, _late_end, _state.lib, self._end_fn, self._conn._h)
        except Exception:
            pass


def _late_end(lib: ctypes.CDLL, fn: str, handle: int) -> None:
    """Ends a span whose object was collected while slices of it lived on."""
    if not _state.forked:
        getattr(lib, fn)(handle)


class View(_RingSpan):
    """A received message read in place in the ring (see
    :meth:`Conn.recv_view`). ``data`` is a read-only memoryview of
    ``nbytes`` bytes, valid until :meth:`release`."""

    _what = "view"
    _end_fn = "goipc_release"

    def __init__(self, conn: Conn, ptr: Optional[int], n: int) -> None:
        super().__init__(conn, ptr, n, readonly=True)

    def tobytes(self) -> bytes:
        """A copy of the message."""
        return self.data.tobytes()

    def __bytes__(self) -> bytes:
        return self.tobytes()

    def release(self) -> None:
        """Gives the message's space back to the peer. The memoryview is
        released; releasing twice is harmless.

        Raises:
            BufferError: slices of the memoryview (or objects exporting it)
                are still alive; the view stays open.
            ClosedError: the connection was closed meanwhile (the view is
                ended all the same).
        """
        if not self._released:
            self._finish("goipc_release")

    def __enter__(self) -> memoryview:
        return self.data

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return "<goipc.View nbytes=%d%s>" % (self.nbytes, " released" if self._released else "")


class Reservation(_RingSpan):
    """Room reserved in the ring for one outgoing message (see
    :meth:`Conn.reserve`). ``data`` is a writable memoryview of ``nbytes``
    bytes; :meth:`commit` sends, :meth:`abort` drops."""

    _what = "reservation"
    _end_fn = "goipc_abort_reserve"

    def __init__(self, conn: Conn, ptr: Optional[int], n: int) -> None:
        super().__init__(conn, ptr, n, readonly=False)

    def commit(self, n: Optional[int] = None) -> None:
        """Publishes the first ``n`` bytes (default: all) as one message.

        Raises:
            ValueError: n above the reserved size (still reserved).
            BufferError: slices of the memoryview are still alive (still
                reserved).
            ClosedError: the connection was closed meanwhile (nothing sent).
        """
        if self._released:
            raise ValueError("goipc: this reservation was already committed or aborted")
        if n is None:
            n = self.nbytes
        if not 0 <= n <= self.nbytes:
            raise ValueError("goipc: commit(%d) outside the reserved %d bytes" % (n, self.nbytes))
        self._finish("goipc_commit", n)

    def abort(self) -> None:
        """Drops the reservation without sending anything (harmless if it
        already ended)."""
        if not self._released:
            self._finish("goipc_abort_reserve")

    def __enter__(self) -> memoryview:
        return self.data

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def __repr__(self) -> str:
        return "<goipc.Reservation nbytes=%d%s>" % (self.nbytes, " ended" if self._released else "")
