"""Finding and loading libgoipc.so, and the ctypes declarations of its C ABI.

The library is loaded on first use (the first dial, listen or
:func:`load`), not at import: importing goipc never starts the Go runtime,
so a program may import goipc and fork before it uses it.

Search order (the first existing file wins):

1. the package's own folder: the copy a wheel (``make wheel``) or
   ``pip install ./bindings/python`` bundles. An installed package thus
   works with no environment variable, and always with the library it was
   built with.
2. ``$GOIPC_LIBRARY_DIR/libgoipc.so`` (for a package without a bundled
   copy, such as the source tree)
3. the project's ``build/lib``: found from this file's location when the
   package runs from the source tree, or recorded at build time
   (``_build_info.py``) when it was installed from one without a library.

:func:`load` with an explicit path bypasses the search.

When none exists, :class:`~goipc.LibraryError` lists every path tried.

Every function of include/goipc.h gets argtypes and restype here. The
typed Ping/Pong helpers (``goipc_send_ping`` ...) are optional: a library
built before they existed still loads, and :data:`State.has_typed` says
whether they are there.

ctypes.CDLL (not PyDLL) releases the GIL for the duration of every call.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.util
import os
import threading
from ctypes import POINTER, c_char, c_char_p, c_int, c_int32, c_int64, c_size_t, c_uint32, c_uint64, c_void_p
from pathlib import Path
from types import ModuleType
from typing import List, Optional

from . import errors as _errors

#: The ABI version this binding is written against (GOIPC_ABI_VERSION).
ABI_VERSION = 1
LIBRARY_NAME = "libgoipc.so"
ENV_LIBRARY_DIR = "GOIPC_LIBRARY_DIR"

c_status = c_int32
c_handle = c_uint64
# Receive buffers (void * in C) are declared as char *: ctypes then takes a
# c_char instance made with c_char.from_buffer(bytearray) by reference,
# which is cheaper than building an array object per call.
c_buf = POINTER(c_char)


class Options(ctypes.Structure):
    """Mirror of ``goipc_options`` (include/goipc.h). Its layout is checked
    against the header's offsets when the module loads."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("reserved0", c_uint32),
        ("ring_size", c_uint64),
        ("max_message_size", c_uint64),
        ("spin_ns", c_int64),
        ("handshake_timeout_ms", c_int64),
        ("allow_any_uid", c_int32),
        ("protocol_version_override", c_uint32),
        # Version 2 (80 bytes): listener limits.
        ("max_conns", c_int64),
        ("max_segment_size", c_int64),
        ("max_mapped_bytes", c_int64),
        ("max_pending_handshakes", c_int64),
        # Version 3 (88 bytes): calls in flight per connection end.
        ("max_inflight_calls", c_int64),
        # Version 4 (96 bytes): freed space in pieces.
        ("free_space_in_pieces", c_int32),
        ("reserved1", c_uint32),
    ]


# The offsets asserted by _Static_assert in capi/goipc_shim.c.
_OPTIONS_LAYOUT = {
    "struct_size": 0,
    "reserved0": 4,
    "ring_size": 8,
    "max_message_size": 16,
    "spin_ns": 24,
    "handshake_timeout_ms": 32,
    "allow_any_uid": 40,
    "protocol_version_override": 44,
    "max_conns": 48,
    "max_segment_size": 56,
    "max_mapped_bytes": 64,
    "max_pending_handshakes": 72,
    "max_inflight_calls": 80,
    "free_space_in_pieces": 88,
    "reserved1": 92,
}
for _name, _off in _OPTIONS_LAYOUT.items():
    assert getattr(Options, _name).offset == _off, ("goipc_options layout", _name)
assert ctypes.sizeof(Options) == 96, "goipc_options layout"
assert ctypes.sizeof(c_size_t) == ctypes.sizeof(c_void_p), "size_t is pointer-sized"


class DirectionStats(ctypes.Structure):
    """Mirror of ``goipc_direction_stats`` (include/goipc.h)."""

    _fields_ = [
        ("messages", c_uint64),
        ("bytes", c_uint64),
        ("parks", c_uint64),
        ("wakeups", c_uint64),
        ("capacity", c_uint64),
        ("in_use", c_uint64),
        ("sender_parked", c_uint32),
        ("receiver_parked", c_uint32),
    ]


