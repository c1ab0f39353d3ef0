#!/usr/bin/env python3
"""The ping-pong example in Python (examples/README.md): a producer that
times round trips to a Go consumer that echoes every message. It is also
the Python peer of ``goipc bench --peers python`` (bench/peers.go,
docs/BENCHMARKS.md "Cross-language rows")::

    build/venv/bin/python examples/ping-pong/python/ping.py \\
        --transport goipc|unix --path PATH --size N --iters N --warmup N

The consumer (``goipc bench`` or ``go run ./examples/ping-pong/go pong``)
listens on PATH and echoes every message. This script connects to it
and does warmup + iters round trips of SIZE bytes:

* goipc: through the ``goipc`` package (the ctypes binding of
  libgoipc.so): ``goipc.dial``, then ``Conn.send`` + ``Conn.recv_into``
  into one bytearray;
* unix: the standard ``socket`` module, AF_UNIX SOCK_STREAM: ``sendall``
  the SIZE bytes, ``recv_into`` until SIZE bytes are back.

Each round trip after the warm-up is timed with ``time.perf_counter_ns``
(CLOCK_MONOTONIC on Linux); every reply, warm-up included, must equal what
was sent (each message carries its sequence number in its first 8 bytes).
Prints one JSON line on stdout, with the round-trip percentiles in ns, or
``{"error": ...}`` and exit status 1 on any failure.

The ``goipc`` package is imported from the repository's
bindings/python/src (so a clean checkout needs no ``pip install``; the
package finds build/lib/libgoipc.so of the repository), else from wherever
it is installed (a wheel, ``make wheel``). It needs the ``flatbuffers``
module: run it with build/venv's python (``make venv``).
"""

import argparse
import json
import os
import socket
import struct
import sys
import time

_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "bindings", "python", "src")
if os.path.isdir(os.path.join(_SRC, "goipc")):
    sys.path.insert(0, _SRC)

LANG = "python"
DIAL_TIMEOUT = 10.0  # seconds, connect + handshake
_SEQ = struct.Struct("<Q")


class PeerError(Exception):
    """A failed round trip or connection: reported in the JSON line."""


def payload(size):
    """The message pattern (the sequence number is stamped per message)."""
    return bytearray((j * 131 + 7) & 0xFF for j in range(size))


def stamp(msg, seq):
    """Writes seq into the first (up to) 8 bytes of msg, little-endian."""
    if len(msg) >= 8:
        _SEQ.pack_into(msg, 0, seq)
    else:
        msg[:] = _SEQ.pack(seq)[: len(msg)]


def check(i, msg, reply, got):
    if got != len(msg):
        raise PeerError("round trip %d: reply of %d bytes, sent %d" % (i, got, len(msg)))
    if reply != msg:
        at = next(j for j in range(len(msg)) if reply[j] != msg[j])
        raise PeerError(
            "round trip %d: the reply differs from what was sent at byte %d (0x%02x, want 0x%02x)"
            % (i, at, reply[at], msg[at])
        )


def run_goipc(path, size, iters, warmup):
    try:
        import goipc
    except ImportError as e:
        raise PeerError(
            "cannot import the goipc package: %s (run this with build/venv/bin/python: make venv)" % e
        ) from e

    kw = {}
    if size > 1 << 20:  # the consumer listens with max(1 MiB, size)
        kw["max_message_size"] = size
    try:
        conn = goipc.dial(path, timeout=DIAL_TIMEOUT, **kw)
    except goipc.Error as e:
        raise PeerError("goipc.dial %s: %s" % (path, e)) from e
    msg, reply = payload(size), bytearray(size)
    clock = time.perf_counter_ns
    send, recv_into = conn.send, conn.recv_into
    rtts = []
    append = rtts.append
    try:
        for i in range(warmup + iters):
            stamp(msg, i)
            reply[: min(size, 16)] = bytes(min(size, 16))  # a stale buffer must not pass
            t0 = clock()
            send(msg)
            got = recv_into(reply)
            t1 = clock()
            check(i, msg, reply, got)
            if i >= warmup:
                append(t1 - t0)
    except goipc.Error as e:
        raise PeerError("round trip %d: %s" % (i, e)) from e
    finally:
        conn.close()
    return rtts


def run_unix(path, size, iters, warmup):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # The consumer listens before starting us; retry briefly all the same.
        deadline = time.monotonic() + DIAL_TIMEOUT
        while True:
            try:
                s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError) as e:
                if time.monotonic() > deadline:
                    raise PeerError("connect %s: %s" % (path, e)) from e
                time.sleep(0.01)
        msg, reply = payload(size), bytearray(size)
        view = memoryview(reply)
        clock = time.perf_counter_ns
        sendall, recv_into = s.sendall, s.recv_into
        rtts = []
        append = rtts.append
        for i in range(warmup + iters):
            stamp(msg, i)
            reply[: min(size, 16)] = bytes(min(size, 16))
            t0 = clock()
            sendall(msg)
            got = 0
            while got < size:
                k = recv_into(view[got:])
                if k == 0:
                    raise PeerError(
                        "round trip %d: the consumer closed the socket after %d of %d bytes" % (i, got, size)
                    )
                got += k
            t1 = clock()
            check(i, msg, reply, got)
            if i >= warmup:
                append(t1 - t0)
        return rtts
    except OSError as e:
        raise PeerError("unix socket: %s" % e) from e
    finally:
        s.close()


def percentile(sorted_ns, permille):
    """Nearest rank: the smallest sample with at least permille/1000 of
    them at or below it (as the C and Rust peers compute it)."""
    n = len(sorted_ns)
    rank = -(-permille * n // 1000)  # ceil, in integers
    return sorted_ns[max(1, min(n, rank)) - 1]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="ping.py", description="The Python peer of goipc bench --peers.")
    ap.add_argument("--transport", required=True, help="goipc or unix")
    ap.add_argument("--path", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--iters", type=int, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    a = ap.parse_args(argv)
    line = {"lang": LANG, "transport": a.transport, "size": a.size, "iters": a.iters}
    try:
        if a.size < 0 or a.iters < 1 or a.warmup < 0:
            raise PeerError("need --size >= 0, --iters >= 1, --warmup >= 0")
        if a.transport == "goipc":
            rtts = run_goipc(a.path, a.size, a.iters, a.warmup)
        elif a.transport == "unix":
            rtts = run_unix(a.path, a.size, a.iters, a.warmup)
        else:
            raise PeerError("unknown transport %r (goipc or unix)" % a.transport)
    except PeerError as e:
        line["error"] = str(e)
        print("ping.py: %s" % e, file=sys.stderr)
        print(json.dumps(line), flush=True)
        return 1
    rtts.sort()
    line.update(
        p50_ns=percentile(rtts, 500),
        p90_ns=percentile(rtts, 900),
        p99_ns=percentile(rtts, 990),
        p999_ns=percentile(rtts, 999),
        max_ns=rtts[-1],
    )
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
