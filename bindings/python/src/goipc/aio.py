"""goipc for asyncio: connections that wait in the event loop, not in a thread.

::

    import asyncio, goipc.aio

    async def main():
        async with await goipc.aio.dial("/tmp/pong.sock") as conn:
            await conn.send(b"hello")
            print(await conn.recv())

    asyncio.run(main())

    async def serve(path):
        async with goipc.aio.listen(path) as ln:
            while True:
                conn = await ln.accept()
                asyncio.ensure_future(echo(conn))

    async def echo(conn):
        async with conn:
            async for msg in conn:          # until the peer closes
                await conn.send(msg)

Standard library only; works with any asyncio loop that implements
``add_reader`` (the default selector loop, uvloop).

How a call waits
----------------
Every send or receive first makes one library call with timeout 0 (unless
other coroutines already wait in its direction: see below). When the
message is there (or the ring has room) that call is the whole
operation: the coroutine does not suspend. Otherwise, when the loop has
no other waiter, the coroutine polls for a short, adaptive budget
(``spin``, see :func:`dial`), and then parks on a future.

When other waiters of the loop are parked or passing (many connections
in one loop), polling would hold them up; instead the coroutine lets a
pass of the loop go by (a bare yield: the loop runs everything else that
is ready, then this coroutine again) and looks again, a few times at
most (two passes, three for a receive right after a send), before it
parks. A receive that comes right after a send on its
connection (a request, then its answer) and a call's wait for its reply
do not even look first: the answer cannot be there yet, so they start
with the pass. By the end of a pass over many connections the peer has
usually answered, so the wait costs no future, no sweep and no library
call that finds nothing (docs/PYTHON.md has the numbers). Nothing runs on
another thread, and an idle connection costs no CPU.

With goipc._speedups, ``send``, ``recv`` and ``call`` are the
extension's: they return an awaitable (an ``AioOp``, registered as a
``collections.abc.Coroutine``, so ``create_task``, ``gather`` and
``wait_for`` take it) that makes the common cases above in C when it is
awaited (the send's one call; the receive's pass and its one look; the
call's start, pass and look) and runs this module's coroutines
(``_send_co``, ``_recv_co``, ``_call_co``, ``_send_after``,
``_recv_after_pass``, ``_call_general``, ``_call_after_look``) for
everything else. Among 1000 connections the coroutines ran at 66-77%
of the rate of a program making the same library calls inline; the
extension's methods run at that program's rate (docs/PYTHON.md,
"Sixteenth session").

Parked waiters are woken in two ways. Every connection of a loop is
attached to the loop's sweeper (``goipc_conn_set_sweeper``): a call that
finds nothing lists its direction there without arming anything, so the
peer rings no doorbell for it. While waiters are parked, the loop sweeps
once per iteration (one library call that loads each listed position
word; no system call) and wakes the waiters whose peer published or
freed space, or whose connection ended. When ``SWEEP_IDLE`` (50 us)
passes without a sweep finding anything, the loop arms every listed wait
and stops sweeping: from then on the waits end through the connection's
descriptor (:meth:`goipc.Conn.fileno`, an eventfd, watched with
``loop.add_reader``), as they do with a library without a sweeper. A
busy loop thus waits on its connections without a system call per
message on either side, and an idle one sleeps in its selector.

Cancellation and timeouts: a waiting coroutine sits in ``await future``
between library calls, never inside one, so cancelling it
(``asyncio.timeout``, ``wait_for``, ``task.cancel()``) loses nothing: a
cancelled ``recv`` took no message (the next ``recv`` returns it), a
cancelled ``send`` sent nothing (or, if it finished first, all of it).

Closing the connection (:meth:`AsyncConn.close`, from any coroutine of the
loop) wakes every coroutine waiting on it with :class:`goipc.ClosedError`;
the peer closing or dying wakes them with :class:`goipc.PeerClosedError`
(after every message the peer sent has been received). Errors are the
exception classes of the blocking API.

One descriptor serves both directions; the library keeps its readiness
per direction, so a call in one direction never swallows the other's
wakeup. Within a direction the coroutines queue: the first one that must
wait (the head) polls and parks on the descriptor, the others wait their
turn behind it without calling the library (a call that finds nothing
resets the direction's readiness, which the head relies on), and each
head hands the direction to the next when it is done: sent or received,
failed, or cancelled. So messages sent by several coroutines go out in
the order of their calls, and receivers get messages in the order they
asked. Calls (:meth:`AsyncConn.call`) send their request the same way;
each waits for its own reply, so those do not queue: they all look again
when the descriptor is readable and when any call ends (see
``_wait_reply``).

Accepting: handshakes complete in the background, in Go; the listener's
descriptor (:meth:`goipc.Listener.fileno`, an eventfd) is readable exactly
while a finished one is queued (or the listener is closed).
:meth:`AsyncListener.accept` takes a queued client with one library call
(timeout 0) and otherwise parks on a future woken by ``loop.add_reader``
on that descriptor: an idle listener costs no wakeups, and a client is
accepted as soon as its handshake completes. Cancelling a waiting accept
loses no client (it took none; the next accept gets it).

Dialing: the handshake waits for the listener's reply (about a
millisecond) inside one library call, so :func:`dial` runs the blocking
:func:`goipc.dial` on a thread of this module (one, started by the first
dial and shared by all loops: dials queue there, each a few milliseconds;
it exits after a second without dials), not on the loop's default
executor (up to 32 threads, which stay), so that a program dialing many
connections keeps its thread count low.

An :class:`AsyncConn` belongs to the loop it was made in and must be used
from that loop's thread only (as any asyncio object).
"""

from __future__ import annotations

import asyncio
import collections
import collections.abc
import concurrent.futures
import math
import queue
import threading
import time
import types
import weakref
from ctypes import byref, c_size_t, c_uint64
from typing import Any, AsyncIterator, Deque, Iterable, List, Optional

