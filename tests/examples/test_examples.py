"""make test-examples: every program of examples/ runs as examples/README.md
says, against the Go consumer of its scenario. The Makefile builds them
first (`make examples`); EXAMPLE_BIN names where each one is.

Test names say the pair: test_<scenario>_<producer language>_to_go.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
RUST = REPO / "bindings" / "rust" / "target" / "release" / "examples"
PYTHON_ENV = dict(os.environ, PYTHONPATH=str(REPO / "bindings" / "python" / "src"))

# The producer of each scenario, per language, as a command line.
PRODUCERS = {
    "ping-pong": {
        "go": [BUILD / "examples" / "ping-pong-go", "ping"],
        "c": [BUILD / "bin" / "goipc-ping-c", "--transport", "goipc"],
        "python": [sys.executable, REPO / "examples" / "ping-pong" / "python" / "ping.py", "--transport", "goipc"],
        "rust": [RUST / "ping_pong", "--transport", "goipc"],
    },
    "many-producers": {
        "go": [BUILD / "examples" / "many-producers-go", "producer"],
        "c": [BUILD / "examples" / "many-producers-c"],
        "python": [sys.executable, REPO / "examples" / "many-producers" / "python" / "producer.py"],
        "rust": [RUST / "many_producers"],
    },
    "zero-copy": {
        "go": [BUILD / "examples" / "zero-copy-go", "producer"],
        "c": [BUILD / "examples" / "zero-copy-c"],
        "python": [sys.executable, REPO / "examples" / "zero-copy" / "python" / "producer.py"],
        "rust": [RUST / "zero_copy"],
    },
}
LANGS = ["go", "c", "python", "rust"]


def cmd(*parts) -> list:
    return [str(p) for p in parts]


class Listening:
    """A program started with --listen PATH and waited for ("listening on"
    in its first line). stop() ends it with stop_signal if it still runs."""

    stop_signal = signal.SIGKILL

    def __init__(self, argv: list, path: Path, args: tuple, what: str) -> None:
        self.path = path
        self.proc = subprocess.Popen(cmd(*argv, "--listen", path, *args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=PYTHON_ENV)
        self.first_line = self.proc.stdout.readline()
        assert "listening on" in self.first_line, "%s did not start: %r %s" % (
            what, self.first_line, self.proc.stderr.read() if self.proc.poll() is not None else "")

    def finish(self, terminate: bool = False, timeout: float = 30) -> tuple:
        """Waits for the program to exit (after SIGTERM if terminate);
        returns (code, stdout, stderr)."""
        if terminate:
            self.proc.terminate()
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            self.proc.communicate(timeout=10)


class Consumer(Listening):
    """A Go consumer of examples/<scenario>/go ("listening on" starts its
    first line)."""

    stop_signal = signal.SIGTERM

    def __init__(self, scenario: str, tmp: Path, *args: str) -> None:
        role = "pong" if scenario == "ping-pong" else "consumer"
        what = "the %s consumer" % scenario
        super().__init__([BUILD / "examples" / ("%s-go" % scenario), role], tmp / ("%s.sock" % scenario), args, what)
        assert self.first_line.startswith("listening on"), "%s: %r" % (what, self.first_line)


def run_program(argv: list, what: str, timeout: float) -> str:
    """Runs an example program to its end; its stdout, once it exited 0."""
    r = subprocess.run(cmd(*argv), capture_output=True, text=True, timeout=timeout, env=PYTHON_ENV)
    assert r.returncode == 0, "%s exited %d:\n%s%s" % (what, r.returncode, r.stdout, r.stderr)
    return r.stdout


def produce(scenario: str, lang: str, *args: str, timeout: float = 120) -> str:
    return run_program([*PRODUCERS[scenario][lang], *args], "%s %s" % (scenario, lang), timeout)


@pytest.mark.parametrize("lang", LANGS)
def test_ping_pong_to_go(lang, tmp_path):
    pong = Consumer("ping-pong", tmp_path)
    try:
        out = produce("ping-pong", lang, "--path", pong.path, "--size", "64", "--iters", "2000", "--warmup", "100")
    finally:
        pong.stop()
    line = json.loads(out.strip().splitlines()[-1])
    assert "error" not in line, line
    assert line["lang"] == lang and line["iters"] == 2000 and line["size"] == 64, line
    assert 0 < line["p50_ns"] <= line["p99_ns"] <= line["max_ns"], line


def ping_go_cli(lang: str, tmp_path: Path, *flags: str) -> dict:
    """The ping-pong example's ping of lang with flags, 1000 round trips of
    100 B (after 10) against `goipc pong` (which answers a Ping with its
    Pong and a call with its reply); its JSON line, checked to be a result."""
    pong = Listening([BUILD / "bin" / "goipc", "pong"], tmp_path / "pong.sock", (), "goipc pong")
    try:
        out = produce("ping-pong", lang, "--path", pong.path, "--size", "100", "--iters", "1000", "--warmup", "10",
                      *flags)
    finally:
        pong.finish(terminate=True, timeout=10)
    line = json.loads(out.strip().splitlines()[-1])
    assert "error" not in line, line
    assert 0 < line["p50_ns"] <= line["p99_ns"] <= line["max_ns"] and line["per_s"] > 0, line
    return line


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("typed,call,threads", [(True, False, 1), (False, True, 1), (True, True, 1), (True, True, 3)])
def test_ping_pong_typed_and_call_to_go_cli(lang, typed, call, threads, tmp_path):
    """The pings' other ways: typed Ping/Pong, one call per round trip,
    both, and calls from 3 threads on one connection."""
    flags = (["--typed"] if typed else []) + (["--call"] if call else []) + ["--threads", str(threads)]
    line = ping_go_cli(lang, tmp_path, *flags)
    assert (line["lang"], line["typed"], line["call"], line["threads"], line["size"]) == (lang, typed, call, threads, 100), line


# The pings on an event loop, every way: Python on goipc.aio (calls from 3
# tasks of the loop), Rust on tokio (calls from 3 futures of the runtime's
# thread).
EVENT_LOOP_WAYS = [(lang, runtime, typed, call, threads)
                   for lang, runtime in [("python", "asyncio"), ("rust", "tokio")]
                   for typed, call, threads in [(False, False, 1), (True, False, 1), (False, True, 3), (True, True, 3)]]


@pytest.mark.parametrize("lang,runtime,typed,call,threads", EVENT_LOOP_WAYS)
def test_ping_pong_event_loop_to_go_cli(lang, runtime, typed, call, threads, tmp_path):
    flags = ["--" + runtime, "--threads", str(threads)] + (["--typed"] if typed else []) + (["--call"] if call else [])
    line = ping_go_cli(lang, tmp_path, *flags)
    assert (line["lang"], line[runtime], line["typed"], line["call"], line["threads"]) == \
        (lang, True, typed, call, threads), line


@pytest.mark.parametrize("lang", LANGS)
def test_ping_pong_unix_transport_to_c_echo(lang, tmp_path):
    """--transport unix (the baseline of make demo and goipc bench): the
    same program over a Unix stream socket to the C pong's echo."""
    echo = Listening([BUILD / "c" / "pong", "--transport", "unix"], tmp_path / "echo.sock", (),
                     "c pong --transport unix")
    try:
        # The last --transport wins: PRODUCERS says goipc for some.
        out = produce("ping-pong", lang, "--transport", "unix", "--path", echo.path, "--size", "64", "--iters", "500",
                      "--warmup", "10")
    finally:
        echo.finish(terminate=True, timeout=10)
    line = json.loads(out.strip().splitlines()[-1])
    assert "error" not in line, line
    assert (line["lang"], line["transport"], line["iters"]) == (lang, "unix", 500), line
    assert 0 < line["p50_ns"] <= line["p99_ns"] <= line["max_ns"], line


