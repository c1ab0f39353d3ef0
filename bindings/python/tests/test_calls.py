"""Calls: requests and replies with call ids (docs/PROTOCOL.md, "Calls").

Many threads calling on one shared connection with every reply checked
against its request, replies out of order, timeouts and late replies,
waits longer than a slice (the request is sent once), the peer closing
with calls in flight, typed calls against the Go server.
"""

from __future__ import annotations

import os
import struct
import threading
import time

import pytest

import goipc
from conftest import open_pair

pytestmark = pytest.mark.skipif(not goipc.has_calls(), reason="the library has no calls")


def answer_for(req: bytes) -> bytes:
    """The test servers' reply: the request reversed, then its length, so
    that a reply delivered to another call cannot pass for the right one."""
    return req[::-1] + struct.pack("<I", len(req))


def request_for(caller: int, seq: int) -> bytes:
    n = 16 + (caller * 7 + seq * 13) % 200
    head = struct.pack("<QQ", caller, seq)
    return head + bytes((caller ^ seq ^ i) & 0xFF for i in range(16, n))


class Server:
    """Threads answering every request on conn with answer_for."""

    def __init__(self, conn: goipc.Conn, threads: int = 2, delay: float = 0.0) -> None:
        self.conn = conn
        self.delay = delay
        self.answered = 0
        self.ended: list = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self) -> None:
        try:
            while True:
                cid, req = self.conn.recv_request()
                if self.delay:
                    time.sleep(self.delay)  # a slow handler, not synchronisation
                with self.lock:  # counted before the reply frees its caller
                    self.answered += 1
                self.conn.reply(cid, answer_for(req))
        except goipc.Error as e:
            self.ended.append(e)

    def join(self) -> None:
        for t in self.threads:
            t.join(30)


def test_call_round_trip(pair):
    c, s = pair
    srv = Server(s)
    for req in (b"", b"x", b"hello", bytes(range(256)) * 100):
        assert c.call(req) == answer_for(req)
    buf = bytearray(64)
    n = c.call_into(b"into", buf)
    assert bytes(buf[:n]) == answer_for(b"into")
    assert c.call(bytearray(b"any bytes-like"), timeout=5) == answer_for(b"any bytes-like")
    assert c.call(memoryview(b"view"), timeout=5) == answer_for(b"view")
    c.close()
    srv.join()
    assert all(isinstance(e, goipc.PeerClosedError) for e in srv.ended)


def test_many_threads_one_connection(pair):
    """Eight threads call on one shared connection while two server
    threads answer in whatever order they finish: each reply is the answer
    to its own request."""
    c, s = pair
    srv = Server(s, threads=3)
    errors: list = []
    calls = 400

    def caller(k: int) -> None:
        buf = bytearray(512)
        try:
            for i in range(calls):
                req = request_for(k, i)
                if i % 2:
                    got = c.call(req, timeout=30)
                else:
                    got = bytes(buf[: c.call_into(req, buf, timeout=30)])
                if got != answer_for(req):
                    errors.append("caller %d call %d: another call's reply" % (k, i))
                    return
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append("caller %d: %r" % (k, e))

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert srv.answered == 8 * calls
    assert c.dropped_replies == 0
    c.close()
    srv.join()


def test_replies_out_of_order(pair):
    c, s = pair
    results: dict = {}

    def caller(k: int) -> None:
        results[k] = c.call(request_for(k, k), timeout=30)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    reqs = [s.recv_request(timeout=10) for _ in range(3)]
    for cid, req in reversed(reqs):
        s.reply(cid, answer_for(req))
    for t in threads:
        t.join(30)
    for k in range(3):
        assert results[k] == answer_for(request_for(k, k))


def test_timeout_and_late_reply(pair):
    c, s = pair
    t0 = time.monotonic()
    with pytest.raises(goipc.TimeoutError):
        c.call(b"slow", timeout=0.05)
    assert time.monotonic() - t0 >= 0.05
    cid, req = s.recv_request(timeout=5)
    assert req == b"slow"
    s.reply(cid, b"late")  # nobody waits for it any more
    srv = Server(s)
    assert c.call(b"next", timeout=10) == answer_for(b"next")
    assert c.dropped_replies == 1
    c.close()
    srv.join()


def test_wait_longer_than_a_slice_sends_once(pair):
    """A reply that takes longer than WAIT_SLICE: the call continues in
    slices without sending the request again."""
    c, s = pair
    srv = Server(s, threads=1, delay=3 * goipc.WAIT_SLICE)
    assert c.call(b"patience") == answer_for(b"patience")
    assert c.call(b"patience", timeout=10) == answer_for(b"patience")
    assert srv.answered == 2
    assert c.dropped_replies == 0
    c.close()
    srv.join()


