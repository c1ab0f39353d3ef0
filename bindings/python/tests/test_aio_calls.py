"""goipc.aio calls: many coroutines calling on one connection, each reply
its own; a cancelled call drops its late reply; replies larger than the
scratch buffer."""

from __future__ import annotations

import asyncio
import os

import pytest

import goipc
import goipc.aio
from test_aio import aio_pair, run

pytestmark = pytest.mark.skipif(not goipc.has_calls(), reason="the library has no calls")


def test_many_coroutines_call_on_one_connection(go_pong):
    """`goipc pong` echoes each request as its reply: 16 coroutines call at
    once on one connection, and each gets its own request back."""

    async def main():
        async with await goipc.aio.dial(go_pong.path, timeout=10) as c:

            async def caller(k: int) -> None:
                for i in range(200):
                    req = b"%d:%d:" % (k, i) + bytes(k * 7 % 200)
                    assert await c.call(req) == req

            await asyncio.gather(*(caller(k) for k in range(16)))
            big = bytes(range(256)) * 400  # above the 64 KiB scratch buffer
            assert await c.call(big) == big
            assert c.conn.dropped_replies == 0

    run(main())


def test_cancelled_call_drops_its_late_reply(sockdir):
    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "cancel.sock"))
        loop = asyncio.get_running_loop()
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.call(b"never answered in time"), 0.05)
            cid, req = await loop.run_in_executor(None, s.conn.recv_request, 5.0)
            assert req == b"never answered in time"
            s.conn.reply(cid, b"late")

            async def serve_one() -> None:
                cid, req = await loop.run_in_executor(None, s.conn.recv_request, 5.0)
                s.conn.reply(cid, req[::-1])

            server = asyncio.ensure_future(serve_one())
            assert await c.call(b"next") == b"txen"
            await server
            assert c.conn.dropped_replies == 1
        finally:
            c.close()
            s.close()
            ln.close()

    run(main())


def test_more_callers_than_call_slots(go_pong):
    """100 coroutines call at once on one connection, more than its 64 call
    slots: a call that waits for a free slot (which the library does not
    signal on the descriptor) is woken when another call ends."""

    async def main():
        async with await goipc.aio.dial(go_pong.path, timeout=10) as c:

            async def caller(k: int) -> None:
                for i in range(20):
                    req = b"%d:%d" % (k, i)
                    assert await c.call(req) == req

            await asyncio.wait_for(asyncio.gather(*(caller(k) for k in range(100))), 30)

    run(main())


def test_a_receive_and_a_call_wait_at_once(sockdir):
    """A receive and a call wait on one connection; the peer sends a plain
    message, then answers the call. They share the receive direction's
    readiness (a call that finds no reply resets it): both complete."""

    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "mixed.sock"))
        loop = asyncio.get_running_loop()
        try:
            for i in range(50):
                got = asyncio.ensure_future(c.recv())
                answer = asyncio.ensure_future(c.call(b"req%d" % i))
                await asyncio.sleep(0)  # both make their calls and wait
                cid, req = await loop.run_in_executor(None, s.conn.recv_request, 5.0)
                assert req == b"req%d" % i
                s.conn.send(b"push%d" % i)
                s.conn.reply(cid, req[::-1])
                assert await asyncio.wait_for(got, 10) == b"push%d" % i
                assert await asyncio.wait_for(answer, 10) == (b"req%d" % i)[::-1]
        finally:
            c.close()
            s.close()
            ln.close()

    run(main())


def test_a_call_waiting_for_a_slot_gets_the_one_a_cancelled_call_frees(sockdir):
    """64 calls (every call slot of the connection, DefaultMaxInflightCalls)
    wait for replies that do not come, and a 65th waits for a slot. One of
    the 64 is cancelled: nothing arrives on the descriptor, yet the 65th
    takes the freed slot and its request reaches the peer."""

    async def main():
        ln, c, s = await aio_pair(os.path.join(sockdir, "slot.sock"))
        loop = asyncio.get_running_loop()
        calls = [asyncio.ensure_future(c.call(b"%d" % i)) for i in range(64)]
        try:
            await asyncio.sleep(0)
            extra = asyncio.ensure_future(c.call(b"extra"))
            for i in range(64):
                _, req = await loop.run_in_executor(None, s.conn.recv_request, 5.0)
                assert req == b"%d" % i
            assert not extra.done()
            calls[0].cancel()
            cid, req = await loop.run_in_executor(None, s.conn.recv_request, 5.0)
            assert req == b"extra"
            s.conn.reply(cid, b"done")
            assert await asyncio.wait_for(extra, 10) == b"done"
        finally:
            for t in calls:
                t.cancel()
            c.close()
            s.close()
            ln.close()

    run(main())
