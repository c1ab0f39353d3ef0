"""The many-producers example in Python (examples/README.md): one of the
producers a Go consumer serves at once
(``go run ./examples/many-producers/go consumer --listen PATH --producers K``)::

    python producer.py --dial PATH --name NAME [-n N]

Sends "NAME i" for i = 0..N-1, then "done", and checks the consumer's
answer: the number of messages it received from this connection (8 bytes,
little-endian). Needs the goipc package: installed (``make wheel``), or
``PYTHONPATH=bindings/python/src`` in a checkout.
"""

import argparse
import struct
import sys

import goipc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dial", required=True, help="Unix socket path of the consumer")
    ap.add_argument("--name", default="python", help="this producer's name (no spaces)")
    ap.add_argument("-n", type=int, default=10000, help="messages to send")
    args = ap.parse_args()

    with goipc.dial(args.dial, timeout=10.0) as conn:
        for i in range(args.n):
            conn.send(b"%s %d" % (args.name.encode(), i))  # waits while the ring is full
        conn.send(b"done")
        (counted,) = struct.unpack("<Q", conn.recv(timeout=10.0))
    if counted != args.n:
        print("producer %s: sent %d messages, the consumer counted %d" % (args.name, args.n, counted), file=sys.stderr)
        return 1
    print("producer %s: %d messages, the consumer counted %d" % (args.name, args.n, counted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
