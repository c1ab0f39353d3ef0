"""The server side of the request/response example in Python
(examples/README.md): answers calls with ``recv_request`` and ``reply``.
The service squares numbers: a request is a uint64 x (8 bytes,
little-endian), its reply x*x::

    python server.py --listen PATH [--clients K]

Serves K connections (default 1), one after the other, each until its
client closes it. Prints "listening on PATH" once ready and, when K
clients have come and gone, how many calls it answered. The client may
call from many threads at once: requests queue in the ring, this loop
answers them one by one, and each reply goes to the caller whose call id
it carries. (To answer out of order, hand ``(call_id, request)`` to worker
threads: ``reply`` may be called from any thread.)
"""

import argparse
import struct
import sys

import goipc

U64 = struct.Struct("<Q")


def serve(conn: goipc.Conn) -> int:
    """Answers until the client closes the connection; returns the count."""
    answered = 0
    while True:
        try:
            call_id, req = conn.recv_request()
        except goipc.PeerClosedError:
            return answered
        (x,) = U64.unpack(req)  # struct.error (not 8 bytes) ends the program
        conn.reply(call_id, U64.pack(x * x % 2**64))
        answered += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", required=True, help="Unix socket path to listen on")
    ap.add_argument("--clients", type=int, default=1, help="connections to serve before exiting")
    args = ap.parse_args()

    answered = 0
    with goipc.listen(args.listen) as ln:
        print("listening on", args.listen, flush=True)
        for _ in range(args.clients):
            with ln.accept() as conn:
                answered += serve(conn)
    print("server python: %d clients, %d calls answered" % (args.clients, answered))
    return 0


if __name__ == "__main__":
    sys.exit(main())
