#!/usr/bin/env python3
"""The ping-pong example in Python (examples/README.md): a producer that
times round trips to a consumer that echoes every message. It is the one
Python ping program: the Python peer of ``goipc bench --peers python``
(bench/peers.go, docs/BENCHMARKS.md "Cross-language rows"), of
``make demo`` and of the interop matrix, and what ``python -m goipc.ping``
runs (``goipc.bench`` runs its round trips too)::

    build/venv/bin/python examples/ping-pong/python/ping.py \\
        [--transport goipc|unix] --path PATH [--size N] [--iters N] \\
        [--warmup N] [--typed] [--call] [--threads N] [--asyncio]

(``--dial`` is another name for ``--path``, ``-n`` for ``--iters``.) The
consumer (``goipc pong``, ``goipc bench`` or ``go run
./examples/ping-pong/go pong``) listens on PATH and answers every message.
This script connects to it and does warmup + iters round trips (defaults
1000 + 10000) of SIZE bytes (default 64):

* goipc: through the ``goipc`` package (the ctypes binding of
  libgoipc.so): ``goipc.dial``, then ``Conn.send`` + ``Conn.recv_into``
  into one bytearray. With ``--typed`` each message is the kit's
  FlatBuffers Ping with a SIZE-byte payload (``Conn.send_ping``) and the
  answer a Pong with the same seq and payload (``Conn.recv_pong``). With
  ``--call`` each round trip is one call, a request answered by its reply
  (``Conn.call_into``, or ``Conn.call_ping`` with ``--typed``);
  ``--threads N`` makes the calls from N threads at once on the one
  connection, each checking that it got the reply to its own request
  (the interop matrix's calls scenario; the library releases the GIL
  while a call waits). With ``--asyncio`` the same round trips run in an
  asyncio event loop on :mod:`goipc.aio` (``await conn.send`` + ``await
  conn.recv_into``, ``send_ping`` + ``recv_pong``, ``await conn.call``;
  a typed call is ``call`` of a :func:`goipc.messages.build_ping`, its
  answer read with :func:`goipc.messages.parse_pong`), and ``--threads N``
  makes the calls from N tasks of the one loop instead of N threads;
* unix: the standard ``socket`` module, AF_UNIX SOCK_STREAM: ``sendall``
  the SIZE bytes, ``recv_into`` until SIZE bytes are back.

The warm-up round trips come first, then the timed ones; with threads,
round trip i is made by thread i mod N. PATH may also be a nats://
address (docs/NATS.md): libgoipc dials it through a NATS server.

Each round trip after the warm-up is timed with ``time.perf_counter_ns``
(CLOCK_MONOTONIC on Linux); every reply, warm-up included, must equal what
was sent (each message carries its sequence number in its first 8 bytes).
Prints one JSON line on stdout, with the round-trip percentiles in ns (and
``per_s``, timed round trips per second of wall time; ``asyncio`` says
whether they ran on goipc.aio), or
``{"error": ...}`` and exit status 1 on any failure.

The ``goipc`` package is imported from the repository's
bindings/python/src (so a clean checkout needs no ``pip install``; the
package finds build/lib/libgoipc.so of the repository), else from wherever
it is installed (a wheel, ``make wheel``). It needs the ``flatbuffers``
module: run it with build/venv's python (``make venv``).
"""

import argparse
import asyncio
import json
import os
import socket
import struct
import sys
import threading
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


def import_goipc():
    try:
        import goipc
    except ImportError as e:
        raise PeerError(
            "cannot import the goipc package: %s (run this with build/venv/bin/python: make venv)" % e
        ) from e
    return goipc


def dial_options(size, typed):
    """The consumer listens with max(1 MiB, size); a Ping or Pong needs
    room for its fields around the payload."""
    need = size + (128 if typed else 0)
    return {"max_message_size": need} if need > 1 << 20 else {}


