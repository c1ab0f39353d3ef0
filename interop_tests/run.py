#!/usr/bin/env python3
"""The interop matrix: every producer/consumer pair, every scenario.

    build/venv/bin/python interop_tests/run.py [-k SUBSTRING] [--list] [-v]

(`make interop` builds everything first and runs this.) Pairs: producers in
C, Python, Rust and Go against two Go consumers, `goipc pong` (called
"go") and a consumer written with the Go library ("golib"); a Go
producer against consumers in C, Python and Rust; and Python and Rust on
their event loops ("python-asyncio": goipc.aio, "rust-tokio": the crate's
tokio feature): as consumers of the Go producer in every scenario, and
as producers against "go" and "golib" in pingpong and calls. Each test is named
test_<scenario>_<producer>_to_<consumer> and printed as one line:

    test_pingpong_python_to_go ... PASS (100000 round trips, p50 3.1 us, 2.4 s)

and the run ends with the line "N passed, M failed"; the exit status is 1
if anything failed. docs/INTEROP.md describes the peers, the scenarios and
what each checks.

The producers of the pingpong and calls scenarios are the ping-pong
examples (examples/ping-pong/<lang>: build/examples/ping-pong-go ping,
build/c/ping, ping.py, the Rust crate's ping_pong; python-asyncio and
rust-tokio are ping.py --asyncio and ping_pong --tokio), the programs
users read; the other scenarios, the consumers and the layout capture are
the peers (interop_tests/peers/<lang>), which hold only what is
test-only.

Rules the driver keeps: it waits for ready lines (never a sleep standing in
for synchronisation); every step has a timeout, so nothing hangs; every
process it starts is killed and reaped at the end of its test (and on
Ctrl-C); a language whose peer is not built fails its tests with "binding
not built", it never skips them.
"""

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
INTEROP = os.path.join(BUILD, "interop")
GOIPC = os.path.join(BUILD, "bin", "goipc")

# What the scenarios run (tuned so the matrix stays well under 10 minutes
# on a 2-core machine; the 100,000 round trips are the requirement).
PINGPONG_N = 100_000
PINGPONG_SIZE = 32
CALLS_N = 20_000  # calls, from the producer's threads on one connection
CALL_THREADS = 4
BURST_ROUNDS = 20
BURST_RING = 65536  # a small ring fills quickly; the dialer's size defines it
BURST_MAX_MESSAGE = 4096
STREAM_BEFORE_KILL = 2000
PROTOCOL_VERSION = 2  # what every peer speaks (goipc.ProtocolVersion, docs/LAYOUT.md)
WRONG_VERSION = 99  # what one side announces in version_mismatch
assert WRONG_VERSION != PROTOCOL_VERSION, "version_mismatch needs a version nobody speaks"
LAYOUT_RING = 65536
LAYOUT_MAX_MESSAGE = 4096
# F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW
SEALS = 0x1 | 0x2 | 0x4

READY_TIMEOUT = 20.0
RUN_TIMEOUT = {"pingpong": 240.0}
DEFAULT_TIMEOUT = 60.0
EVENT_TIMEOUT = 15.0

LANGS = ("c", "python", "rust", "go")


def python_exe():
    venv = os.path.join(BUILD, "venv", "bin", "python")
    return venv if os.path.exists(venv) else sys.executable


# Python on goipc.aio (asyncio) and Rust on the tokio feature: the same
# programs as "python" and "rust", one more flag. As consumers, the peers
# (every scenario); as producers, the ping-pong examples (pingpong and
# calls). The examples report the flag back in their JSON line ("asyncio":
# true, "tokio": true).
EVENT_LOOPS = {"python-asyncio": ("python", "--asyncio"), "rust-tokio": ("rust", "--tokio")}


def base_lang(lang):
    """The language of a producer or consumer name: "python" for
    "python-asyncio"."""
    return EVENT_LOOPS.get(lang, (lang,))[0]


def peer_command(lang):
    """The command line of a language's peer (without role and flags)."""
    lang = base_lang(lang)
    if lang == "python":
        return [python_exe(), os.path.join(ROOT, "interop_tests", "peers", "python", "peer.py")]
    if lang == "golib":
        lang = "go"
    return [os.path.join(INTEROP, lang + "-peer")]


