"""goipc._speedups, the optional C extension that makes the per-message
calls without ctypes: that it is built and bound when it should be, that
the fast paths go through it (counted by a proxy) with the same results
as ctypes, its own edges (messages larger than its stack buffer, buffers
too small, bad arguments), and that a stale build is not used.

`make test-python` runs every other test twice, with the extension and
with GOIPC_PYTHON_SPEEDUPS=0, so both paths pass the same suite."""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import sys
import threading
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict

import pytest

import goipc
import goipc.aio
from goipc import _lib
from conftest import open_pair
from test_aio import run


def _module() -> Any:
    """The extension module whatever GOIPC_PYTHON_SPEEDUPS says; fails
    under `make test-python` (which builds it) if it is missing."""
    _lib.load()
    mod = _lib._find_speedups(Path(_lib.state.path or ""))
    if mod is None:
        if os.environ.get("GOIPC_EXPECT_SPEEDUPS") == "1":
            pytest.fail("goipc._speedups is not built, and GOIPC_EXPECT_SPEEDUPS=1")
        pytest.skip("goipc._speedups is not built here (no C compiler or Python headers at install)")
    return mod


def test_the_extension_is_bound_as_the_environment_says():
    _lib.load()
    if os.environ.get(_lib.ENV_SPEEDUPS) == "0":
        assert _lib.state.speedups is None
    elif os.environ.get("GOIPC_EXPECT_SPEEDUPS") == "1":
        assert _lib.state.speedups is not None, "make test-python builds goipc._speedups: it must be bound"
        assert _lib.state.speedups.VERSION == _lib.SPEEDUPS_VERSION
        assert _lib.state.speedups_path
    else:
        found = _lib._find_speedups(Path(_lib.state.path or ""))
        assert (_lib.state.speedups is None) == (found is None or os.environ.get(_lib.ENV_TYPED_CALLS, "") not in ("", "0"))


