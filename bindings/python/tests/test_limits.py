"""Listener limits (LimitError) and the connection's pollable descriptor
(Conn.fileno)."""

from __future__ import annotations

import math
import os
import select
import threading

import pytest

import goipc
from goipc import errors

from conftest import make_pair


def _accept_in_thread(ln: goipc.Listener):
    """Starts ln.accept(timeout=20) on a thread; returns (thread, box)
    where box gets the connection or the exception."""
    box: list = []

    def run() -> None:
        try:
            box.append(ln.accept(timeout=20))
        except BaseException as e:  # noqa: BLE001 - checked by the test
            box.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t, box


def test_max_conns_refuses_the_second_client(sockdir):
    """max_conns=1: the second dial gets LimitError naming MaxConns, the
    listener's accept reports the refusal too and stays usable, and the
    first connection keeps working."""
    path = os.path.join(sockdir, "limit.sock")
    with goipc.listen(path, max_conns=1) as ln:
        t, box = _accept_in_thread(ln)
        first = goipc.dial(path, timeout=20)
        t.join(30)
        server = box[0]
        assert isinstance(server, goipc.Conn)
        try:
            t, box = _accept_in_thread(ln)
            with pytest.raises(goipc.LimitError, match="MaxConns") as ei:
                goipc.dial(path, timeout=20)
            assert ei.value.status == errors.ERR_LIMIT == 12
            assert isinstance(ei.value, goipc.Error)
            t.join(30)
            assert isinstance(box[0], goipc.LimitError), box
            assert "MaxConns" in str(box[0])
            # The first connection is unaffected.
            first.send(b"still here")
            assert server.recv(timeout=10) == b"still here"
            server.send(b"yes")
            assert first.recv(timeout=10) == b"yes"
        finally:
            first.close()
            server.close()


def test_max_segment_size_refuses_a_large_ring(sockdir):
    path = os.path.join(sockdir, "seg.sock")
    with goipc.listen(path, max_segment_size=1 << 16) as ln:
        t, box = _accept_in_thread(ln)
        with pytest.raises(goipc.LimitError, match="MaxSegmentSize"):
            goipc.dial(path, timeout=20, ring_size=1 << 20, max_message_size=4096)
        t.join(30)
        assert isinstance(box[0], goipc.LimitError), box


def test_limits_without_limit_accept(sockdir):
    """math.inf means no limit; the listener then serves as usual."""
    path = os.path.join(sockdir, "inf.sock")
    ln = goipc.listen(
        path, max_conns=math.inf, max_segment_size=math.inf, max_mapped_bytes=math.inf, max_pending_handshakes=math.inf
    )
    with ln:
        t, box = _accept_in_thread(ln)
        with goipc.dial(path, timeout=20) as c:
            t.join(30)
            with box[0] as s:
                c.send(b"x")
                assert s.recv(timeout=10) == b"x"


@pytest.mark.parametrize("name", ["max_conns", "max_segment_size", "max_mapped_bytes", "max_pending_handshakes"])
def test_limit_option_values(sockdir, name):
    path = os.path.join(sockdir, "bad.sock")
    hi = (1 << 31) - 1 if name in ("max_conns", "max_pending_handshakes") else (1 << 63) - 1
    for bad in (0, -1, hi + 1, 1 << 64):
        with pytest.raises(ValueError, match=name):
            goipc.listen(path, **{name: bad})
    for bad in (1.5, "3", True, -math.inf, math.nan):
        with pytest.raises((TypeError, ValueError), match=name):
            goipc.listen(path, **{name: bad})
    assert not os.path.exists(path)
    with goipc.listen(path, **{name: hi}):
        pass


def test_fileno_readable_on_message_and_peer_close(pair):
    """The descriptor: quiet after a timeout-0 call found nothing (before
    any event, and after the message was taken), readable when a message
    arrives and when the peer closes; the same number on every call."""
    c, s = pair
    fd = s.fileno()
    assert fd >= 0 and s.fileno() == fd
    with pytest.raises(goipc.TimeoutError):
        s.recv(timeout=0)  # arms it
    assert select.select([fd], [], [], 0)[0] == []
    c.send(b"ping")
    assert select.select([fd], [], [], 10)[0] == [fd]
    assert s.recv(timeout=0) == b"ping"
    with pytest.raises(goipc.TimeoutError):
        s.recv(timeout=0)
    # Quiet again: that call consumed the message's wakeup, and the send
    # direction, which nobody waits for, keeps nothing readable.
    assert select.select([fd], [], [], 0)[0] == []
    c.close()
    assert select.select([fd], [], [], 10)[0] == [fd]
    with pytest.raises(goipc.PeerClosedError):
        s.recv(timeout=0)


def _fill(conn: goipc.Conn) -> int:
    """Sends 200-byte messages with timeout 0 until the ring is full;
    returns how many went."""
    n = 0
    while True:
        try:
            conn.send(bytes(200), timeout=0)
            n += 1
        except goipc.TimeoutError:
            return n


def test_fileno_readable_when_ring_space_frees(sockdir):
    ln, c, s = make_pair(os.path.join(sockdir, "space.sock"), ring_size=4096, max_message_size=512)
    try:
        fd = c.fileno()
        sent = _fill(c)
        assert sent > 0
        assert select.select([fd], [], [], 0)[0] == []
        s.recv(timeout=10)
        assert select.select([fd], [], [], 10)[0] == [fd]
        c.send(bytes(200), timeout=0)
    finally:
        c.close()
        s.close()
        ln.close()


def test_free_space_in_pieces(sockdir):
    """free_space_in_pieces on the receiver (here the dialer): after one
    receive from a full ring the sender still has no room and its
    descriptor stays quiet (a 208-byte frame of a 256-byte piece); once
    the receiver has read everything, all of it is back. Without it, one
    receive frees room (test_fileno_readable_when_ring_space_frees)."""
    ln, c, s = make_pair(os.path.join(sockdir, "pieces.sock"), ring_size=4096, max_message_size=512,
                         free_space_in_pieces=True)
    try:
        fd = s.fileno()
        sent = _fill(s)
        assert sent > 2
        assert len(c.recv(timeout=10)) == 200
        assert select.select([fd], [], [], 0)[0] == []
        with pytest.raises(goipc.TimeoutError):
            s.send(bytes(200), timeout=0)
        got = 1
        while True:
            try:
                c.recv(timeout=0)
                got += 1
            except goipc.TimeoutError:
                break
        assert got == sent
        assert select.select([fd], [], [], 10)[0] == [fd]
        assert _fill(s) == sent
    finally:
        c.close()
        s.close()
        ln.close()


def test_fileno_of_closed_conn(pair):
    c, _ = pair
    c.fileno()
    c.close()
    with pytest.raises(goipc.ClosedError):
        c.fileno()