from . import _lib
from . import conn as _conn_module
from . import errors as _errors
from . import messages
from .conn import (
    _KIND_PING,
    _KIND_PONG,
    _KIND_RAW,
    _PENDING,
    Conn,
    Listener,
    PathArg,
    _BatchToSend,
    _check_i64,
    _check_max_count,
    _check_seq,
    _recv_call_args,
    _send_arg,
    _send_call_args,
)
from .conn import dial as _blocking_dial
from .conn import listen as _blocking_listen
from .messages import Ping, Pong

__all__ = ["AsyncConn", "AsyncListener", "dial", "listen", "DEFAULT_SPIN", "SWEEP_IDLE"]

#: The default polling budget of a waiting call, in seconds, before it
#: parks on the event loop (adaptive per connection and direction: it
#: halves after a poll that found nothing, down to 1/16, and doubles back
#: after one that succeeded).
DEFAULT_SPIN = 20e-6


#: How long the loop's sweeps go on finding nothing before the waits are
#: armed (their descriptors then wake the loop). The Go ring poller's
#: idle is the same 50 us, 1 ms while words move at least every 10 us
#: (docs/PERFORMANCE.md section 16); with many connections the loop rarely
#: goes idle, and 500 us measured the same (section 15).
SWEEP_IDLE = 50e-6

#: Tokens one sweep reports at most (the others wait for the next sweep).
_SWEEP_BATCH = 1024


class _LoopShared:
    """What the AsyncConns of one event loop share: how many of their
    waiters (heads and callers) are parked, and the loop's sweeper.

    Every AsyncConn is attached to the sweeper (goipc_conn_set_sweeper)
    under a token of its own, so a call that finds nothing lists its
    direction on the sweeper, un-armed, instead of arming the descriptor.
    While waiters are parked, the loop sweeps once per iteration
    (_sweep, scheduled with call_soon): the sweep reports the connections
    whose peer moved, and their waiters look again. After SWEEP_IDLE with
    nothing moving (or when no waiter is left), _sweep arms every listed
    wait and stops: from then on the waits end through the descriptors
    (add_reader), at no CPU cost, until a waiter parks again. Only the
    loop's thread touches it."""

    __slots__ = (
        "loop",
        "parked",
        "sweeper",
        "conns",
        "next_token",
        "sweeping",
        "last_move",
        "tokens",
        "count",
        "count_ref",
        "cap",
        "sweep_fn",
        "swept",
        "passing",
        "passed",
        "__weakref__",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.parked = 0
        # Waiters letting a pass of the loop go by (_pass_and_look, recv).
        self.passing = 0
        # The sweeper's handle (None: the library has none, waits arm as
        # without one) and the AsyncConns attached to it, by token.
        self.sweeper: Optional[c_uint64] = None
        self.conns: "dict[int, weakref.ref[AsyncConn]]" = {}
        self.next_token = 1
        self.sweeping = False  # a _sweep is scheduled
        self.last_move = 0.0
        self.tokens = (c_uint64 * _SWEEP_BATCH)()
        self.count = c_size_t()
        self.count_ref = byref(self.count)
        self.cap = c_size_t(_SWEEP_BATCH)
        self.sweep_fn: Any = None
        # Waits ended by a sweep, and by a look after a pass of the loop
        # (for tests and diagnostics).
        self.swept = 0
        self.passed = 0

    def _start(self) -> bool:
        """Creates the sweeper on first use; False if the library has none."""
        if self.sweeper is not None:
            return True
        lib = _lib.state.lib
        if lib is None or not _lib.state.has_sweeper:
            return False
        h = c_uint64()
        st = lib.goipc_sweeper_new(byref(h))
        if st:
            raise _lib.last_error(st)
        self.sweeper = h
        self.sweep_fn = _lib.state.fast["goipc_sweeper_sweep"]
        # Freed with the loop's shared state: connections still attached
        # then arm their descriptors again, as without a sweeper.
        weakref.finalize(self, lib.goipc_sweeper_free, h.value)
        return True

    def attach(self, ac: "AsyncConn") -> None:
        """Attaches ac's connection to the loop's sweeper, if there is one."""
        if not self._start():
            return
        token = self.next_token
        self.next_token += 1
        st = _lib.state.lib.goipc_conn_set_sweeper(ac._conn._h, self.sweeper, token)  # type: ignore[union-attr]
        if st:
            raise _lib.last_error(st)
        self.conns[token] = weakref.ref(ac)
        ac._token = token

    def detach(self, ac: "AsyncConn") -> None:
        self.conns.pop(ac._token, None)

    def want_sweep(self) -> None:
        """A waiter parks after a call that found nothing (listed on the
        sweeper): make sure the loop sweeps."""
        if not self.sweeping and self.sweeper is not None:
            self.sweeping = True
            self.last_move = _monotonic()
            self.loop.call_soon(self._sweep)

    def _sweep(self) -> None:
        st = self.sweep_fn(self.sweeper, self.tokens, self.cap, self.count_ref)
        if st:
            self._give_up()
            raise _lib.last_error(st)
        n = self.count.value
        if n:
            self.last_move = _monotonic()
            self.swept += n
            self._wake(n)
        elif not self.parked or _monotonic() - self.last_move >= SWEEP_IDLE:
            self.sweeping = False
            self.arm()
            return
        self.loop.call_soon(self._sweep)

    def arm(self) -> None:
        """Hands every listed wait to its descriptor (the loop goes idle)
        and wakes those that may already succeed."""
        st = _lib.state.lib.goipc_sweeper_arm(self.sweeper, self.tokens, self.cap, self.count_ref)  # type: ignore[union-attr]
        if st:
            self._give_up()
            raise _lib.last_error(st)
        self._wake(self.count.value)

    def _give_up(self) -> None:
        """A sweep or arm failed (the error goes to the loop's exception
        handler): the loop stops sweeping for good, its connections are
        detached (their failed calls arm their descriptors again, as
        without a sweeper), and every waiter looks again, so that none
        stays parked on a sweep that will not come."""
        self.sweeping = False
        self.sweeper = None
        lib = _lib.state.lib
        for ref in list(self.conns.values()):
            ac = ref()
            if ac is None:
                continue
            if not ac._closed and lib is not None:
                lib.goipc_conn_set_sweeper(ac._conn._h, 0, 0)
            ac._swept(1)
            ac._swept(0)

    def _wake(self, n: int) -> None:
        conns = self.conns
        for tok in self.tokens[:n]:
            ref = conns.get(tok >> 1)
            ac = ref() if ref is not None else None
            if ac is not None:
                ac._swept(tok & 1)


_loop_shared: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopShared]" = weakref.WeakKeyDictionary()


