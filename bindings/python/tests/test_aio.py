"""goipc.aio: connections in an asyncio loop. Many connections in one
loop, cancellation without loss in both directions, timeouts, a peer
killed with SIGKILL and a close from another task waking every waiter,
waits in both directions at once, and an asyncio consumer serving Go and
C producers.

Each test runs its coroutine with asyncio.run under a generous overall
bound (HANG), so a lost wakeup fails the test instead of stalling it."""

from __future__ import annotations

import asyncio
import os
import random
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import List, Tuple

import pytest

import goipc
import goipc.aio
from goipc import messages

from conftest import REPO, child_env, goipc_bin

HANG = 60.0  # seconds; reached only when something is stuck
# Rings for tests with many connections: segments are allocated in full.
SMALL = {"ring_size": 16384, "max_message_size": 1024}


def run(coro) -> object:
    """asyncio.run under the HANG bound; on uvloop's loop when
    GOIPC_TEST_UVLOOP=1 (uvloop is not a test dependency: install it to
    check goipc.aio against it)."""

    async def bounded():
        return await asyncio.wait_for(coro, HANG)

    if os.environ.get("GOIPC_TEST_UVLOOP") == "1":
        import uvloop  # type: ignore[import-not-found]

        loop = uvloop.new_event_loop()
        try:
            return loop.run_until_complete(bounded())
        finally:
            loop.close()
    return asyncio.run(bounded())


async def aio_pair(path: str, **dial_opts) -> Tuple[goipc.aio.AsyncListener, goipc.aio.AsyncConn, goipc.aio.AsyncConn]:
    """An asyncio listener at path and both ends of one connection, all
    in this loop: (listener, dialer's end, accepted end)."""
    ln = goipc.aio.listen(path)
    acc = asyncio.ensure_future(ln.accept())
    c = await goipc.aio.dial(path, timeout=20, **dial_opts)
    return ln, c, await acc


def test_basic_calls_against_go_pong(go_pong):
    async def main():
        async with await goipc.aio.dial(go_pong.path, timeout=20) as c:
            assert c.fileno() >= 0 and c.max_message_size == 1 << 20
            for i in range(300):
                m = i.to_bytes(4, "little") * (1 + i % 40)
                await c.send(m)
                assert await c.recv() == m
            buf = bytearray(256)
            await c.send(bytearray(b"into"))
            assert await c.recv_into(buf) == 4 and buf[:4] == b"into"
            await c.send(memoryview(b"0123456789")[2:5])
            with pytest.raises(goipc.BufferTooSmallError) as ei:
                await c.recv_into(bytearray(2))
            assert ei.value.needed == 3
            assert await c.recv() == b"234"  # still queued
            for seq in range(100):
                await c.send_ping(seq, b"p" * seq)
                assert await c.recv_pong() == goipc.Pong(seq, b"p" * seq)
            big = os.urandom(300_000)  # larger than the scratch buffer
            await c.send(big)
            assert await c.recv() == big
        assert c.closed
        with pytest.raises(goipc.ClosedError):
            await c.recv()

    run(main())


def test_many_connections_in_one_loop(go_pong):
    """200 connections to one Go consumer, 100 round trips each, all at
    once in one loop; every reply checked. (Small rings: a segment is
    allocated in full, 8 MiB per connection by default.)"""

    async def client(k: int) -> int:
        async with await goipc.aio.dial(go_pong.path, timeout=30, **SMALL) as c:
            for i in range(100):
                m = b"%d:%d:" % (k, i) + bytes(k % 64)
                await c.send(m)
                assert await c.recv() == m
        return k

    async def main():
        got = await asyncio.gather(*(client(k) for k in range(200)))
        assert got == list(range(200))

    run(main())


def test_many_connections_cancelled_at_random_lose_and_mix_up_nothing(go_pong):
    """40 connections to one Go consumer in one loop, with a receive parked
    on a 41st (so that receives and calls take their pass of the loop),
    each cancelling about a third of
    its receives and calls right after they start (often during that
    pass). A cancelled receive takes nothing: the next one gets the
    message, in order. A cancelled call's reply is dropped: every call
    that completes gets its own request back."""

    def _ours(t: "asyncio.Task") -> None:
        """Re-raises a CancelledError that cancels this client (the test's
        own bound) rather than the task t it cancelled."""
        me = asyncio.current_task()
        if not t.cancelled() or (me is not None and getattr(me, "cancelling", lambda: 0)()):
            raise

    async def client(k: int) -> Tuple[int, int, int]:
        rng = random.Random(k)
        cancelled_calls = 0
        async with await goipc.aio.dial(go_pong.path, timeout=30, **SMALL) as c:
            for i in range(150):
                m = b"%d:%d" % (k, i)
                await c.send(m)
                while True:
                    t = asyncio.ensure_future(c.recv())
                    if rng.random() < 0.35:
                        await asyncio.sleep(0)
                        t.cancel()
                    try:
                        got = await t
                    except asyncio.CancelledError:
                        _ours(t)
                        continue  # nothing was taken: the next receive gets it
                    assert got == m
                    break
                if goipc.has_calls():
                    req = b"call %d:%d" % (k, i)
                    t = asyncio.ensure_future(c.call(req))
                    if rng.random() < 0.35:
                        await asyncio.sleep(0)
                        t.cancel()
                    try:
                        assert await t == req
                    except asyncio.CancelledError:
                        _ours(t)
                        cancelled_calls += 1
            await c.send(b"last")
            assert await c.recv() == b"last"  # nothing stale was left queued
            assert c.conn.dropped_replies <= cancelled_calls
            passed = c._shared.passed
        return k, cancelled_calls, passed

    async def main():
        # A receive parked for the whole test (Go's pong sends nothing
        # unasked): every receive right after a send, and every call,
        # then starts with a pass of the loop, which the cancels hit.
        async with await goipc.aio.dial(go_pong.path, timeout=30, spin=0, **SMALL) as idle:
            parked = asyncio.ensure_future(idle.recv())
            for _ in range(1000):
                if idle._shared.parked:
                    break
                await asyncio.sleep(0)
            assert idle._shared.parked == 1
            got = await asyncio.gather(*(client(k) for k in range(40)))
            parked.cancel()
        assert [k for k, _, _ in got] == list(range(40))
        assert max(p for _, _, p in got) > 0, "no wait ended after a pass of the loop"
        if goipc.has_calls():
            assert sum(n for _, n, _ in got) > 0

    run(main())