class _Counting:
    """The extension module with each call counted by name."""

    def __init__(self, mod: Any) -> None:
        self.mod = mod
        self.calls: Dict[str, int] = {}
        for name in ("send", "recv", "recv_into", "call", "call_into", "call_start", "call_end"):
            setattr(self, name, self._counted(name))

    def _counted(self, name: str) -> Any:
        f = getattr(self.mod, name)

        def call(*args: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return f(*args)

        return call


@pytest.fixture
def counting(monkeypatch) -> _Counting:
    """Connections made after this fixture use a counting proxy of the
    extension (bound to the loaded library), even under
    GOIPC_PYTHON_SPEEDUPS=0."""
    mod = _module()
    lib = _lib.load()
    mod.bind(*(_lib.ctypes.cast(getattr(lib, n), _lib.c_void_p).value or 0
               for n in ("goipc_send", "goipc_recv", "goipc_call_ex", "goipc_call_end", "goipc_call_start")),
             goipc.errors.ERR_BUFFER_TOO_SMALL)
    proxy = _Counting(mod)
    monkeypatch.setattr(_lib.state, "speedups", proxy)
    return proxy


def test_send_and_receive_go_through_the_extension(counting, sockdir):
    with open_pair(os.path.join(sockdir, "sx.sock")) as (c, s):
        c.send(b"abc")
        assert s.recv() == b"abc"
        c.send(bytearray(b"defg"))
        buf = bytearray(16)
        assert s.recv_into(buf) == 4 and buf[:4] == b"defg"
        # Larger than the extension's 2 KiB stack buffer: taken with a
        # second call into a bytes object of its size.
        big = os.urandom(5000)
        c.send(big)
        assert s.recv(timeout=5) == big
        # The general paths (a memoryview is not a fast-path type) still
        # agree with them.
        c.send(memoryview(b"xyz"))
        assert s.recv() == b"xyz"
    assert counting.calls.get("send", 0) == 3  # bytes, bytearray, big
    assert counting.calls.get("recv", 0) == 3
    assert counting.calls.get("recv_into", 0) == 1


def test_a_buffer_too_small_keeps_the_message(counting, sockdir):
    with open_pair(os.path.join(sockdir, "sx.sock")) as (c, s):
        c.send(b"0123456789")
        with pytest.raises(goipc.BufferTooSmallError) as e:
            s.recv_into(bytearray(4))
        assert e.value.needed == 10
        assert s.recv() == b"0123456789"
        with pytest.raises(goipc.TimeoutError):
            s.recv(timeout=0)
    assert counting.calls["recv_into"] == 1


def test_timeouts_and_closed_ends_raise_as_with_ctypes(counting, sockdir):
    with open_pair(os.path.join(sockdir, "sx.sock")) as (c, s):
        with pytest.raises(goipc.TimeoutError):
            s.recv(timeout=0.01)
        with pytest.raises(goipc.TimeoutError):
            s.recv_into(bytearray(8), timeout=0)
        c.close()
        with pytest.raises(goipc.PeerClosedError):
            s.recv(timeout=5)
        with pytest.raises(goipc.ClosedError):
            c.send(b"x")
    assert counting.calls["recv"] >= 2


def test_calls_go_through_the_extension(counting, sockdir):
    with open_pair(os.path.join(sockdir, "sx.sock")) as (c, s):
        big = os.urandom(3000)  # a reply above the stack buffer: the general path takes it

        def serve() -> None:
            for _ in range(4):
                cid, req = s.recv_request(timeout=10)
                s.reply(cid, req if req != b"big" else big)

        t = threading.Thread(target=serve)
        t.start()
        try:
            assert c.call(b"one") == b"one"
            assert c.call(bytearray(b"two")) == b"two"
            out = bytearray(8)
            assert c.call_into(b"three", out) == 5 and out[:5] == b"three"
            assert c.call(b"big", timeout=10) == big
        finally:
            t.join(10)
        assert c.dropped_replies == 0
    assert counting.calls["call"] == 3
    assert counting.calls["call_into"] == 1


def test_call_into_a_buffer_too_small(counting, sockdir):
    with open_pair(os.path.join(sockdir, "sx.sock")) as (c, s):

        def serve() -> None:
            cid, req = s.recv_request(timeout=10)
            s.reply(cid, req * 4)

        t = threading.Thread(target=serve)
        t.start()
        try:
            with pytest.raises(goipc.BufferTooSmallError) as e:
                c.call_into(b"abcd", bytearray(8), timeout=10)
            assert e.value.needed == 16
        finally:
            t.join(10)
    assert counting.calls["call_into"] == 1


def test_asyncio_goes_through_the_extension(counting, go_pong):
    async def main():
        async with await goipc.aio.dial(go_pong.path, timeout=10) as c:
            for i in range(50):
                msg = b"m%d" % i
                await c.send(msg)
                assert await c.recv() == msg
            if goipc.has_calls():
                assert await c.call(b"req") == b"req"
                big = os.urandom(4000)
                assert await c.call(big) == big
            buf = bytearray(64)
            await c.send(b"into")
            assert await c.recv_into(buf) == 4 and buf[:4] == b"into"
            await c.send(b"0123456789")
            with pytest.raises(goipc.BufferTooSmallError) as e:
                await c.recv_into(bytearray(4))
            assert e.value.needed == 10
            assert await c.recv() == b"0123456789"  # still queued

    run(main())
    assert counting.calls["send"] >= 50
    assert counting.calls["recv"] >= 50
    assert counting.calls["recv_into"] >= 2
    if goipc.has_calls():
        # goipc.aio's call: the request with call_start, the reply with
        # call_end (the blocking call's goipc_call_ex is not used).
        assert counting.calls["call_start"] == 2 and counting.calls["call_end"] >= 2
        assert counting.calls.get("call", 0) == 0


def test_bad_arguments_raise_and_do_not_crash():
    mod = _module()
    _lib.load()
    with pytest.raises(TypeError):
        mod.send(1, b"x")  # too few
    with pytest.raises(TypeError):
        mod.send("h", b"x", 0)
    with pytest.raises(OverflowError):
        mod.send(-1, b"x", 0)
    with pytest.raises(TypeError):
        mod.send(1, "text", 0)
    with pytest.raises((TypeError, BufferError)):
        mod.recv_into(1, b"read-only", 0)
    # A handle that names no connection: the library's status, not a crash.
    st = mod.send(0, b"x", 0)
    assert st in (goipc.errors.ERR_INVALID_ARGUMENT, goipc.errors.ERR_CLOSED)
    assert mod.recv(0, 0) == st
    assert mod.recv_into(0, bytearray(4), 0) == -st
    if goipc.has_calls():
        assert mod.call(0, b"x", 0)[0] == st
        assert mod.call_end(0, 1, 0)[0] == st
        assert mod.call_start(0, b"x", 0) == -st


def test_aio_methods_refuses_classes_without_the_slots():
    mod = _module()

    class NoSlots:
        pass

    class WrongKind:
        __slots__ = ("_sent",)
        _busy = None  # a class attribute, not a slot

    with pytest.raises(AttributeError):
        mod.aio_methods(NoSlots, goipc.aio._LoopShared, goipc.conn)
    with pytest.raises(TypeError):
        mod.aio_methods(WrongKind, goipc.aio._LoopShared, goipc.conn)
    with pytest.raises(TypeError):
        mod.aio_methods(goipc.aio.AsyncConn, goipc.aio._LoopShared, "not a module")
    with pytest.raises(TypeError):
        mod.aio_methods(goipc.aio.AsyncConn)
    send, recv, call, op_type = mod.aio_methods(goipc.aio.AsyncConn, goipc.aio._LoopShared, goipc.conn)
    with pytest.raises(TypeError):
        send(object(), b"x")  # the descriptor checks its instance's class

    class Other:
        __slots__ = ("_busy", "_sent", "_closed", "_h", "_queued", "_shared", "_sx", "_parked", "_callers")

    # The offsets are the process's: made for AsyncConn, never for another.
    with pytest.raises(TypeError, match="other classes"):
        mod.aio_methods(Other, goipc.aio._LoopShared, goipc.conn)


def test_a_module_of_another_version_is_not_used(monkeypatch):
    lib = _lib.load()
    stale = SimpleNamespace(VERSION=_lib.SPEEDUPS_VERSION + 1, bind=lambda *a: pytest.fail("bound a stale module"))
    monkeypatch.setattr(_lib, "_find_speedups", lambda path: stale)
    monkeypatch.delenv(_lib.ENV_SPEEDUPS, raising=False)
    monkeypatch.delenv(_lib.ENV_TYPED_CALLS, raising=False)
    assert _lib._bind_speedups(lib, Path(_lib.state.path or "")) == (None, "")
    monkeypatch.setenv(_lib.ENV_SPEEDUPS, "0")
    monkeypatch.setattr(_lib, "_find_speedups", lambda path: pytest.fail("looked for the module though disabled"))
    assert _lib._bind_speedups(lib, Path(_lib.state.path or "")) == (None, "")


# ---- goipc.aio's call made through the extension (many connections) ----


def _aio_call_case(sockdir, name, body):
    """Runs body(c, s, counting) with another waiter of the loop parked
    (so that AsyncConn.call takes the extension's path: start, a pass,
    one look), c and s the two ends of the connection under test."""
    if not goipc.has_calls() or not _lib.load() or not _lib.state.has_call_start:
        pytest.skip("the library has no goipc_call_start")
    _run_beside_a_parked_waiter(sockdir, name, body)


def _run_beside_a_parked_waiter(sockdir, name, body, check=None):
    """Runs body(c, s) in a loop where another connection's receive is
    parked; check(c), if given, first."""
    from test_aio import _with_a_parked_waiter

    async def main():
        closers, parked, c, s = await _with_a_parked_waiter(sockdir, name)
        try:
            if check is not None:
                check(c)
            await body(c, s)
        finally:
            parked.cancel()
            for x in closers:
                x.close()

    run(main())


def test_aio_call_through_the_extension_waits_for_a_late_reply(counting, sockdir):
    """The reply is not in at the first look: the call goes on waiting
    (the general path) and gets it."""

    async def body(c, s):
        call = asyncio.ensure_future(c.call(b"late"))
        # The start, the pass and the look, then the general wait's passes:
        # until the call parks among the reply waiters.
        for _ in range(1_000_000):
            if c._callers:
                break
            await asyncio.sleep(0)
        assert c._callers and not call.done()
        cid, req = s.conn.recv_request(timeout=10)
        s.conn.reply(cid, req + b"!", timeout=10)
        assert await asyncio.wait_for(call, 10) == b"late!"
        assert c.conn.dropped_replies == 0

    _aio_call_case(sockdir, "sxlate", body)
    assert counting.calls["call_start"] == 1 and counting.calls["call_end"] >= 1


def test_aio_call_through_the_extension_cancelled_during_its_pass(counting, sockdir):
    """Cancelled during its pass: the call is cancelled (its reply is
    dropped when it comes) and the next call gets its own reply."""

    async def body(c, s):
        call = asyncio.ensure_future(c.call(b"first"))
        await asyncio.sleep(0)  # started, in its pass
        assert counting.calls["call_start"] == 1 and c._shared.passing == 1
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        cid, req = s.conn.recv_request(timeout=10)
        assert req == b"first"
        s.conn.reply(cid, b"nobody's", timeout=10)
        second = asyncio.ensure_future(c.call(b"second"))
        await asyncio.sleep(0)
        cid, req = s.conn.recv_request(timeout=10)
        s.conn.reply(cid, b"yours", timeout=10)
        assert await asyncio.wait_for(second, 10) == b"yours"
        assert c.conn.dropped_replies == 1

    _aio_call_case(sockdir, "sxcancel", body)
    assert counting.calls["call_start"] == 2


def test_aio_call_through_the_extension_large_reply_and_close(counting, sockdir):
    """A reply above the extension's 2 KiB buffer is kept by the library
    and taken with a larger one; a close during the pass raises
    ClosedError."""
    big = os.urandom(5000)

    async def body(c, s):
        call = asyncio.ensure_future(c.call(b"big"))
        await asyncio.sleep(0)
        cid, _ = s.conn.recv_request(timeout=10)
        s.conn.reply(cid, big, timeout=10)
        assert await asyncio.wait_for(call, 10) == big
        call = asyncio.ensure_future(c.call(b"closed"))
        await asyncio.sleep(0)  # in its pass
        c.close()
        with pytest.raises(goipc.ClosedError):
            await asyncio.wait_for(call, 10)

    _aio_call_case(sockdir, "sxbig", body)
    assert counting.calls["call_start"] == 2


# ---- goipc.aio's send and recv run by the extension (AioOp) ----


def _aio_op_case(sockdir, name, body):
    """Runs body(c, s) with another waiter of the loop parked (so that
    AsyncConn.recv right after a send takes its pass), on connections
    whose send and recv are the extension's (skipped without it)."""
    _lib.load()
    if _lib.state.speedups is None:
        _module()  # fails under GOIPC_EXPECT_SPEEDUPS=1
        pytest.skip("goipc._speedups is not bound (GOIPC_PYTHON_SPEEDUPS=0)")

    def check(c):
        assert c._sx is _lib.state.speedups

    _run_beside_a_parked_waiter(sockdir, name, body, check)


async def _interrupt_in_its_pass(start, how, shared, in_pass=lambda: True) -> None:
    """Starts the op that start() returns and interrupts it during its
    pass of the loop: cancels its task, throws into it, closes it, or
    drops it (how). in_pass is checked while a cancelled task is in its
    pass."""
    if how == "cancel":
        task = asyncio.ensure_future(start())
        await asyncio.sleep(0)  # the task is in its pass
        assert shared.passing == 1 and in_pass()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return
    op = start()
    assert op.send(None) is None and shared.passing == 1
    if how == "throw":
        with pytest.raises(KeyError):
            op.throw(KeyError("x"))
    elif how == "close":
        assert op.close() is None
    else:
        del op  # the only reference: the op is finalized here
        gc.collect()


def _answer(s, reply: bytes) -> bytes:
    got = s.conn.recv(timeout=10)
    s.conn.send(reply, timeout=10)
    return got


def test_aio_send_and_recv_are_the_extensions_and_pass_for_coroutines(sockdir):
    async def body(c, s):
        op = c.send(b"one")
        assert type(op).__name__ == "AioOp" and type(op).__module__ == "goipc._speedups"
        assert asyncio.iscoroutine(op) and inspect.isawaitable(op)
        assert op.__name__ == "send" and op.__qualname__ == "AsyncConn.send"
        await op
        with pytest.raises(RuntimeError, match="already awaited"):
            await op
        assert s.conn.recv(timeout=10) == b"one"
        # create_task, gather and wait_for take them as coroutines.
        task = asyncio.create_task(c.recv())
        await asyncio.sleep(0)
        s.conn.send(b"two", timeout=10)
        assert await asyncio.wait_for(task, 10) == b"two"
        await asyncio.gather(c.send(b"three"), c.send(b"four"))
        assert [s.conn.recv(timeout=10) for _ in range(2)] == [b"three", b"four"]
        # Never awaited: nothing happens, and nothing is left taken.
        c.recv().close()
        c.send(b"never")
        assert not any(c._busy) and c._shared.passing == 0
        with pytest.raises(goipc.TimeoutError):
            s.conn.recv(timeout=0)

    _aio_op_case(sockdir, "opcoro", body)


def test_aio_recv_by_the_extension_passes_then_looks_once(sockdir):
    async def body(c, s):
        shared = c._shared
        await c.send(b"ping")
        r = c.recv()
        assert r.send(None) is None, "the receive did not ask for a pass of the loop"
        assert shared.passing == 1 and c._busy[0] is True and c._sent is False
        assert _answer(s, b"pong") == b"ping"
        passed = shared.passed
        with pytest.raises(StopIteration) as stop:
            r.send(None)
        assert stop.value.value == b"pong"
        assert shared.passing == 0 and c._busy[0] is False and shared.passed == passed + 1
        # A message above the extension's 2 KiB stack buffer.
        big = os.urandom(5000)
        await c.send(b"big?")
        r = c.recv()
        assert r.send(None) is None
        assert _answer(s, big) == b"big?"
        assert await r == big

    _aio_op_case(sockdir, "oplook", body)


def test_aio_recv_by_the_extension_waits_when_the_look_finds_nothing(sockdir):
    async def body(c, s):
        await c.send(b"late?")
        task = asyncio.ensure_future(c.recv())
        for _ in range(1_000_000):  # the pass, the look, the general wait
            if c._parked[0] is not None:
                break
            await asyncio.sleep(0)
        assert c._parked[0] is not None and not task.done()
        assert _answer(s, b"late!") == b"late?"
        assert await asyncio.wait_for(task, 10) == b"late!"
        assert not any(c._busy) and c._shared.passing == 0

    _aio_op_case(sockdir, "opwait", body)


@pytest.mark.parametrize("how", ["cancel", "throw", "close", "drop"])
def test_aio_recv_by_the_extension_interrupted_in_its_pass_loses_nothing(sockdir, how):
    async def body(c, s):
        shared = c._shared
        await c.send(b"ping")
        await _interrupt_in_its_pass(c.recv, how, shared, lambda: c._busy[0])
        assert shared.passing == 0 and c._busy[0] is False
        # The reply was not taken: the next receive gets it.
        assert _answer(s, b"pong") == b"ping"
        assert await asyncio.wait_for(c.recv(), 10) == b"pong"

    _aio_op_case(sockdir, "opint" + how, body)


def test_aio_recv_by_the_extension_queued_behind_and_closed(sockdir):
    async def body(c, s):
        await c.send(b"a?")
        first = asyncio.ensure_future(c.recv())
        second = asyncio.ensure_future(c.recv())  # queued behind the first
        await asyncio.sleep(0)
        assert c._busy[0] and len(c._queued[0]) == 1
        s.conn.recv(timeout=10)
        s.conn.send(b"a", timeout=10)
        s.conn.send(b"b", timeout=10)
        assert await asyncio.wait_for(first, 10) == b"a"
        assert await asyncio.wait_for(second, 10) == b"b"
        # Closed during the pass: ClosedError, the direction handed on.
        await c.send(b"c?")
        r = asyncio.ensure_future(c.recv())
        await asyncio.sleep(0)
        assert c._shared.passing == 1
        c.close()
        with pytest.raises(goipc.ClosedError):
            await asyncio.wait_for(r, 10)
        with pytest.raises(goipc.ClosedError):
            await c.send(b"after close")
        assert c._shared.passing == 0

    _aio_op_case(sockdir, "opqueue", body)


def test_aio_op_throw_and_send_edges(sockdir):
    async def body(c, s):
        op = c.recv()
        with pytest.raises(TypeError):
            op.send(1)  # a just-started coroutine takes only None
        op = c.recv()
        with pytest.raises(ValueError):
            op.throw(ValueError("before it started"))
        with pytest.raises(RuntimeError):
            op.send(None)  # done
        op = c.send(b"x")
        with pytest.raises(TypeError):
            op.throw(ValueError(), "a value with an instance")
        with pytest.raises(TypeError):
            op.throw(42)
        assert not any(c._busy) and c._shared.passing == 0
        op = c.send(b"y")
        assert repr(op).startswith("<goipc.aio send of <goipc.aio.AsyncConn")
        op.close()

    _aio_op_case(sockdir, "opedge", body)


def _leaves_no_references(sockdir, name, rounds, calls=False):
    """Runs rounds(c, s, msg, n) on a connection of its own, beside a
    parked waiter, 20 times to warm up and then 200: the message's
    reference count is unchanged, and once the connections are closed and
    dropped the AsyncConn is freed (no reference to it was leaked)."""
    from test_aio import _with_a_parked_waiter

    _lib.load()
    if _lib.state.speedups is None:
        _module()
        pytest.skip("goipc._speedups is not bound (GOIPC_PYTHON_SPEEDUPS=0)")
    if calls and (not goipc.has_calls() or not _lib.state.has_call_start):
        pytest.skip("the library has no goipc_call_start")
    msg = b"m" * 64

    async def main():
        closers, parked, c, s = await _with_a_parked_waiter(sockdir, name)
        assert c._sx is _lib.state.speedups
        try:
            await rounds(c, s, msg, 20)
            gc.collect()
            before = sys.getrefcount(msg)
            await rounds(c, s, msg, 200)
            gc.collect()
            assert sys.getrefcount(msg) == before
        finally:
            parked.cancel()
            for x in closers:
                x.close()
        return weakref.ref(c)

    ref = run(main())
    gc.collect()
    assert ref() is None, "an AsyncConn outlived its loop and every reference to it: a reference leaked"


def test_aio_ops_leak_no_references(sockdir):
    """Each path of an AioOp (send at once; recv's pass and look; recv
    delegated after a look that found nothing; an op closed in its pass)
    leaves no reference behind."""
    reply = b"y" * 64

    async def rounds(c, s, msg, n):
        for _ in range(n):
            await c.send(msg)
            r = c.recv()
            assert r.send(None) is None
            s.conn.recv(timeout=10)
            s.conn.send(reply, timeout=10)
            with pytest.raises(StopIteration):
                r.send(None)
            await c.send(msg)
            r = c.recv()
            r.send(None)
            r.close()  # undone: the reply stays queued
            s.conn.recv(timeout=10)
            s.conn.send(reply, timeout=10)
            assert await c.recv() == reply
            await c.send(msg)
            late = asyncio.ensure_future(c.recv())  # the look finds nothing
            for _ in range(1000):
                if c._parked[0] is not None:
                    break
                await asyncio.sleep(0)
            s.conn.recv(timeout=10)
            s.conn.send(reply, timeout=10)
            assert await late == reply

    _leaves_no_references(sockdir, "opleak", rounds)


def _aio_call_op_case(sockdir, name, body):
    """_aio_op_case for calls: skipped when the library has no
    goipc_call_start (then call is aio.py's coroutine)."""
    if not goipc.has_calls() or not _lib.load() or not _lib.state.has_call_start:
        pytest.skip("the library has no goipc_call_start")
    _aio_op_case(sockdir, name, body)


def _serve_one_call(s, reply_of) -> bytes:
    cid, req = s.conn.recv_request(timeout=10)
    s.conn.reply(cid, reply_of(req), timeout=10)
    return req


def test_aio_call_by_the_extension_passes_then_looks_once(sockdir):
    async def body(c, s):
        shared = c._shared
        op = c.call(b"q1")
        assert type(op).__name__ == "AioOp" and repr(op).startswith("<goipc.aio call of")
        assert op.send(None) is None, "the call did not ask for a pass of the loop"
        assert shared.passing == 1
        assert _serve_one_call(s, lambda r: r + b"!") == b"q1"
        passed = shared.passed
        with pytest.raises(StopIteration) as stop:
            op.send(None)
        assert stop.value.value == b"q1!" and shared.passing == 0 and shared.passed == passed + 1
        # A reply above the 2 KiB stack buffer: kept by the library, taken
        # by aio.py with a larger buffer.
        big = os.urandom(5000)
        op = c.call(b"big")
        op.send(None)
        _serve_one_call(s, lambda r: big)
        assert await op == big
        # The reply is late: the general wait gets it.
        task = asyncio.ensure_future(c.call(b"late"))
        for _ in range(1_000_000):
            if c._callers:
                break
            await asyncio.sleep(0)
        assert c._callers and not task.done()
        _serve_one_call(s, lambda r: r + b"?")
        assert await asyncio.wait_for(task, 10) == b"late?"
        assert c.conn.dropped_replies == 0 and not c._callers and shared.passing == 0

    _aio_call_op_case(sockdir, "opcall", body)


@pytest.mark.parametrize("how", ["cancel", "throw", "close", "drop"])
def test_aio_call_by_the_extension_interrupted_in_its_pass_drops_its_reply(sockdir, how):
    async def body(c, s):
        shared = c._shared
        await _interrupt_in_its_pass(lambda: c.call(b"first"), how, shared)
        assert shared.passing == 0
        # The request went out; its reply is dropped, and the next call
        # gets its own.
        _serve_one_call(s, lambda r: b"nobody's")
        second = asyncio.ensure_future(c.call(b"second"))
        await asyncio.sleep(0)
        _serve_one_call(s, lambda r: b"yours")
        assert await asyncio.wait_for(second, 10) == b"yours"
        assert c.conn.dropped_replies == 1

    _aio_call_op_case(sockdir, "opcallint" + how, body)


def test_aio_call_by_the_extension_closed_in_its_pass_and_errors(sockdir):
    async def body(c, s):
        task = asyncio.ensure_future(c.call(b"closing"))
        await asyncio.sleep(0)
        assert c._shared.passing == 1
        c.close()
        with pytest.raises(goipc.ClosedError):
            await asyncio.wait_for(task, 10)
        assert c._shared.passing == 0
        with pytest.raises(goipc.ClosedError):
            await c.call(b"after close")

    _aio_call_op_case(sockdir, "opcallclose", body)


def test_aio_call_ops_leak_no_references(sockdir):
    async def rounds(c, s, req, n):
        for _ in range(n):
            op = c.call(req)
            op.send(None)
            _serve_one_call(s, lambda r: r)
            with pytest.raises(StopIteration):
                op.send(None)
            op = c.call(req)
            op.send(None)
            op.close()
            _serve_one_call(s, lambda r: r)  # dropped
            late = asyncio.ensure_future(c.call(req))
            for _ in range(1000):
                if c._callers:
                    break
                await asyncio.sleep(0)
            _serve_one_call(s, lambda r: r)
            assert await late == req
        assert c.conn.dropped_replies >= n

    _leaves_no_references(sockdir, "opcallleak", rounds, calls=True)


def test_aio_call_by_the_extension_ending_frees_its_slot_for_a_waiting_start(sockdir):
    """Every call slot taken (64), a 65th call waits for one. A call that
    ends in the extension's look (its reply taken there) frees its slot,
    and the waiting start gets it: its request reaches the peer. (The
    extension wakes it through _call_ended; the loop's sweeper would
    too, within SWEEP_IDLE, so this checks the outcome, not which.)"""

    async def body(c, s):
        loop = asyncio.get_running_loop()
        waiting = [asyncio.ensure_future(c.call(b"w%d" % i)) for i in range(63)]
        try:
            for _ in range(1_000_000):  # all started and waiting for replies
                if len(c._callers) == 63:
                    break
                await asyncio.sleep(0)
            assert len(c._callers) == 63
            op = c.call(b"last slot")
            assert op.send(None) is None  # started: every slot is taken
            extra = asyncio.ensure_future(c.call(b"extra"))
            for _ in range(100):
                await asyncio.sleep(0)
            assert not extra.done()
            for i in range(63):
                assert (await loop.run_in_executor(None, s.conn.recv_request, 5.0))[1] == b"w%d" % i
            cid, req = await loop.run_in_executor(None, s.conn.recv_request, 5.0)
            assert req == b"last slot"
            s.conn.reply(cid, b"ok")
            with pytest.raises(StopIteration) as stop:
                op.send(None)  # the look takes the reply: the call ends here
            assert stop.value.value == b"ok"
            cid, req = await loop.run_in_executor(None, s.conn.recv_request, 5.0)
            assert req == b"extra"
            s.conn.reply(cid, b"done")
            assert await asyncio.wait_for(extra, 10) == b"done"
        finally:
            for t in waiting:
                t.cancel()

    _aio_call_op_case(sockdir, "opcallslot", body)
