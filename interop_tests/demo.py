#!/usr/bin/env python3
"""`make demo`: a Go consumer, pinged from Go, C, Python and Rust.

    build/venv/bin/python interop_tests/demo.py [-n N] [--size B]

Starts `goipc pong` (the Go consumer), then for each language runs its
interop peer (interop_tests/peers/<lang>) for N checked Ping/Pong round
trips with a B-byte payload, and the same language's Unix-socket baseline:
N round trips of B bytes over a Unix stream socket to an echo process
written in that language. It does that for R rounds, alternating goipc and
socket runs, and reports the median of each figure over the rounds (a busy
machine moves single runs a lot). Prints one table. Every process it starts is
killed and every socket removed when it ends, also on Ctrl-C or an error.
See docs/DEMO.md.
"""

import argparse
import os
import resource
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import GOIPC, Proc, kill_all, parse_cli_pong, peer_command, probe  # noqa: E402

LANGS = [("Go", "go"), ("C", "c"), ("Python", "python"), ("Rust", "rust")]


class DemoError(Exception):
    pass


def run_producer(lang, path, scenario, n, size, warmup, timeout=300):
    p = Proc(f"{lang} {scenario}", peer_command(lang) + ["producer", "--dial", path, "--scenario", scenario,
                                                         "--n", str(n), "--size", str(size),
                                                         "--warmup", str(warmup)])
    try:
        ev = p.wait_event({"result"}, timeout)
        if ev is None:
            raise DemoError(f"{lang} {scenario}: no result within {timeout} s: {p.tail()}")
        if not ev.get("ok"):
            raise DemoError(f"{lang} {scenario}: {ev.get('error')}")
        return ev
    finally:
        p.cleanup()


def unix_baseline(lang, tmp, n, size, warmup):
    path = os.path.join(tmp, f"unix-{lang}.sock")
    echo = Proc(f"{lang} unix-echo", peer_command(lang) + ["unix-echo", "--listen", path, "--size", str(size)])
    try:
        ev = echo.wait_event({"ready", "listen_error"}, 30)
        if ev is None or ev["event"] != "ready":
            raise DemoError(f"{lang} unix-echo did not start: {echo.tail()}")
        return run_producer(lang, path, "unix", n, size, warmup)
    finally:
        echo.cleanup()


def medians(results):
    """The median of each figure over the rounds."""
    out = {}
    for k in ("p50_ns", "p99_ns", "round_trips_per_s"):
        v = sorted(r[k] for r in results)
        out[k] = v[len(v) // 2]
    return out


def cpu_times():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    return sum(v) - idle, sum(v)


def children_cpu():
    """CPU seconds used by this process and its reaped children (the peers
    and goipc pong)."""
    return sum(r.ru_utime + r.ru_stime
               for r in (resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)))


def noise_note(start, end, ours_s):
    """How much CPU other processes used during the run: a spinning peer
    shares its core with them, so the numbers are then noisy."""
    busy, total = end[0] - start[0], end[1] - start[1]
    if total <= 0:
        return ""
    hz = os.sysconf("SC_CLK_TCK")
    cpus = os.cpu_count() or 1
    others = max(0.0, busy / hz - ours_s) / (total / hz)
    line = f"Other processes used {100 * others:.0f}% of the machine's {cpus} CPUs during the run."
    if others > 0.10:
        line += " The figures are noisy: on an idle machine goipc's are lower and steadier."
    return line


def us(ns):
    return f"{ns / 1e3:.2f} us" if ns < 10_000 else f"{ns / 1e3:.1f} us"


def table(rows, n, size):
    head = ["language", "goipc p50", "goipc p99", "msgs/s", "unix p50", "unix/goipc"]
    body = []
    for name, g, u in rows:
        msgs = 2 * g["round_trips_per_s"]  # a round trip is a Ping and a Pong
        body.append([name, us(g["p50_ns"]), us(g["p99_ns"]), f"{msgs:,.0f}", us(u["p50_ns"]),
                     f"{u['p50_ns'] / g['p50_ns']:.1f}x"])
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(head), line(["-" * w for w in widths])] + [line(r) for r in body]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description="goipc demo: a Go consumer pinged from Go, C, Python and Rust")
    ap.add_argument("-n", type=int, default=20000, help="measured round trips per language and round (default 20000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per language; the table shows medians (default 3)")
    ap.add_argument("--size", type=int, default=64, help="payload bytes (default 64)")
    ap.add_argument("--warmup", type=int, default=5000, help="unmeasured round trips first (default 5000)")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="goipc-demo-", dir="/tmp")

    def on_signal(sig, frame):
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
        print("\ngoipc demo: interrupted; every process stopped, sockets removed", file=sys.stderr)
        sys.exit(128 + sig)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for lang in ("go-cli",) + tuple(l for _, l in LANGS):
            why = probe(lang)
            if why:
                raise DemoError(f"{lang}: {why}")
        path = os.path.join(tmp, "pong.sock")
        pong = Proc("goipc pong", [GOIPC, "pong", "--listen", path], parse=parse_cli_pong)
        if pong.wait_event({"ready"}, 30) is None:
            raise DemoError(f"goipc pong did not start: {pong.tail()}")
        print(f"goipc demo: a Go consumer (goipc pong, pid {pong.p.pid}) on {path}")
        print(f"Each language, {args.rounds} rounds of: {args.n:,} checked Ping/Pong round trips with a {args.size} B "
              f"payload (after {args.warmup:,} warm-up), then its own Unix-socket ping/pong of {args.size} B.", flush=True)
        print(flush=True)
        cpu0, ours0 = cpu_times(), children_cpu()
        rows = []
        for name, lang in LANGS:
            print(f"  {name}:", end="", flush=True)
            gs, uss = [], []
            for r in range(args.rounds):
                gs.append(run_producer(lang, path, "pingpong", args.n, args.size, args.warmup))
                uss.append(unix_baseline(lang, tmp, args.n, args.size, args.warmup))
                print(f" {r + 1}", end="", flush=True)
            print(" done", flush=True)
            rows.append((name, medians(gs), medians(uss)))
        pong.cleanup()
        cpu1, ours1 = cpu_times(), children_cpu()
        print()
        print(table(rows, args.n, args.size))
        print()
        print("goipc: the language's binding pinging the Go consumer through shared memory (p50/p99 round trip;")
        print("msgs/s counts Pings and Pongs). unix: the same language pinging an echo process written in that")
        print("language over a Unix stream socket. unix/goipc: how many times longer the socket round trip takes.")
        print(noise_note(cpu0, cpu1, ours1 - ours0))
        return 0
    except DemoError as e:
        print(f"\ngoipc demo: {e}", file=sys.stderr)
        return 1
    finally:
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
