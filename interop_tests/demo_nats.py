#!/usr/bin/env python3
"""`make demo-nats`: Python and C producers ping a Go consumer through a
NATS cluster, next to the same producers over shared memory.

    build/venv/bin/python interop_tests/demo_nats.py [-n N] [--size B] [--rounds R]

Starts a 3-node nats-server cluster on loopback ports (routes on
127.0.0.1) and one `goipc pong` listening on a Unix socket and, through
node 0, on a NATS subject. Each producer (the ping-pong examples,
examples/ping-pong/<lang>: the Python binding, the C library) runs N
checked Ping/Pong round trips over shared memory, then N through node 1 of
the cluster (every message crosses a route), for R rounds; the table shows
the median of each figure. The producers' code is the same for both: only
the address differs.
Everything it starts is stopped at the end, also on Ctrl-C or an error.
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import GOIPC, Proc, kill_all, parse_cli_pong, probe  # noqa: E402
from demo import DemoError, children_cpu, cpu_times, medians, noise_note, run_ping, us  # noqa: E402
import natsserver  # noqa: E402

LANGS = [("Python", "python"), ("C", "c")]


def table(rows):
    head = ["language", "shm p50", "shm p99", "NATS p50", "NATS p99", "NATS msgs/s", "NATS/shm p50"]
    body = []
    for name, s, n in rows:
        body.append([name, us(s["p50_ns"]), us(s["p99_ns"]), us(n["p50_ns"]), us(n["p99_ns"]),
                     f"{2 * n['per_s']:,.0f}", f"{n['p50_ns'] / s['p50_ns']:.0f}x"])
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in body])


def main():
    ap = argparse.ArgumentParser(description="goipc over NATS: Python and C producers, a Go consumer, a 3-node cluster")
    ap.add_argument("-n", type=int, default=5000, help="measured round trips per language, transport and round (default 5000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; the table shows medians (default 3)")
    ap.add_argument("--size", type=int, default=64, help="payload bytes (default 64)")
    ap.add_argument("--warmup", type=int, default=500, help="unmeasured round trips first (default 500)")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="goipc-demo-nats-")
    nodes = []

    def cleanup():
        kill_all()
        natsserver.stop(nodes)
        shutil.rmtree(tmp, ignore_errors=True)

    def on_signal(sig, frame):
        cleanup()
        print("\ngoipc demo-nats: interrupted; every process stopped", file=sys.stderr)
        sys.exit(128 + sig)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for lang in ("go-cli",) + tuple("ping-" + l for _, l in LANGS):
            why = probe(lang)
            if why:
                raise DemoError(f"{lang}: {why}")
        try:
            nodes[:] = natsserver.cluster(3, tmp)
        except RuntimeError as e:
            raise DemoError(str(e))
        path = os.path.join(tmp, "pong.sock")
        listen_nats = f"{nodes[0].url}/demo.pong"
        dial_nats = f"{nodes[1].url}/demo.pong"
        pong = Proc("goipc pong", [GOIPC, "pong", "--listen", path, "--listen", listen_nats], parse=parse_cli_pong)
        for _ in range(2):  # one ready line per address
            if pong.wait_event({"ready"}, 30) is None:
                raise DemoError(f"goipc pong did not start: {pong.tail()}")
        print(f"goipc demo-nats: a 3-node NATS cluster on 127.0.0.1 ports {', '.join(str(n.port) for n in nodes)};")
        print(f"a Go consumer (goipc pong, pid {pong.p.pid}) on {path} and on {listen_nats}.")
        print(f"Producers dial {dial_nats} (node 1: every message crosses a route).")
        print(f"Each language, {args.rounds} rounds of {args.n:,} checked Ping/Pong round trips with a {args.size} B payload "
              f"over shared memory, then over NATS.", flush=True)
        print(flush=True)
        cpu0, ours0 = cpu_times(), children_cpu()
        rows = []
        for name, lang in LANGS:
            print(f"  {name}:", end="", flush=True)
            shm, nats = [], []
            for r in range(args.rounds):
                shm.append(run_ping(lang, path, "goipc", args.n, args.size, args.warmup, "--typed"))
                nats.append(run_ping(lang, dial_nats, "goipc", args.n, args.size, args.warmup, "--typed"))
                print(f" {r + 1}", end="", flush=True)
            print(" done", flush=True)
            rows.append((name, medians(shm), medians(nats)))
        pong.cleanup()
        cpu1, ours1 = cpu_times(), children_cpu()
        print()
        print(table(rows))
        print()
        print("shm: the producer and the Go consumer share a segment on this host. NATS: the same producer code,")
        print("the same Go consumer, a nats:// address: producer -> node 1 -> route -> node 0 -> consumer and back.")
        print("msgs/s counts Pings and Pongs. See docs/NATS.md for what the bridge guarantees and costs.")
        print(noise_note(cpu0, cpu1, ours1 - ours0))
        return 0
    except DemoError as e:
        print(f"\ngoipc demo-nats: {e}", file=sys.stderr)
        return 1
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
