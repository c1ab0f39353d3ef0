"""goipc: shared-memory messages between processes on one Linux host.

The Python binding of libgoipc.so (the C ABI of include/goipc.h), through
ctypes. A connection carries whole messages both ways over two rings in a
shared memory segment; the other side may be Go, C, Rust or Python.

::

    import goipc

    with goipc.dial("/tmp/pong.sock") as conn:     # a `goipc pong` consumer
        conn.send(b"hello")
        print(conn.recv(timeout=1.0))

    with goipc.listen("/tmp/my.sock") as ln:
        with ln.accept() as conn:
            data = conn.recv()

Blocking calls take ``timeout`` in seconds (None: no limit) and let Ctrl-C
through within 100 ms; every call releases the GIL. In a process forked
after the library was loaded every call raises :class:`ForkError`: use
multiprocessing with the "spawn" or "forkserver" start method. See
docs/PYTHON.md.

The library is loaded on first use, from the package folder (a bundled copy),
``$GOIPC_LIBRARY_DIR`` or the repository's build/lib (:func:`library_path`).
"""

from __future__ import annotations

from typing import Optional

from . import messages
from ._lib import ABI_VERSION, ENV_LIBRARY_DIR, candidate_paths
from .conn import WAIT_SLICE, Conn, Listener, Reservation, View, dial, listen
from .errors import (
    AddressInUseError,
    BufferTooSmallError,
    ClosedError,
    Error,
    ForkError,
    InvalidArgumentError,
    InvalidMessageError,
    LibraryError,
    LimitError,
    MessageTooLargeError,
    NotSupportedError,
    PeerClosedError,
    PermissionDeniedError,
    ProtocolError,
    SystemCallError,
    TimeoutError,
)
from .messages import Ping, Pong
from .stats import DirectionStats, Stats

__version__ = "0.1.0"

__all__ = [
    "ABI_VERSION",
    "ENV_LIBRARY_DIR",
    "WAIT_SLICE",
    "Conn",
    "Listener",
    "View",
    "Reservation",
    "Ping",
    "Pong",
    "Stats",
    "DirectionStats",
    "dial",
    "listen",
    "load_library",
    "library_path",
    "abi_version",
    "has_typed_messages",
    "has_calls",
    "candidate_paths",
    "messages",
    "Error",
    "InvalidArgumentError",
    "TimeoutError",
    "ClosedError",
    "PeerClosedError",
    "MessageTooLargeError",
    "BufferTooSmallError",
    "ProtocolError",
    "PermissionDeniedError",
    "SystemCallError",
    "AddressInUseError",
    "NotSupportedError",
    "LimitError",
    "ForkError",
    "LibraryError",
    "InvalidMessageError",
]


def __getattr__(name: str):  # noqa: ANN201 - module attribute hook
    # goipc.aio (asyncio) is imported on first use, so that `import goipc`
    # does not import asyncio.
    if name == "aio":
        import importlib

        return importlib.import_module(".aio", __name__)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def load_library(path: Optional[str] = None) -> str:
    """Loads libgoipc.so now (instead of on first use) and returns its path.

    Args:
        path: a file to load instead of searching; only the first load in
            a process has an effect (one Go runtime per process).

    Raises:
        LibraryError: not found (the message lists every path tried), not
            loadable, or of another ABI version.
        ForkError: in a forked child of a process that had loaded it.
    """
    from . import _lib

    _lib.load(path)
    assert _lib.state.path is not None
    return _lib.state.path


def library_path() -> str:
    """The path of the loaded libgoipc.so (loading it if needed)."""
    return load_library()


def abi_version() -> int:
    """``goipc_abi_version()`` of the loaded library (equal to
    :data:`ABI_VERSION`: the load checks it)."""
    from . import _lib

    return int(_lib.load().goipc_abi_version())


def has_typed_messages() -> bool:
    """True if the loaded library has the typed Ping/Pong helpers
    (goipc_send_ping ...); without them :meth:`Conn.send_ping` and
    friends use the generated Python FlatBuffers code instead."""
    from . import _lib

    _lib.load()
    return _lib.state.has_typed


def has_calls() -> bool:
    """True if the loaded library has the call functions (goipc_call ...):
    :meth:`Conn.call`, :meth:`Conn.recv_request` and friends."""
    from . import _lib

    _lib.load()
    return _lib.state.has_calls
