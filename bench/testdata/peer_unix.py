#!/usr/bin/env python3
"""A minimal bench peer (see bench/peers.go): the unix transport only.

It shows the peer protocol for the bindings' authors: parse the arguments,
connect, time warm-up + iters round trips, check every reply, print one JSON
line. A real peer also implements --transport goipc through its binding.
"""
import argparse
import json
import socket
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--transport", required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--iters", type=int, required=True)
    p.add_argument("--warmup", type=int, required=True)
    a = p.parse_args()
    line = {"lang": "python", "transport": a.transport, "size": a.size, "iters": a.iters}
    if a.transport != "unix":
        line["error"] = "this test peer has no goipc transport"
        print(json.dumps(line))
        return 1
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(a.path)
    msg = bytes((j * 131 + 7) & 0xFF for j in range(a.size))
    buf = bytearray(a.size)
    view = memoryview(buf)
    rtts = []
    for i in range(a.warmup + a.iters):
        t0 = time.perf_counter_ns()
        s.sendall(msg)
        got = 0
        while got < a.size:
            n = s.recv_into(view[got:])
            if n == 0:
                raise SystemExit("consumer closed")
            got += n
        dt = time.perf_counter_ns() - t0
        if buf != msg:
            line["error"] = "reply %d differs" % i
            print(json.dumps(line))
            return 1
        if i >= a.warmup:
            rtts.append(dt)
    rtts.sort()

    def pct(q):
        return rtts[min(len(rtts) - 1, int(q / 100.0 * len(rtts)))]

    line.update(p50_ns=pct(50), p90_ns=pct(90), p99_ns=pct(99), p999_ns=pct(99.9), max_ns=rtts[-1])
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
