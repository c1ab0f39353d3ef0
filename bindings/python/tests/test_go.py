"""Python and Go across processes: a Python producer with the Go consumer
(`goipc pong`), a Go producer (`goipc ping`) with a Python consumer,
a Go consumer killed with SIGKILL, and the `python -m goipc.ping` and
`python -m goipc.bench` tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Tuple

import pytest

import goipc
from goipc import messages

from conftest import GoPong, child_env, goipc_bin


def test_e2e_python_producer_go_consumer(go_pong):
    with goipc.dial(go_pong.path, timeout=10) as c:
        for i in range(1000):
            m = i.to_bytes(8, "little") * (1 + i % 50)
            c.send(m)
            assert c.recv(timeout=10) == m
        buf = bytearray(64)
        c.send(bytes(range(64)))
        assert c.recv_into(buf, timeout=10) == 64 and buf == bytes(range(64))
        c.send(b"view")
        with c.recv_view(timeout=10) as mv:
            assert bytes(mv) == b"view"


def test_e2e_python_ping_go_pong(go_pong):
    """The Go consumer answers a Ping with a Pong carrying its seq and
    payload (or, before it learnt Pongs, echoes the Ping)."""
    with goipc.dial(go_pong.path, timeout=10) as c:
        c.send_ping(1, b"abc")
        m = messages.parse(c.recv(timeout=10))
        if isinstance(m, messages.Ping):
            pytest.skip("this goipc pong echoes instead of answering Pongs")
        assert m.seq == 1 and m.payload == b"abc" and m.ping_sent_ns > 0 and m.received_ns > 0
        for i in range(2, 500):
            payload = bytes([i & 0xFF]) * (i % 100)
            c.send_ping(i, payload)
            p = c.recv_pong(timeout=10)
            assert p.seq == i and p.payload == payload
        c.send(messages.build_ping(77, b"built in Python"))
        assert messages.parse_pong(c.recv(timeout=10))[:2] == (77, b"built in Python")


def test_go_consumer_sigkill_gives_peer_closed(sockdir):
    pong = GoPong(os.path.join(sockdir, "kill.sock"))
    try:
        with goipc.dial(pong.path, timeout=10) as c:
            c.send(b"alive?")
            assert c.recv(timeout=10) == b"alive?"
            pong.kill()
            t0 = time.monotonic()
            with pytest.raises(goipc.PeerClosedError) as ei:
                c.recv(timeout=20)  # a timeout here would be a failure
            assert time.monotonic() - t0 < 10
            assert ei.value.status == 4
            with pytest.raises(goipc.PeerClosedError):
                for _ in range(100000):  # fills the ring at most
                    c.send(b"x" * 1000, timeout=20)
    finally:
        pong.stop()


def test_go_consumer_sigkill_while_blocked(sockdir):
    """A recv() blocked without a timeout returns PeerClosedError when the
    Go consumer dies."""
    pong = GoPong(os.path.join(sockdir, "kill2.sock"))
    try:
        with goipc.dial(pong.path, timeout=10) as c:
            errs = []

            def wait():
                try:
                    c.recv()
                except goipc.Error as e:
                    errs.append(e)

            t = threading.Thread(target=wait)
            t.start()
            while c._pool:
                time.sleep(0.001)
            pong.kill()
            t.join(20)
            assert not t.is_alive()
            assert len(errs) == 1 and isinstance(errs[0], goipc.PeerClosedError)
    finally:
        pong.stop()


def _python_pong_server(ln, mode, done):
    try:
        with ln.accept(timeout=30) as c:
            while True:
                try:
                    if mode == "pingpong":
                        p = c.recv_ping(timeout=30)
                        c.send_pong(p.seq, p.sent_ns, p.payload)
                    else:
                        c.send(c.recv(timeout=30))
                except goipc.PeerClosedError:
                    return
    finally:
        done.set()


@pytest.mark.parametrize("mode", ["pingpong", "raw"])
def test_e2e_go_producer_python_consumer(sockdir, mode):
    """`goipc ping` (Go) against a Python consumer that answers Pongs
    (recv_ping/send_pong) or echoes (recv/send)."""
    path = os.path.join(sockdir, "pypong.sock")
    done = threading.Event()
    with goipc.listen(path) as ln:
        t = threading.Thread(target=_python_pong_server, args=(ln, mode, done))
        t.start()
        args = [goipc_bin(), "ping", "--dial", path, "-n", "2000", "--warmup", "100", "--size", "32"]
        if mode == "raw":
            args.append("--raw")
        r = subprocess.run(args, capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert b"p50" in r.stdout
        assert (b"Ping/Pong" if mode == "pingpong" else b"raw echo") in r.stdout
        assert done.wait(30)
        t.join(10)


def ping_tool(*args: str) -> Tuple[int, dict]:
    """Runs `python -m goipc.ping` (the ping-pong example's Python ping);
    returns its exit status and its JSON line."""
    r = subprocess.run(
        [sys.executable, "-m", "goipc.ping", *args], capture_output=True, timeout=120, env=child_env()
    )
    lines = r.stdout.decode().strip().splitlines()
    assert lines, "goipc.ping printed nothing: %r" % r.stderr
    return r.returncode, json.loads(lines[-1])


@pytest.mark.parametrize("flags", [[], ["--typed"], ["--call"], ["--typed", "--call", "--threads", "3"]])
def test_ping_tool(go_pong, flags):
    """The installed package runs the example's ping: raw echo, Ping/Pong,
    calls, calls from threads, every answer checked."""
    code, line = ping_tool("--dial", go_pong.path, "-n", "600", "--warmup", "30", "--size", "100", *flags)
    assert code == 0 and "error" not in line, line
    assert (line["lang"], line["iters"], line["size"]) == ("python", 600, 100), line
    assert line["typed"] == ("--typed" in flags) and line["call"] == ("--call" in flags), line
    assert 0 < line["p50_ns"] <= line["p99_ns"] <= line["max_ns"], line


def test_ping_tool_errors(sockdir):
    code, line = ping_tool("--dial", os.path.join(sockdir, "none.sock"), "-n", "10")
    assert code == 1
    assert "none.sock" in line["error"], line


def test_bench_tool_smoke():
    r = subprocess.run(
        [sys.executable, "-m", "goipc.bench", "-n", "300", "--rounds", "2", "--warmup", "50", "--goipc-bin", goipc_bin()],
        capture_output=True,
        timeout=120,
        env=child_env(),
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "goipc Python->Go (send + recv_into)" in out and "socketpair" in out and "ratio:" in out


def test_aio_bench_tool_smoke():
    # `make bench-python-aio` runs this module; a smoke run keeps its
    # imports and both parts working (it once imported a helper that moved).
    r = subprocess.run(
        [sys.executable, "-m", "goipc.aio_bench", "-n", "200", "--rounds", "1", "--warmup", "20",
         "--conns", "8", "--conn-rounds", "10", "--pairs", "2", "--goipc-bin", goipc_bin()],
        capture_output=True,
        timeout=180,
        env=child_env(),
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "goipc.aio AsyncConn -> Go pong" in out and "goipc.aio: 8 connections x 10 round trips" in out, out
    assert "asyncio alone (a task suspended for one pass of the loop per round trip, no I/O)" in out, out
    assert out.count("goipc.aio / streams = ") == 2 and "median of 2 pairs" in out, out
    # The thread goal is judged once, on a process that runs only goipc.aio's
    # program; the pairs report this process's count so far.
    assert out.count("threads in this process so far: ") == 2, out
    alone = [line for line in out.splitlines() if line.startswith("in a process of its own: goipc.aio: 8 connections x 10 round trips")]
    assert len(alone) == 1 and "(goal <= 8: " in alone[0] and out.count("(goal <= 8: ") == 1, out
    # The direct program (goipc.aio's ceiling) runs only with the extension,
    # which the child loads as this process did (same environment).
    direct = out.count("calling goipc._speedups itself (no goipc.aio code):")
    goipc._lib.load()
    assert direct == (2 if goipc._lib.state.speedups is not None else 0), out
