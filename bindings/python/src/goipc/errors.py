"""Exceptions raised by the goipc binding.

One table, :data:`STATUS_ERRORS`, maps every status code of the C ABI
(``GOIPC_ERR_*`` in include/goipc.h) to one exception class; every class
derives from :class:`Error`. Where a built-in exception has the same
meaning, the class derives from it too, so that code written against the
standard library keeps working:

=====================  ===========================  =========================
status                 class                        also an instance of
=====================  ===========================  =========================
INVALID_ARGUMENT (1)   :class:`InvalidArgumentError`  ``ValueError``
TIMEOUT (2)            :class:`TimeoutError`          ``builtins.TimeoutError``
CLOSED (3)             :class:`ClosedError`           --
PEER_CLOSED (4)        :class:`PeerClosedError`       ``ConnectionError``
MESSAGE_TOO_LARGE (5)  :class:`MessageTooLargeError`  ``ValueError``
BUFFER_TOO_SMALL (6)   :class:`BufferTooSmallError`   --
PROTOCOL (7)           :class:`ProtocolError`         --
PERMISSION (8)         :class:`PermissionDeniedError` ``PermissionError``
SYSTEM (9)             :class:`SystemCallError`       ``OSError``
ADDRESS_IN_USE (10)    :class:`AddressInUseError`     --
NOT_SUPPORTED (11)     :class:`NotSupportedError`     --
LIMIT (12)             :class:`LimitError`            --
=====================  ===========================  =========================

Raised by the binding itself, not by a status code: :class:`ForkError`
(a call in a process forked after libgoipc.so was loaded),
:class:`LibraryError` (libgoipc.so not found, not loadable, or of another
ABI version) and, in :mod:`goipc.messages`, :class:`InvalidMessageError`.

Wrong argument types and values rejected before any call into the library
raise the built-in ``TypeError`` and ``ValueError``, as the standard
library does.
"""

from __future__ import annotations

import builtins
from typing import Dict, List, Optional, Type

__all__ = [
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
    "STATUS_ERRORS",
    "STATUS_NAMES",
]

# Status codes of include/goipc.h. Never renumbered (the ABI rule).
OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_TIMEOUT = 2
ERR_CLOSED = 3
ERR_PEER_CLOSED = 4
ERR_MESSAGE_TOO_LARGE = 5
ERR_BUFFER_TOO_SMALL = 6
ERR_PROTOCOL = 7
ERR_PERMISSION = 8
ERR_SYSTEM = 9
ERR_ADDRESS_IN_USE = 10
ERR_NOT_SUPPORTED = 11
ERR_LIMIT = 12

#: The C names of the status codes, by value.
STATUS_NAMES: Dict[int, str] = {
    OK: "GOIPC_OK",
    ERR_INVALID_ARGUMENT: "GOIPC_ERR_INVALID_ARGUMENT",
    ERR_TIMEOUT: "GOIPC_ERR_TIMEOUT",
    ERR_CLOSED: "GOIPC_ERR_CLOSED",
    ERR_PEER_CLOSED: "GOIPC_ERR_PEER_CLOSED",
    ERR_MESSAGE_TOO_LARGE: "GOIPC_ERR_MESSAGE_TOO_LARGE",
    ERR_BUFFER_TOO_SMALL: "GOIPC_ERR_BUFFER_TOO_SMALL",
    ERR_PROTOCOL: "GOIPC_ERR_PROTOCOL",
    ERR_PERMISSION: "GOIPC_ERR_PERMISSION",
    ERR_SYSTEM: "GOIPC_ERR_SYSTEM",
    ERR_ADDRESS_IN_USE: "GOIPC_ERR_ADDRESS_IN_USE",
    ERR_NOT_SUPPORTED: "GOIPC_ERR_NOT_SUPPORTED",
    ERR_LIMIT: "GOIPC_ERR_LIMIT",
}


class Error(Exception):
    """Base class of every exception raised by goipc.

    Attributes:
        status: the ``GOIPC_ERR_*`` code behind the error, or ``None`` for
            errors the binding raises itself (:class:`ForkError`,
            :class:`LibraryError`, :class:`InvalidMessageError`).
        errno: the operating-system errno the library reported
            (``goipc_last_errno``), else 0.
    """

    status: Optional[int] = None
    errno: Optional[int] = 0


class InvalidArgumentError(Error, ValueError):
    """GOIPC_ERR_INVALID_ARGUMENT: the library refused an argument (bad
    path, bad option, misuse such as receiving again while a view is open,
    or a listener refusing our maximum message size)."""


class TimeoutError(Error, builtins.TimeoutError):  # noqa: A001 - deliberate, like socket.timeout
    """GOIPC_ERR_TIMEOUT: the timeout expired. The connection stays usable.

    An instance of the built-in :class:`TimeoutError` as well.
    """


class ClosedError(Error):
    """GOIPC_ERR_CLOSED: the connection or listener was closed by this
    process, possibly while the call was waiting."""