def test_recv_cancelled_loses_nothing(sockdir):
    """A consumer whose recv() is cancelled at random moments (timeouts of
    0 to 300 us) receives every message exactly once, in order."""
    n = 3000

    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "rc.sock"))
        rng = random.Random(1)
        received = [0]

        async def producer():
            for i in range(n):
                await c.send(i.to_bytes(4, "little"))
                if rng.random() < 0.3:
                    await asyncio.sleep(0)
                if rng.random() < 0.02:
                    # Let the consumer catch up, then pause longer than any
                    # of its timeouts: it waits on an empty ring and is
                    # cancelled (it lags behind otherwise, and might never
                    # have to wait at all).
                    while received[0] <= i:
                        await asyncio.sleep(0)
                    await asyncio.sleep(0.001)

        async def consumer():
            expect, timeouts = 0, 0
            while expect < n:
                try:
                    m = await asyncio.wait_for(s.recv(), rng.random() * 300e-6)
                except asyncio.TimeoutError:
                    timeouts += 1
                    continue
                assert int.from_bytes(m, "little") == expect
                expect += 1
                received[0] = expect
            return timeouts

        _, timeouts = await asyncio.gather(producer(), consumer())
        assert timeouts > 0, "no receive was cancelled: the test tested nothing"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(s.recv(), 0.01)  # nothing left over
        c.close()
        s.close()
        ln.close()

    run(main())


def test_send_cancelled_sends_all_or_nothing(sockdir):
    """A producer on a small ring whose send() is cancelled at random
    moments resends the same message after each cancellation: the
    consumer sees every message exactly once, in order (a cancelled send
    sent nothing; a finished one is never cancelled afterwards)."""
    n = 2000

    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "sc.sock"), ring_size=4096, max_message_size=1024)
        rng = random.Random(2)

        async def producer():
            timeouts = 0
            for i in range(n):
                msg = i.to_bytes(4, "little") * 100  # 400 bytes: ten fill the ring
                while True:
                    try:
                        await asyncio.wait_for(c.send(msg), rng.random() * 300e-6)
                        break
                    except asyncio.TimeoutError:
                        timeouts += 1
            return timeouts

        async def consumer():
            for i in range(n):
                m = await s.recv()
                assert m == i.to_bytes(4, "little") * 100, (i, m[:4])
                if i % 100 == 50:
                    # Longer than any send's timeout (even rounded up to
                    # uvloop's millisecond timers): a send waiting on the
                    # full ring meanwhile is cancelled. The loop's sweeper
                    # wakes a waiting send within microseconds, so the
                    # short pauses alone may cancel none.
                    await asyncio.sleep(0.003)
                elif rng.random() < 0.1:
                    await asyncio.sleep(0.0002)

        timeouts, _ = await asyncio.gather(producer(), consumer())
        assert timeouts > 0, "no send was cancelled: the test tested nothing"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(s.recv(), 0.01)
        c.close()
        s.close()
        ln.close()

    run(main())


def test_timeouts_leave_the_connection_usable(go_pong):
    async def main():
        async with await goipc.aio.dial(go_pong.path, timeout=20) as c:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.recv(), 0.05)
            assert loop.time() - t0 >= 0.05
            if hasattr(asyncio, "timeout"):  # Python 3.11+
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await c.recv_pong()
            await c.send(b"after")
            assert await c.recv() == b"after"

    run(main())


def test_waits_in_both_directions_at_once(sockdir):
    """Full duplex on one connection with a small ring: one task sends
    while another receives, both waiting often, against a peer that echoes
    with pauses. Every message arrives in order (a wakeup consumed by the
    other direction's call is recovered)."""
    n = 3000

    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "fd.sock"), ring_size=4096, max_message_size=512)
        rng = random.Random(3)

        async def echo():
            for _ in range(n):
                m = await s.recv()
                await s.send(m)
                if rng.random() < 0.05:
                    await asyncio.sleep(0.0005)

        async def sender():
            for i in range(n):
                await c.send(i.to_bytes(4, "little") * 50)

        async def receiver():
            for i in range(n):
                assert await c.recv() == i.to_bytes(4, "little") * 50

        await asyncio.gather(echo(), sender(), receiver())
        for x in (c, s, ln):
            x.close()

    run(main())


async def _fill(c: goipc.aio.AsyncConn, size: int) -> int:
    """Sends size-byte messages until the ring is full; returns how many."""
    n = 0
    while True:
        try:
            await asyncio.wait_for(c.send(bytes(size)), 0.05)
        except asyncio.TimeoutError:
            return n
        n += 1


