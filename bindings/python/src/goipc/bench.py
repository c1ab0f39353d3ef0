"""``python -m goipc.bench``: Python-to-Go round trips over goipc next to a
Python ``socket.socketpair`` ping/pong, in the same run.

    python -m goipc.bench                       # starts build/bin/goipc pong
    python -m goipc.bench --goipc-bin PATH -n 20000 --rounds 5 --size 64

What it measures, per round trip, with ``time.perf_counter_ns()``:

* goipc: the round trips of the ping-pong example's Python ping
  (examples/ping-pong/python/ping.py, loaded through ``goipc.ping``: the
  round-trip code is written once, there), in this process, to a Go
  consumer (``goipc pong``, started here): ``Conn.send`` +
  ``Conn.recv_into`` of ``--size``-byte messages, every answer checked
  against what was sent; default spin settings on both sides;
* goipc calls: the example's ``--call`` round trips, the same bytes as a
  call request answered by the same consumer with the same echo
  (``Conn.call_into``, one library call per round trip);
* socketpair: this process sends the same bytes over one end of an
  AF_UNIX ``socket.socketpair()`` to a child Python process that echoes
  them back (``sendall`` / ``recv``), the usual way two Python processes
  talk.

The two alternate in ``--rounds`` rounds of ``-n`` round trips each, so
that both see the same machine load; the p50 over all rounds of each is
compared, and the ratio socketpair/goipc is printed (the project's targets:
at least 5x for send + recv, 10x for a call). The VM this was written on is noisy: compare within a run.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, List, Optional, Sequence

from . import has_calls
from .conn import dial
from .ping import load_example

_ECHO_CHILD = r"""
import socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
recv, sendall = s.recv, s.sendall
while True:
    b = recv(65536)
    if not b:
        break
    sendall(b)
