"""The request/response example in Python (examples/README.md): several
threads call at once on one shared connection, against a server that
squares numbers (the Go one:
``go run ./examples/request-response/go server --listen PATH``, or
server.py next to this file)::

    python client.py --dial PATH [--threads T] [-n N]

Thread t sends x = t*1000000 + i (a uint64, 8 bytes little-endian) for
i = 0..N-1 with ``conn.call`` and checks that the reply is x*x: every
request of the run is different, so a reply routed to the wrong thread
fails the check. Prints one line and exits 0 when every reply matched its
request. Needs the goipc package: installed (``make wheel``), or
``PYTHONPATH=bindings/python/src`` in a checkout.
"""

import argparse
import struct
import sys
import threading

import goipc

# Keeps x below 2**32: x*x fits in 64 bits, no two requests share a reply.
MAX_CALLS = 1000000
U64 = struct.Struct("<Q")


def caller(conn: goipc.Conn, t: int, n: int, errors: list) -> None:
    try:
        for i in range(n):
            x = t * MAX_CALLS + i
            # One library call per round trip; the GIL is released while it
            # waits, so the other threads' calls are in flight meanwhile.
            reply = conn.call(U64.pack(x), timeout=10.0)
            if reply != U64.pack(x * x):
                errors.append("thread %d, call %d: sent %d, got the reply %r" % (t, i, x, reply))
                return
    except goipc.Error as e:
        errors.append("thread %d: %s" % (t, e))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dial", required=True, help="Unix socket path of the server")
    ap.add_argument("--threads", type=int, default=8, help="threads calling at once on the one connection")
    ap.add_argument("-n", type=int, default=1000, help="calls per thread")
    args = ap.parse_args()
    if not 1 <= args.threads <= 4000 or not 0 <= args.n <= MAX_CALLS:
        ap.error("--threads must be in [1, 4000] and -n in [0, %d]" % MAX_CALLS)

    errors: list = []
    with goipc.dial(args.dial, timeout=10.0) as conn:
        threads = [threading.Thread(target=caller, args=(conn, t, args.n, errors)) for t in range(args.threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    if errors:
        print("client python: " + "\n".join(errors), file=sys.stderr)
        return 1
    print("client python: %d threads x %d calls on one connection, every reply matched its request" % (args.threads, args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
