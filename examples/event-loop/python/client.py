"""The event-loop example in Python (examples/README.md): many goipc
connections in one asyncio event loop, no thread per connection, against
a server that echoes (the Go one:
``go run ./examples/event-loop/go server --listen PATH``, ``goipc pong``,
or server.py next to this file)::

    python client.py --dial PATH [--conns N] [-n ROUNDS]

Dials N connections with :mod:`goipc.aio`, then runs ROUNDS round trips on
every one at once, a task each, checking every reply. A coroutine that
waits parks on the connection's descriptor (``loop.add_reader``), so the
process keeps a handful of threads whatever N is; the line it prints
gives that count. Exit status 0 when every reply matched. Needs the goipc
package: installed (``make wheel``), or ``PYTHONPATH=bindings/python/src``
in a checkout.
"""

import argparse
import asyncio
import os
import sys

import goipc.aio

# Small rings: a segment is allocated in full when it is dialed, so 16 KiB
# rings make 1000 connections cost 33 MB of shared memory (8 GB with the
# default 4 MiB rings).
SMALL_RINGS = {"ring_size": 16384, "max_message_size": 1024}


async def ping_pong(conn: goipc.aio.AsyncConn, i: int, rounds: int) -> None:
    for r in range(rounds):
        msg = b"connection %d round %d" % (i, r)
        await conn.send(msg)
        reply = await conn.recv()
        if reply != msg:
            raise RuntimeError("connection %d: sent %r, got %r" % (i, msg, reply))


async def run(path: str, n: int, rounds: int) -> int:
    conns = await asyncio.gather(*(goipc.aio.dial(path, timeout=10.0, **SMALL_RINGS) for _ in range(n)))
    try:
        # wait_for: a server that stops answering fails the run instead of hanging it.
        await asyncio.wait_for(asyncio.gather(*(ping_pong(c, i, rounds) for i, c in enumerate(conns))), 120)
        return len(os.listdir("/proc/self/task"))
    finally:
        for c in conns:
            c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dial", required=True, help="Unix socket path of the server")
    ap.add_argument("--conns", type=int, default=1000, help="connections in the one event loop")
    ap.add_argument("-n", type=int, default=100, help="round trips per connection")
    args = ap.parse_args()
    if args.conns < 1 or args.n < 0:
        ap.error("--conns must be >= 1 and -n >= 0")
    threads = asyncio.run(run(args.dial, args.conns, args.n))
    print("client python: %d connections x %d round trips in one event loop, every reply checked; %d threads"
          % (args.conns, args.n, threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