def _shared_for(loop: asyncio.AbstractEventLoop) -> _LoopShared:
    sh = _loop_shared.get(loop)
    if sh is None:
        sh = _loop_shared[loop] = _LoopShared(loop)
    return sh

_RECV, _SEND = 0, 1
_OK, _TIMEOUT, _BUFFER_TOO_SMALL = _errors.OK, _errors.ERR_TIMEOUT, _errors.ERR_BUFFER_TOO_SMALL
_CALL = 2  # a call's wait for its reply (_pass_and_look)
_monotonic = time.perf_counter
_U64_MAX = (1 << 64) - 1

#: How many passes of the loop a waiter lets go by, looking after each,
#: before it parks, while other waiters of the loop are parked or passing
#: (a receive right after a send makes one more first, in recv).
_PASSES = 2


@types.coroutine
def _one_pass() -> Any:
    """Awaited, lets the loop run everything else that is ready once (a
    bare yield: the task is scheduled again at once, with no future)."""
    yield


def _spin_budget(spin: Optional[float]) -> float:
    """The polling budget in seconds for the ``spin`` option."""
    if spin is None:
        return DEFAULT_SPIN
    if isinstance(spin, bool) or not isinstance(spin, (int, float)):
        raise TypeError("goipc: spin must be None or a number of seconds, not %s" % type(spin).__name__)
    if spin != spin or spin < 0 or spin == math.inf:
        raise ValueError(
            "goipc: spin for goipc.aio must be None, 0 or a finite number of seconds >= 0 "
            "(polling forever would block the event loop), not %r" % (spin,)
        )
    return float(spin)


