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
