"""Conn.send_batch and Conn.recv_batch: order across batch boundaries and
a small ring, any bytes-like message, the timeout-0 prefix, errors, and a
stream through the Go consumer (`goipc pong` echoes plain messages)."""

from __future__ import annotations

import array
import asyncio
import os
import threading

import pytest

import goipc
import goipc.aio

from conftest import open_pair


def stream(n: int):
    """n messages of varied sizes (0 .. 300 bytes), each unique."""
    return [i.to_bytes(4, "little") * ((i * 37) % 76) for i in range(n)]


@pytest.fixture
def small_pair(sockdir):
    """(client, server) with a 4 KiB ring and 1 KiB messages."""
    with open_pair(os.path.join(sockdir, "small.sock"), ring_size=4096, max_message_size=1024) as p:
        yield p


def test_batches_keep_order(pair):
    c, s = pair
    msgs = stream(1000)
    sent = 0
    for k in range(1, 60):  # batches of 1, 2, 3 ... messages
        if sent == len(msgs):
            break
        assert c.send_batch(msgs[sent : sent + k], timeout=5) == len(msgs[sent : sent + k])
        sent += k
    got = []
    while len(got) < len(msgs):
        batch = s.recv_batch(max_count=16, timeout=5)
        assert 1 <= len(batch) <= 16
        got.extend(batch)
    assert got == msgs
    with pytest.raises(goipc.TimeoutError):
        s.recv_batch(timeout=0)


def test_batch_larger_than_ring_with_receiver_thread(small_pair):
    c, s = small_pair
    msgs = stream(1000)  # about 140 KiB of frames through a 4 KiB ring
    got = []

    def receive() -> None:
        while len(got) < len(msgs):
            got.extend(s.recv_batch(max_count=50, timeout=10))

    t = threading.Thread(target=receive)
    t.start()
    try:
        assert c.send_batch(iter(msgs), timeout=10) == len(msgs)  # any iterable
    finally:
        t.join(20)
    assert got == msgs


def test_timeout_zero_sends_a_prefix(small_pair):
    c, s = small_pair
    msgs = [bytes([i]) * 64 for i in range(200)]
    n = c.send_batch(msgs, timeout=0)
    assert 0 < n < len(msgs)
    got = []
    while True:
        try:
            got.extend(s.recv_batch(max_count=1000, timeout=0))
        except goipc.TimeoutError:
            break
    assert got == msgs[:n]  # exactly the prefix it reported, nothing else
    # The rest, in prefixes, draining in between.
    rest = msgs[n:]
    done = 0
    while done < len(rest):
        done += c.send_batch(rest[done:], timeout=0)
        while True:
            try:
                got.extend(s.recv_batch(timeout=0))
            except goipc.TimeoutError:
                break
    assert got == msgs


def test_timeout_with_nothing_sent_raises(small_pair):
    c, s = small_pair
    while True:  # fill the ring
        try:
            c.send(bytes(1000), timeout=0)
        except goipc.TimeoutError:
            break
    with pytest.raises(goipc.TimeoutError) as e:
        c.send_batch([bytes(1000), b"y"], timeout=0.05)  # the ring has room for b"y", not for the first
    assert e.value.sent == 0


def test_any_bytes_like(pair):
    c, s = pair
    data = bytes(range(64))
    msgs = [
        data,
        bytearray(data),
        memoryview(data),
        memoryview(b"..." + data + b"...")[3:-3],
        array.array("B", data),
        array.array("H", data),  # its bytes, not its items
        memoryview(bytearray(data)).cast("B", (2, 32)),
        b"",
        bytearray(),
    ]
    assert c.send_batch(msgs, timeout=5) == len(msgs)
    got = s.recv_batch(max_count=len(msgs), timeout=5)
    assert got == [data] * 7 + [b"", b""]
    assert all(type(m) is bytes for m in got)