def test_many_producers_c_python_rust_go_to_one_go_consumer(tmp_path):
    n = {"go": 20000, "c": 20000, "python": 5000, "rust": 20000}
    consumer = Consumer("many-producers", tmp_path, "--producers", str(len(LANGS)))
    try:
        procs = {lang: subprocess.Popen(cmd(*PRODUCERS["many-producers"][lang], "--dial", consumer.path,
                                            "--name", lang, "-n", n[lang]),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=PYTHON_ENV)
                 for lang in LANGS}
        for lang, p in procs.items():
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, "producer %s exited %d: %s%s" % (lang, p.returncode, out, err)
            assert out == "producer %s: %d messages, the consumer counted %d\n" % (lang, n[lang], n[lang])
        code, out, err = consumer.finish()
    finally:
        consumer.stop()
    assert code == 0, err
    for lang in LANGS:
        assert "consumer: %s sent %d messages, in order\n" % (lang, n[lang]) in out, out
    assert out.endswith("consumer: 4 producers served\n"), out


@pytest.mark.parametrize("lang", LANGS)
def test_zero_copy_to_go(lang, tmp_path):
    consumer = Consumer("zero-copy", tmp_path)
    try:
        out = produce("zero-copy", lang, "--dial", consumer.path, "-n", "200", "--size", "65536")
    finally:
        consumer.stop()
    assert out == "producer %s: 200 messages of 65536 bytes built and answered in place\n" % lang