def _step_until_parked(coro):
    """Runs coro synchronously up to its first suspension on a future (its
    first library call, then parking, with spin=0), without yielding to
    the loop (a pass of the loop it asks for, a bare yield, is skipped);
    returns the coroutine, or (True, value) if it finished."""
    try:
        while coro.send(None) is None:
            pass
    except StopIteration as e:
        return True, e.value
    return False, coro


def _readable(fd: int, timeout: float) -> bool:
    return select.select([fd], [], [], timeout)[0] == [fd]


async def _until_parked(c: goipc.aio.AsyncConn) -> None:
    """Lets the loop run until a receive of c (its head) is parked on a
    future."""
    for _ in range(1_000_000):
        if c._parked[goipc.aio._RECV] is not None:
            return
        await asyncio.sleep(0)
    raise AssertionError("no receive of the connection parked")


async def _until_armed(c: goipc.aio.AsyncConn) -> None:
    """Lets the loop run until its sweeper went idle and armed the listed
    waits (goipc.aio.SWEEP_IDLE after the last move): from then on they
    wait on the descriptor, which the tests below look at."""
    for _ in range(1_000_000):
        if not c._shared.sweeping:
            return
        await asyncio.sleep(0)
    raise AssertionError("the loop's sweeper never went idle")


_NOT_QUIET = "the descriptor is readable while nothing can succeed (docs/C_API.md, goipc_conn_fd)"


async def _becomes_quiet(fd: int, iterations: int = 100) -> bool:
    """Whether fd is quiet within a few loop iterations (which let the
    coroutines woken by an earlier readiness retry)."""
    for _ in range(iterations):
        if not _readable(fd, 0):
            return True
        await asyncio.sleep(0)
    return False


def test_a_failed_send_keeps_the_waiting_receive_s_wakeup(sockdir):
    """A receiver waits on a connection whose send ring is full. The peer
    sends a message (the descriptor becomes readable) and, before the loop
    looks, a send finds the ring still full: its call resets the send
    direction's readiness only. The descriptor stays readable and the
    receiver gets the message (nothing else wakes it: no other call makes
    progress, no timer)."""

    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "x1.sock"), spin=0, ring_size=4096, max_message_size=1024)
        await _fill(c, 500)
        r = asyncio.ensure_future(c.recv())
        await asyncio.sleep(0)  # its call finds nothing; it parks
        await _until_armed(c)
        assert not r.done()
        assert not _readable(c.fileno(), 0), _NOT_QUIET
        await s.send(b"data")  # does not suspend: the ring has room
        assert _readable(c.fileno(), 10)
        done, probe = _step_until_parked(c.send(bytes(500)))  # nobody waits to send: it calls
        assert not done
        assert _readable(c.fileno(), 0), "a failed send swallowed the receive's wakeup"
        assert await asyncio.wait_for(r, 10) == b"data"
        probe.close()
        for x in (c, s, ln):
            x.close()

    run(main())


async def _sender_wakeup_pending(path: str, queued: bytes = b""):
    """A connection whose sender coroutine waits on a full ring, and the
    peer has just freed space (the sender's wakeup: the descriptor is
    readable). ``queued`` is sent to the waiting side first. Returns
    (listener, waiting side, peer, sender task)."""
    ln, c, s = await aio_pair(path, spin=0, ring_size=4096, max_message_size=1024)
    if queued:
        await s.send(queued)
    await _fill(c, 500)
    w = asyncio.ensure_future(c.send(b"last"))
    await asyncio.sleep(0)
    await _until_armed(c)
    assert not w.done()
    assert not _readable(c.fileno(), 0), _NOT_QUIET
    await s.recv()  # frees space: the sender's wakeup
    assert _readable(c.fileno(), 10)
    return ln, c, s, w


def test_a_receive_that_takes_a_message_keeps_the_waiting_send_s_wakeup(sockdir):
    """A sender waits on a full ring; the peer frees space (readable), and
    before the loop looks a receive takes a message that was already
    queued: a call that succeeds leaves the readiness alone, so the sender
    is woken by the descriptor."""

    async def main():
        ln, c, s, w = await _sender_wakeup_pending(os.path.join(sockdir, "x2.sock"), b"queued")
        done, got = _step_until_parked(c.recv())
        assert done and got == b"queued"
        assert _readable(c.fileno(), 0), "a receive swallowed the send's wakeup"
        await asyncio.wait_for(w, 10)
        for x in (c, s, ln):
            x.close()

    run(main())


def test_a_cancelled_receive_keeps_the_waiting_send_s_wakeup(sockdir):
    """A sender waits on a full ring; the peer frees space (readable), and
    before the loop looks a receive finds nothing (resetting the receive
    direction's readiness), waits, and is cancelled. The sender is woken
    by the descriptor."""

    async def main():
        ln, c, s, w = await _sender_wakeup_pending(os.path.join(sockdir, "x3.sock"))
        done, probe = _step_until_parked(c.recv())
        assert not done
        assert _readable(c.fileno(), 0), "a failed receive swallowed the send's wakeup"
        probe.close()  # cancelled while waiting
        await asyncio.wait_for(w, 10)
        for x in (c, s, ln):
            x.close()

    run(main())


