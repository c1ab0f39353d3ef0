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


def test_recv_cancelled_loses_nothing(sockdir):
    """A consumer whose recv() is cancelled at random moments (timeouts of
    0 to 300 us) receives every message exactly once, in order."""
    n = 3000

    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "rc.sock"))
        rng = random.Random(1)

        async def producer():
            for i in range(n):
                await c.send(i.to_bytes(4, "little"))
                if rng.random() < 0.3:
                    await asyncio.sleep(0)
                if rng.random() < 0.02:
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
                if rng.random() < 0.1:
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
    """Runs coro synchronously up to its first suspension (its first
    library call, then parking, with spin=0), without yielding to the
    loop; returns the coroutine, or (True, value) if it finished."""
    try:
        coro.send(None)
    except StopIteration as e:
        return True, e.value
    return False, coro


def _readable(fd: int, timeout: float) -> bool:
    return select.select([fd], [], [], timeout)[0] == [fd]


def _until_exercised(scenario, sockdir: str, name: str, tries: int = 10) -> None:
    """Runs scenario(path) until it reports that its probe really consumed
    the wakeup. The library's watcher makes the descriptor readable a
    moment before a call can reset it (it writes the eventfd, then marks
    it pending), so a probe made in that moment consumes nothing and the
    run proves nothing (its recovery assertions hold all the same)."""
    for i in range(tries):
        if run(scenario(os.path.join(sockdir, "%s%d.sock" % (name, i)))):
            return
    pytest.fail("the probe never consumed the wakeup in %d runs" % tries)


def test_wakeup_consumed_by_the_other_direction_is_recovered(sockdir):
    """A receiver and a sender wait on one connection. The peer sends a
    message (the descriptor becomes readable), and in the same loop
    iteration a third coroutine's send finds the ring still full, resets
    the descriptor and waits too. Nobody makes progress and nobody leaves:
    only the retry timer of waits in both directions can give the receiver
    its message."""

    async def scenario(path: str) -> bool:
        ln, c, s = await aio_pair(path, spin=0, ring_size=4096, max_message_size=1024)
        await _fill(c, 500)
        r = asyncio.ensure_future(c.recv())
        w = asyncio.ensure_future(c.send(bytes(500)))
        await asyncio.sleep(0)  # both run their first call and park
        assert not r.done() and not w.done()
        await s.send(b"data")  # does not suspend: the ring has room
        assert _readable(c.fileno(), 10)
        done, probe = _step_until_parked(c.send(bytes(500)))
        assert not done
        consumed = not _readable(c.fileno(), 0)
        assert await asyncio.wait_for(r, 10) == b"data"
        probe.close()
        await s.recv()  # room for w
        await asyncio.wait_for(w, 10)
        for x in (c, s, ln):
            x.close()
        return consumed

    _until_exercised(scenario, sockdir, "x1-")


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
    assert not w.done()
    await s.recv()  # frees space: the sender's wakeup
    assert _readable(c.fileno(), 10)
    return ln, c, s, w


def test_wakeup_consumed_by_a_receive_that_got_a_message_is_recovered(sockdir):
    """A sender waits on a full ring; the peer frees space (readable), and
    in the same loop iteration a receive takes a message that was already
    queued, resetting the descriptor: the sender must still be woken
    (every call that made progress wakes the parked coroutines)."""

    async def scenario(path: str) -> bool:
        ln, c, s, w = await _sender_wakeup_pending(path, b"queued")
        done, got = _step_until_parked(c.recv())
        assert done and got == b"queued"
        consumed = not _readable(c.fileno(), 0)
        await asyncio.wait_for(w, 10)
        for x in (c, s, ln):
            x.close()
        return consumed

    _until_exercised(scenario, sockdir, "x2-")


def test_wakeup_consumed_by_a_cancelled_receive_is_recovered(sockdir):
    """A sender waits on a full ring; the peer frees space (readable), and
    in the same loop iteration a receive finds nothing, resets the
    descriptor, waits, and is cancelled. The sender must still be woken
    (a cancelled waiter wakes those still waiting)."""

    async def scenario(path: str) -> bool:
        ln, c, s, w = await _sender_wakeup_pending(path)
        done, probe = _step_until_parked(c.recv())
        assert not done
        consumed = not _readable(c.fileno(), 0)
        probe.close()  # cancelled while waiting
        await asyncio.wait_for(w, 10)
        for x in (c, s, ln):
            x.close()
        return consumed

    _until_exercised(scenario, sockdir, "x3-")


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
        for _ in range(200):  # the dial thread exits after a second idle
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
        for x in (c, s, ln):
            x.close()

    run(main())
    used = {n for f in checked.values() for n in f.calls}
    assert {"goipc_send", "goipc_recv"} <= used
    if goipc.has_typed_messages():
        assert {"goipc_send_ping", "goipc_recv_pong"} <= used
