"""Conn.stats(): counts exactly what was sent and received (through every
send and receive call), sees a message in flight, agrees with what
`goipc stat --json` reads from outside the process, and mirrors the C
struct's layout."""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import time

import pytest

import goipc
from goipc import _lib

from conftest import REPO, goipc_bin, make_pair


def exchange(a: goipc.Conn, b: goipc.Conn, n: int) -> int:
    """n messages of sizes 0, 3, 6, ... from a to b through send / reserve,
    received through recv / recv_into / recv_view; returns the bytes."""
    total = 0
    buf = bytearray(1000)
    for i in range(n):
        m = bytes([i & 0xFF]) * (i * 3 % 1000)
        total += len(m)
        if i % 2:
            with a.reserve(len(m), timeout=10) as mv:
                mv[:] = m
        else:
            a.send(m, timeout=10)
        if i % 3 == 0:
            assert b.recv(timeout=10) == m
        elif i % 3 == 1:
            assert b.recv_into(buf, timeout=10) == len(m)
        else:
            with b.recv_view(timeout=10) as v:
                assert len(v) == len(m)
    return total


def test_stats_count_exactly(sockdir):
    before = time.time_ns()
    ln, c, s = make_pair(os.path.join(sockdir, "stats.sock"), ring_size=1 << 16, max_message_size=1000)
    try:
        up, down = exchange(c, s, 1001), exchange(s, c, 333)
        assert up > 2 * (1 << 16)  # both rings wrapped: padding must not count
        cs, ss = c.stats(), s.stats()
        assert isinstance(cs, goipc.Stats) and isinstance(cs.sent, goipc.DirectionStats)
        assert (cs.sent.messages, cs.sent.bytes, ss.received.messages, ss.received.bytes) == (1001, up, 1001, up)
        assert (ss.sent.messages, ss.sent.bytes, cs.received.messages, cs.received.bytes) == (333, down, 333, down)
        for d in (cs.sent, cs.received, ss.sent, ss.received):
            assert d.capacity == 1 << 16 and d.in_use == 0
            assert not d.sender_parked and not d.receiver_parked
        assert cs.dialer and not ss.dialer
        assert cs.peer_pid == ss.peer_pid == os.getpid()
        assert before - 10**9 <= cs.opened_ns <= time.time_ns()

        # A message not yet received: its frame (8-byte header, payload
        # padded to 8) is in use on both ends of the ring.
        c.send(b"x" * 100)
        cs, ss = c.stats(), s.stats()
        assert cs.sent.in_use == ss.received.in_use == 112
        assert (cs.sent.messages, ss.received.messages) == (1002, 1001)
    finally:
        c.close()
        s.close()
        ln.close()
    with pytest.raises(goipc.ClosedError):
        c.stats()


def test_stats_agree_with_goipc_stat(go_pong):
    """The counters of a Python end, as Conn.stats() returns them and as
    `goipc stat --json` reads them from the segment."""
    with goipc.dial(go_pong.path, timeout=10) as c:
        for i in range(250):
            m = b"\x01" * (i % 64)
            c.send(m)
            assert c.recv(timeout=10) == m
        mine = c.stats()
        out = subprocess.run(
            [goipc_bin(), "stat", "--json", "--pid", str(os.getpid())], capture_output=True, timeout=60, check=True
        )
        ends = [e for e in json.loads(out.stdout)["connections"] if e["path"] == go_pong.path]
        assert len(ends) == 1, out.stdout
        e = ends[0]
        assert e["pid"] == os.getpid() and e["role"] == "dialer" and e["peer_pid"] == mine.peer_pid == go_pong.proc.pid
        sent_bytes = sum(i % 64 for i in range(250))
        assert (e["messages_sent"], e["bytes_sent"]) == (mine.sent.messages, mine.sent.bytes) == (250, sent_bytes)
        assert (e["messages_received"], e["bytes_received"]) == (mine.received.messages, mine.received.bytes)
        assert (e["send_parks"], e["recv_parks"]) == (mine.sent.parks, mine.received.parks)


def test_stats_layout_matches_header():
    """The offsets that capi/goipc_shim.c asserts with _Static_assert."""
    text = (REPO / "capi" / "goipc_shim.c").read_text()
    for struct, cls in (("goipc_stats", _lib.Stats), ("goipc_direction_stats", _lib.DirectionStats)):
        pairs = re.findall(r"offsetof\(%s, (\w+)\) == (\d+)" % struct, text)
        assert pairs, struct
        for field, off in pairs:
            assert getattr(cls, field).offset == int(off), (struct, field)
        size = re.search(r"sizeof\(%s\) == (\d+)" % struct, text)
        assert size and ctypes.sizeof(cls) == int(size.group(1)), struct