def test_a_send_behind_a_waiting_send_keeps_its_wakeup(sockdir):
    """Two sends in one direction: a small one waits on a full ring; the
    peer frees room for it but not for a large one, which is called before
    the loop looks. Had the large send called the library, its failed call
    would have reset the send direction's readiness, meant for the small
    one, and nothing would have woken the small one again. It queues
    behind the small one instead, and both go out, in call order."""

    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "x4.sock"), spin=0, ring_size=4096, max_message_size=1024)
        filled = await _fill(c, 500)  # 512-byte frames: no byte of the ring left
        small = asyncio.ensure_future(c.send(b"small"))
        await asyncio.sleep(0)
        assert not small.done()
        assert not _readable(c.fileno(), 0), _NOT_QUIET
        await s.recv()  # frees one 512-byte frame: room for "small", not for 1000 bytes
        assert _readable(c.fileno(), 10)
        large = c.send(bytes(1000))
        turn = large.send(None)  # runs it up to its first suspension, before the loop looks
        assert _readable(c.fileno(), 0), "the queued send reset the waiting send's readiness"
        await asyncio.wait_for(small, 10)
        large_task = asyncio.ensure_future(_drive(large, turn))
        got = [await asyncio.wait_for(s.recv(), 10) for _ in range(filled)]
        assert got == [bytes(500)] * (filled - 1) + [b"small"]
        await asyncio.wait_for(large_task, 10)
        assert await asyncio.wait_for(s.recv(), 10) == bytes(1000)
        for x in (c, s, ln):
            x.close()

    run(main())


async def _drive(coro, fut):
    """Runs to its end, by hand, a coroutine that was run by hand up to a
    suspension on fut."""
    while True:
        fut._asyncio_future_blocking = False  # what a Task does with a yielded future
        await fut
        try:
            fut = coro.send(None)
        except StopIteration as e:
            return e.value


def test_waiters_of_one_direction_are_served_in_call_order(sockdir):
    """Five sends wait on a full ring and three receives on an empty one:
    the sends go out, and the receives get messages, in the order of their
    calls."""

    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "fifo.sock"), spin=0, ring_size=4096, max_message_size=1024)
        filled = await _fill(c, 500)
        sends = [asyncio.ensure_future(c.send(b"%d" % i)) for i in range(5)]
        recvs = [asyncio.ensure_future(c.recv()) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(t.done() for t in sends + recvs)
        got = [await asyncio.wait_for(s.recv(), 10) for _ in range(filled + 5)]
        assert got[filled:] == [b"%d" % i for i in range(5)]
        await asyncio.wait_for(asyncio.gather(*sends), 10)
        for i in range(3):
            await s.send(b"r%d" % i)
        assert await asyncio.wait_for(asyncio.gather(*recvs), 10) == [b"r0", b"r1", b"r2"]
        for x in (c, s, ln):
            x.close()

    run(main())


def test_the_descriptor_is_quiet_while_a_receive_waits(sockdir):
    """A receive waits on an idle connection, after a send that waited
    for ring space and then went out: the descriptor stays quiet, so the
    loop sleeps (a descriptor left readable by the send direction, which
    nobody waits for any more, would wake the loop on every iteration)."""

    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "q.sock"), spin=0, ring_size=4096, max_message_size=1024)
        r = asyncio.ensure_future(c.recv())
        await asyncio.sleep(0)
        assert not r.done()
        assert not _readable(c.fileno(), 0.05), _NOT_QUIET
        filled = await _fill(c, 500)
        w = asyncio.ensure_future(c.send(b"last"))
        await asyncio.sleep(0)
        assert not w.done()
        await s.recv()  # room for w: the send direction's wakeup
        await asyncio.wait_for(w, 10)
        # The send's wakeup may still wake the receive once (it retries,
        # finds nothing, and that call resets the descriptor).
        assert await _becomes_quiet(c.fileno()), _NOT_QUIET
        assert not r.done()
        for _ in range(filled):
            await s.recv()
        await s.send(b"at last")
        assert await asyncio.wait_for(r, 10) == b"at last"
        for x in (c, s, ln):
            x.close()

    run(main())


def test_a_busy_loop_sweeps_instead_of_arming(sockdir):
    """While the loop is busy, a parked receive is listed on the loop's
    sweeper, un-armed: the peer's message wakes it through a sweep, and
    its descriptor never becomes readable (no doorbell was rung). Once
    the loop is idle for SWEEP_IDLE, the wait is armed and the next
    message comes through the descriptor."""
    goipc.aio._lib.load()
    if not goipc.aio._lib.state.has_sweeper:
        pytest.skip("the library has no sweeper")

    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "sw.sock"), spin=0)
        assert c._shared.sweeper is not None and c._token != 0
        r = asyncio.ensure_future(c.recv())
        await asyncio.sleep(0)  # it parks; the loop sweeps
        assert not r.done() and c._shared.sweeping
        assert not _readable(c.fileno(), 0)
        await s.send(b"swept")
        assert not _readable(c.fileno(), 0), "an un-armed wait made the peer ring"
        assert await asyncio.wait_for(r, 10) == b"swept"

        r = asyncio.ensure_future(c.recv())
        await asyncio.sleep(0)
        await _until_armed(c)
        assert not r.done()
        await s.send(b"armed")
        assert _readable(c.fileno(), 10), "an armed wait: the message must ring the descriptor"
        assert await asyncio.wait_for(r, 10) == b"armed"
        for x in (c, s, ln):
            x.close()

    run(main())


