"""The listener's descriptor (goipc.Listener.fileno, goipc_listener_fd)
and goipc.aio.AsyncListener.accept, which waits on it: readable exactly
while a client is queued, an idle AsyncListener makes no wakeups, a
cancelled accept loses no client, close wakes every pending accept."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import time

import pytest

import goipc
import goipc.aio

from test_aio import run


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_listener_fileno_is_readable_exactly_while_a_client_is_queued(sockdir):
    path = os.path.join(sockdir, "lf.sock")
    ln = goipc.listen(path)
    fd = ln.fileno()
    assert fd >= 0 and ln.fileno() == fd
    assert not _readable(fd), "readable with no client"
    with pytest.raises(goipc.TimeoutError):
        ln.accept(timeout=0)
    clients = [goipc.dial(path, timeout=20) for _ in range(2)]
    # dial returns once its connection is queued: readable at once.
    assert _readable(fd), "two clients dialed, the descriptor is quiet"
    accepted = [ln.accept(timeout=0)]
    assert _readable(fd), "quiet with a client still queued"
    accepted.append(ln.accept(timeout=0))
    assert not _readable(fd), "readable after the queue drained"
    dup = os.dup(fd)
    try:
        ln.close()
        assert _readable(dup), "close did not make the descriptor readable"
    finally:
        os.close(dup)
    with pytest.raises(goipc.ClosedError):
        ln.fileno()
    for c in clients + accepted:
        c.close()


def test_listener_counts_the_failures_accept_cannot_report(sockdir):
    """64 failed handshakes wait for accept; the others are counted
    (goipc_listener_dropped_errors), so every refused client is
    accounted for."""
    path = os.path.join(sockdir, "ld.sock")
    ln = goipc.listen(path)
    assert ln.dropped_errors == 0
    extra = 3
    for _ in range(64 + extra):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            s.sendall(bytes(32))  # a hello of the right size, a bad magic
            s.settimeout(10)
            s.recv(16)  # the refusal: the handshake has failed
    # A client has its refusal just before its failure is queued or
    # counted: wait for the count.
    deadline = time.monotonic() + 10
    while ln.dropped_errors != extra and time.monotonic() < deadline:
        time.sleep(0.001)
    assert ln.dropped_errors == extra
    for _ in range(64):
        with pytest.raises(goipc.ProtocolError):
            ln.accept(timeout=0)
    with pytest.raises(goipc.TimeoutError):
        ln.accept(timeout=0)
    ln.close()
    with pytest.raises(goipc.ClosedError):
        ln.dropped_errors


def _voluntary_switches() -> int:
    """How many times this thread blocked (and so was woken) so far."""
    with open("/proc/thread-self/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc/thread-self/status")


def test_an_idle_async_listener_makes_no_wakeups(sockdir):
    """An accept waiting at an idle listener parks on the descriptor: the
    loop's thread sleeps through the idle period (counted in context
    switches, not time) and the library is asked once, not on a timer."""
    path = os.path.join(sockdir, "idle.sock")

    async def main():
        ln = goipc.aio.listen(path)
        blocking = ln.listener
        calls = [0]
        real_accept = blocking.accept

        def counting_accept(timeout=None):
            calls[0] += 1
            return real_accept(timeout)

        blocking.accept = counting_accept  # type: ignore[method-assign]
        waiting = asyncio.ensure_future(ln.accept())
        await asyncio.sleep(0)  # it tries once and parks
        assert calls[0] == 1
        before = _voluntary_switches()
        await asyncio.sleep(0.3)  # the idle period (one timer: this sleep)
        woken = _voluntary_switches() - before
        assert calls[0] == 1, "an idle accept asked the library %d times" % calls[0]
        # One wakeup for the sleep's timer (a backoff of 1-20 ms, as accept
        # once had, would make tens). Slack for the odd page-in or signal.
        assert woken <= 5, "the loop's thread woke %d times while idle" % woken
        assert not waiting.done()
        c = await goipc.aio.dial(path, timeout=20)
        s = await waiting
        assert calls[0] == 2, "one wakeup, one call: %d calls" % calls[0]
        await c.send(b"hi")
        assert await s.recv() == b"hi"
        for x in (c, s, ln):
            x.close()

    run(main())


def test_a_cancelled_accept_loses_no_client(sockdir):
    path = os.path.join(sockdir, "ca.sock")

    async def main():
        async with goipc.aio.listen(path) as ln:
            first = asyncio.ensure_future(ln.accept())
            await asyncio.sleep(0)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            for i in range(20):
                waiting = asyncio.ensure_future(ln.accept())
                await asyncio.sleep(0)  # parked
                c = await goipc.aio.dial(path, timeout=20)
                # Cancelled wherever it is: parked, woken but not yet run,
                # or done. Either it returned the client or the next
                # accept does.
                waiting.cancel()
                try:
                    s = await waiting
                except asyncio.CancelledError:
                    s = await ln.accept()
                await c.send(b"%d" % i)
                assert await s.recv() == b"%d" % i
                c.close()
                s.close()
            assert not _readable(ln.fileno())

    run(main())


def test_close_wakes_every_pending_accept(sockdir):
    path = os.path.join(sockdir, "cw.sock")

    async def main():
        ln = goipc.aio.listen(path)
        pending = [asyncio.ensure_future(ln.accept()) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(p.done() for p in pending)
        ln.close()
        for p in pending:
            with pytest.raises(goipc.ClosedError):
                await p
        with pytest.raises(goipc.ClosedError):
            await ln.accept()
        ln.close()  # twice is harmless

    run(main())


def test_many_clients_several_accepting_tasks(sockdir):
    path = os.path.join(sockdir, "mc.sock")
    clients = 24

    async def main():
        async with goipc.aio.listen(path) as ln:
            accepted = []
            done = asyncio.Event()

            async def acceptor():
                while len(accepted) < clients:
                    accepted.append(await ln.accept())
                done.set()

            acceptors = [asyncio.ensure_future(acceptor()) for _ in range(3)]
            conns = await asyncio.gather(*(goipc.aio.dial(path, timeout=20) for _ in range(clients)))
            await done.wait()
            for a in acceptors:
                a.cancel()
            await asyncio.gather(*acceptors, return_exceptions=True)
            assert len(accepted) == clients
            for i, c in enumerate(conns):
                await c.send(b"%d" % i)
            got = sorted([int(await s.recv()) for s in accepted])
            assert got == list(range(clients))
            for x in conns + accepted:
                x.close()

    run(main())