class Stats(ctypes.Structure):
    """Mirror of ``goipc_stats`` version 1 (include/goipc.h). The library
    writes at most ``struct_size`` bytes, so a newer library's larger
    struct never overruns this one."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("dialer", c_uint32),
        ("peer_pid", c_int64),
        ("opened_unix_ns", c_int64),
        ("sent", DirectionStats),
        ("received", DirectionStats),
    ]


# The offsets asserted by _Static_assert in capi/goipc_shim.c.
_STATS_LAYOUT = {"struct_size": 0, "dialer": 4, "peer_pid": 8, "opened_unix_ns": 16, "sent": 24, "received": 80}
_DIRECTION_STATS_LAYOUT = {"in_use": 40, "sender_parked": 48, "receiver_parked": 52}
for _name, _off in _STATS_LAYOUT.items():
    assert getattr(Stats, _name).offset == _off, ("goipc_stats layout", _name)
for _name, _off in _DIRECTION_STATS_LAYOUT.items():
    assert getattr(DirectionStats, _name).offset == _off, ("goipc_direction_stats layout", _name)
assert ctypes.sizeof(DirectionStats) == 56 and ctypes.sizeof(Stats) == 136, "goipc_stats layout"

class IOVec(ctypes.Structure):
    """Mirror of ``goipc_iovec`` (include/goipc.h): one message of a batch
    for goipc_send_batch."""

    _fields_ = [("data", c_void_p), ("len", c_size_t)]


# The layout asserted by _Static_assert in capi/goipc_shim.c.
assert IOVec.len.offset == ctypes.sizeof(c_void_p) and ctypes.sizeof(IOVec) == 2 * ctypes.sizeof(c_void_p), "goipc_iovec layout"

# The options buffer: goipc_options_init_sized(buf, OPTIONS_BUFFER_SIZE)
# zeroes exactly the struct this binding mirrors and records its size, so
# that the library knows which fields we set (goipc_options_init, kept for
# version-1 callers, would initialise only the first 48 bytes).
OPTIONS_BUFFER_SIZE = ctypes.sizeof(Options)


# name: (restype, argtypes). The whole C ABI of include/goipc.h.
_FUNCTIONS = {
    "goipc_abi_version": (c_int32, []),
    "goipc_strerror": (c_char_p, [c_int32]),
    "goipc_last_errno": (c_int32, []),
    "goipc_last_error_message": (c_char_p, []),
    "goipc_options_init": (None, [c_void_p]),
    "goipc_options_init_sized": (None, [c_void_p, c_size_t]),
    "goipc_listen": (c_status, [c_char_p, POINTER(c_handle)]),
    "goipc_listen_ex": (c_status, [c_char_p, c_void_p, POINTER(c_handle)]),
    "goipc_accept": (c_status, [c_handle, c_int64, POINTER(c_handle)]),
    "goipc_listener_close": (c_status, [c_handle]),
    "goipc_listener_fd": (c_status, [c_handle, POINTER(c_int)]),
    "goipc_listener_dropped_errors": (c_status, [c_handle, POINTER(c_uint64)]),
    "goipc_dial": (c_status, [c_char_p, c_int64, POINTER(c_handle)]),
    "goipc_dial_ex": (c_status, [c_char_p, c_void_p, c_int64, POINTER(c_handle)]),
    "goipc_conn_max_message_size": (c_status, [c_handle, POINTER(c_size_t)]),
    "goipc_send": (c_status, [c_handle, c_void_p, c_size_t, c_int64]),
    "goipc_recv": (c_status, [c_handle, c_buf, c_size_t, POINTER(c_size_t), c_int64]),
    "goipc_conn_close": (c_status, [c_handle]),
    "goipc_conn_fd": (c_status, [c_handle, POINTER(c_int)]),
    "goipc_reserve": (c_status, [c_handle, c_size_t, c_int64, POINTER(c_void_p)]),
    "goipc_commit": (c_status, [c_handle, c_size_t]),
    "goipc_abort_reserve": (c_status, [c_handle]),
    "goipc_recv_view": (c_status, [c_handle, POINTER(c_void_p), POINTER(c_size_t), c_int64]),
    "goipc_release": (c_status, [c_handle]),
    "goipc_conn_stats": (c_status, [c_handle, POINTER(Stats)]),
}

# Typed Ping/Pong helpers: optional (added to the ABI after version 1's
# first functions, without an ABI version change).
_TYPED_FUNCTIONS = {
    "goipc_send_ping": (c_status, [c_handle, c_uint64, c_void_p, c_size_t, c_int64]),
    "goipc_recv_pong": (c_status, [c_handle, POINTER(c_uint64), c_buf, c_size_t, POINTER(c_size_t), c_int64]),
    "goipc_recv_ping": (
        c_status,
        [c_handle, POINTER(c_uint64), POINTER(c_int64), c_buf, c_size_t, POINTER(c_size_t), c_int64],
    ),
    "goipc_send_pong": (c_status, [c_handle, c_uint64, c_int64, c_int64, c_void_p, c_size_t, c_int64]),
}


# Calls (requests and replies with call ids): optional too, for the same
# reason; State.has_calls says whether they are there.
_CALL_FUNCTIONS = {
    "goipc_call": (c_status, [c_handle, c_void_p, c_size_t, c_buf, c_size_t, POINTER(c_size_t), c_int64]),
    "goipc_call_ex": (
        c_status,
        [c_handle, c_void_p, c_size_t, c_buf, c_size_t, POINTER(c_size_t), c_int64, POINTER(c_uint64)],
    ),
    "goipc_call_end": (c_status, [c_handle, c_uint64, c_buf, c_size_t, POINTER(c_size_t), c_int64]),
    "goipc_call_cancel": (c_status, [c_handle, c_uint64]),
    "goipc_conn_dropped_replies": (c_status, [c_handle, POINTER(c_uint64)]),
    "goipc_recv_request": (c_status, [c_handle, POINTER(c_uint64), c_buf, c_size_t, POINTER(c_size_t), c_int64]),
    "goipc_reply": (c_status, [c_handle, c_uint64, c_void_p, c_size_t, c_int64]),
    "goipc_call_ping": (
        c_status,
        [c_handle, c_uint64, c_void_p, c_size_t, POINTER(c_uint64), c_buf, c_size_t, POINTER(c_size_t), c_int64],
    ),
}


# goipc_call_start (a call's request without a look for its reply, for
# goipc.aio): optional, newer than the other call functions;
# State.has_call_start says whether it is there (goipc_call_ex with
# timeout 0 otherwise).
_CALL_START_FUNCTIONS = {
    "goipc_call_start": (c_status, [c_handle, c_void_p, c_size_t, c_int64, POINTER(c_uint64)]),
}


# The typed server side of calls (goipc_recv_ping_request,
# goipc_reply_pong): optional too; State.has_typed_server says whether they
# are there (conn.py falls back to recv_request/reply and messages.py).
_TYPED_SERVER_FUNCTIONS = {
    "goipc_recv_ping_request": (
        c_status,
        [c_handle, POINTER(c_uint64), POINTER(c_uint64), POINTER(c_int64), c_buf, c_size_t, POINTER(c_size_t), c_int64],
    ),
    "goipc_reply_pong": (c_status, [c_handle, c_uint64, c_uint64, c_int64, c_int64, c_void_p, c_size_t, c_int64]),
}


# Batches (goipc_send_batch, goipc_recv_batch): optional too;
# State.has_batch says whether they are there.
_BATCH_FUNCTIONS = {
    "goipc_send_batch": (c_status, [c_handle, POINTER(IOVec), c_size_t, POINTER(c_size_t), c_int64]),
    "goipc_recv_batch": (
        c_status,
        [c_handle, c_buf, c_size_t, POINTER(c_size_t), c_size_t, POINTER(c_size_t), c_int64],
    ),
}


# The loop sweeper (goipc_sweeper_*, goipc_conn_set_sweeper): optional
# too; State.has_sweeper says whether they are there (goipc.aio waits
# without one otherwise).
_SWEEPER_FUNCTIONS = {
    "goipc_sweeper_new": (c_status, [POINTER(c_handle)]),
    "goipc_sweeper_free": (c_status, [c_handle]),
    "goipc_conn_set_sweeper": (c_status, [c_handle, c_handle, c_uint64]),
    "goipc_sweeper_sweep": (c_status, [c_handle, POINTER(c_uint64), c_size_t, POINTER(c_size_t)]),
    "goipc_sweeper_arm": (c_status, [c_handle, POINTER(c_uint64), c_size_t, POINTER(c_size_t)]),
}


# The per-message entry points, also bound WITHOUT argtypes (see
# "Fast calls" below): conn.py calls them only with ctypes instances of the
# declared types, built by the binding itself.
FAST_FUNCTIONS = (
    "goipc_send",
    "goipc_recv",
    "goipc_send_ping",
    "goipc_recv_pong",
    "goipc_call_ex",
    "goipc_call_start",
    "goipc_call_ping",
    "goipc_sweeper_sweep",
)
# Set to 1 to make the per-message calls go through the argtypes
# declarations too (slower; for debugging the binding).
ENV_TYPED_CALLS = "GOIPC_PYTHON_TYPED_CALLS"
# Set to 0 to leave goipc._speedups unused (ctypes for every call).
ENV_SPEEDUPS = "GOIPC_PYTHON_SPEEDUPS"
# The goipc._speedups this binding binds (its VERSION constant).
SPEEDUPS_VERSION = 3


class State:
    """The process-wide state of the binding (one instance, :data:`state`).

    Attributes:
        lib: the loaded library, or None before the first use.
        path: where it was loaded from.
        pid: os.getpid() when it was loaded.
        forked: True in a child forked (os.fork, multiprocessing "fork")
            after the library was loaded: every call raises ForkError.
        has_typed: the library has the typed Ping/Pong helpers.
        has_calls: the library has the call functions (goipc_call...).
        has_call_start: it also has goipc_call_start.
        has_typed_server: the library has goipc_recv_ping_request and
            goipc_reply_pong.
        has_batch: the library has goipc_send_batch and goipc_recv_batch.
        has_sweeper: the library has the loop sweeper (goipc_sweeper_*).
        fast: the per-message functions of FAST_FUNCTIONS, by name, as
            called by conn.py's one-call fast paths.
        speedups: the goipc._speedups module bound to this library, which
            conn.py's fast paths then use instead of ``fast``; None when
            it is not built (or disabled, or of another version).
        speedups_path: where it was loaded from ("" when it was not).
    """

    def __init__(self) -> None:
        self.lib: Optional[ctypes.CDLL] = None
        self.path: Optional[str] = None
        self.pid: int = 0
        self.forked: bool = False
        self.has_typed: bool = False
        self.has_calls: bool = False
        self.has_call_start: bool = False
        self.has_typed_server: bool = False
        self.has_batch: bool = False
        self.has_sweeper: bool = False
        self.fast: dict = {}
        self.speedups: Optional[ModuleType] = None
        self.speedups_path: str = ""


state = State()
_load_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # Runs in the child of os.fork(). Only a child of a process that had
    # started the Go runtime is unusable; one forked before the first use
    # may load the library itself.
    if state.lib is not None:
        state.forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def fork_error() -> _errors.ForkError:
    """The ForkError raised by every entry point in a forked child."""
    return _errors.ForkError(
        "goipc: this process (pid %d) was forked from process %d after it had loaded "
        "libgoipc.so; the Go runtime inside the library cannot run in a forked child "
        "(calls would hang). Start child processes with multiprocessing.get_context('spawn') "
        "or get_context('forkserver'), or exec a new program, and use goipc there "
        "(see docs/PYTHON.md)." % (os.getpid(), state.pid)
    )


#: Called when check_fork finds a fork that the at-fork hook missed (a
#: fork() made by C code): conn.py sets its own flag.
fork_detected_hooks: List = []


def check_fork() -> None:
    """Raises ForkError if this process is a fork of the one that loaded
    the library. Compares os.getpid() with the pid recorded at load (which
    also catches forks that bypassed os.fork's hooks, such as a fork() in C
    code) and checks the flag set by the at-fork hook."""
    if state.forked or (state.lib is not None and os.getpid() != state.pid):
        state.forked = True
        for hook in fork_detected_hooks:
            hook()
        raise fork_error()


def _source_tree_library_dir() -> Optional[Path]:
    """build/lib of the repository this file sits in, when it runs from the
    source tree (repo/bindings/python/src/goipc/_lib.py)."""
    here = Path(__file__).resolve().parent
    parts = here.parts
    if len(parts) >= 5 and parts[-4:] == ("bindings", "python", "src", "goipc"):
        return here.parents[3] / "build" / "lib"
    return None


def _recorded_library_dir() -> Optional[Path]:
    """build/lib of the repository the package was installed from, as
    recorded by setup.py in _build_info.py (absent in a source tree)."""
    try:
        from . import _build_info  # type: ignore[attr-defined]
    except ImportError:
        return None
    d = getattr(_build_info, "SOURCE_LIBRARY_DIR", None)
    return Path(d) if d else None


def candidate_paths(env: Optional[dict] = None) -> List[Path]:
    """The paths where libgoipc.so is looked for, in order (see the module
    docstring). ``env`` defaults to os.environ."""
    env = os.environ if env is None else env
    out: List[Path] = [Path(__file__).resolve().parent / LIBRARY_NAME]
    d = env.get(ENV_LIBRARY_DIR)
    if d:
        out.append(Path(d) / LIBRARY_NAME)
    for repo_dir in (_source_tree_library_dir(), _recorded_library_dir()):
        if repo_dir is not None:
            p = repo_dir / LIBRARY_NAME
            if p not in out:
                out.append(p)
    return out


def find_library(candidates: Optional[List[Path]] = None) -> Path:
    """Returns the first existing path among ``candidates`` (default:
    :func:`candidate_paths`), or raises LibraryError listing them all."""
    if candidates is None:
        candidates = candidate_paths()
    for p in candidates:
        if p.is_file():
            return p
    err = _errors.LibraryError(
        "goipc: cannot find %s; tried, in order:\n%s\nInstall a wheel that bundles it "
        "(`make wheel`), build it with `make lib` in the goipc repository, or set %s to the "
        "folder that holds it."
        % (LIBRARY_NAME, "\n".join("  " + str(p) for p in candidates), ENV_LIBRARY_DIR)
    )
    err.tried = [str(p) for p in candidates]
    raise err


def _declare(lib: ctypes.CDLL, table: dict) -> None:
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def _declare_optional(lib: ctypes.CDLL, table: dict) -> bool:
    """Declares an optional group of functions if the library has all of
    them; whether it has."""
    if not all(hasattr(lib, name) for name in table):
        return False
    _declare(lib, table)
    return True


def load(path: Optional[str] = None) -> ctypes.CDLL:
    """Loads libgoipc.so once per process and returns it.

    Args:
        path: an explicit file to load instead of searching (only honoured
            by the first call that actually loads).

    Raises:
        ForkError: in a forked child of a process that had loaded it.
        LibraryError: not found (the message lists the paths tried), not
            loadable, missing functions, or another ABI version.
    """
    lib = state.lib
    if lib is not None:
        check_fork()
        return lib
    with _load_lock:
        if state.lib is not None:
            return state.lib
        found = Path(path) if path is not None else find_library()
        try:
            lib = ctypes.CDLL(str(found))
        except OSError as e:
            err = _errors.LibraryError("goipc: cannot load %s: %s" % (found, e))
            err.tried = [str(found)]
            raise err from None
        try:
            _declare(lib, _FUNCTIONS)
        except AttributeError as e:
            err = _errors.LibraryError("goipc: %s is not a goipc library (or too old): %s" % (found, e))
            err.tried = [str(found)]
            raise err from None
        version = lib.goipc_abi_version()
        if version != ABI_VERSION:
            err = _errors.LibraryError(
                "goipc: %s has ABI version %d, this binding needs version %d: rebuild the "
                "library or install the matching binding" % (found, version, ABI_VERSION)
            )
            err.tried = [str(found)]
            raise err
        has_typed = _declare_optional(lib, _TYPED_FUNCTIONS)
        has_calls = _declare_optional(lib, _CALL_FUNCTIONS)
        has_call_start = has_calls and _declare_optional(lib, _CALL_START_FUNCTIONS)
        has_typed_server = has_calls and _declare_optional(lib, _TYPED_SERVER_FUNCTIONS)
        has_batch = _declare_optional(lib, _BATCH_FUNCTIONS)
        has_sweeper = _declare_optional(lib, _SWEEPER_FUNCTIONS)
        state.fast = _fast_functions(lib, str(found))
        state.speedups, state.speedups_path = _bind_speedups(lib, found)
        state.path = str(found)
        state.pid = os.getpid()
        state.has_typed = has_typed
        state.has_calls = has_calls
        state.has_call_start = has_call_start
        state.has_typed_server = has_typed_server
        state.has_batch = has_batch
        state.has_sweeper = has_sweeper
        state.lib = lib  # last: other threads test it without the lock
        return lib


def _fast_functions(lib: ctypes.CDLL, path: str) -> dict:
    """Fast calls. ctypes converts each argument through its argtype's
    from_param, about 0.1 us per argument here: 0.9 us of a 2.7 us
    Python-to-Go round trip (send: 4 arguments, recv: 5). The per-message
    functions are therefore also bound from a second CDLL handle of the
    same file (dlopen returns the same library) without argtypes, and
    conn.py passes them only exact ctypes instances (c_uint64 handle,
    c_size_t lengths, c_int64 timeouts, byref() out-parameters, bytes or
    byref(c_char) buffers): ctypes then passes them through unconverted,
    with the same C types the declarations give. The declarations with
    argtypes stay the ones used everywhere else, and the tests check every
    fast call's argument types against them (tests/test_library.py).
    $GOIPC_PYTHON_TYPED_CALLS=1 uses the declared functions instead."""
    names = [n for n in FAST_FUNCTIONS if hasattr(lib, n)]
    if os.environ.get(ENV_TYPED_CALLS, "") not in ("", "0"):
        return {n: getattr(lib, n) for n in names}
    raw = ctypes.CDLL(path)
    out = {}
    for n in names:
        fn = getattr(raw, n)
        fn.restype = c_status
        out[n] = fn
    return out


def _find_speedups(lib_path: Path) -> Optional[ModuleType]:
    """goipc._speedups: the package's own (built by pip install), else the
    one next to the loaded library (the source tree's build/lib, built by
    `make python-speedups`) when it was built for this Python; None when
    neither is there."""
    try:
        from . import _speedups  # type: ignore[attr-defined]

        return _speedups
    except ImportError:
        pass
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    f = lib_path.parent / ("_speedups" + suffix)
    if not f.is_file():
        return None
    spec = importlib.util.spec_from_file_location(__package__ + "._speedups", str(f))
    if spec is None or spec.loader is None:
        return None
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except ImportError:
        return None  # built for another Python (the suffix says the ABI), or damaged
    return mod


def _bind_speedups(lib: ctypes.CDLL, lib_path: Path) -> "tuple[Optional[ModuleType], str]":
    """The goipc._speedups module bound to lib's functions, and where it
    was found; (None, "") when there is none, it is disabled
    ($GOIPC_PYTHON_SPEEDUPS=0 or $GOIPC_PYTHON_TYPED_CALLS=1, which asks
    for ctypes' checked calls), or it is of another version."""
    if os.environ.get(ENV_SPEEDUPS, "") == "0" or os.environ.get(ENV_TYPED_CALLS, "") not in ("", "0"):
        return None, ""
    mod = _find_speedups(lib_path)
    if mod is None or getattr(mod, "VERSION", None) != SPEEDUPS_VERSION:
        return None, ""

    def address(name: str) -> int:
        return ctypes.cast(getattr(lib, name), c_void_p).value or 0 if hasattr(lib, name) else 0

    mod.bind(address("goipc_send"), address("goipc_recv"), address("goipc_call_ex"), address("goipc_call_end"),
             address("goipc_call_start"), _errors.ERR_BUFFER_TOO_SMALL)
    return mod, getattr(mod, "__file__", "") or ""


def last_error(status: int) -> _errors.Error:
    """The exception for a call that just failed with ``status`` on this
    thread, with the library's thread-local message and errno."""
    lib = state.lib
    assert lib is not None
    raw = lib.goipc_last_error_message() or b""
    msg = raw.decode("utf-8", "replace")
    if not msg:
        msg = (lib.goipc_strerror(status) or b"").decode("utf-8", "replace")
    return _errors.make_error(status, msg, lib.goipc_last_errno())


def strerror(status: int) -> str:
    """The library's static description of a status code."""
    return (load().goipc_strerror(status) or b"").decode("utf-8", "replace")
