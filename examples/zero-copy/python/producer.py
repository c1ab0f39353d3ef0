"""The zero-copy example in Python (examples/README.md): messages built in
place in the ring and answers read in place, against the Go consumer
(``go run ./examples/zero-copy/go consumer --listen PATH``)::

    python producer.py --dial PATH [-n N] [--size B]

For each message k, ``conn.reserve(B)`` gives a writable memoryview of the
ring; byte i is written there as (k + i) mod 256 (one slice assignment
from a prepared pattern) and leaving the ``with`` block commits it. The
consumer answers with the 8-byte little-endian sum of the bytes, which
``conn.recv_view()`` shows where it lies. Needs the goipc package:
installed (``make wheel``), or ``PYTHONPATH=bindings/python/src`` in a
checkout.
"""

import argparse
import struct
import sys

import goipc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dial", required=True, help="Unix socket path of the consumer")
    ap.add_argument("-n", type=int, default=1000, help="messages to send")
    ap.add_argument("--size", type=int, default=65536, help="bytes per message")
    args = ap.parse_args()

    # Every message is a window of this pattern: byte i of message k is
    # (k + i) mod 256, i.e. pattern[k % 256 + i].
    pattern = bytes(range(256)) * (args.size // 256 + 2)
    with goipc.dial(args.dial, timeout=10.0) as conn:
        for k in range(args.n):
            window = memoryview(pattern)[k % 256 : k % 256 + args.size]
            with conn.reserve(args.size) as space:  # the ring itself
                space[:] = window
            with conn.recv_view(timeout=10.0) as answer:
                (got,) = struct.unpack_from("<Q", answer)
            want = sum(window)
            if got != want:
                print("producer: message %d: the consumer summed %d, want %d" % (k, got, want), file=sys.stderr)
                return 1
    print("producer python: %d messages of %d bytes built and answered in place" % (args.n, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