def test_swept_waits_end_on_close_and_peer_close(sockdir):
    """Waiters listed on the sweeper (not armed) get ClosedError when
    their connection is closed and PeerClosedError when the peer closes;
    the sweeper drops the closed connection."""

    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "swc.sock"), spin=0)
        ln2, c2, s2 = await aio_pair(os.path.join(sockdir, "swc2.sock"), spin=0)
        waits = [asyncio.ensure_future(x.recv()) for x in (c, c, c2)]
        await asyncio.sleep(0)
        assert c._shared.sweeping
        c.close()
        s2.close()
        res = await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 10)
        assert [type(e) for e in res] == [goipc.ClosedError, goipc.ClosedError, goipc.PeerClosedError], res
        assert c._token not in c._shared.conns
        for x in (s, c2, ln, ln2):
            x.close()

    run(main())


def test_a_failed_sweep_falls_back_to_the_descriptor(sockdir):
    """If a sweep fails (here: the sweeper was freed behind the loop's
    back), the error goes to the loop's exception handler, the loop stops
    sweeping, and waits end through the descriptor as without a sweeper."""
    lib = goipc.aio._lib.load()
    if not goipc.aio._lib.state.has_sweeper:
        pytest.skip("the library has no sweeper")

    async def main():
        loop = asyncio.get_running_loop()
        errors = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx.get("exception")))
        ln, c, s = await aio_pair(os.path.join(sockdir, "swf.sock"), spin=0)
        shared = c._shared
        assert lib.goipc_sweeper_free(shared.sweeper) == 0
        r = asyncio.ensure_future(c.recv())
        await asyncio.sleep(0)  # it parks; the sweep fails
        await asyncio.sleep(0)
        assert shared.sweeper is None and not r.done()
        await s.send(b"after")
        assert await asyncio.wait_for(r, 10) == b"after"
        assert len(errors) == 1 and isinstance(errors[0], goipc.ClosedError), errors
        for x in (c, s, ln):
            x.close()

    run(main())


async def _with_a_parked_waiter(sockdir: str, name: str):
    """Two connections in this loop: a receive parked on the first (so the
    loop has another waiter), and the second, the one under test. Returns
    (closers, parked receive, dialer's end, accepted end)."""
    ln1, c1, s1 = await aio_pair(os.path.join(sockdir, name + "1.sock"), spin=0)
    ln2, c, s = await aio_pair(os.path.join(sockdir, name + "2.sock"), spin=0)
    parked = asyncio.ensure_future(c1.recv())
    await asyncio.sleep(0)
    assert not parked.done() and c._shared.parked == 1
    return (c1, s1, ln1, c, s, ln2), parked, c, s


class _CountingLooks:
    """goipc._speedups with one of its functions (``name``: recv or
    call_end) counted into looks: AsyncConn.recv and call make those
    library calls themselves, without Conn's _try_ methods."""

    def __init__(self, sx, name: str, looks: list) -> None:
        self._sx, self._name, self._looks = sx, name, looks

    def __getattr__(self, name):
        f = getattr(self._sx, name)
        if name != self._name:
            return f

        def counted(*args):
            self._looks.append(args)
            return f(*args)

        return counted


def _count_looks(c: goipc.aio.AsyncConn, attempt: str) -> list:
    """Wraps the one-attempt method attempt of c's Conn (and, for
    _try_recv_msg and _try_call_end, the same call c makes itself through
    goipc._speedups): the list returned gets an entry per call."""
    looks: list = []
    conn = c.conn
    inner = getattr(conn, attempt)

    def counted(*args):
        looks.append(args)
        return inner(*args)

    setattr(conn, attempt, counted)
    made_here = {"_try_recv_msg": "recv", "_try_call_end": "call_end"}.get(attempt)
    if made_here and c._sx is not None:
        c._sx = _CountingLooks(c._sx, made_here, looks)
    return looks


def _answer(s: goipc.aio.AsyncConn, reply: bytes) -> bytes:
    """The peer takes the next request and answers it at once, with the
    blocking calls of its Conn (the loop waits meanwhile)."""
    got = s.conn.recv(timeout=10)
    s.conn.send(reply, timeout=10)
    return got


def test_a_receive_after_a_send_looks_after_a_pass_of_the_loop(sockdir):
    """While another waiter of the loop is parked, a receive right after a
    send lets a pass of the loop go by before it looks (the answer cannot
    be there yet: no library call that finds nothing, no future), and
    gets the answer; a receive that did not follow a send looks at once."""

    async def main():
        closers, parked, c, s = await _with_a_parked_waiter(sockdir, "pass")
        shared = c._shared
        looks = _count_looks(c, "_try_recv_msg")
        await c.send(b"ping")
        r = c.recv()
        assert r.send(None) is None, "the receive did not ask for a pass of the loop"
        assert shared.passing == 1 and looks == [], "the receive looked before the pass"
        assert _answer(s, b"pong") == b"ping"
        passed = shared.passed
        with pytest.raises(StopIteration) as stop:
            r.send(None)
        assert stop.value.value == b"pong" and len(looks) == 1
        assert shared.passed == passed + 1 and shared.passing == 0

        await s.send(b"unasked")
        done, got = _step_until_parked(c.recv())
        assert done and got == b"unasked" and len(looks) == 2 and shared.passed == passed + 1
        parked.cancel()
        for x in closers:
            x.close()

    run(main())