def run_goipc(path, size, iters, warmup, typed=False, call=False, threads=1):
    goipc = import_goipc()
    try:
        conn = goipc.dial(path, timeout=DIAL_TIMEOUT, **dial_options(size, typed))
    except goipc.Error as e:
        raise PeerError("goipc.dial %s: %s" % (path, e)) from e
    try:
        phase(conn, 0, warmup, size, typed, call, threads)
        start = time.perf_counter_ns()
        rtts = phase(conn, warmup, warmup + iters, size, typed, call, threads)
        return rtts, (time.perf_counter_ns() - start) / 1e9
    finally:
        conn.close()


async def run_goipc_asyncio(path, size, iters, warmup, typed=False, call=False, tasks=1):
    """run_goipc on goipc.aio, in the running event loop: the calls come
    from ``tasks`` tasks instead of threads."""
    goipc = import_goipc()
    import goipc.aio

    try:
        conn = await goipc.aio.dial(path, timeout=DIAL_TIMEOUT, **dial_options(size, typed))
    except goipc.Error as e:
        raise PeerError("goipc.aio.dial %s: %s" % (path, e)) from e
    try:
        await phase_asyncio(conn, 0, warmup, size, typed, call, tasks)
        start = time.perf_counter_ns()
        rtts = await phase_asyncio(conn, warmup, warmup + iters, size, typed, call, tasks)
        return rtts, (time.perf_counter_ns() - start) / 1e9
    finally:
        conn.close()  # wakes the other tasks when one failed


