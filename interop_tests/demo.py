#!/usr/bin/env python3
"""`make demo`: a Go consumer, pinged from Go, C, Python and Rust.

    build/venv/bin/python interop_tests/demo.py [-n N] [--size B]

Starts `goipc pong` (the Go consumer), then for each language runs its
ping-pong example (examples/ping-pong/<lang>, the program users read) for
N checked round trips of B bytes (each answer must equal what was sent),
and the same program's Unix-socket baseline (`--transport unix`): N round
trips of B bytes over a Unix stream socket to an echo process (the C
example's `pong --transport unix`, the fastest echo the project has, so
the socket is measured at its best). It does that for R rounds,
alternating goipc and socket runs, and reports the median of each figure
over the rounds (a busy machine moves single runs a lot). Prints one
table. Every process it starts is killed and every socket removed when it
ends, also on Ctrl-C or an error. See docs/DEMO.md.
"""

import argparse
import os
import resource
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BUILD, GOIPC, Proc, example_result, kill_all, parse_cli_pong, ping_command, probe  # noqa: E402

LANGS = [("Go", "go"), ("C", "c"), ("Python", "python"), ("Rust", "rust")]


class DemoError(Exception):
    pass


C_PONG = os.path.join(BUILD, "c", "pong")


def parse_c_pong(stream, line):
    """The ready event of the C pong (it prints no JSON)."""
    return {"event": "ready"} if "c pong: listening on" in line else None


def run_ping(lang, path, transport, n, size, warmup, *flags, timeout=300):
    """Runs the language's ping-pong example; returns its JSON line."""
    p = Proc(f"{lang} ping --transport {transport}",
             ping_command(lang) + ["--transport", transport, "--path", path, "--iters", str(n),
                                   "--size", str(size), "--warmup", str(warmup), *flags])
    try:
        return example_result(p, timeout, DemoError)
    finally:
        p.cleanup()


def start_unix_echo(tmp):
    """The Unix-socket echo every language's baseline talks to."""
    path = os.path.join(tmp, "unix-echo.sock")
    echo = Proc("c pong --transport unix", [C_PONG, "--transport", "unix", "--listen", path], parse=parse_c_pong)
    if echo.wait_event({"ready"}, 30) is None:
        raise DemoError(f"the Unix-socket echo (build/c/pong --transport unix) did not start: {echo.tail()}")
    return echo, path


def medians(results):
    """The median of each figure over the rounds."""
    out = {}
    for k in ("p50_ns", "p99_ns", "per_s"):
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
        msgs = 2 * g["per_s"]  # a round trip is a message and its answer
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

    tmp = tempfile.mkdtemp(prefix="goipc-demo-")

    def on_signal(sig, frame):
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
        print("\ngoipc demo: interrupted; every process stopped, sockets removed", file=sys.stderr)
        sys.exit(128 + sig)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for lang in ("go-cli",) + tuple("ping-" + l for _, l in LANGS):
            why = probe(lang)
            if why:
                raise DemoError(f"{lang}: {why}")
        if not os.access(C_PONG, os.X_OK):
            raise DemoError(f"{C_PONG} missing (make c-examples)")
        path = os.path.join(tmp, "pong.sock")
        pong = Proc("goipc pong", [GOIPC, "pong", "--listen", path], parse=parse_cli_pong)
        if pong.wait_event({"ready"}, 30) is None:
            raise DemoError(f"goipc pong did not start: {pong.tail()}")
        print(f"goipc demo: a Go consumer (goipc pong, pid {pong.p.pid}) on {path}")
        echo, echo_path = start_unix_echo(tmp)
        print(f"Each language's ping-pong example (examples/ping-pong), {args.rounds} rounds of: {args.n:,} checked "
              f"round trips of {args.size} B (after {args.warmup:,} warm-up), then the same over a Unix socket.",
              flush=True)
        print(flush=True)
        cpu0, ours0 = cpu_times(), children_cpu()
        rows = []
        for name, lang in LANGS:
            print(f"  {name}:", end="", flush=True)
            gs, uss = [], []
            for r in range(args.rounds):
                gs.append(run_ping(lang, path, "goipc", args.n, args.size, args.warmup))
                uss.append(run_ping(lang, echo_path, "unix", args.n, args.size, args.warmup))
                print(f" {r + 1}", end="", flush=True)
            print(" done", flush=True)
            rows.append((name, medians(gs), medians(uss)))
        pong.cleanup()
        echo.cleanup()
        cpu1, ours1 = cpu_times(), children_cpu()
        print()
        print(table(rows, args.n, args.size))
        print()
        print("goipc: the language's ping through its binding to the Go consumer, shared memory (p50/p99 round")
        print("trip; msgs/s counts messages and answers). unix: the same program over a Unix stream socket to an")
        print("echo process in C. unix/goipc: how many times longer the socket round trip takes.")
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