class AsyncConn:
    """A goipc connection for asyncio. Create it with :func:`dial` or
    :meth:`AsyncListener.accept`, or wrap a blocking :class:`goipc.Conn`
    with ``AsyncConn(conn)`` inside a running loop (the AsyncConn then owns
    it: do not use the Conn directly any more).

    Use it as an async context manager or call :meth:`close`. Any number
    of coroutines may send and receive at once; messages are whole, as
    with the blocking API.
    """

    __slots__ = (
        "_conn",
        "_loop",
        "_fd",
        "_parked",
        "_queued",
        "_busy",
        "_callers",
        "_reading",
        "_closed",
        "_spin",
        "_budget",
        "_shared",
        "_token",
        "_sent",
        "_sx",
        "_h",
        "__weakref__",
    )

    def __init__(self, conn: Conn, *, spin: Optional[float] = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._spin = _spin_budget(spin)
        self._conn = conn
        # send's and recv's one library call, made here (goipc._speedups;
        # None without it: then through Conn's _try_ methods).
        self._sx = conn._sx
        self._h = conn.handle
        self._fd = conn.fileno()
        # Per direction: whether a coroutine waits in it (the head), the
        # future it is parked on while it waits on the descriptor, and the
        # turns of the coroutines queued behind it (first in, first out).
        self._busy = [False, False]
        self._parked: List[Optional["asyncio.Future[None]"]] = [None, None]
        self._queued: List[Deque["asyncio.Future[None]"]] = [collections.deque(), collections.deque()]
        # Calls waiting for their replies: each for its own, so no queue.
        self._callers: List["asyncio.Future[bool]"] = []
        self._reading = False  # add_reader registered
        self._closed = False
        # Current polling budget per direction (adapts within [spin/16, spin]).
        self._budget = [self._spin, self._spin]
        self._token = 0
        # Sent since the last receive started (_answer_pending).
        self._sent = False
        self._shared = _shared_for(self._loop)
        self._shared.attach(self)
        if self._sx is not None and not _speedups_installed:
            _install_speedups(self._sx)

    # -- properties --

    @property
    def conn(self) -> Conn:
        """The underlying blocking connection (for its properties; calling
        its blocking methods would stall the loop)."""
        return self._conn

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def max_message_size(self) -> int:
        """The largest message, in bytes, this connection carries."""
        return self._conn.max_message_size

    def fileno(self) -> int:
        """The connection's descriptor (:meth:`goipc.Conn.fileno`); this
        object already watches it."""
        return self._fd

    # -- waiting --

    def _on_readable(self) -> None:
        # The reader stays registered while heads park again and again
        # (a request/response loop would otherwise pay an epoll_ctl to add
        # it and one to remove it per message). Readable with nobody
        # parked (a wakeup already acted on: calls that succeed leave the
        # readiness alone), it would call us on every loop iteration until
        # a call finds nothing: unregister then; the next head to park
        # registers it again.
        woke = self._wake_heads()
        if self._callers:
            self._wake_callers(False)
            woke = True
        if not woke:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _wake_heads(self, directions: Any = (_RECV, _SEND), hop: bool = False) -> bool:
        """Wakes the heads parked on the descriptor in those directions;
        hop: woken after another's call found nothing (see _wait)."""
        woke = False
        for d in directions:
            fut = self._parked[d]
            if fut is not None:
                self._parked[d] = None
                woke = True
                if not fut.done():
                    fut.set_result(hop)
        return woke

    def _swept(self, recv: int) -> None:
        """The loop's sweep reported this connection's receive (recv, a
        GOIPC_SWEEP_RECV token) or send direction: its waiters look again."""
        if recv:
            self._wake_heads((_RECV,))
            if self._callers:
                self._wake_callers(False)
        else:
            self._wake_heads((_SEND,))

    def _wake_callers(self, hop: bool) -> None:
        callers, self._callers = self._callers, []
        for fut in callers:
            if not fut.done():
                fut.set_result(hop)

    def _wake_all(self) -> None:
        """Wakes every waiting coroutine (close)."""
        self._wake_heads()
        self._wake_callers(False)
        for queued in self._queued:
            for fut in queued:
                if not fut.done():
                    fut.set_result(None)
            queued.clear()

    def _pass_turn(self, d: int) -> None:
        """The head of direction d is done: the next queued coroutine
        becomes the head (and makes its call at once), or nobody waits."""
        queued = self._queued[d]
        while queued:
            fut = queued.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._busy[d] = False

    async def _wait_turn(self, d: int) -> None:
        """Queues behind the coroutines waiting in direction d until this
        one is the head."""
        if self._closed:
            raise _errors.make_error(_errors.ERR_CLOSED, "goipc: the connection was closed")
        turn = self._loop.create_future()
        self._queued[d].append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                # Handed the turn, then cancelled before running: pass it on.
                self._pass_turn(d)
            else:
                try:
                    self._queued[d].remove(turn)
                except ValueError:
                    pass
            raise
        if self._closed:
            raise _errors.make_error(_errors.ERR_CLOSED, "goipc: the connection was closed")

    def _watch(self) -> None:
        if not self._reading:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _answer_pending(self) -> bool:
        """Whether a receive should not look before it waits: this
        connection sent since its last receive (so the answer, if the
        peer answers, cannot be there yet) and the loop has other waiters
        to run (parked or passing) while the peer answers."""
        if not self._sent:
            return False
        self._sent = False
        sh = self._shared
        return bool(sh.parked or sh.passing)

    def _poll(self, d: int, attempt: Any, *args: Any) -> Any:
        """Calls attempt for the direction's polling budget: its result,
        or None if nothing came (the budget adapts)."""
        budget = self._budget[d]
        if budget <= 0 or self._shared.parked or self._shared.passing:
            # Other waiters of the loop are parked or passing: the loop
            # has their work to run, and polling this one would hold them
            # up (1000 connections in one loop spent a tenth of their
            # time here).
            return None
        t_end = _monotonic() + budget
        while True:
            r = attempt(*args)
            if r is not None:
                self._budget[d] = min(budget * 2, self._spin)
                return r
            if _monotonic() >= t_end:
                self._budget[d] = max(budget / 2, self._spin / 16)
                return None

    async def _pass_and_look(self, d: int, attempt: Any, args: Any) -> Any:
        """Looks (attempt) after each of _PASSES passes of the loop: its
        result, or None if nothing came. With many connections in one
        loop, a pass runs the others' waiters and the peer has answered
        by its end: no future, no sweep, and no library call that finds
        nothing (1000 connections: nearly twice the round trips of parking at
        once, docs/PYTHON.md)."""
        shared = self._shared
        for _ in range(_PASSES):
            shared.passing += 1
            try:
                await _one_pass()
            finally:
                shared.passing -= 1
            if self._closed:
                raise _errors.make_error(_errors.ERR_CLOSED, "goipc: the connection was closed")
            r = attempt(*args)
            if r is not None:
                shared.passed += 1
                return r
            # A look that found nothing reset the readiness that others
            # of this connection wait for (see _wait_reply): they look too.
            if d == _RECV:
                if self._callers:
                    self._wake_callers(True)
            elif d == _CALL and self._parked[_RECV] is not None:
                self._wake_heads((_RECV,), True)
        return None

    async def _wait(self, d: int, attempt: Any, *args: Any, head: bool = False) -> Any:
        """The slow path. ``attempt(*args)`` is one non-waiting library
        call returning None for "not now". Called either after the
        caller's own first attempt found nothing, or without one when the
        answer to what this connection just sent cannot be there yet
        (nobody waited in d: this coroutine becomes the head), or, when
        coroutines already wait in d, without any attempt: it queues
        behind them first. The head looks again after each of _PASSES
        passes of the loop when other waiters of the loop are parked or
        passing, else polls for the direction's budget; then it parks
        until the sweep or the descriptor says to look again."""
        if head:
            looked = True  # the caller took the direction (recv's first pass)
        elif self._busy[d]:
            await self._wait_turn(d)
            looked = False
        else:
            self._busy[d] = True
            looked = True
        try:
            if not looked:
                # The head before us may have taken what its wakeup
                # announced, or left more: look before waiting.
                r = attempt(*args)
                if r is not None:
                    return r
            shared = self._shared
            if shared.parked or shared.passing:
                r = await self._pass_and_look(d, attempt, args)
            else:
                r = self._poll(d, attempt, *args)
            if r is not None:
                return r
            hop = False
            parked = self._parked
            while True:
                if d == _RECV and self._callers and not hop:
                    # A receive that found nothing reset the readiness
                    # that calls waiting for replies share with it: they
                    # look once more (see _wait_reply).
                    self._wake_callers(True)
                # Park until the sweep, the descriptor, a call's end or
                # another's failed call (then hop) says to look again
                # (inline: a coroutine per wait costs about 0.4 us, measured
                # here by creating and running one to its end).
                if self._closed:
                    raise _errors.make_error(_errors.ERR_CLOSED, "goipc: the connection was closed")
                fut = self._loop.create_future()
                parked[d] = fut
                if not self._reading:
                    self._watch()
                shared.parked += 1
                if not shared.sweeping:
                    shared.want_sweep()
                try:
                    hop = bool(await fut)
                finally:
                    shared.parked -= 1
                    if parked[d] is fut:
                        parked[d] = None
                r = attempt(*args)
                if r is not None:
                    return r
        finally:
            self._pass_turn(d)

    async def _wait_reply(self, attempt: Any, *args: Any) -> Any:
        """A call's wait for its own reply, after a look that found it not
        there (or without one, when other waiters of the loop are parked
        or passing: then it lets passes of the loop go by first). Calls
        waiting for replies share the receive direction's readiness with
        each other and with receives, and a call that finds
        nothing resets it: a reply routed to another waiting call, or a
        message for a waiting receive, can lose its wakeup that way. So
        every waiting call looks again when the descriptor is readable and
        when any call of the connection ends; a call that finds nothing
        makes the receive head look once more, and a receive that finds
        nothing makes the waiting calls look once more (those woken that
        way do not pass it on: no endless ping-pong)."""
        shared = self._shared
        if shared.parked or shared.passing:
            r = await self._pass_and_look(_CALL, attempt, args)
        else:
            r = self._poll(_RECV, attempt, *args)
        if r is not None:
            return r
        hop = False
        while True:
            if not hop and self._parked[_RECV] is not None:
                self._wake_heads((_RECV,), True)
            if self._closed:
                raise _errors.make_error(_errors.ERR_CLOSED, "goipc: the connection was closed")
            fut: "asyncio.Future[bool]" = self._loop.create_future()
            self._callers.append(fut)
            self._watch()
            shared = self._shared
            shared.parked += 1
            shared.want_sweep()
            try:
                hop = bool(await fut)
            finally:
                shared.parked -= 1
                try:
                    self._callers.remove(fut)
                except ValueError:
                    pass
            r = attempt(*args)
            if r is not None:
                return r

    def _call_ended(self) -> None:
        """A call ended: its slot is free (the library does not signal that
        on the descriptor, and a call start may be waiting for a slot), and
        its calls that found nothing may have reset readiness that others
        wait for: everyone parked looks again."""
        self._wake_heads()
        if self._callers:
            self._wake_callers(False)

    # -- sending --

    async def send(self, data: Any) -> None:
        """Sends ``data`` (any bytes-like object) as one message, waiting
        in the loop while the peer's ring is full. Cancelled while waiting:
        nothing was sent.

        Raises: as :meth:`goipc.Conn.send`.
        """
        # With goipc._speedups this method is replaced by the extension's
        # (_install_speedups), which runs the common case in C and this
        # coroutine (as _send_co) for the rest.
        if data.__class__ is bytes and not self._busy[_SEND]:
            sx = self._sx
            if sx is not None and not _conn_module._forked:
                st = sx.send(self._h, data, 0)
                if st != _OK:
                    await self._send_after(st, data)
                    return
                self._sent = True
                return
        ptr, n = _send_call_args(data)
        if self._busy[_SEND] or self._conn._try_send(ptr, n) is None:
            await self._wait(_SEND, self._conn._try_send, ptr, n)
        self._sent = True

    async def _send_after(self, st: int, data: bytes) -> None:
        """send after its first attempt through goipc._speedups returned
        status st (not OK): the error raised, or the wait while the ring
        is full (that attempt was the first)."""
        if st != _TIMEOUT:
            raise _lib.last_error(st)
        ptr, n = _send_call_args(data)
        await self._wait(_SEND, self._conn._try_send, ptr, n)
        self._sent = True

    async def send_ping(self, seq: int, payload: Any = b"") -> None:
        """Sends a Message/Ping (as :meth:`goipc.Conn.send_ping`)."""
        if type(seq) is not int or not 0 <= seq <= _U64_MAX:
            _check_seq(seq)
        if not _lib.state.has_typed:
            await self.send(messages.build_ping(seq, payload))
            return
        ptr, n = _send_call_args(payload)
        seq_c = c_uint64(seq)
        if self._busy[_SEND] or self._conn._try_send_ping(seq_c, ptr, n) is None:
            await self._wait(_SEND, self._conn._try_send_ping, seq_c, ptr, n)
        self._sent = True

    async def send_pong(self, seq: int, ping_sent_ns: int, payload: Any = b"", received_ns: int = 0) -> None:
        """Sends a Message/Pong (as :meth:`goipc.Conn.send_pong`)."""
        _check_seq(seq)
        _check_i64("ping_sent_ns", ping_sent_ns)
        _check_i64("received_ns", received_ns)
        if not _lib.state.has_typed:
            await self.send(messages.build_pong(seq, payload, ping_sent_ns, received_ns or None))
            return
        ptr, n = _send_arg(payload)
        if self._busy[_SEND] or self._conn._try_send_pong(seq, ping_sent_ns, received_ns, ptr, n) is None:
            await self._wait(_SEND, self._conn._try_send_pong, seq, ping_sent_ns, received_ns, ptr, n)
        self._sent = True

    async def send_batch(self, messages: Iterable[Any]) -> int:
        """Sends ``messages`` (an iterable of bytes-like objects) in order,
        each as one message, one library call per attempt, waiting in the
        loop while the peer's ring is full (as
        :meth:`goipc.Conn.send_batch`). Returns how many were sent: all.
        Cancelled while waiting: the first ones may have been sent (a
        batch larger than the free space goes out in parts).

        Raises: as :meth:`goipc.Conn.send_batch` (exceptions have
        ``.sent``).
        """
        f = self._conn._batch_function("goipc_send_batch")
        b = _BatchToSend(messages)
        r = None if self._busy[_SEND] else self._conn._try_send_batch(b, f)
        if r is None:
            r = await self._wait(_SEND, self._conn._try_send_batch, b, f)
        self._sent = True
        return r

    # -- receiving --

    async def recv_batch(self, max_count: int = 64) -> List[bytes]:
        """The next message and those already there behind it, up to
        ``max_count``, as a list (as :meth:`goipc.Conn.recv_batch`).
        Cancelled while waiting: no message was taken."""
        _check_max_count(max_count)
        f = self._conn._batch_function("goipc_recv_batch")
        r = None if self._busy[_RECV] or self._answer_pending() else self._conn._try_recv_batch(max_count, f)
        return r if r is not None else await self._wait(_RECV, self._conn._try_recv_batch, max_count, f)

    async def _recv_kind(self, kind: int) -> Any:
        if self._busy[_RECV] or self._answer_pending():
            return await self._wait(_RECV, self._conn._try_recv_msg, kind)
        m = self._conn._try_recv_msg(kind)
        if m is None:
            return await self._wait(_RECV, self._conn._try_recv_msg, kind)
        return m

    async def recv(self) -> bytes:
        """Receives the next message (a copy). Cancelled while waiting: no
        message was taken.

        Raises: as :meth:`goipc.Conn.recv`; PeerClosedError once the peer
        is gone and everything it sent was received.
        """
        # _recv_kind's body, without its coroutine, _answer_pending inline.
        busy = self._busy
        if not busy[_RECV]:
            if self._sent:
                self._sent = False
                sh = self._shared
                if sh.parked or sh.passing:
                    # _wait's head and its first pass, inline: with many
                    # connections the common case, without a coroutine for
                    # the wait, and (with goipc._speedups) with the look's
                    # library call made here.
                    busy[_RECV] = True
                    sh.passing += 1
                    try:
                        await _one_pass()
                    except BaseException:
                        sh.passing -= 1
                        self._pass_turn(_RECV)
                        raise
                    sh.passing -= 1
                    sx = self._sx
                    if sx is None or self._closed or _conn_module._forked:
                        return await self._recv_after_pass(None)
                    try:
                        m = sx.recv(self._h, 0)
                    except BaseException:
                        self._pass_turn(_RECV)
                        raise
                    if m.__class__ is not bytes:
                        return await self._recv_after_pass(m)
                    sh.passed += 1
                    if self._queued[_RECV]:
                        self._pass_turn(_RECV)
                    else:
                        busy[_RECV] = False
                    return m
            m = self._conn._try_recv_msg(_KIND_RAW)
            if m is not None:
                return m
        return await self._wait(_RECV, self._conn._try_recv_msg, _KIND_RAW)

    async def _recv_after_pass(self, st: Optional[int]) -> bytes:
        """recv after its pass, holding the direction, when the look did
        not return a message: st is the status goipc._speedups's look
        returned, or None when it did not look (no extension, closed,
        forked). The error raised, else the wait as the head."""
        try:
            if self._closed:
                raise _errors.make_error(_errors.ERR_CLOSED, "goipc: the connection was closed")
            if st is None:
                m = self._conn._try_recv_msg(_KIND_RAW)
            else:
                m = self._conn._recv_status(st)
            if m is None and self._callers:
                self._wake_callers(True)
        except BaseException:
            self._pass_turn(_RECV)
            raise
        if m is None:
            return await self._wait(_RECV, self._conn._try_recv_msg, _KIND_RAW, head=True)
        self._shared.passed += 1
        self._pass_turn(_RECV)
        return m

    async def recv_into(self, buffer: Any) -> int:
        """Receives the next message into ``buffer`` (a writable bytes-like
        object) and returns its size; as :meth:`goipc.Conn.recv_into`
        (BufferTooSmallError keeps the message queued)."""
        if type(buffer) is bytearray and buffer and self._sx is not None:
            attempt: Any = self._conn._try_recv_into_buffer  # goipc._speedups
            args: tuple = (buffer,)
        else:
            ptr, cap = _recv_call_args(buffer)
            ln = c_size_t()
            attempt, args = self._conn._try_recv_into, (ptr, cap, ln, byref(ln))
        if self._busy[_RECV] or self._answer_pending():
            return await self._wait(_RECV, attempt, *args)
        r = attempt(*args)
        if r is None:
            return await self._wait(_RECV, attempt, *args)
        return r

    async def recv_pong(self) -> Pong:
        """Receives the next message, which must be a Message/Pong (as
        :meth:`goipc.Conn.recv_pong`)."""
        if not _lib.state.has_typed:
            return _parse(messages.parse_pong, await self.recv(), "Pong")
        return await self._recv_kind(_KIND_PONG)

    async def recv_ping(self) -> Ping:
        """Receives the next message, which must be a Message/Ping (as
        :meth:`goipc.Conn.recv_ping`)."""
        if not _lib.state.has_typed:
            return _parse(messages.parse_ping, await self.recv(), "Ping")
        return await self._recv_kind(_KIND_PING)

    # -- calls --

    async def call(self, data: Any) -> bytes:
        """Sends ``data`` as a call request and returns the peer's reply
        (as :meth:`goipc.Conn.call`), waiting in the loop: for a call slot
        and ring space, then for the reply. Any number of coroutines (and
        threads) may call at once on one connection; each gets its own
        reply. Cancelled while waiting: the request was not sent, or the
        call is cancelled and its reply, if it comes, dropped.

        Raises: as :meth:`goipc.Conn.call`.
        """
        # With goipc._speedups this method is replaced by the extension's
        # (_install_speedups), which runs the start, the pass and the look
        # in C and this coroutine (as _call_co) or _call_general for the rest.
        tried_start = False  # the extension's start found no call slot or ring space
        sx = self._sx
        if sx is not None and data.__class__ is bytes and not self._busy[_SEND]:
            sh = self._shared
            if (sh.parked or sh.passing) and self._conn._x_call_start is not None and not _conn_module._forked:
                # Many connections in the loop, goipc._speedups: the start,
                # a pass of the loop and the look made here, without the
                # call state, the helper coroutine and the methods of the
                # general path below (which the rest of the wait, if the
                # reply is late, goes on in).
                r = sx.call_start(self._h, data, 0)
                if r > 0:
                    return await self._call_after_start(sx, sh, r)
                if r != -_TIMEOUT:
                    raise _lib.last_error(-r)
                # No free call slot, or the ring is full: the general
                # path's wait, this having been its first attempt.
                tried_start = True
        return await self._call_general(data, tried_start)

    async def _call_general(self, data: Any, tried_start: bool) -> bytes:
        """call's general path; tried_start: a start through
        goipc._speedups found no call slot or ring space (that was the
        first attempt of the wait)."""
        conn = self._conn
        cs = conn._call_state(data)
        try:
            # The request goes out as a send does (queued behind waiting
            # sends); a start that waits for a free call slot is woken by
            # _call_ended.
            r = None if self._busy[_SEND] or tried_start else conn._try_call_start(cs)
            if r is None:
                r = await self._wait(_SEND, conn._try_call_start, cs)
            if r is not _PENDING:
                return r
            # With other waiters in the loop the reply cannot be there yet:
            # _wait_reply starts with a pass of the loop, no look first.
            sh = self._shared
            r = None if sh.parked or sh.passing else conn._try_call_end(cs)
            if r is None:
                r = await self._wait_reply(conn._try_call_end, cs)
            return r
        finally:
            conn._end_call(cs)
            self._call_ended()

    async def _call_after_start(self, sx: Any, sh: "_LoopShared", pending: int) -> bytes:
        """call() after goipc._speedups started call ``pending``: a pass of
        the loop, one look, then (reply not in yet, or larger than the
        extension's buffer) the general wait (_call_after_look). The call
        is cancelled on every way out while it is pending."""
        try:
            sh.passing += 1
            try:
                await _one_pass()
            finally:
                sh.passing -= 1
            st = None
            if not self._closed:
                m = sx.call_end(self._h, pending, 0)
                if m.__class__ is bytes:
                    sh.passed += 1
                    self._call_ended()
                    return m
                st = m[0]
        except BaseException:
            self._call_interrupted(pending)
            raise
        return await self._call_after_look(pending, st)

    def _call_interrupted(self, pending: int) -> None:
        """Call ``pending`` (started through goipc._speedups) ends without
        its reply: cancelled, so that its reply is dropped when it comes."""
        if pending and not _conn_module._forked:
            _lib.state.lib.goipc_call_cancel(self._h, pending)  # type: ignore[union-attr]
        self._call_ended()

    async def _call_after_look(self, pending: int, st: Optional[int]) -> bytes:
        """call() after its pass and its look (through goipc._speedups) did
        not return the reply: st is the look's status (TIMEOUT: not in
        yet; BUFFER_TOO_SMALL: kept by the library, larger than the
        extension's buffer; another: the call ended with that error), or
        None when the connection was closed during the pass."""
        try:
            if st is None:
                raise _errors.make_error(_errors.ERR_CLOSED, "goipc: the connection was closed")
            if st != _TIMEOUT and st != _BUFFER_TOO_SMALL:
                pending = 0  # any other status ends the call
                raise _lib.last_error(st)
            conn = self._conn
            cs = conn._pending_call_state(pending)
            pending = 0  # cs owns the call now: _end_call cancels it
            try:
                r = None
                if st == _BUFFER_TOO_SMALL:
                    r = conn._try_call_end(cs)  # kept: taken with a larger buffer
                elif self._parked[_RECV] is not None:
                    # The look that found nothing reset the readiness a
                    # parked receive waits for (as in _pass_and_look).
                    self._wake_heads((_RECV,), True)
                if r is None:
                    r = await self._wait_reply(conn._try_call_end, cs)
                return r
            finally:
                conn._end_call(cs)
        finally:
            if pending and not _conn_module._forked:
                _lib.state.lib.goipc_call_cancel(self._h, pending)  # type: ignore[union-attr]
            self._call_ended()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        """The next message; the iteration ends when the peer has closed
        (or died) and everything it sent was received."""
        try:
            return await self.recv()
        except _errors.PeerClosedError:
            raise StopAsyncIteration from None

    # -- closing --

    def close(self) -> None:
        """Closes the connection. Coroutines waiting on it raise
        ClosedError; the peer gets PeerClosedError once it has received
        what was sent. Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._shared.detach(self)
        if self._reading:
            # Before the library closes the descriptor.
            self._loop.remove_reader(self._fd)
            self._reading = False
        try:
            self._conn.close()
        finally:
            self._wake_all()

    async def __aenter__(self) -> "AsyncConn":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<goipc.aio.AsyncConn fd=%d %r>" % (self._fd, self._conn)


def _parse(parse: Any, data: bytes, what: str) -> Any:
    try:
        return parse(data)
    except _errors.InvalidMessageError as e:
        raise _errors.make_error(_errors.ERR_PROTOCOL, "goipc: not a valid %s: %s" % (what, e)) from None


# ---- dial --------------------------------------------------------------------

# The Python coroutines of send and recv, under the names goipc._speedups's
# replacements call for everything but their common case.
AsyncConn._send_co = AsyncConn.send  # type: ignore[attr-defined]
AsyncConn._recv_co = AsyncConn.recv  # type: ignore[attr-defined]
AsyncConn._call_co = AsyncConn.call  # type: ignore[attr-defined]
_speedups_installed = False


def _install_speedups(sx: Any) -> None:
    """Replaces AsyncConn.send, recv and call with goipc._speedups's: the same
    behaviour, the common case among many connections run in C without a
    coroutine (docs/PYTHON.md, "Sixteenth session"). Once per process,
    when the first AsyncConn is made with the extension loaded."""
    global _speedups_installed
    make = getattr(sx, "aio_methods", None)
    if make is None:
        return  # a stand-in (a test's proxy): the next connection tries again
    _speedups_installed = True
    send, recv, call, op_type = make(AsyncConn, _LoopShared, _conn_module)
    collections.abc.Coroutine.register(op_type)
    AsyncConn.send = send  # type: ignore[method-assign]
    AsyncConn.recv = recv  # type: ignore[method-assign]
    if _lib.state.has_call_start:
        AsyncConn.call = call  # type: ignore[method-assign]


class _DialThread:
    """The thread that runs blocking dials for every loop of the process:
    started by the first dial, it runs queued dials one after the other
    and exits after IDLE seconds without one (so a process that dialed
    once does not keep a thread for it). IDLE covers the gap between
    dials awaited one after another (the loop's turn around, well under a
    millisecond); a dial after a longer pause starts the thread again,
    which costs about 0.2 ms (a Python thread started and handed one job,
    measured here) next to the dial's own handshake."""

    IDLE = 0.1

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._running = False

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> "concurrent.futures.Future[Any]":
        fut: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        with self._lock:
            self._jobs.put((fut, fn, args, kwargs))
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="goipc-aio-dial", daemon=True).start()
        return fut

    def _run(self) -> None:
        while True:
            try:
                fut, fn, args, kwargs = self._jobs.get(timeout=self.IDLE)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._running = False
                        return
                continue
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
                fut.set_exception(e)


