"""``python -m goipc.ping``: ping a goipc consumer and print round-trip
percentiles.

    python -m goipc.ping --dial /tmp/pong.sock -n 100000 --size 64

It first sends one FlatBuffers Ping and looks at the answer:

* a Pong with the same seq (``goipc pong`` answers Pings with Pongs): it
  measures Ping/Pong round trips, each Ping built in place in the ring and
  each Pong verified in Go (``Conn.send_ping`` / ``Conn.recv_pong``: one
  library call each), checking every Pong's seq and payload;
* the Ping itself, byte for byte (an exact-echo consumer): it measures raw
  echo round trips of ``--size``-byte messages (``Conn.send`` /
  ``Conn.recv_into``), checking every answer.

``--mode pingpong`` or ``--mode raw`` skips the detection. The output says
which was measured. Times are ``time.perf_counter_ns()`` around each round
trip, so they include the Python and ctypes overhead of both calls.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional, Sequence, Tuple

from . import messages
from .conn import Conn, dial
from .errors import Error


def percentile(sorted_ns: Sequence[int], p: float) -> int:
    """The p-th percentile (0..100) of an ascending list, nearest rank
    below (as `goipc ping` computes it)."""
    if not sorted_ns:
        return 0
    return sorted_ns[int(p / 100.0 * (len(sorted_ns) - 1))]


def _us(ns: float) -> str:
    return "%.2f us" % (ns / 1000.0)


def summary(rtts_ns: List[int]) -> str:
    """One line of percentiles of round-trip times in ns."""
    s = sorted(rtts_ns)
    return "round trip: min %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s" % (
        _us(s[0]),
        _us(percentile(s, 50)),
        _us(percentile(s, 90)),
        _us(percentile(s, 99)),
        _us(percentile(s, 99.9)),
        _us(s[-1]),
        _us(sum(s) / len(s)),
    )


def _pattern(size: int) -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(size))


def detect(conn: Conn, size: int, timeout: float) -> str:
    """Sends one Ping and returns ``"pingpong"`` if the consumer answered
    with its Pong, ``"raw"`` if it echoed the Ping unchanged.

    Raises:
        Error: neither (the message says what came back).
    """
    payload = _pattern(size)
    conn.send_ping(0, payload, timeout)
    reply = conn.recv(timeout)
    try:
        m = messages.parse(reply)
    except messages.InvalidMessageError as e:
        raise Error("goipc.ping: the consumer's answer to a Ping is neither a Pong nor the Ping (%s)" % e) from None
    if isinstance(m, messages.Pong) and m.seq == 0 and m.payload == payload:
        return "pingpong"
    if isinstance(m, messages.Ping) and m.seq == 0 and m.payload == payload:
        return "raw"
    raise Error("goipc.ping: unexpected answer to Ping 0: %r" % (m,))


def pingpong_loop(conn: Conn, warmup: int, n: int, size: int, timeout: float) -> Tuple[List[int], float]:
    """warmup + n Ping/Pong round trips; returns (the n round trips in ns,
    elapsed seconds of the measured part)."""
    payload = _pattern(size)
    send_ping, recv_pong = conn.send_ping, conn.recv_pong
    clock = time.perf_counter_ns
    rtts: List[int] = []
    append = rtts.append
    start = 0
    for i in range(1, warmup + n + 1):
        if i == warmup + 1:
            start = clock()
        t0 = clock()
        send_ping(i, payload, timeout)
        pong = recv_pong(timeout)
        t1 = clock()
        if pong.seq != i or pong.payload != payload:
            raise Error("goipc.ping: Pong %d answers seq %d (or its payload differs)" % (i, pong.seq))
        if i > warmup:
            append(t1 - t0)
    return rtts, (clock() - start) / 1e9


def raw_loop(conn: Conn, warmup: int, n: int, size: int, timeout: float) -> Tuple[List[int], float]:
    """warmup + n raw echo round trips of size-byte messages (the first 8
    bytes carry the sequence number); every answer is checked."""
    msg = bytearray(_pattern(size))
    reply = bytearray(size)
    send, recv_into = conn.send, conn.recv_into
    clock = time.perf_counter_ns
    rtts: List[int] = []
    append = rtts.append
    start = 0
    for i in range(warmup + n):
        if i == warmup:
            start = clock()
        if size >= 8:
            msg[0:8] = i.to_bytes(8, "little")
        t0 = clock()
        send(msg, timeout)
        got = recv_into(reply, timeout)
        t1 = clock()
        if got != size or reply != msg:
            raise Error("goipc.ping: answer %d differs from what was sent" % i)
        if i >= warmup:
            append(t1 - t0)
    return rtts, (clock() - start) / 1e9


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line; returns the exit status."""
    ap = argparse.ArgumentParser(
        prog="python -m goipc.ping",
        description="Ping a goipc consumer (e.g. `goipc pong --listen PATH`) and print round-trip percentiles.",
    )
    ap.add_argument("--dial", required=True, metavar="PATH", help="Unix socket path of the consumer")
    ap.add_argument("-n", type=int, default=100000, help="round trips to measure (default 100000)")
    ap.add_argument("--size", type=int, default=64, help="payload (pingpong) or message (raw) size in bytes (default 64)")
    ap.add_argument("--warmup", type=int, default=1000, help="round trips before measuring (default 1000)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for one answer (default 10)")
    ap.add_argument(
        "--mode",
        choices=("auto", "pingpong", "raw"),
        default="auto",
        help="auto (default): Ping/Pong if the consumer answers Pongs, else raw echo",
    )
    args = ap.parse_args(argv)
    if args.n <= 0 or args.size < 0 or args.warmup < 0:
        ap.error("-n must be > 0, --size and --warmup >= 0")
    try:
        with dial(args.dial, timeout=args.timeout, max_message_size=max(messages.pong_size(args.size), 1 << 20)) as conn:
            mode = args.mode
            if mode == "auto":
                mode = detect(conn, args.size, args.timeout)
            if mode == "pingpong":
                rtts, elapsed = pingpong_loop(conn, args.warmup, args.n, args.size, args.timeout)
                what = (
                    "%d Ping/Pong round trips with a %d B payload (the consumer answers Pongs; "
                    "FlatBuffers Message/Ping out, Message/Pong back: Conn.send_ping + Conn.recv_pong)"
                    % (args.n, args.size)
                )
            else:
                rtts, elapsed = raw_loop(conn, args.warmup, args.n, args.size, args.timeout)
                why = "the consumer echoes messages unchanged" if args.mode == "auto" else "--mode raw"
                what = "%d raw echo round trips of %d B messages (%s: Conn.send + Conn.recv_into)" % (
                    args.n,
                    args.size,
                    why,
                )
    except KeyboardInterrupt:
        print("goipc.ping: interrupted", file=sys.stderr)
        return 130
    except Error as e:
        print("goipc.ping: %s" % e, file=sys.stderr)
        return 1
    print("goipc.ping: %s to %s" % (what, args.dial))
    print(summary(rtts))
    print("throughput: %.0f round trips/s (Python; times include the binding's ctypes calls)" % (len(rtts) / elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
