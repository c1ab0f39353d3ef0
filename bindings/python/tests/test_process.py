"""What a Python user expects of the process: Ctrl-C gets through blocking
calls, threads run while one waits (the GIL is released), a forked child
gets ForkError instead of hanging, multiprocessing with spawn and
forkserver works."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import goipc

from conftest import child_env, make_pair

SYS_FUTEX = 202  # x86-64; the test that uses it checks the machine


def _wait_blocked_in_futex(pid: int, timeout: float) -> bool:
    """True once the main thread of pid sleeps in a futex (a blocking
    goipc wait parks there), False on timeout. Reads
    /proc/PID/syscall, which holds the syscall number a blocked thread
    is in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/syscall" % pid) as f:
                first = f.read().split(" ", 1)[0]
        except OSError:
            return False
        if first == str(SYS_FUTEX):
            return True
        time.sleep(0.005)
    return False


CHILD = r"""
import sys, goipc
what, path = sys.argv[1], sys.argv[2]
try:
    if what == "recv":
        c = goipc.dial(path, timeout=20)
        print("ready", flush=True)
        c.recv()
    elif what == "recv_into":
        c = goipc.dial(path, timeout=20)
        print("ready", flush=True)
        c.recv_into(bytearray(64))
    elif what == "recv_pong":
        c = goipc.dial(path, timeout=20)
        print("ready", flush=True)
        c.recv_pong()
    elif what == "accept":
        ln = goipc.listen(path)
        print("ready", flush=True)
        ln.accept()
    elif what == "dial":
        goipc.load_library()
        print("ready", flush=True)
        goipc.dial(path)   # the peer never answers the handshake
    print("returned", flush=True)
    sys.exit(3)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(42)
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="futex syscall number checked for x86-64")
@pytest.mark.parametrize("what", ["recv", "recv_into", "recv_pong", "accept", "dial"])
def test_ctrl_c_interrupts_blocking_call(go_pong, sockdir, what):
    """SIGINT to a process blocked without a timeout: KeyboardInterrupt
    within a bound (the waits are 100 ms slices)."""
    srv = None
    if what in ("recv", "recv_into", "recv_pong"):
        path = go_pong.path
    elif what == "accept":
        path = os.path.join(sockdir, "acc.sock")
    else:
        # Accepts connections (backlog) but never speaks: a handshake that
        # would wait its whole 5 s timeout inside one library call.
        path = os.path.join(sockdir, "mute.sock")
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(path)
        srv.listen(4)
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, what, path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env()
    )
    try:
        assert p.stdout.readline().strip() == b"ready", p.stderr.read()
        assert _wait_blocked_in_futex(p.pid, 20), "the child never blocked"
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=20)
        dt = time.monotonic() - t0
        out = p.stdout.read()
        assert rc == 42, (rc, out, p.stderr.read())
        assert b"KeyboardInterrupt" in out
        assert dt < 2.0, "KeyboardInterrupt took %.2f s" % dt
        print("%s: KeyboardInterrupt %.0f ms after SIGINT" % (what, dt * 1000))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
        if srv is not None:
            srv.close()


def _poll_waitpid(pid: int, timeout: float) -> int:
    """waitpid without hanging: polls WNOHANG; kills the child and fails
    the test if it does not exit in time. Returns the exit code."""
    deadline = time.monotonic() + timeout
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung (killed after %.0f s)" % timeout)
        time.sleep(0.01)


def test_fork_child_gets_fork_error(go_pong):
    with goipc.dial(go_pong.path, timeout=10) as c:
        c.send(b"x")
        assert c.recv(timeout=10) == b"x"
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            code = 10
            try:
                try:
                    c.send(b"y")
                    code = 11
                except goipc.ForkError as e:
                    code = 0 if ("spawn" in str(e) and "forkserver" in str(e)) else 12
                if code == 0:
                    for fn in (lambda: c.recv(timeout=0), lambda: goipc.dial(go_pong.path), lambda: c.close()):
                        try:
                            fn()
                            code = 13
                        except goipc.ForkError:
                            pass
            finally:
                os._exit(code)
        assert _poll_waitpid(pid, 30) == 0
        # The parent is unaffected.
        c.send(b"z")
        assert c.recv(timeout=10) == b"z"


def test_raw_fork_detected_by_pid(go_pong):
    """A fork() that bypasses os.fork's hooks (C code) is still caught by
    the pid comparison of dial/listen/accept/close."""
    goipc.load_library()
    libc = ctypes.CDLL(None, use_errno=True)
    pid = libc.fork()
    if pid == 0:
        code = 20
        try:
            try:
                goipc.dial(go_pong.path, timeout=1)
                code = 21
            except goipc.ForkError:
                code = 0
        finally:
            os._exit(code)
    assert pid > 0
    assert _poll_waitpid(pid, 30) == 0


def test_fork_before_first_use_is_fine():
    """A child forked before the library was ever loaded may use it."""
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, goipc\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    goipc.load_library(); os._exit(0 if goipc.abi_version() == 1 else 1)\n"
            "_, st = os.waitpid(pid, 0); print(os.waitstatus_to_exitcode(st))\n",
        ],
        capture_output=True,
        timeout=60,
        env=child_env(),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == b"0"


def _mp_round_trip(path: str) -> bytes:
    import goipc as g

    with g.dial(path, timeout=10) as c:
        c.send(b"from a %s child" % multiprocessing.get_start_method().encode())
        return c.recv(timeout=10)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_multiprocessing_spawn_and_forkserver(go_pong, method):
    goipc.load_library()  # the parent has the Go runtime running
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_mp_round_trip, (go_pong.path,)).get(timeout=60)
    assert got == b"from a %s child" % method.encode()


def test_threads_run_while_one_waits(sockdir):
    """A thread blocked in recv() without a timeout does not hold the GIL:
    the main thread meanwhile makes round trips on another connection."""
    ln, c, s = make_pair(os.path.join(sockdir, "thr.sock"))
    ln2, c2, s2 = make_pair(os.path.join(sockdir, "thr2.sock"))
    got = []
    try:
        t = threading.Thread(target=lambda: got.append(s.recv()))
        t.start()
        while s._pool:  # inside recv (it took the scratch buffer)
            time.sleep(0.001)
        echo = threading.Thread(target=lambda: [s2.send(s2.recv(timeout=10)) for _ in range(300)])
        echo.start()
        t0 = time.monotonic()
        for i in range(300):
            c2.send(b"%d" % i)
            assert c2.recv(timeout=10) == b"%d" % i
        dt = time.monotonic() - t0
        echo.join(10)
        # With the GIL held across each 100 ms wait slice this would take
        # 300 * 100 ms; released, it is milliseconds.
        assert dt < 10.0, dt
        assert t.is_alive() and not got
        c.send(b"wake up")
        t.join(10)
        assert got == [b"wake up"]
    finally:
        for x in (c, s, c2, s2, ln, ln2):
            x.close()


def test_gil_released_during_wait(pair):
    """A pure-Python thread keeps running at full speed while the main
    thread waits in recv (compare its progress during a sleep, which
    releases the GIL, with its progress during a goipc wait)."""
    c, s = pair
    count = [0]
    stop = threading.Event()

    def spin():
        n = 0
        while not stop.is_set():
            n += 1
            count[0] = n

    t = threading.Thread(target=spin)
    t.start()
    try:
        a = count[0]
        time.sleep(0.4)
        during_sleep = count[0] - a
        a = count[0]
        with pytest.raises(goipc.TimeoutError):
            s.recv(timeout=0.4)
        during_wait = count[0] - a
    finally:
        stop.set()
        t.join()
    assert during_sleep > 0
    assert during_wait > 0.3 * during_sleep, (during_wait, during_sleep)


def test_concurrent_receivers_share_messages(pair):
    """Two threads receiving on one connection get every message exactly
    once, unmixed (one of them runs without the shared scratch buffer)."""
    c, s = pair
    n = 2000
    results = [[], []]

    def rx(k):
        while True:
            try:
                m = s.recv(timeout=2)
            except goipc.TimeoutError:
                return
            if m == b"end":
                return
            results[k].append(m)

    ts = [threading.Thread(target=rx, args=(k,)) for k in (0, 1)]
    for t in ts:
        t.start()
    sent = [b"msg-%05d-" % i + bytes([i & 0xFF]) * (i % 300) for i in range(n)]
    for m in sent:
        c.send(m)
    c.send(b"end")
    c.send(b"end")
    for t in ts:
        t.join(30)
    got = results[0] + results[1]
    assert sorted(got) == sorted(sent)