_dial_thread = _DialThread()


def _close_if_connected(fut: "concurrent.futures.Future[Conn]") -> None:
    if not fut.cancelled() and fut.exception() is None:
        fut.result().close()


async def dial(path: PathArg, timeout: Optional[float] = None, *, spin: Optional[float] = None, **options: Any) -> AsyncConn:
    """Connects to the listener at ``path`` and returns an
    :class:`AsyncConn`. The handshake runs in :func:`goipc.dial` on this
    module's dial thread; cancelling the coroutine closes the connection
    that handshake may still make.

    Args:
        timeout: bound on connect + handshake in seconds (as goipc.dial).
        spin: how long a waiting call polls (seconds) before it parks in
            the loop: None for :data:`DEFAULT_SPIN` (adaptive), 0 to park
            at once. Polling blocks the loop; it pays off when the peer
            answers within microseconds.
        **options: the keyword options of :func:`goipc.dial`
            (max_message_size, ring_size, handshake_timeout, ...).

    Raises: as :func:`goipc.dial`.
    """
    _spin_budget(spin)  # validate before dialing
    cf = _dial_thread.submit(_blocking_dial, path, timeout, **options)
    try:
        conn = await asyncio.wrap_future(cf)
    except asyncio.CancelledError:
        cf.add_done_callback(_close_if_connected)
        raise
    try:
        return AsyncConn(conn, spin=spin)
    except BaseException:
        conn.close()
        raise


