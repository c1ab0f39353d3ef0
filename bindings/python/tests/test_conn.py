"""The public API between two Python ends in one process: sending every
kind of buffer, receiving (copy, into, zero-copy view), reservations,
Ping/Pong helpers, timeouts, closing, and errors for bad input."""

from __future__ import annotations

import array
import builtins
import errno
import gc
import math
import os
import socket
import threading
import time
import warnings

import pytest

import goipc
from goipc import _lib, messages

from conftest import make_pair


def test_send_recv_bytes(pair):
    c, s = pair
    c.send(b"hello")
    assert s.recv(timeout=5) == b"hello"
    s.send(b"world")
    assert c.recv(timeout=5) == b"world"


def test_message_boundaries_and_order(pair):
    c, s = pair
    msgs = [bytes([i]) * i for i in range(200)]
    for m in msgs:
        c.send(m)
    assert [s.recv(timeout=5) for _ in msgs] == msgs


@pytest.mark.parametrize(
    "make",
    [
        lambda b: b,
        bytearray,
        memoryview,
        lambda b: memoryview(bytearray(b)),
        lambda b: memoryview(b"..." + b + b"...")[3:-3],
        lambda b: array.array("B", b),
        lambda b: memoryview(bytearray(b)).cast("B", (2, len(b) // 2)),
        lambda b: array.array("H", b),
    ],
    ids=["bytes", "bytearray", "mv-bytes", "mv-bytearray", "mv-slice", "array-B", "mv-2d", "array-H"],
)
def test_send_any_bytes_like(pair, make):
    c, s = pair
    data = bytes(range(64))
    c.send(make(data))
    assert s.recv(timeout=5) == data


def test_empty_message(pair):
    c, s = pair
    c.send(b"")
    assert s.recv(timeout=5) == b""
    c.send(bytearray())
    assert s.recv_into(bytearray(4), timeout=5) == 0
    c.send(b"")
    with s.recv_view(timeout=5) as mv:
        assert len(mv) == 0


def test_large_message_grows_scratch(pair):
    c, s = pair
    big = os.urandom(c.max_message_size)
    c.send(big)
    assert s.recv(timeout=10) == big
    c.send(b"small")
    assert s.recv(timeout=5) == b"small"


def test_recv_into_kinds(pair):
    c, s = pair
    c.send(b"abcdef")
    ba = bytearray(10)
    assert s.recv_into(ba, timeout=5) == 6 and ba[:6] == b"abcdef"
    c.send(b"ghij")
    mv = memoryview(bytearray(10))[2:8]
    assert s.recv_into(mv, timeout=5) == 4 and mv[:4].tobytes() == b"ghij"
    c.send(b"\x01\x00\x02\x00")
    arr = array.array("H", [0, 0, 0])
    assert s.recv_into(arr, timeout=5) == 4 and list(arr[:2]) == [1, 2]


def test_recv_into_too_small_keeps_message(pair):
    c, s = pair
    c.send(b"0123456789")
    with pytest.raises(goipc.BufferTooSmallError) as ei:
        s.recv_into(bytearray(4), timeout=5)
    assert ei.value.needed == 10
    buf = bytearray(ei.value.needed)
    assert s.recv_into(buf, timeout=5) == 10 and buf == b"0123456789"


def test_recv_into_bad_buffers(pair):
    c, s = pair
    with pytest.raises(TypeError):
        s.recv_into(b"read-only", timeout=0)
    with pytest.raises(TypeError):
        s.recv_into("text", timeout=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        s.recv_into(memoryview(b"read-only"), timeout=0)
    with pytest.raises(ValueError):
        s.recv_into(memoryview(bytearray(8))[::2], timeout=0)


def test_send_bad_data(pair):
    c, s = pair
    with pytest.raises(TypeError):
        c.send("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c.send(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c.send(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        c.send(memoryview(b"abcdef")[::2])
    c.send(b"still usable")
    assert s.recv(timeout=5) == b"still usable"


def test_message_too_large(pair):
    c, s = pair
    with pytest.raises(goipc.MessageTooLargeError) as ei:
        c.send(bytes(c.max_message_size + 1))
    assert ei.value.status == 5 and isinstance(ei.value, ValueError)
    c.send(b"after")
    assert s.recv(timeout=5) == b"after"


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan])
def test_bad_timeout_values(pair, bad):
    c, s = pair
    with pytest.raises(ValueError):
        s.recv(timeout=bad)
    with pytest.raises(ValueError):
        s.recv_into(bytearray(1), timeout=bad)
    with pytest.raises(ValueError):
        c.send(b"x", timeout=bad)


@pytest.mark.parametrize("bad", ["1", True, [1]])
def test_bad_timeout_types(pair, bad):
    c, s = pair
    with pytest.raises(TypeError):
        s.recv(timeout=bad)
    with pytest.raises(TypeError):
        s.recv_view(timeout=bad)


def test_recv_timeout(pair):
    c, s = pair
    for fn in (lambda t: s.recv(timeout=t), lambda t: s.recv_into(bytearray(8), timeout=t), lambda t: s.recv_view(timeout=t)):
        t0 = time.monotonic()
        with pytest.raises(goipc.TimeoutError) as ei:
            fn(0.35)  # more than one 100 ms slice
        dt = time.monotonic() - t0
        assert isinstance(ei.value, builtins.TimeoutError)
        assert ei.value.status == 2
        assert 0.35 <= dt < 3.0, dt
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        s.recv(timeout=0)
    assert time.monotonic() - t0 < 0.5
    # Still usable after timeouts.
    c.send(b"x")
    assert s.recv(timeout=5) == b"x"


@pytest.mark.parametrize("kind", [bytes, bytearray])
@pytest.mark.parametrize("wait", [0.2, None])
def test_send_timeout_when_ring_full(sockdir, kind, wait):
    """A full ring: send(timeout) times out; send() without a timeout waits
    (here until another thread makes room)."""
    ln, c, s = make_pair(os.path.join(sockdir, "full.sock"), ring_size=4096, max_message_size=1024)
    try:
        sent = 0
        with pytest.raises(goipc.TimeoutError):
            for _ in range(100):
                c.send(kind(1000), timeout=0.2)
                sent += 1
        if wait is None:
            # Blocks past the first 100 ms slice until a receive makes room.
            t = threading.Timer(0.3, lambda: s.recv(timeout=5))
            t.start()
            t0 = time.monotonic()
            c.send(kind(1000))
            assert time.monotonic() - t0 >= 0.2
            t.join()
            assert s.recv(timeout=5) == bytes(1000)
            sent -= 1
        assert 0 < sent < 100
        for _ in range(sent):
            assert s.recv(timeout=5) == bytes(1000)
        c.send(b"room again", timeout=1)
        assert s.recv(timeout=5) == b"room again"
    finally:
        c.close()
        s.close()
        ln.close()


def test_accept_timeout(sockdir):
    with goipc.listen(os.path.join(sockdir, "acc.sock")) as ln:
        t0 = time.monotonic()
        with pytest.raises(goipc.TimeoutError):
            ln.accept(timeout=0.25)
        assert 0.25 <= time.monotonic() - t0 < 3
        with pytest.raises(goipc.TimeoutError):
            ln.accept(timeout=0)


def test_recv_view(pair):
    c, s = pair
    c.send(b"zero-copy")
    v = s.recv_view(timeout=5)
    assert isinstance(v, goipc.View) and len(v) == 9 and not v.released
    assert v.data.readonly and v.data.tobytes() == b"zero-copy"
    assert bytes(v) == b"zero-copy"
    with pytest.raises(TypeError):
        v.data[0] = 1  # type: ignore[index]
    v.release()
    assert v.released
    with pytest.raises(ValueError):
        v.data
    v.release()  # twice is harmless
    c.send(b"ctx")
    with s.recv_view(timeout=5) as mv:
        assert bytes(mv) == b"ctx"
    with pytest.raises(ValueError):
        mv.tobytes()  # released with the view


def test_view_holds_receive_side(pair):
    c, s = pair
    c.send(b"one")
    c.send(b"two")
    with s.recv_view(timeout=5) as mv:
        assert bytes(mv) == b"one"
        with pytest.raises(goipc.InvalidArgumentError):
            s.recv(timeout=0)
    assert s.recv(timeout=5) == b"two"


def test_view_slices_block_release(pair):
    c, s = pair
    c.send(b"abcdef")
    v = s.recv_view(timeout=5)
    part = v.data[1:3]
    with pytest.raises(BufferError):
        v.release()
    assert not v.released
    assert bytes(part) == b"bc"  # still valid: the slot is still held
    del part
    v.release()
    assert v.released
    c.send(b"next")
    assert s.recv(timeout=5) == b"next"


def test_view_released_by_gc(pair):
    c, s = pair
    c.send(b"a")
    c.send(b"b")
    v = s.recv_view(timeout=5)
    del v
    gc.collect()
    assert s.recv(timeout=5) == b"b"


def test_close_releases_open_view(sockdir):
    ln, c, s = make_pair(os.path.join(sockdir, "cv.sock"))
    try:
        c.send(b"abc")
        v = s.recv_view(timeout=5)
        mv = v.data
        s.close()
        assert v.released
        with pytest.raises(ValueError):
            mv.tobytes()  # the memoryview died with the view, no dangling read
    finally:
        c.close()
        ln.close()


def test_reserve_commit_abort(pair):
    import struct

    c, s = pair
    r = c.reserve(16, timeout=5)
    assert isinstance(r, goipc.Reservation) and len(r) == 16 and not r.data.readonly
    struct.pack_into("<QQ", r.data, 0, 1, 2)
    r.commit()
    assert s.recv(timeout=5) == struct.pack("<QQ", 1, 2)
    with c.reserve(10) as mv:
        mv[:3] = b"abc"
    assert s.recv(timeout=5)[:3] == b"abc"
    r = c.reserve(100)
    r.data[:5] = b"12345"
    r.commit(5)
    assert s.recv(timeout=5) == b"12345"
    r = c.reserve(8)
    r.abort()
    with pytest.raises(ValueError):
        r.commit()
    with pytest.raises(RuntimeError):
        with c.reserve(8) as mv:
            raise RuntimeError("aborts")
    c.send(b"after")
    assert s.recv(timeout=5) == b"after"
    r = c.reserve(4)
    with pytest.raises(ValueError):
        r.commit(5)
    r.abort()
    with pytest.raises(goipc.MessageTooLargeError):
        c.reserve(c.max_message_size + 1)
    with pytest.raises(ValueError):
        c.reserve(-1)


@pytest.fixture(params=["c-helpers", "python-flatbuffers"])
def typed_path(request, monkeypatch):
    """Runs a test through the library's typed helpers and again through
    the generated Python code (the path taken with a library that lacks
    goipc_send_ping and friends)."""
    if request.param == "c-helpers":
        if not goipc.has_typed_messages():
            pytest.skip("this libgoipc.so has no typed helpers")
    else:
        monkeypatch.setattr(_lib.state, "has_typed", False)
    return request.param


def test_ping_pong_helpers_between_python_ends(pair, typed_path):
    c, s = pair
    c.send_ping(7, b"payload")
    ping = s.recv_ping(timeout=5)
    assert ping.seq == 7 and ping.payload == b"payload" and ping.sent_ns > 0
    s.send_pong(ping.seq, ping.sent_ns, ping.payload, received_ns=123)
    pong = c.recv_pong(timeout=5)
    assert isinstance(pong, goipc.Pong)
    assert pong.seq == 7 and pong.payload == b"payload"
    # The same messages read as bytes with the generated code.
    c.send_ping(2**64 - 1, bytearray(b"x"))
    raw = s.recv(timeout=5)
    p = messages.parse_ping(raw)
    assert p.seq == 2**64 - 1 and p.payload == b"x"
    s.send_pong(8, 99, b"y", received_ns=100)
    assert messages.parse_pong(c.recv(timeout=5)) == goipc.Pong(8, b"y", 99, 100)
    # Python-built messages read by the typed receives.
    c.send(messages.build_ping(9, b"z", sent_ns=5))
    assert s.recv_ping(timeout=5) == goipc.Ping(9, 5, b"z")


def test_recv_pong_rejects_other_messages(pair, typed_path):
    c, s = pair
    s.send(b"not a flatbuffer")
    with pytest.raises(goipc.ProtocolError):
        c.recv_pong(timeout=5)
    s.send(messages.build_ping(1))
    with pytest.raises(goipc.ProtocolError):
        c.recv_pong(timeout=5)
    s.send_pong(3, 0, b"ok")
    assert c.recv_pong(timeout=5).seq == 3  # the connection stayed usable
    with pytest.raises(goipc.TimeoutError):
        c.recv_pong(timeout=0.15)


def test_ping_bad_arguments(pair, typed_path):
    c, s = pair
    with pytest.raises(ValueError):
        c.send_ping(-1)
    with pytest.raises(ValueError):
        c.send_ping(2**64)
    with pytest.raises(TypeError):
        c.send_ping(1, "text")
    with pytest.raises(ValueError):
        s.send_pong(1, 2**63)
    with pytest.raises(goipc.MessageTooLargeError):
        c.send_ping(1, bytes(c.max_message_size))


def test_close_and_use_after_close(sockdir):
    ln, c, s = make_pair(os.path.join(sockdir, "close.sock"))
    c.send(b"before close")
    c.close()
    assert c.closed
    c.close()  # harmless
    with pytest.raises(goipc.ClosedError):
        c.send(b"x")
    with pytest.raises(goipc.ClosedError):
        c.recv(timeout=0)
    # The peer gets what was sent, then PeerClosedError.
    assert s.recv(timeout=5) == b"before close"
    with pytest.raises(goipc.PeerClosedError) as ei:
        s.recv(timeout=5)
    assert isinstance(ei.value, ConnectionError)
    s.close()
    ln.close()
    assert ln.closed
    ln.close()
    with pytest.raises(goipc.ClosedError):
        ln.accept(timeout=0)


def test_context_managers_and_repr(sockdir):
    path = os.path.join(sockdir, "cm.sock")
    ln, c, s = make_pair(path)
    with ln, c, s:
        assert "goipc.Conn" in repr(c) and "goipc.Listener" in repr(ln)
        assert ln.path == path
        assert c.handle != 0 and s.handle != c.handle
    assert c.closed and s.closed and ln.closed
    assert "closed" in repr(c)
    assert not os.path.exists(path)  # the listener removed its socket


def test_close_from_another_thread_unblocks_recv(pair):
    c, s = pair
    got = []

    def waiter():
        try:
            s.recv()
        except goipc.Error as e:
            got.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    # Wait until the waiter is inside recv (it holds the scratch lock).
    deadline = time.monotonic() + 10
    while s._pool and time.monotonic() < deadline:
        time.sleep(0.001)
    s.close()
    t.join(10)
    assert not t.is_alive()
    assert len(got) == 1 and isinstance(got[0], goipc.ClosedError)


def test_unclosed_conn_warns(sockdir):
    ln, c, s = make_pair(os.path.join(sockdir, "warn.sock"))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        del c
        gc.collect()
    assert any(issubclass(x.category, ResourceWarning) for x in w)
    with pytest.raises(goipc.PeerClosedError):
        s.recv(timeout=5)  # the collected end was closed
    s.close()
    ln.close()


def test_listen_errors(sockdir):
    path = os.path.join(sockdir, "inuse.sock")
    with goipc.listen(path):
        with pytest.raises(goipc.AddressInUseError):
            goipc.listen(path)
    regular = os.path.join(sockdir, "file")
    open(regular, "w").close()
    with pytest.raises(goipc.AddressInUseError):
        goipc.listen(regular)
    with pytest.raises(ValueError):
        goipc.listen("")
    with pytest.raises(ValueError):
        goipc.listen("a\0b")
    with pytest.raises(TypeError):
        goipc.listen(123)  # type: ignore[arg-type]
    with pytest.raises(goipc.Error):
        goipc.listen("/tmp/" + "x" * 200)  # longer than sun_path


def test_dial_errors(sockdir):
    with pytest.raises(goipc.SystemCallError) as ei:
        goipc.dial(os.path.join(sockdir, "nobody.sock"), timeout=5)
    assert ei.value.errno == errno.ENOENT and isinstance(ei.value, OSError)
    # A socket file nobody listens on any more.
    dead = os.path.join(sockdir, "dead.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(dead)
    srv.close()
    with pytest.raises(goipc.SystemCallError) as ei:
        goipc.dial(dead, timeout=5)
    assert ei.value.errno == errno.ECONNREFUSED
    with pytest.raises(ValueError):
        goipc.dial("")
    with pytest.raises(ValueError):
        goipc.dial("x", timeout=-1)
    with pytest.raises(goipc.TimeoutError):
        goipc.dial(os.path.join(sockdir, "nobody.sock"), timeout=0)


def test_dial_not_a_goipc_listener(sockdir):
    """A Unix socket that accepts and closes: the handshake fails with a
    goipc error (not a hang)."""
    path = os.path.join(sockdir, "plain.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        conn.sendall(b"HTTP/1.0 400 nope\r\n\r\n")
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        with pytest.raises((goipc.ProtocolError, goipc.PeerClosedError)):
            goipc.dial(path, timeout=5)
    finally:
        t.join(10)
        srv.close()


def test_dial_options(sockdir):
    path = os.path.join(sockdir, "opt.sock")
    with goipc.listen(path, max_message_size=1 << 16, spin=0, handshake_timeout=5) as ln:
        got = []
        t = threading.Thread(target=lambda: got.append(ln.accept(timeout=10)))
        t.start()
        c = goipc.dial(path, timeout=10, max_message_size=4096, ring_size=1 << 16, spin=1e-5, handshake_timeout=5)
        t.join(10)
        s = got[0]
        try:
            assert c.max_message_size == s.max_message_size == 4096
            c.send(bytes(4096))
            assert s.recv(timeout=5) == bytes(4096)
        finally:
            c.close()
            s.close()
        # Above the listener's maximum: refused.
        t = threading.Thread(target=lambda: _accept_quietly(ln))
        t.start()
        with pytest.raises(goipc.InvalidArgumentError):
            goipc.dial(path, timeout=10, max_message_size=1 << 20)
        t.join(15)
    with pytest.raises(ValueError):
        goipc.dial(path, max_message_size=-1)
    with pytest.raises(ValueError):
        goipc.dial(path, spin=-1)


@pytest.mark.parametrize(
    "option, value, bits",
    [
        ("max_message_size", 2**64 + 65536, "18446744073709551615"),
        ("max_message_size", -1, "18446744073709551615"),
        ("ring_size", 2**64 + 4096, "18446744073709551615"),
        ("protocol_version_override", 2**32 + 1, "4294967295"),
        ("protocol_version_override", -1, "4294967295"),
    ],
)
def test_integer_options_out_of_range_raise(sockdir, option, value, bits):
    """A value that its C field cannot hold is refused before any call,
    naming the option and its range (ctypes would store it modulo 2**bits:
    2**64 + 65536 used to become 65536)."""
    path = os.path.join(sockdir, "range.sock")
    calls = [lambda: goipc.dial(path, **{option: value})]
    if option != "ring_size":  # listen has no ring_size: the dialer sets it
        calls.append(lambda: goipc.listen(path, **{option: value}))
    for call in calls:
        with pytest.raises(ValueError) as ei:
            call()
        assert option in str(ei.value) and bits in str(ei.value) and str(value) in str(ei.value)
        assert not isinstance(ei.value, goipc.Error)  # refused here, not by the library
        assert not os.path.exists(path)
    with pytest.raises(TypeError, match=option):
        goipc.dial(path, **{option: 1.5})


def test_handshake_timeout_out_of_range_raises(sockdir):
    path = os.path.join(sockdir, "range.sock")
    for bad in (1e300, math.inf):
        with pytest.raises(ValueError, match="handshake_timeout"):
            goipc.dial(path, handshake_timeout=bad)
        with pytest.raises(ValueError, match="handshake_timeout"):
            goipc.listen(path, handshake_timeout=bad)


def _accept_quietly(ln):
    try:
        ln.accept(timeout=10).close()
    except goipc.Error:
        pass


def test_close_ends_view_and_reservation(sockdir):
    ln, c, s = make_pair(os.path.join(sockdir, "both.sock"))
    try:
        s.send(b"to c")
        v = c.recv_view(timeout=5)
        r = c.reserve(8, timeout=5)
        c.close()
        assert v.released and r.released and c.closed
    finally:
        s.close()
        ln.close()


def test_collected_view_with_live_slice(sockdir):
    """A view collected while a slice of it lives: the slot stays held
    (the slice stays readable), close() refuses to unmap, and once the
    slice goes the slot is released."""
    ln, c, s = make_pair(os.path.join(sockdir, "slice.sock"))
    try:
        c.send(b"first")
        c.send(b"second")
        v = s.recv_view(timeout=5)
        part = v.data[1:4]
        del v
        gc.collect()
        assert bytes(part) == b"irs"
        with pytest.raises(BufferError):
            s.close()
        assert not s.closed
        del part
        gc.collect()
        assert s.recv(timeout=5) == b"second"
        s.close()
        assert s.closed
    finally:
        c.close()
        s.close()
        ln.close()


def test_large_typed_messages_grow_scratch(pair, typed_path):
    c, s = pair
    big = os.urandom(200_000)  # above the 64 KiB initial scratch buffer
    c.send_ping(1, big)
    p = s.recv_ping(timeout=5)
    assert p.seq == 1 and p.payload == big
    s.send_pong(1, p.sent_ns, big)
    q = c.recv_pong(timeout=5)
    assert q.seq == 1 and q.payload == big
    s.send_pong(2, 0, b"small")
    assert c.recv_pong().payload == b"small"


def test_protocol_version_mismatch_both_ways(sockdir):
    path = os.path.join(sockdir, "v.sock")

    def accept_error(ln):
        box = []

        def run():
            try:
                ln.accept(timeout=10).close()
                box.append(None)
            except goipc.Error as e:
                box.append(e)

        t = threading.Thread(target=run)
        t.start()
        return t, box

    with goipc.listen(path) as ln:
        # We announce another version: the listener refuses, we say why.
        t, box = accept_error(ln)
        with pytest.raises(goipc.ProtocolError, match="99"):
            goipc.dial(path, timeout=10, protocol_version_override=99)
        t.join()
        assert isinstance(box[0], goipc.ProtocolError)
    with goipc.listen(path, protocol_version_override=98) as ln:
        t, box = accept_error(ln)
        with pytest.raises(goipc.ProtocolError, match="98"):
            goipc.dial(path, timeout=10)
        t.join()
        assert isinstance(box[0], goipc.ProtocolError)
