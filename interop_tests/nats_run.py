#!/usr/bin/env python3
"""The interop matrix over NATS: the same peers and scenarios as run.py,
with nats:// addresses instead of Unix socket paths.

    build/venv/bin/python interop_tests/nats_run.py [-k SUBSTRING] [--list]

(`make test-nats` builds everything first and runs this.) It starts a
3-node nats-server cluster on loopback ports (routes on 127.0.0.1); each
test's consumer listens through node 0 and its producer dials through
node 1, so every message crosses a route. Pairs: producers in C, Python,
Rust and Go against the two Go consumers (`goipc pong`, "go", and the Go
library's consumer, "golib"). Scenarios: pingpong, calls (typed Ping
calls from the producer's threads on one connection, carried as bridge
requests and replies), sizes, burst (with a
64 KiB credit window, so that the rings fill), consumer_killed and
producer_killed (SIGKILL; the survivor sees peer-closed within the
heartbeat bound). The version and layout scenarios concern the
shared-memory handshake and segment, which NATS connections do not have.
Ends with "N passed, M failed"; exit status 1 if anything failed.
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
import natsserver  # noqa: E402

SCENARIOS = ("pingpong", "calls", "sizes", "burst", "consumer_killed", "producer_killed")
PINGPONG_N = 5000  # NATS round trips take ~100 us on loopback: keep the matrix short
CALLS_N = 4000  # typed calls from the producer's threads on one connection


class NatsRunner(run.Runner):
    def __init__(self, verbose, nodes):
        super().__init__(verbose)
        self.nodes = nodes
        self.dial_node = {}

    def sock(self, test, name):
        # The consumer's address; dial_address swaps in node 1's.
        self.seq += 1
        subject = f"interop.{test.scenario}.{test.producer}.{test.consumer}.{self.seq}"
        query = "?window=65536" if test.scenario == "burst" else ""
        addr = f"{self.nodes[0].url}/{subject}{query}"
        self.dial_node[addr] = f"{self.nodes[1].url}/{subject}{query}"
        return addr

    def dial_address(self, path):
        return self.dial_node.get(path, path)


def all_tests():
    pairs = [(p, c) for p in run.LANGS for c in ("go", "golib")]
    return [run.Test(s, p, c) for p, c in pairs for s in SCENARIOS]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", action="append", default=[], help="run only tests whose name contains this (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("-v", action="store_true", help="print more detail")
    args = ap.parse_args()
    tests = [t for t in all_tests() if not args.k or any(k in t.name for k in args.k)]
    if args.list:
        for t in tests:
            print(t.name + "_over_nats")
        return 0
    run.PINGPONG_N = PINGPONG_N
    run.CALLS_N = CALLS_N

    nodes = []
    tmp = tempfile.mkdtemp(prefix="goipc-nats-")

    def on_signal(sig, frame):
        run.kill_all()
        natsserver.stop(nodes)
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(128 + sig)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    runner = None
    passed = failed = 0
    start = time.monotonic()
    try:
        nodes[:] = natsserver.cluster(3, tmp)
        runner = NatsRunner(args.v, nodes)
        for lang, why in runner.unavailable.items():
            if why:
                print(f"note: {lang}: {why}", flush=True)
        for t in tests:
            ok, detail = runner.run(t)
            print(f"{t.name}_over_nats ... {'PASS' if ok else 'FAIL'} ({detail})", flush=True)
            passed, failed = passed + ok, failed + (not ok)
    except RuntimeError as e:
        print(f"nats matrix: cannot start the cluster: {e}", flush=True)
        failed = len(tests)
    finally:
        if runner:
            runner.close()
        natsserver.stop(nodes)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"interop matrix over NATS: {len(tests)} tests in {time.monotonic() - start:.0f} s", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
