"""Fixtures of the goipc Python tests.

The tests import the goipc package that is on sys.path: `make test-python`
installs it into build/venv first (so the installed package, with its
bundled libgoipc.so, is what runs); from a source tree,
PYTHONPATH=bindings/python/src works too.

The Go consumer is `goipc pong` ($GOIPC_BIN, else build/bin/goipc of this
repository): fixtures start it and wait for its ready line on stdout,
never for a fixed time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

import goipc
from goipc.bench import wait_ready

REPO = Path(__file__).resolve().parents[3]
READY = b"goipc pong: listening on"


def goipc_bin() -> str:
    exe = os.environ.get("GOIPC_BIN") or str(REPO / "build" / "bin" / "goipc")
    if not Path(exe).is_file():
        pytest.fail("the Go CLI %s is missing: run `make build` (or set GOIPC_BIN)" % exe)
    return exe


@pytest.fixture
def sockdir() -> Iterator[str]:
    """A short temporary directory for socket paths (sun_path is 108
    bytes; pytest's tmp_path can be longer)."""
    d = tempfile.mkdtemp(prefix="gpy-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class GoPong:
    """A running `goipc pong --listen PATH` process."""

    def __init__(self, path: str, *extra: str) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            [goipc_bin(), "pong", "--listen", path, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        try:
            self.ready_line = wait_ready(self.proc, self.proc.stdout, READY, 20.0)
        except BaseException:
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL, and wait for the process to be gone."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for s in (self.proc.stdout, self.proc.stderr):
            if s is not None:
                s.close()


@pytest.fixture
def go_pong(sockdir: str) -> Iterator[GoPong]:
    """A Go consumer answering every message (Pings with Pongs)."""
    p = GoPong(os.path.join(sockdir, "pong.sock"))
    try:
        yield p
    finally:
        p.stop()


def make_pair(path: str, **dial_opts) -> Tuple[goipc.Listener, goipc.Conn, goipc.Conn]:
    """A Python listener at path and both ends of one connection:
    (listener, dialer's conn, accepted conn)."""
    ln = goipc.listen(path)
    got: List[goipc.Conn] = []
    errs: List[BaseException] = []

    def accept() -> None:
        try:
            got.append(ln.accept(timeout=20))
        except BaseException as e:  # noqa: BLE001 - reported below
            errs.append(e)

    t = threading.Thread(target=accept)
    t.start()
    try:
        c = goipc.dial(path, timeout=20, **dial_opts)
    finally:
        t.join(30)
    if errs:
        raise errs[0]
    return ln, c, got[0]


@contextlib.contextmanager
def open_pair(path: str, **dial_opts) -> Iterator[Tuple[goipc.Conn, goipc.Conn]]:
    """make_pair as a context manager: (client, server), both ends and
    the listener closed on exit."""
    ln, c, s = make_pair(path, **dial_opts)
    try:
        yield c, s
    finally:
        c.close()
        s.close()
        ln.close()


@pytest.fixture
def pair(sockdir: str) -> Iterator[Tuple[goipc.Conn, goipc.Conn]]:
    """(client, server): two ends of a Python-Python connection in this
    process."""
    with open_pair(os.path.join(sockdir, "pair.sock")) as p:
        yield p


def run_python(code: str, *args: str, timeout: float = 60.0, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Runs code in a fresh interpreter (same sys.path as this one, plus
    the variables in env)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, timeout=timeout, env=child_env(env)
    )


def child_env(extra: Optional[dict] = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    if extra:
        env.update(extra)
    return env