def test_a_receive_whose_answer_is_late_parks_after_its_passes(sockdir):
    """While another waiter of the loop is parked, a receive whose answer
    has not come after its passes (the first one and goipc.aio._PASSES
    more) parks on a future, keeping the direction, and gets the answer
    when it comes."""

    async def main():
        closers, parked, c, s = await _with_a_parked_waiter(sockdir, "passl")
        await c.send(b"ping")
        r = c.recv()
        passes, yielded = 0, r.send(None)
        while yielded is None:  # a pass of the loop
            passes += 1
            yielded = r.send(None)
        assert passes == 1 + goipc.aio._PASSES
        assert isinstance(yielded, asyncio.Future) and c._busy[goipc.aio._RECV]
        task = asyncio.ensure_future(_drive(r, yielded))
        assert _answer(s, b"late") == b"ping"
        assert await asyncio.wait_for(task, 10) == b"late"
        assert not c._busy[goipc.aio._RECV] and c._shared.passing == 0
        parked.cancel()
        for x in closers:
            x.close()

    run(main())


def test_receivers_behind_a_late_one_keep_their_order(sockdir):
    """A receive after a send whose answer comes late (it parks after its
    passes) and two receives queued behind it get the answers in the
    order they asked, one each."""

    async def main():
        closers, parked, c, s = await _with_a_parked_waiter(sockdir, "passlo")
        await c.send(b"q")
        first = asyncio.ensure_future(c.recv())
        await _until_parked(c)  # after its passes
        behind = [asyncio.ensure_future(c.recv()) for _ in range(2)]
        await asyncio.sleep(0)
        assert not first.done() and not any(b.done() for b in behind)
        s.conn.send(b"a1", timeout=10)
        assert await asyncio.wait_for(first, 10) == b"a1"
        await _until_parked(c)  # the next one, and only it, takes the turn and waits
        assert not any(b.done() for b in behind)
        for reply in (b"a2", b"a3"):
            s.conn.send(reply, timeout=10)
        got = await asyncio.wait_for(asyncio.gather(*behind), 10)
        assert got == [b"a2", b"a3"], got
        assert not c._busy[goipc.aio._RECV]
        parked.cancel()
        for x in closers:
            x.close()

    run(main())


def test_a_receive_cancelled_during_a_pass_takes_nothing(sockdir):
    """A receive cancelled while it lets a pass of the loop go by took no
    message (the next receive gets it) and leaves the direction free."""

    async def main():
        closers, parked, c, s = await _with_a_parked_waiter(sockdir, "passc")
        await c.send(b"ping")
        assert _answer(s, b"pong") == b"ping"  # the answer is there already
        r = c.recv()
        assert r.send(None) is None
        with pytest.raises(asyncio.CancelledError):
            r.throw(asyncio.CancelledError())
        assert c._shared.passing == 0 and not c._busy[goipc.aio._RECV]
        assert await asyncio.wait_for(c.recv(), 10) == b"pong"
        parked.cancel()
        for x in closers:
            x.close()

    run(main())


def test_a_receive_during_a_pass_ends_on_close(sockdir):
    """Closing the connection while a receive lets a pass go by: the
    receive raises ClosedError when it runs again."""

    async def main():
        closers, parked, c, s = await _with_a_parked_waiter(sockdir, "passx")
        await c.send(b"ping")
        r = c.recv()
        assert r.send(None) is None
        c.close()
        with pytest.raises(goipc.ClosedError):
            r.send(None)
        assert c._shared.passing == 0
        parked.cancel()
        for x in closers:
            x.close()

    run(main())


def test_a_call_waits_for_its_reply_after_a_pass_of_the_loop(sockdir):
    """While another waiter of the loop is parked, a call sends its
    request and lets a pass of the loop go by before it looks for the
    reply (no look that finds nothing), then gets its own reply."""

    async def main():
        closers, parked, c, s = await _with_a_parked_waiter(sockdir, "passcall")
        shared = c._shared
        looks = _count_looks(c, "_try_call_end")
        call = c.call(b"request")
        assert call.send(None) is None and looks == [], "the call looked before the pass"
        call_id, req = s.conn.recv_request(timeout=10)
        assert req == b"request"
        s.conn.reply(call_id, b"reply", timeout=10)
        passed = shared.passed
        with pytest.raises(StopIteration) as stop:
            call.send(None)
        assert stop.value.value == b"reply" and len(looks) == 1 and shared.passed == passed + 1
        parked.cancel()
        for x in closers:
            x.close()

    run(main())


def test_receivers_keep_their_order_across_a_pass(sockdir):
    """Two receives asked in turn after a send, the first letting a pass go
    by: the second queues behind it (it does not look meanwhile), and they
    get the answers in the order they asked."""

    async def main():
        closers, parked, c, s = await _with_a_parked_waiter(sockdir, "passo")
        await c.send(b"q1")
        await c.send(b"q2")
        first = c.recv()
        assert first.send(None) is None  # the head, letting a pass go by
        assert _answer(s, b"a1") == b"q1"
        assert _answer(s, b"a2") == b"q2"
        second = asyncio.ensure_future(c.recv())
        await asyncio.sleep(0)
        assert not second.done(), "the second receive looked while the first had the turn"
        with pytest.raises(StopIteration) as stop:
            first.send(None)
        assert stop.value.value == b"a1"
        assert await asyncio.wait_for(second, 10) == b"a2"
        parked.cancel()
        for x in closers:
            x.close()

    run(main())