def ping_command(lang):
    """The command line of a language's ping-pong example, the producer of
    the pingpong and calls scenarios (examples/README.md); with its
    event-loop flag for python-asyncio and rust-tokio."""
    if lang in EVENT_LOOPS:
        return ping_command(base_lang(lang)) + [EVENT_LOOPS[lang][1]]
    if lang == "python":
        return [python_exe(), os.path.join(ROOT, "examples", "ping-pong", "python", "ping.py")]
    return {
        "go": [os.path.join(BUILD, "examples", "ping-pong-go"), "ping"],
        "c": [os.path.join(BUILD, "c", "ping")],
        "rust": [os.path.join(ROOT, "bindings", "rust", "target", "release", "examples", "ping_pong")],
    }[lang]


def build_log_tail(lang, lines=6):
    path = os.path.join(INTEROP, lang + "-build.log")
    try:
        with open(path, errors="replace") as f:
            tail = [l.rstrip() for l in f.readlines() if l.strip()][-lines:]
        return " | ".join(tail)
    except OSError:
        return ""


def probe(lang):
    """None if the language's peer can run, else why not. "ping-<lang>": the
    language's ping-pong example instead."""
    if lang.startswith("ping-"):
        lang = lang[len("ping-"):]
        if lang == "python":
            return probe("python")  # the same binding, the same interpreter
        exe = ping_command(lang)[0]
        if not os.access(exe, os.X_OK):
            why = build_log_tail("rust-ping") if lang == "rust" else ""
            return f"binding not built: {exe} missing" + (f" ({why})" if why else "")
        return None
    if lang == "go-cli":
        return None if os.access(GOIPC, os.X_OK) else f"{GOIPC} missing (make build)"
    if lang == "python":
        cmd = peer_command("python") + ["probe"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"binding not built: {e}"
        for line in out.stdout.splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "probe":
                return None if ev.get("ok") else "binding not built: " + ev.get("error", "?")
        return "binding not built: " + (out.stderr.strip().splitlines() or ["peer.py probe printed nothing"])[-1]
    exe = peer_command(lang)[0]
    if not os.access(exe, os.X_OK):
        why = build_log_tail(lang)
        return f"binding not built: {exe} missing" + (f" ({why})" if why else "")
    return None


class Proc:
    """A child process whose stdout and stderr lines are read by threads.

    Lines are parsed as JSON events where they are JSON; `events` gets each
    event (and, through `parse`, events derived from plain text lines).
    """

    all = []

    def __init__(self, name, cmd, parse=None, cwd=None):
        self.name, self.cmd, self.parse = name, cmd, parse
        self.events = queue.Queue()
        self.log = []  # (stream, line), for failure reports
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  cwd=cwd or ROOT, start_new_session=True, text=True, errors="replace")
        Proc.all.append(self)
        self.readers = [threading.Thread(target=self._read, args=(s, n), daemon=True)
                        for s, n in ((self.p.stdout, "stdout"), (self.p.stderr, "stderr"))]
        for t in self.readers:
            t.start()

    def _read(self, stream, name):
        for line in stream:
            line = line.rstrip("\n")
            self.log.append((name, line))
            ev = None
            if line.startswith("{"):
                try:
                    ev = json.loads(line)
                except ValueError:
                    ev = None
            if ev is None and self.parse:
                ev = self.parse(name, line)
            if ev is not None:
                self.events.put(ev)

    def wait_event(self, kinds, timeout):
        """The next event whose kind is in kinds; None on timeout, or once
        the process has closed its output and no such event is queued."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                ev = self.events.get(timeout=min(left, 0.5))
            except queue.Empty:
                if not any(t.is_alive() for t in self.readers) and self.events.empty():
                    return None  # both streams closed: nothing more will come
                continue
            if ev.get("event") in kinds:
                return ev

    def wait_exit(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, sig=signal.SIGKILL):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass

    def cleanup(self):
        self.kill()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for t in self.readers:
            t.join(timeout=2)
        if self in Proc.all:
            Proc.all.remove(self)

    def tail(self, n=8):
        lines = [f"{s}: {l}" for s, l in self.log if l.strip()][-n:]
        return " | ".join(lines) if lines else "(no output)"


def kill_all():
    for p in list(Proc.all):
        p.cleanup()


class Failed(Exception):
    pass


def example_result(p, timeout, error=Failed):
    """Waits for the example program p (a Proc) to exit and returns its
    JSON result line, raising error when it ran too long, printed no
    result, reported an error or exited non-zero."""
    code = p.wait_exit(timeout)
    if code is None:
        raise error(f"{p.name}: no result within {timeout:.0f} s (killed); {p.tail()}")
    for t in p.readers:
        t.join(timeout=5)
    lines = [l for s, l in p.log if s == "stdout" and l.startswith("{")]
    try:
        r = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise error(f"{p.name} exited {code} without a JSON line; {p.tail()}") from None
    if r.get("error"):
        raise error(f"{p.name}: {r['error']}")
    if code != 0:
        raise error(f"{p.name} printed a result but exited {code}; {p.tail()}")
    return r


def parse_cli_pong(stream, line):
    """Events from `goipc pong -v` text lines (it prints no JSON)."""
    if "goipc pong: listening on" in line:
        return {"event": "ready"}
    m = re.search(r"goipc pong: client pid (\d+): (\d+) messages in [^:]*: (.*)$", line)
    if m:
        err = m.group(3)
        status = "peer_closed" if "peer closed" in err else "protocol" if "protocol" in err else "other"
        return {"event": "conn_end", "status": status, "messages": int(m.group(2)), "error": err}
    m = re.search(r"goipc pong: rejected a client: (.*)$", line)
    if m:
        err = m.group(1)
        return {"event": "accept_error", "status": "protocol" if ("protocol error" in err or "version mismatch" in err) else "other", "error": err}
    return None


class Test:
    def __init__(self, scenario, producer, consumer):
        self.scenario, self.producer, self.consumer = scenario, producer, consumer
        self.name = f"test_{scenario}_{producer}_to_{consumer}"


class Runner:
    def __init__(self, verbose):
        self.verbose = verbose
        self.tmp = tempfile.mkdtemp(prefix="goipc-interop-")
        self.seq = 0
        self.unavailable = {}
        for lang in ("go-cli", "go", "c", "python", "rust") + tuple("ping-" + l for l in LANGS):
            self.unavailable[lang] = probe(lang)

    def close(self):
        kill_all()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- processes ----

    def start_consumer(self, lang, path, proto=0, calls=False):
        if lang == "go":  # the CLI
            cmd = [GOIPC, "pong", "--listen", path, "-v"]
            if proto:
                cmd += ["--protocol-version", str(proto)]
            p = Proc("goipc pong", cmd, parse=parse_cli_pong)
        else:
            cmd = peer_command(lang) + ["consumer", "--listen", path]
            if lang in EVENT_LOOPS:
                cmd.append(EVENT_LOOPS[lang][1])
            if proto:
                cmd += ["--protocol-version", str(proto)]
            if calls and lang != "golib":  # the Go library's consumer answers both kinds
                cmd.append("--calls")
            p = Proc(f"{lang} consumer", cmd)
        ev = p.wait_event({"ready", "listen_error"}, READY_TIMEOUT)
        if ev is None or ev["event"] != "ready":
            p.cleanup()
            what = ev.get("error") if ev else f"no ready line within {READY_TIMEOUT:.0f} s"
            raise Failed(f"{lang} consumer did not start: {what}; {p.tail()}")
        return p

    def dial_address(self, path):
        """Where a producer dials the consumer listening on path."""
        return path

    def start_producer(self, lang, path, scenario, *flags):
        cmd = peer_command(lang) + ["producer", "--dial", self.dial_address(path), "--scenario", scenario]
        return Proc(f"{lang} producer", cmd + [str(f) for f in flags])

    def ping(self, lang, path, n, timeout, *flags):
        """Runs the language's ping-pong example: n round trips (no warm-up,
        so that the consumer's count is n), every reply checked by the
        example. Returns its JSON line."""
        cmd = ping_command(lang) + ["--path", self.dial_address(path), "--iters", str(n), "--warmup", "0",
                                    "--size", str(PINGPONG_SIZE)] + [str(f) for f in flags]
        p = Proc(f"{lang} ping", cmd)
        r = example_result(p, timeout)
        if r.get("iters") != n or r.get("lang") != base_lang(lang):
            raise Failed(f"{p.name} reports {r.get('iters')} round trips of {r.get('lang')}, want {n} of "
                         f"{base_lang(lang)}")
        if lang in EVENT_LOOPS:
            runtime = EVENT_LOOPS[lang][1].lstrip("-")
            if r.get(runtime) is not True:
                raise Failed(f"{p.name} did not run on {runtime}: its line says {runtime}={r.get(runtime)}")
        return r

    def result_of(self, p, timeout):
        ev = p.wait_event({"result"}, timeout)
        if ev is None:
            if p.p.poll() is None:
                raise Failed(f"{p.name}: no result within {timeout:.0f} s (killed); {p.tail()}")
            raise Failed(f"{p.name} exited {p.p.returncode} without a result; {p.tail()}")
        code = p.wait_exit(10)
        if ev.get("ok") is not True:
            raise Failed(f"{p.name}: {ev.get('error', 'failed')}" + (f" [{ev['status']}]" if ev.get("status") else ""))
        if code != 0:
            raise Failed(f"{p.name} reported ok but exited {code}; {p.tail()}")
        return ev

    def consumer_end(self, c, want_messages=None):
        ev = c.wait_event({"conn_end"}, EVENT_TIMEOUT)
        if ev is None:
            raise Failed(f"{c.name}: no end-of-connection report within {EVENT_TIMEOUT:.0f} s; {c.tail()}")
        if ev.get("status") != "peer_closed":
            raise Failed(f"{c.name}: connection ended with {ev.get('status')}: {ev.get('error')}, want peer closed")
        if ev.get("malformed"):
            raise Failed(f"{c.name}: {ev['malformed']} malformed messages")
        if want_messages is not None and ev.get("messages") != want_messages:
            raise Failed(f"{c.name} answered {ev.get('messages')} messages, the producer counted {want_messages}")
        return ev

    # ---- scenarios ----

    def sock(self, test, name):
        self.seq += 1
        d = os.path.join(self.tmp, str(self.seq))
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, name)

    def t_pingpong(self, t):
        path = self.sock(t, "c.sock")
        c = self.start_consumer(t.consumer, path)
        r = self.ping(t.producer, path, PINGPONG_N, RUN_TIMEOUT["pingpong"], "--typed")
        self.consumer_end(c, PINGPONG_N)
        return f"{PINGPONG_N} Ping/Pong round trips of a {PINGPONG_SIZE} B payload, p50 {r['p50_ns'] / 1e3:.1f} us, " \
               f"p99 {r['p99_ns'] / 1e3:.1f} us"

    def t_calls(self, t):
        path = self.sock(t, "c.sock")
        c = self.start_consumer(t.consumer, path, calls=True)
        r = self.ping(t.producer, path, CALLS_N, DEFAULT_TIMEOUT, "--call", "--threads", CALL_THREADS, "--typed")
        self.consumer_end(c, CALLS_N)
        callers = {
            "python-asyncio": "tasks of one asyncio loop",
            "rust-tokio": "futures of one tokio runtime thread",
        }.get(t.producer, "threads")
        return f"{CALLS_N} Ping calls from {CALL_THREADS} {callers} on one connection, each answered by its own " \
               f"Pong, p50 {r['p50_ns'] / 1e3:.1f} us, p99 {r['p99_ns'] / 1e3:.1f} us"

    def t_sizes(self, t):
        path = self.sock(t, "c.sock")
        c = self.start_consumer(t.consumer, path)
        p = self.start_producer(t.producer, path, "sizes")
        r = self.result_of(p, DEFAULT_TIMEOUT)
        want = [0, 1, 63, 64, 4095, 4096, 65536]
        if r.get("sizes", [])[:-1] != want or r["sizes"][-1] != r.get("max_payload"):
            raise Failed(f"sizes {r.get('sizes')}, want {want} + the maximum")
        if r.get("max_payload", 0) < 1 << 19:
            raise Failed(f"maximum payload {r.get('max_payload')} B is implausibly small")
        self.consumer_end(c, r["round_trips"])
        return f"payloads {','.join(map(str, r['sizes']))} B; {r['too_large_payload']} B refused as too large"

    def t_burst(self, t):
        path = self.sock(t, "c.sock")
        c = self.start_consumer(t.consumer, path)
        p = self.start_producer(t.producer, path, "burst", "--rounds", BURST_ROUNDS, "--size", PINGPONG_SIZE,
                                "--ring-size", BURST_RING, "--max-message", BURST_MAX_MESSAGE)
        r = self.result_of(p, DEFAULT_TIMEOUT)
        if r.get("ring_full") != BURST_ROUNDS or r.get("max_burst", 0) <= 0:
            raise Failed(f"the ring filled {r.get('ring_full')} times, want {BURST_ROUNDS}")
        self.consumer_end(c, r["messages"])
        return f"{BURST_ROUNDS} bursts until the {BURST_RING} B ring was full, {r['messages']} Pongs in order, " \
               f"up to {r['max_burst']} in flight"

    def t_consumer_killed(self, t):
        path = self.sock(t, "c.sock")
        c = self.start_consumer(t.consumer, path)
        p = self.start_producer(t.producer, path, "stream", "--n", STREAM_BEFORE_KILL)
        if p.wait_event({"streaming"}, DEFAULT_TIMEOUT) is None:
            raise Failed(f"{p.name} never reported streaming; {p.tail()}")
        c.kill(signal.SIGKILL)
        t0 = time.monotonic()
        r = self.result_of(p, EVENT_TIMEOUT)
        return f"SIGKILL after {STREAM_BEFORE_KILL}+ round trips; producer got peer-closed after " \
               f"{r.get('round_trips')} round trips, {1e3 * (time.monotonic() - t0):.0f} ms after the kill"

    def t_producer_killed(self, t):
        path = self.sock(t, "c.sock")
        c = self.start_consumer(t.consumer, path)
        p = self.start_producer(t.producer, path, "stream", "--n", STREAM_BEFORE_KILL)
        if p.wait_event({"streaming"}, DEFAULT_TIMEOUT) is None:
            raise Failed(f"{p.name} never reported streaming; {p.tail()}")
        p.kill(signal.SIGKILL)
        t0 = time.monotonic()
        ev = self.consumer_end(c)
        return f"SIGKILL mid-stream; consumer got peer-closed after {ev.get('messages')} messages, " \
               f"{1e3 * (time.monotonic() - t0):.0f} ms after the kill"

    def version_check(self, t, consumer_proto, producer_proto):
        """One direction of the mismatch: both sides must see a protocol error."""
        path = self.sock(t, f"v{consumer_proto}-{producer_proto}.sock")
        c = self.start_consumer(t.consumer, path, proto=consumer_proto)
        flags = ["--protocol-version", producer_proto] if producer_proto else []
        p = self.start_producer(t.producer, path, "version", *flags)
        r = self.result_of(p, DEFAULT_TIMEOUT)
        ev = c.wait_event({"accept_error", "conn_end"}, EVENT_TIMEOUT)
        if ev is None or ev["event"] != "accept_error" or ev.get("status") != "protocol":
            raise Failed(f"{c.name} did not report a protocol error for the handshake: {ev or c.tail()}")
        if "version" not in ev.get("error", ""):
            raise Failed(f"{c.name}'s protocol error does not name the version: {ev.get('error')}")
        c.cleanup()
        return r

    def t_version_mismatch(self, t):
        # The Go side announces the wrong version: always possible.
        go_is_consumer = t.consumer in ("go", "golib")
        other = t.producer if go_is_consumer else t.consumer
        if go_is_consumer:
            self.version_check(t, WRONG_VERSION, 0)
            first = f"Go consumer announced v{WRONG_VERSION}"
        else:
            self.version_check(t, 0, WRONG_VERSION)
            first = f"Go producer announced v{WRONG_VERSION}"
        # The other side announces it too, where its binding can.
        if other in ("go", "golib"):
            return first + "; both sides got a protocol error naming the version"
        if not self.supports_override(other):
            return first + f"; both sides got a protocol error naming the version (the reverse direction is " \
                           f"not run: the {other} binding has no protocol-version override)"
        if go_is_consumer:
            self.version_check(t, 0, WRONG_VERSION)
        else:
            self.version_check(t, WRONG_VERSION, 0)
        return first + f", then the {other} side did; both sides got a protocol error naming the version, " \
                       f"both ways"

    def supports_override(self, lang):
        if lang in ("c", "go", "golib"):
            return True
        out = subprocess.run(peer_command(lang) + ["features"], capture_output=True, text=True, timeout=60, cwd=ROOT)
        for line in out.stdout.splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "features":
                return bool(ev.get("protocol_version_override"))
        return False

    def t_layout(self, t):
        path, snap = self.sock(t, "cap.sock"), self.sock(t, "snapshot.bin")
        cap = Proc("go capture", peer_command("go") + ["capture", "--listen", path, "--snapshot", snap])
        if cap.wait_event({"ready", "capture_error"}, READY_TIMEOUT) is None:
            raise Failed(f"capture listener did not start; {cap.tail()}")
        p = self.start_producer(t.producer, path, "layout", "--ring-size", LAYOUT_RING,
                                "--max-message", LAYOUT_MAX_MESSAGE, "--snapshot", snap)
        r = self.result_of(p, DEFAULT_TIMEOUT)
        ev = cap.wait_event({"captured", "capture_error"}, EVENT_TIMEOUT)
        if ev is None or ev["event"] != "captured":
            raise Failed(f"capture: {ev.get('error') if ev else cap.tail()}")
        if ev["seals"] & SEALS != SEALS:
            raise Failed(f"the memfd's seals are {ev['seals']:#x}, want shrink|grow|seal ({SEALS:#x})")
        return f"{r.get('checked')} agree with docs/LAYOUT.md ({r.get('snapshot_bytes')} B snapshot of a live segment)"

    # ---- running ----

    @staticmethod
    def needs(t):
        """The probe keys a test needs: go-cli is `goipc pong`, go the Go peer."""
        keys = {"ping-" + base_lang(t.producer) if t.scenario in ("pingpong", "calls") else t.producer}
        if t.scenario == "layout":
            keys.add("go")  # the capture listener
        else:
            consumer = base_lang(t.consumer)
            keys.add({"go": "go-cli", "golib": "go"}.get(consumer, consumer))
        return sorted(keys)

    def run(self, t):
        for key in self.needs(t):
            why = self.unavailable.get(key)
            if why:
                return False, f"{key.replace('go-cli', 'goipc pong')}: {why}"
        t0 = time.monotonic()
        try:
            detail = getattr(self, "t_" + t.scenario)(t)
            return True, f"{detail}, {time.monotonic() - t0:.1f} s"
        except Failed as e:
            return False, str(e)
        except Exception as e:  # a driver bug must not stop the matrix
            return False, f"driver error: {type(e).__name__}: {e}"
        finally:
            kill_all()


SCENARIOS = ("pingpong", "sizes", "burst", "consumer_killed", "producer_killed", "version_mismatch")


def all_tests():
    pairs = [(p, c) for p in LANGS for c in ("go", "golib")] + [("go", c) for c in ("c", "python", "rust")]
    pairs += [("go", c) for c in EVENT_LOOPS]
    tests = [Test(s, p, c) for p, c in pairs for s in SCENARIOS]
    # The event-loop producers (the ping-pong examples with --asyncio or
    # --tokio) against the Go consumers.
    tests += [Test("pingpong", p, c) for p in EVENT_LOOPS for c in ("go", "golib")]
    # Calls: every producer against the Go consumers (which answer a Ping
    # sent as a call request with a Pong as its reply), and the Go producer
    # against the C, Python and Rust consumers (peer consumer --calls).
    tests += [Test("calls", p, c) for p in LANGS for c in ("go", "golib")]
    tests += [Test("calls", "go", c) for c in ("c", "python", "rust")]
    tests += [Test("calls", p, c) for p in EVENT_LOOPS for c in ("go", "golib")]
    tests += [Test("layout", lang, "go") for lang in LANGS]
    return tests


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", action="append", default=[], help="run only tests whose name contains this (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("-v", action="store_true", help="print more detail")
    args = ap.parse_args()

    tests = [t for t in all_tests() if not args.k or any(k in t.name for k in args.k)]
    if args.list:
        for t in tests:
            print(t.name)
        return 0

    def on_signal(sig, frame):
        kill_all()
        sys.exit(128 + sig)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    runner = Runner(args.v)
    for lang, why in runner.unavailable.items():
        if why:
            print(f"note: {lang}: {why}", flush=True)
    passed = failed = 0
    start = time.monotonic()
    try:
        for t in tests:
            ok, detail = runner.run(t)
            print(f"{t.name} ... {'PASS' if ok else 'FAIL'} ({detail})", flush=True)
            passed, failed = passed + ok, failed + (not ok)
    finally:
        runner.close()
    print(f"interop matrix: {len(tests)} tests in {time.monotonic() - start:.0f} s", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