def test_recv_batch_limits(pair):
    c, s = pair
    msgs = stream(20)
    c.send_batch(msgs)
    assert s.recv_batch(max_count=3, timeout=5) == msgs[:3]
    assert s.recv_batch(max_count=1, timeout=5) == msgs[3:4]
    assert s.recv_batch(max_count=100, timeout=5) == msgs[4:]
    # A message larger than the scratch buffer (64 KiB): taken all the same.
    big = os.urandom(200_000)
    c.send_batch([b"a", big, b"b"])
    got = []
    while len(got) < 3:
        got.extend(s.recv_batch(timeout=5))
    assert got == [b"a", big, b"b"]


def test_empty_batch(pair):
    c, s = pair
    assert c.send_batch([]) == 0
    with pytest.raises(goipc.TimeoutError):
        s.recv_batch(timeout=0)


def test_errors(sockdir):
    with open_pair(os.path.join(sockdir, "err.sock"), max_message_size=1024) as (c, s):
        with pytest.raises(goipc.MessageTooLargeError) as e:
            c.send_batch([b"ok", bytes(1025), b"ok"])
        assert e.value.sent == 0
        with pytest.raises(TypeError):
            c.send_batch([b"ok", "not bytes"])
        with pytest.raises(TypeError):
            c.send_batch([b"ok", 7])
        with pytest.raises(ValueError):
            c.send_batch([memoryview(bytes(64))[::2]])  # not contiguous
        with pytest.raises(goipc.TimeoutError):
            s.recv(timeout=0)  # none of those sent anything
        for bad in (0, -1, 1.5, "3"):
            with pytest.raises(goipc.InvalidArgumentError):
                s.recv_batch(max_count=bad, timeout=0)
        with pytest.raises(ValueError):
            s.recv_batch(timeout=-1)
        # A view held by this thread: the batch would wait for itself.
        c.send(b"v")
        with s.recv_view(timeout=5):
            with pytest.raises(goipc.InvalidArgumentError):
                s.recv_batch(timeout=0)
        # The peer closes: what it sent, then PeerClosedError.
        c.send_batch([b"1", b"2"])
        c.close()
        assert s.recv_batch(timeout=5) == [b"1", b"2"]
        with pytest.raises(goipc.PeerClosedError):
            s.recv_batch(timeout=5)
        with pytest.raises(goipc.ClosedError) as e2:
            c.send_batch([b"x"])
        assert e2.value.sent == 0


def test_stream_through_go_consumer(go_pong):
    """test_python_batch_producer_go_consumer: `goipc pong` echoes each
    message; the echoes come back in order."""
    msgs = stream(2000)
    with goipc.dial(go_pong.path, timeout=20) as c:
        got = []

        def receive() -> None:
            while len(got) < len(msgs):
                got.extend(c.recv_batch(timeout=10))

        t = threading.Thread(target=receive)
        t.start()
        try:
            for i in range(0, len(msgs), 100):
                assert c.send_batch(msgs[i : i + 100], timeout=10) == 100
        finally:
            t.join(30)
        assert got == msgs


def test_asyncio_batches(sockdir):
    """goipc.aio: a batch larger than the ring waits in the loop while a
    receiving task drains with recv_batch."""
    msgs = stream(1000)

    async def main() -> None:
        path = os.path.join(sockdir, "aio.sock")
        async with goipc.aio.listen(path) as ln:
            acc = asyncio.ensure_future(ln.accept())
            c = await goipc.aio.dial(path, timeout=20, ring_size=4096, max_message_size=1024)
            s = await acc
            async with c, s:
                got = []

                async def receive() -> None:
                    while len(got) < len(msgs):
                        got.extend(await s.recv_batch(max_count=50))

                r = asyncio.ensure_future(receive())
                assert await c.send_batch(msgs) == len(msgs)
                await r
                assert got == msgs
                with pytest.raises(goipc.MessageTooLargeError):
                    await c.send_batch([b"x", bytes(1025)])
                with pytest.raises(goipc.InvalidArgumentError):
                    await s.recv_batch(max_count=0)

    asyncio.run(asyncio.wait_for(main(), 60))