def test_many_connections_are_swept(go_pong):
    """200 connections pinging goipc pong from one loop: every round trip
    completes, and the loop's passes and sweeps (not the descriptors) end
    a good part of the waits (a tenth is asserted)."""

    async def main():
        conns = await asyncio.gather(*(goipc.aio.dial(go_pong.path, timeout=20, **SMALL) for _ in range(200)))
        shared = conns[0]._shared
        assert shared.sweeper is not None
        swept, passed = shared.swept, shared.passed

        async def client(c, i):
            msg = i.to_bytes(4, "little") * 16
            for _ in range(50):
                await c.send(msg)
                assert await c.recv() == msg

        await asyncio.gather(*(client(c, i) for i, c in enumerate(conns)))
        swept, passed = shared.swept - swept, shared.passed - passed
        print("of 10000 waits, %d ended after a pass of the loop, %d by a sweep" % (passed, swept))
        assert passed + swept >= 1000, "of 10000 waits, %d ended after a pass of the loop, %d by a sweep" % (passed, swept)
        for c in conns:
            c.close()

    run(main())


PARKED_PEER = r"""
import sys, time, goipc
ln = goipc.listen(sys.argv[1])
c = ln.accept(timeout=30)
print("accepted", flush=True)
time.sleep(600)
"""


def test_peer_sigkill_wakes_every_waiter(sockdir):
    """Three receivers and a sender blocked on a full ring, all waiting on
    one connection, get PeerClosedError when the peer process is killed
    with SIGKILL."""
    path = os.path.join(sockdir, "kill.sock")
    proc = subprocess.Popen([sys.executable, "-c", PARKED_PEER, path], stdout=subprocess.PIPE, env=child_env())

    async def main():
        for _ in range(2000):  # the child creates the socket; no fixed sleep
            if os.path.exists(path):
                break
            await asyncio.sleep(0.01)
        c = await goipc.aio.dial(path, timeout=20, ring_size=4096, max_message_size=1024)
        assert proc.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
        assert line == b"accepted\n"
        while True:  # fill the ring: the peer never reads
            try:
                await asyncio.wait_for(c.send(bytes(500)), 0.05)
            except asyncio.TimeoutError:
                break
        waiters = [asyncio.ensure_future(c.recv()) for _ in range(3)]
        waiters.append(asyncio.ensure_future(c.send(bytes(500))))
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in waiters)
        proc.send_signal(signal.SIGKILL)
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, goipc.PeerClosedError) for r in results), results
        c.close()

    try:
        run(main())
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_close_from_another_task_wakes_every_waiter(sockdir):
    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "cl.sock"), ring_size=4096, max_message_size=1024)
        while True:
            try:
                await asyncio.wait_for(c.send(bytes(500)), 0.05)
            except asyncio.TimeoutError:
                break
        waiters = [asyncio.ensure_future(c.recv()) for _ in range(2)]
        waiters.append(asyncio.ensure_future(c.recv_into(bytearray(10))))
        waiters.append(asyncio.ensure_future(c.send(b"x")))
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in waiters)

        async def closer():
            c.close()

        await asyncio.ensure_future(closer())
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, goipc.ClosedError) for r in results), results
        # The peer sees the close after what was sent.
        got = 0
        async for _ in s:
            got += 1
        assert got > 0
        c.close()  # twice is harmless
        s.close()
        ln.close()

    run(main())


def test_async_for_ends_when_the_peer_closes(sockdir):
    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "it.sock"))
        for i in range(10):
            await c.send(b"%d" % i)
        c.close()
        assert [m async for m in s] == [b"%d" % i for i in range(10)]
        s.close()
        ln.close()

    run(main())


def test_listener_close_wakes_accept_and_limits(sockdir):
    path = os.path.join(sockdir, "al.sock")

    async def main():
        async with goipc.aio.listen(path, max_conns=1) as ln:
            pending = asyncio.ensure_future(ln.accept())
            c1 = await goipc.aio.dial(path, timeout=20)
            s1 = await pending
            with pytest.raises(goipc.LimitError):
                await goipc.aio.dial(path, timeout=20)
            with pytest.raises(goipc.LimitError):
                await ln.accept()  # the refused client, reported once
            await c1.send(b"ok")
            assert await s1.recv() == b"ok"
            waiting = asyncio.ensure_future(ln.accept())
            await asyncio.sleep(0.01)
            ln.close()
            with pytest.raises(goipc.ClosedError):
                await waiting
            c1.close()
            s1.close()

    run(main())


def test_dial_cancelled_and_bad_options(sockdir):
    """A dial cancelled while its handshake runs closes the connection the
    handshake makes (the listener's end sees the peer gone); the dial
    thread exits once idle; bad options fail before dialing."""

    async def main():
        path = os.path.join(sockdir, "dc.sock")
        async with goipc.aio.listen(path) as ln:
            for _ in range(10):
                d = asyncio.ensure_future(goipc.aio.dial(path, timeout=20))
                await asyncio.sleep(0)  # the dial is handed to the dial thread
                d.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await d
                try:
                    s = await asyncio.wait_for(ln.accept(), 2)
                except asyncio.TimeoutError:
                    continue  # cancelled before the thread started it: try again
                with pytest.raises(goipc.PeerClosedError):
                    await asyncio.wait_for(s.recv(), 20)
                s.close()
                break
            else:
                pytest.fail("every dial was cancelled before it started")
        for _ in range(200):  # the dial thread exits once idle for _DialThread.IDLE
            if not any(t.name == "goipc-aio-dial" for t in threading.enumerate()):
                break
            await asyncio.sleep(0.05)
        assert not any(t.name == "goipc-aio-dial" for t in threading.enumerate())
        with pytest.raises(goipc.SystemCallError):
            await goipc.aio.dial(os.path.join(sockdir, "nobody.sock"), timeout=5)
        with pytest.raises(ValueError):
            await goipc.aio.dial(os.path.join(sockdir, "x.sock"), spin=float("inf"))
        with pytest.raises(ValueError):
            goipc.aio.listen(os.path.join(sockdir, "y.sock"), max_conns=0)

    run(main())