def phase(conn, first, end, size, typed, call, threads):
    """Round trips first..end-1 on ``threads`` threads (round trip i on
    thread i mod threads); returns their times in ns."""
    if threads == 1:
        return round_trips(conn, range(first, end), size, typed, call)
    results = [None] * threads

    def work(g):
        try:
            results[g] = round_trips(conn, range(first + g, end, threads), size, typed, call)
        except PeerError as e:
            results[g] = e

    ts = [threading.Thread(target=work, args=(g,)) for g in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for r in results:
        if isinstance(r, PeerError):
            raise r
    return [ns for r in results for ns in r]


async def phase_asyncio(conn, first, end, size, typed, call, tasks):
    """phase on goipc.aio: round trip i on task i mod tasks."""
    parts = await asyncio.gather(
        *(round_trips_asyncio(conn, range(first + g, end, tasks), size, typed, call) for g in range(tasks))
    )
    return [ns for r in parts for ns in r]


def round_trips(conn, seqs, size, typed, call):
    """The round trips of seqs, each answer checked; returns their times."""
    import goipc

    msg, reply = payload(size), bytearray(size)
    clock = time.perf_counter_ns
    rtts = []
    append = rtts.append
    round_trip = _round_trip(conn, typed, call)
    i = None
    try:
        for i in seqs:
            stamp(msg, i)
            clear(reply)
            t0 = clock()
            got = round_trip(i, msg, reply)
            t1 = clock()
            check(i, msg, reply, got)
            append(t1 - t0)
    except goipc.Error as e:
        raise PeerError("round trip %d: %s" % (i, e)) from e
    return rtts


async def round_trips_asyncio(conn, seqs, size, typed, call):
    """round_trips with goipc.aio's awaited calls (the same checks; a
    blocking loop cannot await, so the loop is written twice)."""
    import goipc

    msg, reply = payload(size), bytearray(size)
    clock = time.perf_counter_ns
    rtts = []
    round_trip = _round_trip_asyncio(conn, typed, call)
    i = None
    try:
        for i in seqs:
            stamp(msg, i)
            clear(reply)
            t0 = clock()
            got = await round_trip(i, msg, reply)
            t1 = clock()
            check(i, msg, reply, got)
            rtts.append(t1 - t0)
    except goipc.Error as e:
        raise PeerError("round trip %d: %s" % (i, e)) from e
    return rtts


def clear(reply):
    """Zeroes the start of the reply buffer: a stale buffer must not pass."""
    reply[: min(len(reply), 16)] = bytes(min(len(reply), 16))


def copy_answer(answer, reply):
    """Puts (the start of) answer into reply; returns the answer's length."""
    n = min(len(answer), len(reply))
    reply[:n] = answer[:n]
    return len(answer)


def pong_payload(seq, pong, reply):
    """A typed answer: the Pong must carry the Ping's seq; its payload goes
    into reply. Returns the payload's length."""
    if pong.seq != seq:
        raise PeerError("a Pong with seq %d, sent a Ping with seq %d" % (pong.seq, seq))
    return copy_answer(pong.payload, reply)


def _round_trip(conn, typed, call):
    """The round trip of one of the four ways: (seq, msg, reply) -> the
    answer's length, its bytes (a Pong's payload when typed) in reply."""
    if not typed:
        if call:
            return lambda seq, msg, reply: conn.call_into(msg, reply)
        send, recv_into = conn.send, conn.recv_into

        def raw(seq, msg, reply):
            send(msg)
            return recv_into(reply)

        return raw

    def typed_round_trip(seq, msg, reply):
        if call:
            pong = conn.call_ping(seq, msg)
        else:
            conn.send_ping(seq, msg)
            pong = conn.recv_pong()
        return pong_payload(seq, pong, reply)

    return typed_round_trip


def _round_trip_asyncio(conn, typed, call):
    """_round_trip on a goipc.aio.AsyncConn: a coroutine function."""
    from goipc import messages

    async def round_trip(seq, msg, reply):
        if not typed:
            if call:
                return copy_answer(await conn.call(msg), reply)
            await conn.send(msg)
            return await conn.recv_into(reply)
        if call:
            # AsyncConn has no call_ping: the same Ping, built here, as a
            # call request; the reply must be its Pong.
            pong = messages.parse_pong(await conn.call(messages.build_ping(seq, msg)))
        else:
            await conn.send_ping(seq, msg)
            pong = await conn.recv_pong()
        return pong_payload(seq, pong, reply)

    return round_trip


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
        start = clock()
        for i in range(warmup + iters):
            if i == warmup:
                start = clock()
            stamp(msg, i)
            clear(reply)
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
        return rtts, (clock() - start) / 1e9
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
    ap = argparse.ArgumentParser(prog="ping.py", description="The ping-pong example's Python ping.")
    ap.add_argument("--transport", default="goipc", help="goipc (default) or unix")
    ap.add_argument("--path", "--dial", required=True, help="Unix socket path of the consumer")
    ap.add_argument("--size", type=int, default=64, help="message (or Ping payload) size in bytes (default 64)")
    ap.add_argument("--iters", "-n", type=int, default=10000, help="timed round trips (default 10000)")
    ap.add_argument("--warmup", type=int, default=1000, help="untimed round trips first (default 1000)")
    ap.add_argument("--typed", action="store_true", help="FlatBuffers Ping, answered by a Pong")
    ap.add_argument("--call", action="store_true", help="one call per round trip")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads (tasks with --asyncio) making the calls at once (with --call)")
    ap.add_argument("--asyncio", action="store_true", help="run the round trips in an asyncio loop, on goipc.aio")
    a = ap.parse_args(argv)
    line = {"lang": LANG, "transport": a.transport, "size": a.size, "iters": a.iters, "typed": a.typed,
            "call": a.call, "threads": a.threads, "asyncio": a.asyncio}
    try:
        if a.size < 0 or a.iters < 1 or a.warmup < 0 or a.threads < 1:
            raise PeerError("need --size >= 0, --iters >= 1, --warmup >= 0, --threads >= 1")
        if a.threads > 1 and not a.call:
            # Replies to plain messages are not addressed: two receivers on
            # one connection would get each other's answers.
            raise PeerError("--threads needs --call")
        if a.transport == "goipc" and a.asyncio:
            rtts, elapsed = asyncio.run(
                run_goipc_asyncio(a.path, a.size, a.iters, a.warmup, a.typed, a.call, a.threads)
            )
        elif a.transport == "goipc":
            rtts, elapsed = run_goipc(a.path, a.size, a.iters, a.warmup, a.typed, a.call, a.threads)
        elif a.typed or a.call or a.asyncio:
            raise PeerError("--typed, --call and --asyncio need --transport goipc")
        elif a.transport == "unix":
            rtts, elapsed = run_unix(a.path, a.size, a.iters, a.warmup)
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
        per_s=round(len(rtts) / max(elapsed, 1e-9)),
    )
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