"""


def find_goipc_bin() -> Optional[str]:
    """$GOIPC_BIN, else build/bin/goipc of the repository this package runs
    from, else None."""
    env = os.environ.get("GOIPC_BIN")
    if env:
        return env
    here = Path(__file__).resolve()
    if len(here.parents) >= 5 and here.parents[1].name == "src" and here.parents[3].name == "bindings":
        cand = here.parents[4] / "build" / "bin" / "goipc"
        if cand.is_file():
            return str(cand)
    return None


def wait_ready(proc: subprocess.Popen, stream: IO[bytes], want: bytes, timeout: float) -> bytes:
    """Reads ``stream`` until a line containing ``want``; returns it.
    Raises RuntimeError if the process exits or the timeout passes."""
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("no %r from %s within %.0f s (got %r)" % (want, proc.args, timeout, buf))
            if sel.select(left):
                chunk = os.read(stream.fileno(), 4096)
                if not chunk:
                    raise RuntimeError("%s exited before %r (got %r)" % (proc.args, want, buf))
                buf += chunk
                for line in buf.splitlines():
                    if want in line:
                        return line
    finally:
        sel.close()


def percentile(sorted_ns: Sequence[int], p: float) -> int:
    """The p-th percentile (0..100) of an ascending list, nearest rank
    below."""
    return sorted_ns[int(p / 100.0 * (len(sorted_ns) - 1))]


def socket_round(sock: socket.socket, n: int, size: int) -> List[int]:
    """n round trips of size bytes through a Python echo child."""
    msg = bytes(size)
    buf = bytearray(max(size, 1))
    view = memoryview(buf)
    sendall, recv_into = sock.sendall, sock.recv_into
    clock = time.perf_counter_ns
    out: List[int] = []
    append = out.append
    for _ in range(n):
        t0 = clock()
        sendall(msg)
        got = 0
        while got < size:
            k = recv_into(view[got:size])
            if not k:
                raise RuntimeError("the socketpair echo child exited")
            got += k
        append(clock() - t0)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line; returns the exit status (1 if a side failed)."""
    ap = argparse.ArgumentParser(
        prog="python -m goipc.bench",
        description="Python->Go goipc round trips vs a Python socket.socketpair ping/pong, same run.",
    )
    ap.add_argument("-n", type=int, default=20000, help="round trips per round and side (default 20000)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    ap.add_argument("--warmup", type=int, default=2000, help="round trips before measuring, per side (default 2000)")
    ap.add_argument("--size", type=int, default=64, help="message size in bytes (default 64)")
    ap.add_argument("--goipc-bin", default=None, help="the goipc CLI (default: $GOIPC_BIN or build/bin/goipc)")
    ap.add_argument("--dial", default=None, metavar="PATH", help="use a running echo consumer instead of starting one")
    ap.add_argument("--no-calls", dest="calls", action="store_false", help="skip the call series (Conn.call_into)")
    args = ap.parse_args(argv)
    if args.n <= 0 or args.rounds <= 0 or args.size <= 0 or args.warmup < 0:
        ap.error("-n, --rounds and --size must be > 0, --warmup >= 0")

    tmp = tempfile.mkdtemp(prefix="goipc-bench-")
    pong: Optional[subprocess.Popen] = None
    child: Optional[subprocess.Popen] = None
    a = b = None
    try:
        path = args.dial
        if path is None:
            exe = args.goipc_bin or find_goipc_bin()
            if not exe:
                ap.error("no goipc CLI: pass --goipc-bin, set GOIPC_BIN, or run `make build`")
            path = os.path.join(tmp, "pong.sock")
            pong = subprocess.Popen([exe, "pong", "--listen", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert pong.stdout is not None
            wait_ready(pong, pong.stdout, b"listening on", 10.0)

        a, b = socket.socketpair()
        child = subprocess.Popen([sys.executable, "-c", _ECHO_CHILD, str(b.fileno())], pass_fds=[b.fileno()])
        b.close()

        round_trips = load_example()["round_trips"]  # (conn, seqs, size, typed, call) -> times in ns

        def goipc_series(call: bool):
            return lambda conn, n, size: round_trips(conn, range(n), size, False, call)

        with dial(path, timeout=10.0) as conn:
            # Series: (name, round function, target ratio socketpair/goipc).
            # Calls need a consumer that answers them (goipc pong does) and
            # a library that has them.
            series = [("send + recv_into", goipc_series(False), 5.0)]
            if args.calls and has_calls():
                series += [("call_into", goipc_series(True), 10.0)]
            for _, fn, _ in series:
                fn(conn, args.warmup, args.size)
            socket_round(a, args.warmup, args.size)
            got: List[List[int]] = [[] for _ in series]
            s_all: List[int] = []
            print("goipc.bench: %d B round trips, %d rounds x %d per series, alternating" % (args.size, args.rounds, args.n))
            print("%-6s" % "round" + "".join("%18s" % (name + " p50") for name, _, _ in series) + "%18s" % "socketpair p50")
            rewarm = min(args.warmup, 2000)
            for r in range(args.rounds):
                line = "%-6d" % (r + 1)
                for k, (_, fn, _) in enumerate(series):
                    # Each series warms up again after the one before it
                    # (the socketpair series leaves goipc idle for a second
                    # or more: the Go side parks, its spin budget adapts),
                    # so that no series pays for following another.
                    fn(conn, rewarm, args.size)
                    xs = fn(conn, args.n, args.size)
                    got[k] += xs
                    line += "%15.2f us" % (percentile(sorted(xs), 50) / 1e3)
                socket_round(a, rewarm, args.size)
                s = socket_round(a, args.n, args.size)
                s_all += s
                print(line + "%15.2f us" % (percentile(sorted(s), 50) / 1e3))
        for xs in got:
            xs.sort()
        s_all.sort()
        print()
        print("%-40s %10s %10s %10s" % ("all rounds", "p50", "p99", "mean"))
        for name, xs in [("goipc Python->Go (%s)" % n, got[k]) for k, (n, _, _) in enumerate(series)] + [
            ("socketpair Python<->Python", s_all)
        ]:
            print(
                "%-40s %7.2f us %7.2f us %7.2f us"
                % (name, percentile(xs, 50) / 1e3, percentile(xs, 99) / 1e3, sum(xs) / len(xs) / 1e3)
            )
        s50 = percentile(s_all, 50)
        for k, (name, _, target) in enumerate(series):
            ratio = s50 / max(percentile(got[k], 50), 1)
            verdict = "met" if ratio >= target else "NOT met"
            print("ratio: socketpair p50 / goipc (%s) p50 = %.1fx (target >= %gx: %s)" % (name, ratio, target, verdict))
        return 0
    finally:
        if a is not None:
            a.close()
        if child is not None:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if pong is not None:
            stop_process(pong)
        try:
            os.rmdir(tmp)
        except OSError:
            pass


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it is not gone within 10 s; closes its
    pipes."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for s in (proc.stdout, proc.stderr):
        if s is not None:
            s.close()


if __name__ == "__main__":
    sys.exit(main())