def _c_ping() -> str:
    exe = os.environ.get("GOIPC_C_BIN") or str(REPO / "build" / "c")
    p = Path(exe) / "ping"
    if not p.is_file():
        pytest.fail("the C ping example %s is missing: run `make build`" % p)
    return str(p)


async def _serve(conn: goipc.aio.AsyncConn, served: List[int]) -> None:
    """An asyncio consumer: answers a Ping with a Pong, echoes anything
    else, until the producer closes."""
    async with conn:
        async for m in conn:
            if messages.is_ping(m):
                p = messages.parse_ping(m)
                await conn.send_pong(p.seq, p.sent_ns, p.payload)
            else:
                await conn.send(m)
            served[0] += 1


def test_e2e_go_and_c_producers_asyncio_consumer(sockdir):
    """One asyncio consumer serves Go (`goipc ping`, Ping/Pong and raw) and
    C (`build/c/ping`, raw and --typed) producers at once; each producer
    checks every answer and exits 0."""
    path = os.path.join(sockdir, "cons.sock")
    n = "2000"
    producers = [
        [goipc_bin(), "ping", "--dial", path, "-n", n, "--warmup", "0"],
        [goipc_bin(), "ping", "--dial", path, "-n", n, "--warmup", "0", "--raw", "--size", "100"],
        [_c_ping(), "--dial", path, "-n", n, "--warmup", "0"],
        [_c_ping(), "--dial", path, "-n", n, "--warmup", "0", "--typed", "--size", "32"],
    ]

    async def main():
        served = [0]
        tasks = []
        async with goipc.aio.listen(path) as ln:

            async def acceptor():
                while True:
                    tasks.append(asyncio.ensure_future(_serve(await ln.accept(), served)))

            acc = asyncio.ensure_future(acceptor())
            procs = [
                await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for cmd in producers
            ]
            outs = [await p.communicate() for p in procs]
            acc.cancel()
        for cmd, p, (out, err) in zip(producers, procs, outs):
            assert p.returncode == 0, (cmd, out, err)
        await asyncio.gather(*tasks)
        assert served[0] == 4 * int(n)

    run(main())


def test_thread_count_stays_small(go_pong):
    """500 connections in one fresh process: the threads are the Go
    runtime's (about 5), the loop's and the one dial thread, not one per
    connection (measured 7-8; the issue's goal is 8, the bound leaves the
    Go runtime room for an extra thread or two under load)."""
    code = r"""
import asyncio, os, sys, goipc.aio
async def main(path):
    conns = await asyncio.gather(*(goipc.aio.dial(path, timeout=30, ring_size=16384, max_message_size=1024) for _ in range(500)))
    async def rt(c, k):
        for i in range(20):
            await c.send(b"%d" % k)
            assert await c.recv() == b"%d" % k
    await asyncio.gather(*(rt(c, k) for k, c in enumerate(conns)))
    print(len(os.listdir("/proc/self/task")))
    for c in conns:
        c.close()
asyncio.run(main(sys.argv[1]))
"""
    r = subprocess.run([sys.executable, "-c", code, go_pong.path], capture_output=True, timeout=120, env=child_env())
    assert r.returncode == 0, r.stderr
    threads = int(r.stdout)
    assert threads <= 10, "%d threads for 500 connections" % threads


def test_aio_fast_calls_pass_declared_types(monkeypatch, sockdir):
    """The single attempts of goipc.aio use the argtypes-free fast
    functions too (see test_library.test_fast_calls_pass_declared_types):
    every argument must already have the declared C type."""
    from goipc import _lib

    from test_library import _checking

    lib = _lib.load()
    checked = {n: _checking(n, getattr(lib, n)) for n in _lib.state.fast}
    monkeypatch.setattr(_lib.state, "fast", checked)
    # The ctypes fast paths: goipc._speedups, when built, takes them over.
    monkeypatch.setattr(_lib.state, "speedups", None)

    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "fast.sock"))  # binds the checked functions
        await c.send(b"abc")
        assert await s.recv() == b"abc"
        await c.send(bytearray(b"defg"))
        buf = bytearray(16)
        assert await s.recv_into(buf) == 4 and buf[:4] == b"defg"
        waiting = asyncio.ensure_future(s.recv_into(buf))  # a wait: retries go through the same calls
        await asyncio.sleep(0)
        await c.send(memoryview(b"xyz"))
        assert await waiting == 3
        if goipc.has_typed_messages():
            await c.send_ping(5, b"p")
            p = await s.recv_ping()
            await s.send_pong(p.seq, p.sent_ns, p.payload)
            assert await c.recv_pong() == goipc.Pong(5, b"p")
        if goipc.has_calls():
            # A bytearray request: the ctypes call start, with or without
            # goipc._speedups; the peer answers with its blocking Conn.
            call = asyncio.ensure_future(c.call(bytearray(b"req")))
            await asyncio.sleep(0)
            cid, req = s.conn.recv_request(timeout=10)
            s.conn.reply(cid, req[::-1])
            assert await call == b"qer"
        for x in (c, s, ln):
            x.close()

    run(main())
    used = {n for f in checked.values() for n in f.calls}
    assert {"goipc_send", "goipc_recv"} <= used
    if _lib.state.has_call_start:
        assert "goipc_call_start" in used
    if goipc.has_typed_messages():
        assert {"goipc_send_ping", "goipc_recv_pong"} <= used