# ---- request/response and event loops: both sides in every language ---------
#
# Every client runs against the Go server of its scenario, and the Go client
# against every other language's server. Test names say the pair:
# test_<scenario>_<client language>_client_to_<server language>_server.

EXAMPLES = BUILD / "examples"
# The client of each scenario, per language, as a command line.
CLIENTS = {
    "request-response": {
        "go": [EXAMPLES / "request-response-go", "client"],
        "c": [EXAMPLES / "request-response-c-client"],
        "python": [sys.executable, REPO / "examples" / "request-response" / "python" / "client.py"],
        "rust": [RUST / "request_response"],
    },
    "event-loop": {
        "go": [EXAMPLES / "event-loop-go", "client"],
        "c": [BUILD / "c" / "epoll_ping"],
        "python": [sys.executable, REPO / "examples" / "event-loop" / "python" / "client.py"],
        "rust": [RUST / "event_loop"],
    },
}
# The server of each scenario, per language; each prints a line with
# "listening on PATH" when ready.
SERVERS = {
    "request-response": {
        "go": [EXAMPLES / "request-response-go", "server"],
        "c": [EXAMPLES / "request-response-c-server"],
        "python": [sys.executable, REPO / "examples" / "request-response" / "python" / "server.py"],
        "rust": [RUST / "request_response_server"],
    },
    "event-loop": {
        "go": [EXAMPLES / "event-loop-go", "server"],
        "python": [sys.executable, REPO / "examples" / "event-loop" / "python" / "server.py"],
        "rust": [RUST / "tokio_pong"],
    },
}


class Server(Listening):
    """A server of examples/<scenario>/<lang>, started and waited for."""

    def __init__(self, scenario: str, lang: str, tmp: Path, *args: str) -> None:
        super().__init__(SERVERS[scenario][lang], tmp / ("%s-%s.sock" % (scenario, lang)), args,
                         "the %s %s server" % (lang, scenario))


def run_client(scenario: str, lang: str, *args: str, timeout: float = 180) -> str:
    return run_program([*CLIENTS[scenario][lang], *args], "%s %s client" % (scenario, lang), timeout)


CALL_THREADS, CALLS = 8, 500


@pytest.mark.parametrize("lang", LANGS)
def test_request_response_client_to_go_server(lang, tmp_path):
    """Several threads (goroutines) call at once on one connection; the Go
    server (goipc.Serve, handlers running concurrently) answers every call."""
    server = Server("request-response", "go", tmp_path)
    try:
        out = run_client("request-response", lang, "--dial", server.path,
                         "--threads", str(CALL_THREADS), "-n", str(CALLS))
        code, sout, err = server.finish(terminate=True)
    finally:
        server.stop()
    assert out == "client %s: %d threads x %d calls on one connection, every reply matched its request\n" % (
        lang, CALL_THREADS, CALLS)
    assert code == 0, err
    assert sout.endswith("server go: %d calls answered\n" % (CALL_THREADS * CALLS)), sout