def test_call_into_too_small(pair):
    c, s = pair
    srv = Server(s)
    with pytest.raises(goipc.BufferTooSmallError) as ei:
        c.call_into(b"0123456789", bytearray(4), timeout=10)
    assert ei.value.needed == 14
    # Large replies grow call()'s scratch buffer instead.
    big = bytes(range(256)) * 1000
    assert c.call(big, timeout=10) == answer_for(big)
    with pytest.raises(TypeError):
        c.call_into(b"x", b"read-only")
    c.close()
    srv.join()


def test_sizes(pair):
    c, s = pair
    with pytest.raises(goipc.MessageTooLargeError):
        c.call(bytes(c.max_message_size - 7), timeout=1)
    with pytest.raises(goipc.MessageTooLargeError):
        s.reply(1, bytes(s.max_message_size - 7))
    with pytest.raises(ValueError):
        s.reply(-1, b"")
    with pytest.raises(TypeError):
        c.call("text")


def test_peer_closes_with_calls_in_flight(pair):
    c, s = pair
    errors: list = []

    def caller(k: int) -> None:
        try:
            c.call(request_for(k, 0))
            errors.append("caller %d got a reply" % k)
        except goipc.PeerClosedError:
            pass
        except BaseException as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for _ in threads:
        s.recv_request(timeout=10)  # every call is in flight, none answered
    t0 = time.monotonic()
    s.close()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert time.monotonic() - t0 < 2.0
    assert errors == []


def test_recv_request_leaves_plain_messages(pair):
    c, s = pair
    c.send(b"plain")
    with pytest.raises(goipc.TimeoutError):
        s.recv_request(timeout=0.02)  # the plain message is at the head
    assert s.recv(timeout=1) == b"plain"
    big = bytes(100_000)
    got: list = []
    t = threading.Thread(target=lambda: got.append(c.call(big, timeout=10)))
    t.start()
    cid, req = s.recv_request(timeout=10)  # larger than the scratch: it grows
    assert req == big
    s.reply(cid, b"ok")
    t.join(10)
    assert got == [b"ok"]


def test_typed_server_many_threads(pair):
    """Six threads make Ping calls on one connection; two server threads
    answer each with its own Pong (recv_ping_request + reply_pong)."""
    c, s = pair
    answered: list = []
    ended: list = []

    def serve() -> None:
        n = 0
        try:
            while True:
                cid, ping = s.recv_ping_request()
                s.reply_pong(cid, ping.seq, ping.sent_ns, ping.payload)
                n += 1
        except goipc.Error as e:
            ended.append(e)
        answered.append(n)

    errors: list = []

    def caller(k: int) -> None:
        try:
            for i in range(200):
                seq, payload = k << 32 | i, request_for(k, i)
                if c.call_ping(seq, payload, timeout=30) != goipc.Pong(seq, payload):
                    errors.append("caller %d call %d: not its own Pong" % (k, i))
                    return
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append("caller %d: %r" % (k, e))

    servers = [threading.Thread(target=serve) for _ in range(2)]
    callers = [threading.Thread(target=caller, args=(k,)) for k in range(6)]
    for t in servers + callers:
        t.start()
    for t in callers:
        t.join(120)
    c.close()
    for t in servers:
        t.join(30)
    assert errors == []
    assert sum(answered) == 6 * 200
    assert len(ended) == 2 and all(isinstance(e, goipc.PeerClosedError) for e in ended)


@pytest.mark.parametrize("in_library", [True, False], ids=["library", "fallback"])
def test_typed_server_errors(pair, monkeypatch, in_library):
    """A payload larger than the first receive buffer; a request that is
    not a Ping (its id and bytes come with the error, to answer it); call
    id 0; a Pong too large; nothing to receive. Through the library's
    goipc_recv_ping_request/goipc_reply_pong, and through the fallback for
    a library without them (recv_request/reply and goipc.messages)."""
    monkeypatch.setattr(goipc._lib.state, "has_typed_server", in_library)
    c, s = pair
    got: list = []
    big = bytes(range(256)) * 1024  # 256 KiB: beyond the 64 KiB first buffer
    # A raw call carrying a Ping, to see every field of the Pong.
    request = goipc.messages.build_ping(9, big, sent_ns=1234)
    t = threading.Thread(target=lambda: got.append(c.call(request, timeout=30)))
    t.start()
    cid, ping = s.recv_ping_request(timeout=10)
    assert ping == goipc.Ping(9, 1234, big)
    s.reply_pong(cid, ping.seq, ping.sent_ns, ping.payload, received_ns=5)
    t.join(30)
    assert goipc.messages.parse_pong(got[0]) == goipc.Pong(9, big, 1234, 5)

    t = threading.Thread(target=lambda: got.append(c.call(b"not a ping", timeout=30)))
    t.start()
    with pytest.raises(goipc.ProtocolError) as ei:
        s.recv_ping_request(timeout=10)
    assert ei.value.call_id != 0 and ei.value.request == b"not a ping"
    s.reply(ei.value.call_id, b"refused")
    t.join(30)
    assert got[-1] == b"refused"

    with pytest.raises(goipc.InvalidArgumentError):
        s.reply_pong(0, 1, 0, b"x")
    with pytest.raises(goipc.MessageTooLargeError):
        s.reply_pong(1, 1, 0, bytes(s.max_message_size))
    with pytest.raises(goipc.TimeoutError):
        s.recv_ping_request(timeout=0)


