"""``python -m goipc.stream_bench``: a Python producer streaming small
messages to a Go consumer, one :meth:`Conn.send` per message next to
:meth:`Conn.send_batch`, in the same run.

    python -m goipc.stream_bench --consumer build/examples/many-producers-go
    python -m goipc.stream_bench --consumer PATH -n 200000 --rounds 3 --batch 64

The Go consumer is the many-producers example's (examples/many-producers/go,
``consumer``): it receives each connection's messages, checks that they
are in order, and answers "done" with how many it received. Each series
of each round is one connection: ``-n`` messages of 64 bytes
("NAME" padded, a space, the index in 10 digits: the consumer checks the
index), then "done"; the time runs from the first send until the
consumer's count arrives, so it covers the Go side receiving every message,
and the count is checked. The series alternate, so both see the same
machine load; the machine this was written on is noisy: compare within a
run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from typing import Callable, List, Optional, Sequence

from .bench import stop_process, wait_ready
from .conn import Conn, dial

MESSAGE_SIZE = 64


def messages(name: str, n: int) -> List[bytes]:
    """The n messages of one producer, each MESSAGE_SIZE bytes."""
    head = name.encode().ljust(MESSAGE_SIZE - 11, b"x")
    return [b"%s %010d" % (head, i) for i in range(n)]


def one_by_one(conn: Conn, msgs: List[bytes], batch: int) -> None:
    send = conn.send
    for m in msgs:
        send(m)


def batched(conn: Conn, msgs: List[bytes], batch: int) -> None:
    send_batch = conn.send_batch
    for i in range(0, len(msgs), batch):
        send_batch(msgs[i : i + batch])


def run_series(path: str, name: str, n: int, batch: int, fn: Callable[[Conn, List[bytes], int], None]) -> float:
    """One connection: n messages sent by fn, then "done"; returns the
    messages per second until the consumer's (checked) count came back."""
    msgs = messages(name, n)
    with dial(path, timeout=10.0) as conn:
        t0 = time.perf_counter()
        fn(conn, msgs, batch)
        conn.send(b"done")
        (counted,) = struct.unpack("<Q", conn.recv(timeout=60.0))
        dt = time.perf_counter() - t0
    if counted != n:
        raise RuntimeError("%s: sent %d messages, the consumer counted %d" % (name, n, counted))
    return n / dt


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m goipc.stream_bench",
        description="Python->Go stream of 64 B messages: Conn.send vs Conn.send_batch, same run.",
    )
    ap.add_argument("--consumer", required=True, help="the many-producers Go example (build/examples/many-producers-go)")
    ap.add_argument("-n", type=int, default=200000, help="messages per series and round (default 200000)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--batch", type=int, default=64, help="messages per send_batch call (default 64)")
    args = ap.parse_args(argv)
    if args.n <= 0 or args.rounds <= 0 or args.batch <= 0:
        ap.error("-n, --rounds and --batch must be > 0")
    series = [("send", one_by_one), ("send_batch(%d)" % args.batch, batched)]
    tmp = tempfile.mkdtemp(prefix="goipc-stream-")
    path = os.path.join(tmp, "consumer.sock")
    consumer = subprocess.Popen(
        [args.consumer, "consumer", "--listen", path, "--producers", str(args.rounds * len(series))],
        stdout=subprocess.PIPE,
    )
    try:
        assert consumer.stdout is not None
        wait_ready(consumer, consumer.stdout, b"listening on", 10.0)
        print("goipc.stream_bench: Python producer -> Go consumer, %d B messages, %d per series, %d rounds"
              % (MESSAGE_SIZE, args.n, args.rounds))
        print("%-6s" % "round" + "".join("%22s" % name for name, _ in series))
        rates: List[List[float]] = [[] for _ in series]
        for r in range(args.rounds):
            line = "%-6d" % (r + 1)
            for k, (name, fn) in enumerate(series):
                rate = run_series(path, "py%d-%d" % (r, k), args.n, args.batch, fn)
                rates[k].append(rate)
                line += "%16.2f M/s" % (rate / 1e6)
            print(line)
        best = [max(x) for x in rates]
        print("best: " + ", ".join("%s %.2f M msgs/s" % (name, b / 1e6) for (name, _), b in zip(series, best))
              + "; send_batch / send = %.1fx" % (best[1] / best[0]))
        return 0
    finally:
        stop_process(consumer)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