@pytest.mark.parametrize("lang", ["c", "python", "rust"])
def test_request_response_go_client_to_server(lang, tmp_path):
    """The Go client against the C, Python and Rust servers
    (recv_request/reply); each serves two clients and exits."""
    server = Server("request-response", lang, tmp_path, "--clients", "2")
    try:
        for threads in (CALL_THREADS, 1):
            out = run_client("request-response", "go", "--dial", server.path, "--threads", str(threads), "-n", str(CALLS))
            assert out == "client go: %d threads x %d calls on one connection, every reply matched its request\n" % (
                threads, CALLS)
        code, sout, err = server.finish(terminate=False)
    finally:
        server.stop()
    assert code == 0, err
    assert sout.endswith("server %s: 2 clients, %d calls answered\n" % (lang, (CALL_THREADS + 1) * CALLS)), sout


LOOP_CONNS, LOOP_ROUNDS = 200, 50


def check_loop_client(lang: str, out: str, conns: int, rounds: int) -> None:
    """The client's summary line; for the others than C (one thread by
    construction), its thread count stays far below one per connection."""
    lines = out.splitlines()
    if lang == "c":
        assert lines[0] == "c epoll_ping: %d connections x %d round trips of 64 B, every reply checked, one thread" % (
            conns, rounds), out
        return
    if lang == "go":
        idle, summary = lines
        assert idle.startswith("idle: %d connections: " % conns), out
        threads = int(idle.split(" OS threads")[0].rsplit(" ", 1)[1])
        assert summary == "client go: %d connections x %d round trips, a goroutine each, every reply checked" % (
            conns, rounds), out
    else:
        (summary,) = lines
        where = "one event loop" if lang == "python" else "one tokio runtime"
        head = "client %s: %d connections x %d round trips in %s, every reply checked; " % (lang, conns, rounds, where)
        assert summary.startswith(head) and summary.endswith(" threads"), out
        threads = int(summary[len(head):].split()[0])
    assert 1 <= threads < conns // 4, out


def loop_client_args(lang: str, path: Path) -> list:
    if lang == "c":
        return ["--dial", path, "-c", str(LOOP_CONNS), "-n", str(LOOP_ROUNDS), "--ring", "16384"]
    return ["--dial", path, "--conns", str(LOOP_CONNS), "-n", str(LOOP_ROUNDS)]


@pytest.mark.parametrize("lang", LANGS)
def test_event_loop_client_to_go_server(lang, tmp_path):
    """Many connections from one process (goroutines, asyncio, tokio, epoll)
    to the Go server, a goroutine per connection."""
    server = Server("event-loop", "go", tmp_path)
    try:
        out = run_client("event-loop", lang, *loop_client_args(lang, server.path))
        code, sout, err = server.finish(terminate=True)
    finally:
        server.stop()
    check_loop_client(lang, out, LOOP_CONNS, LOOP_ROUNDS)
    assert code == 0, err
    assert sout.endswith("server go: %d connections accepted, %d messages echoed\n" % (
        LOOP_CONNS, LOOP_CONNS * LOOP_ROUNDS)), sout


@pytest.mark.parametrize("lang", ["python", "rust"])
def test_event_loop_go_client_to_server(lang, tmp_path):
    """The Go client's connections served by one asyncio loop, by one tokio
    runtime."""
    server = Server("event-loop", lang, tmp_path)
    try:
        out = run_client("event-loop", "go", *loop_client_args("go", server.path))
        code, sout, err = server.finish(terminate=True)
    finally:
        server.stop()
    check_loop_client("go", out, LOOP_CONNS, LOOP_ROUNDS)
    if lang == "python":
        assert code == 0, err
        assert sout.endswith("server python: %d connections accepted, %d messages echoed\n" % (
            LOOP_CONNS, LOOP_CONNS * LOOP_ROUNDS)), sout