class PeerClosedError(Error, ConnectionError):
    """GOIPC_ERR_PEER_CLOSED: the peer closed the connection or its process
    died. Messages it had fully sent were delivered first. Close the
    connection and reconnect."""


class MessageTooLargeError(Error, ValueError):
    """GOIPC_ERR_MESSAGE_TOO_LARGE: the message exceeds the connection's
    :attr:`~goipc.Conn.max_message_size`. Nothing was sent; the connection
    stays usable."""


class BufferTooSmallError(Error):
    """GOIPC_ERR_BUFFER_TOO_SMALL: the next message does not fit the buffer
    given to :meth:`~goipc.Conn.recv_into`. The message stays queued.

    Attributes:
        needed: the size of the next message (or payload) in bytes.
    """

    needed: int = 0


class ProtocolError(Error):
    """GOIPC_ERR_PROTOCOL: the peer broke the protocol or speaks another
    version. For :meth:`~goipc.Conn.recv_pong` and
    :meth:`~goipc.Conn.recv_ping` it may concern one message only (a
    message of the wrong type, dropped); otherwise close the connection."""


class PermissionDeniedError(Error, PermissionError):
    """GOIPC_ERR_PERMISSION: peer credentials refused by the uid policy, or
    the socket path cannot be used (EACCES)."""


class SystemCallError(Error, OSError):
    """GOIPC_ERR_SYSTEM: an operating-system error, whose errno is in
    :attr:`errno` (for example ``errno.ENOENT`` or ``errno.ECONNREFUSED``
    when nothing listens on a dialed path). Also raised, with errno 0, for
    an internal error of the library."""


class AddressInUseError(Error):
    """GOIPC_ERR_ADDRESS_IN_USE: a live listener already serves the path,
    or the path exists and is not a socket."""


class NotSupportedError(Error):
    """GOIPC_ERR_NOT_SUPPORTED: not supported on this system (goipc needs
    Linux)."""


class LimitError(Error):
    """GOIPC_ERR_LIMIT: a listener refused the connection because one of
    its limits is reached (``max_conns``, ``max_segment_size``,
    ``max_mapped_bytes``, or it ran out of file descriptors); the message
    names the limit and its value. Other connections are not affected:
    retry later, or raise the listener's limit (:func:`goipc.listen`).
    Raised by :func:`goipc.dial`; :meth:`goipc.Listener.accept` raises it
    for the refused client and the listener stays usable."""


class ForkError(Error, RuntimeError):
    """A goipc call in a process created by ``fork()`` from a process that
    had loaded libgoipc.so.

    The Go runtime inside the library cannot run in a forked child (the
    call would hang). Start worker processes with
    ``multiprocessing.get_context("spawn")`` or ``"forkserver"``, or exec a
    new program; see docs/PYTHON.md.
    """


class LibraryError(Error, OSError):
    """libgoipc.so could not be found or loaded, or it has another ABI
    version than this binding.

    Attributes:
        tried: the paths that were tried, in order.
    """

    tried: List[str] = []


class InvalidMessageError(Error, ValueError):
    """A buffer is not a valid goipc FlatBuffers message of the expected
    kind (raised by :mod:`goipc.messages`).

    Attributes:
        reason: one word naming the check that failed, as the Go verifier's
            sentinels do: ``truncated``, ``too_large``, ``bad_identifier``,
            ``out_of_range``, ``misaligned``, ``bad_vtable``,
            ``unknown_body``, ``bad_union`` or ``wrong_body``.
    """

    reason: str = ""


#: Exception class for each status code of the C ABI.
STATUS_ERRORS: Dict[int, Type[Error]] = {
    ERR_INVALID_ARGUMENT: InvalidArgumentError,
    ERR_TIMEOUT: TimeoutError,
    ERR_CLOSED: ClosedError,
    ERR_PEER_CLOSED: PeerClosedError,
    ERR_MESSAGE_TOO_LARGE: MessageTooLargeError,
    ERR_BUFFER_TOO_SMALL: BufferTooSmallError,
    ERR_PROTOCOL: ProtocolError,
    ERR_PERMISSION: PermissionDeniedError,
    ERR_SYSTEM: SystemCallError,
    ERR_ADDRESS_IN_USE: AddressInUseError,
    ERR_NOT_SUPPORTED: NotSupportedError,
    ERR_LIMIT: LimitError,
}


def make_error(status: int, message: str, errno: int = 0) -> Error:
    """Returns the exception for a failed call's status code, with its
    detail message and errno (unknown codes give a plain :class:`Error`)."""
    cls = STATUS_ERRORS.get(status, Error)
    if not message:
        message = "goipc: %s (status %d)" % (STATUS_NAMES.get(status, "unknown status code"), status)
    exc = cls(message)
    exc.status = status
    exc.errno = errno
    if isinstance(exc, OSError):
        # OSError's str() shows errno and strerror when both are set; keep
        # the library's message as the whole text.
        exc.strerror = None
    return exc