# ---- listener ------------------------------------------------------------------


class AsyncListener:
    """A goipc listener for asyncio (:func:`listen`). ``await accept()``
    returns the next client's :class:`AsyncConn`. Closing it stops
    listening, wakes pending accepts with ClosedError and leaves accepted
    connections open. Close it through this object (not the underlying
    :class:`goipc.Listener`): it unregisters the descriptor first."""

    def __init__(self, listener: Listener, spin: Optional[float] = None) -> None:
        self._ln = listener
        self._spin = spin
        self._fd = listener.fileno()
        # Accepts parked until the descriptor is readable, and the loop
        # whose reader watches it (None: not registered).
        self._waiters: List["asyncio.Future[None]"] = []
        self._reader_loop: Optional[asyncio.AbstractEventLoop] = None

    @property
    def listener(self) -> Listener:
        """The underlying blocking listener."""
        return self._ln

    @property
    def path(self) -> str:
        """The socket path."""
        return self._ln.path

    @property
    def closed(self) -> bool:
        return self._ln.closed

    def fileno(self) -> int:
        """The listener's descriptor (:meth:`goipc.Listener.fileno`); this
        object already watches it while an accept waits. Raises
        ClosedError once the listener is closed, as the blocking one does."""
        return self._ln.fileno()

    async def accept(self) -> AsyncConn:
        """Waits for a client whose handshake has completed and returns its
        connection (see the module docstring for how it waits). Cancelled
        while waiting: no client was taken.

        Raises: as :meth:`goipc.Listener.accept` (a failed handshake with
        one client, such as LimitError or ProtocolError, leaves the
        listener usable); ClosedError once the listener is closed.
        """
        while True:
            if self._ln.closed:
                raise _errors.make_error(_errors.ERR_CLOSED, "goipc: the listener was closed")
            try:
                conn = self._ln.accept(timeout=0)
            except _errors.TimeoutError:
                pass
            else:
                # No await between taking the client and returning it: a
                # cancellation cannot drop it.
                try:
                    return AsyncConn(conn, spin=self._spin)
                except BaseException:
                    conn.close()
                    raise
            # That accept found the queue empty, so the descriptor is quiet
            # now and turns readable for the next client: no wakeup can
            # fall between the try and the wait.
            await self._readable()

    async def _readable(self) -> None:
        """Parks until the descriptor is readable (or close)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiters.append(fut)
        if self._reader_loop is None:
            loop.add_reader(self._fd, self._on_readable)
            self._reader_loop = loop
        try:
            await fut
        finally:
            try:
                self._waiters.remove(fut)
            except ValueError:
                pass
            if not self._waiters:
                self._unwatch()

    def _on_readable(self) -> None:
        # Every parked accept looks (those that find nothing park again).
        # The reader goes until one parks: readable with nobody waiting (a
        # client queued that nobody accepts yet), it would run on every
        # loop iteration.
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            _wake(fut)
        self._unwatch()

    def _unwatch(self) -> None:
        if self._reader_loop is not None:
            self._reader_loop.remove_reader(self._fd)
            self._reader_loop = None

    def close(self) -> None:
        """Stops listening and removes the socket file; pending accepts
        raise ClosedError. Closing twice is harmless."""
        self._unwatch()  # before the library closes the descriptor
        self._ln.close()
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            _wake(fut)

    async def __aenter__(self) -> "AsyncListener":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<goipc.aio.AsyncListener path=%r%s>" % (self.path, " closed" if self.closed else "")


def _wake(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


def listen(path: PathArg, *, spin: Optional[float] = None, **options: Any) -> AsyncListener:
    """Listens on ``path`` and returns an :class:`AsyncListener`.
    ``options`` are those of :func:`goipc.listen` (max_message_size,
    max_conns, ...); ``spin`` is the polling budget of the accepted
    connections (as for :func:`dial`). Listening does not wait, so this is
    a plain function.

    Raises: as :func:`goipc.listen`.
    """
    _spin_budget(spin)
    ln = _blocking_listen(path, **options)
    try:
        return AsyncListener(ln, spin)
    except BaseException:  # its descriptor could not be made
        ln.close()
        raise