def test_calls_against_go_pong(go_pong):
    """`goipc pong` echoes a call's request, and answers a Ping call with
    a Pong; from several threads at once."""
    with goipc.dial(go_pong.path, timeout=10) as c:
        assert c.call(b"echo me", timeout=10) == b"echo me"
        pong = c.call_ping(7, b"payload", timeout=10)
        assert pong.seq == 7 and pong.payload == b"payload"
        errors: list = []

        def caller(k: int) -> None:
            for i in range(200):
                req = request_for(k, i)
                if c.call(req, timeout=30) != req:
                    errors.append("caller %d call %d" % (k, i))
                    return
                if c.call_ping(i, req, timeout=30) != goipc.Pong(i, req):
                    errors.append("caller %d ping %d" % (k, i))
                    return

        threads = [threading.Thread(target=caller, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []


def test_version_1_peer_cannot_call(sockdir):
    """A peer announcing protocol version 1 (no calls) is refused at the
    handshake: calls never reach it."""
    path = os.path.join(sockdir, "v1.sock")
    with goipc.listen(path) as ln:
        with pytest.raises(goipc.ProtocolError):
            goipc.dial(path, timeout=10, protocol_version_override=1)
        with pytest.raises(goipc.ProtocolError):
            ln.accept(timeout=10)


def test_max_inflight_calls(sockdir):
    """With max_inflight_calls=2, two calls in flight make a third wait,
    unsent, until one of them ends; a listener's cap holds on the
    connections it accepts; bad values raise before the library is
    called."""
    with open_pair(os.path.join(sockdir, "cap.sock"), max_inflight_calls=2) as (c, s):
        results: dict = {}

        def caller(req: bytes) -> None:
            results[req] = c.call(req, timeout=30)

        first = [threading.Thread(target=caller, args=(r,)) for r in (b"one", b"two")]
        for t in first:
            t.start()
        held = {req: cid for cid, req in (s.recv_request(timeout=10) for _ in range(2))}
        assert set(held) == {b"one", b"two"}
        # No free slot: a call times out without sending its request.
        with pytest.raises(goipc.TimeoutError):
            c.call(b"unsent", timeout=0.05)
        third = threading.Thread(target=caller, args=(b"three",))
        third.start()
        with pytest.raises(goipc.TimeoutError):
            s.recv_request(timeout=0.1)  # "unsent" never came (nor "three", if it started)
        s.reply(held[b"one"], answer_for(b"one"))  # frees a slot for "three"
        cid, req = s.recv_request(timeout=10)
        assert req == b"three"
        s.reply(cid, answer_for(req))
        s.reply(held[b"two"], answer_for(b"two"))
        for t in first + [third]:
            t.join(30)
        assert results == {r: answer_for(r) for r in (b"one", b"two", b"three")}

    # The listener's cap (1) is the accepted end's, not the dialer's.
    path = os.path.join(sockdir, "lcap.sock")
    with goipc.listen(path, max_inflight_calls=1) as ln2:
        got: list = []
        t = threading.Thread(target=lambda: got.append(ln2.accept(timeout=20)))
        t.start()
        with goipc.dial(path, timeout=20) as d:
            t.join(30)
            with got[0] as a:
                held_call = threading.Thread(target=lambda: a.call(b"held", timeout=30))
                held_call.start()
                cid, req = d.recv_request(timeout=10)
                assert req == b"held"
                with pytest.raises(goipc.TimeoutError):
                    a.call(b"second", timeout=0.05)
                with pytest.raises(goipc.TimeoutError):
                    d.recv_request(timeout=0.1)  # "second" was not sent
                d.reply(cid, b"done")
                held_call.join(30)

    for bad in (0, -1, 65537, 1 << 70):
        with pytest.raises(ValueError, match="max_inflight_calls"):
            goipc.dial(os.path.join(sockdir, "none.sock"), timeout=1, max_inflight_calls=bad)
        with pytest.raises(ValueError, match="max_inflight_calls"):
            goipc.listen(os.path.join(sockdir, "none.sock"), max_inflight_calls=bad)
    for bad in (1.5, "2", True):
        with pytest.raises(TypeError, match="max_inflight_calls"):
            goipc.dial(os.path.join(sockdir, "none.sock"), timeout=1, max_inflight_calls=bad)
    with goipc.listen(os.path.join(sockdir, "max.sock"), max_inflight_calls=65536):
        pass
