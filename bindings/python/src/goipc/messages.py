"""Build and parse the kit's FlatBuffers messages (schema/goipc.fbs).

Every goipc message of the kit is a ``Message`` table (file identifier
``GIPC``) whose ``body`` union holds a ``Ping`` or a ``Pong``; see
docs/MESSAGES.md. This module builds them with the official ``flatbuffers``
runtime and the generated code in :mod:`goipc.fb` (fields added in schema
order, so the bytes equal what Go's ``message.Builder`` and Rust write),
and parses them with the generated accessors **after** a verifier.

Python's FlatBuffers runtime has no verifier, and the generated accessors
read whatever offsets a buffer holds. :func:`verify` makes the checks of
Go's ``message.Verify`` (docs/MESSAGES.md, "The verifier") so that a
malformed buffer raises :class:`InvalidMessageError` instead of reading
garbage. The parse functions copy the buffer first when it is not
``bytes``: a memoryview over shared memory could change under a
misbehaving peer between verification and reading.

Example::

    buf = build_ping(7, b"hello")
    ping = parse_ping(buf)           # Ping(seq=7, sent_ns=..., payload=b'hello')
"""

from __future__ import annotations

import struct
import time
from typing import Any, NamedTuple, Optional, Tuple, Union

import flatbuffers

from .errors import InvalidMessageError
from .fb import Message as _fb_message
from .fb import Ping as _fb_ping
from .fb import Pong as _fb_pong
from .fb.Body import Body

__all__ = [
    "Body",
    "Ping",
    "Pong",
    "InvalidMessageError",
    "FILE_IDENTIFIER",
    "MAX_SIZE",
    "build_ping",
    "build_pong",
    "ping_size",
    "pong_size",
    "verify",
    "identify",
    "is_ping",
    "is_pong",
    "parse",
    "parse_ping",
    "parse_pong",
]

#: The schema's file identifier, at bytes 4..8 of every message.
FILE_IDENTIFIER = b"GIPC"
#: Largest buffer the verifier accepts (FlatBuffers' 2 GiB limit).
MAX_SIZE = (1 << 31) - 1


class Ping(NamedTuple):
    """A Ping message: asks for a Pong."""

    seq: int
    """Sequence number chosen by the sender."""
    sent_ns: int
    """CLOCK_MONOTONIC time of the sender when it sent the Ping, in ns."""
    payload: bytes
    """The payload (a copy)."""


class Pong(NamedTuple):
    """A Pong message: the answer to a Ping.

    :meth:`goipc.Conn.recv_pong` leaves ``ping_sent_ns`` and ``received_ns``
    as None when it goes through the library's ``goipc_recv_pong`` helper,
    which reports only the sequence number and the payload;
    :func:`parse_pong` always fills them.
    """

    seq: int
    """The sequence number of the Ping this answers."""
    payload: bytes
    """The payload (a copy); a responder echoes the Ping's."""
    ping_sent_ns: Optional[int] = None
    """The Ping's sent_ns, copied by the responder."""
    received_ns: Optional[int] = None
    """CLOCK_MONOTONIC time of the responder when it read the Ping, in ns."""


# ---- building ------------------------------------------------------------------


def ping_size(payload_len: int) -> int:
    """The size of the Ping that goipc_send_ping (and Go's WritePing) lays
    out for an n-byte payload: 64 + roundUp(4 + n, 8). The generated
    builder may write fewer bytes (it omits zero fields)."""
    return 64 + ((payload_len + 11) & ~7)


def pong_size(payload_len: int) -> int:
    """The size of a hand-laid Pong with an n-byte payload: 72 +
    roundUp(4 + n, 8)."""
    return 72 + ((payload_len + 11) & ~7)


def _as_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        raise TypeError("goipc: payload must be bytes-like, not 'str'")
    return bytes(memoryview(payload))


def _check_u64(name: str, v: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError("goipc: %s must be an int, not %s" % (name, type(v).__name__))
    if not 0 <= v < 1 << 64:
        raise ValueError("goipc: %s must be in [0, 2**64)" % name)


def _check_i64(name: str, v: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError("goipc: %s must be an int, not %s" % (name, type(v).__name__))
    if not -(1 << 63) <= v < 1 << 63:
        raise ValueError("goipc: %s must fit in 64 signed bits" % name)


def _finish(b: flatbuffers.Builder, body_type: int, body: int) -> bytes:
    # Body before body_type: the order Go's and Rust's builders use, so the
    # bytes match theirs (interop_tests/wire).
    _fb_message.MessageStart(b)
    _fb_message.MessageAddBody(b, body)
    _fb_message.MessageAddBodyType(b, body_type)
    b.Finish(_fb_message.MessageEnd(b), file_identifier=FILE_IDENTIFIER)
    return bytes(b.Output())


def build_ping(seq: int, payload: Any = b"", sent_ns: Optional[int] = None) -> bytes:
    """Returns a Message/Ping built with the generated code.

    Args:
        seq: sequence number, in [0, 2**64).
        payload: bytes-like payload.
        sent_ns: CLOCK_MONOTONIC ns (None: ``time.monotonic_ns()`` now).
    """
    _check_u64("seq", seq)
    if sent_ns is None:
        sent_ns = time.monotonic_ns()
    _check_i64("sent_ns", sent_ns)
    data = _as_bytes(payload)
    b = flatbuffers.Builder(ping_size(len(data)))
    vec = b.CreateByteVector(data)
    _fb_ping.PingStart(b)
    _fb_ping.PingAddSeq(b, seq)
    _fb_ping.PingAddSentNs(b, sent_ns)
    _fb_ping.PingAddPayload(b, vec)
    return _finish(b, Body.Ping, _fb_ping.PingEnd(b))


def build_pong(seq: int, payload: Any = b"", ping_sent_ns: int = 0, received_ns: Optional[int] = None) -> bytes:
    """Returns a Message/Pong built with the generated code.

    Args:
        seq: the answered Ping's seq.
        payload: bytes-like payload (a responder echoes the Ping's).
        ping_sent_ns: the answered Ping's sent_ns.
        received_ns: when the Ping was read (None: ``time.monotonic_ns()``).
    """
    _check_u64("seq", seq)
    _check_i64("ping_sent_ns", ping_sent_ns)
    if received_ns is None:
        received_ns = time.monotonic_ns()
    _check_i64("received_ns", received_ns)
    data = _as_bytes(payload)
    b = flatbuffers.Builder(pong_size(len(data)))
    vec = b.CreateByteVector(data)
    _fb_pong.PongStart(b)
    _fb_pong.PongAddSeq(b, seq)
    _fb_pong.PongAddPingSentNs(b, ping_sent_ns)
    _fb_pong.PongAddReceivedNs(b, received_ns)
    _fb_pong.PongAddPayload(b, vec)
    return _finish(b, Body.Pong, _fb_pong.PongEnd(b))


# ---- verifying --------------------------------------------------------------------

_U8 = struct.Struct("<B").unpack_from
_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from


def _fail(reason: str, detail: str) -> InvalidMessageError:
    e = InvalidMessageError("goipc: invalid message: %s: %s" % (reason.replace("_", " "), detail))
    e.reason = reason
    return e


class _Table:
    """A table whose soffset and vtable were checked."""

    __slots__ = ("buf", "pos", "vt", "vtlen", "inline", "what")

    def __init__(self, buf: bytes, pos: int, what: str) -> None:
        n = len(buf)
        if pos % 4:
            raise _fail("misaligned", "%s table at %d" % (what, pos))
        if pos + 4 > n:
            raise _fail("out_of_range", "%s table at %d, buffer is %d bytes" % (what, pos, n))
        vt = pos - _I32(buf, pos)[0]
        if vt < 0 or vt + 4 > n:
            raise _fail("out_of_range", "%s vtable at %d, buffer is %d bytes" % (what, vt, n))
        if vt % 2:
            raise _fail("misaligned", "%s vtable at %d" % (what, vt))
        vtlen = _U16(buf, vt)[0]
        inline = _U16(buf, vt + 2)[0]
        if vtlen < 4 or vtlen % 2:
            raise _fail("bad_vtable", "%s vtable length %d" % (what, vtlen))
        if vt + vtlen > n:
            raise _fail("out_of_range", "%s vtable %d..%d, buffer is %d bytes" % (what, vt, vt + vtlen, n))
        if inline < 4:
            raise _fail("bad_vtable", "%s inline size %d" % (what, inline))
        if pos + inline > n:
            raise _fail("out_of_range", "%s table %d..%d, buffer is %d bytes" % (what, pos, pos + inline, n))
        self.buf, self.pos, self.vt, self.vtlen, self.inline, self.what = buf, pos, vt, vtlen, inline, what

    def field(self, index: int, size: int, name: str) -> int:
        """Absolute position of a field of ``size`` bytes, 0 if absent."""
        slot = 4 + 2 * index
        if slot + 2 > self.vtlen:
            return 0  # an older writer's vtable: absent
        off = _U16(self.buf, self.vt + slot)[0]
        if off == 0:
            return 0
        if off < 4 or off + size > self.inline:
            raise _fail("out_of_range", "%s.%s at offset %d, inline size %d" % (self.what, name, off, self.inline))
        p = self.pos + off
        if p % size:
            raise _fail("misaligned", "%s.%s at %d" % (self.what, name, p))
        return p

    def target(self, p: int, name: str) -> int:
        """The position a uoffset field at p points to (4-aligned)."""
        t = p + _U32(self.buf, p)[0]
        if t % 4:
            raise _fail("misaligned", "%s.%s points to %d" % (self.what, name, t))
        if t + 4 > len(self.buf):
            raise _fail("out_of_range", "%s.%s points to %d, buffer is %d bytes" % (self.what, name, t, len(self.buf)))
        return t

    def vector(self, index: int, name: str) -> Tuple[int, int]:
        """(start, length) of a [ubyte] field; (0, 0) if absent."""
        p = self.field(index, 4, name)
        if not p:
            return 0, 0
        v = self.target(p, name)
        length = _U32(self.buf, v)[0]
        if v + 4 + length > len(self.buf):
            raise _fail("out_of_range", "%s.%s: %d bytes at %d, buffer is %d bytes" % (self.what, name, length, v + 4, len(self.buf)))
        return v + 4, length


def _verify(buf: bytes) -> Tuple[int, _Table]:
    """Checks the Message and its body; returns (body type, body table)."""
    n = len(buf)
    if n < 8:
        raise _fail("truncated", "%d bytes, a message has at least 8" % n)
    if n > MAX_SIZE:
        raise _fail("too_large", "%d bytes" % n)
    if buf[4:8] != FILE_IDENTIFIER:
        raise _fail("bad_identifier", "%r, want %r" % (bytes(buf[4:8]), FILE_IDENTIFIER))
    root = _U32(buf, 0)[0]
    msg = _Table(buf, root, "Message")
    pt = msg.field(0, 1, "body_type")
    body_type = _U8(buf, pt)[0] if pt else 0
    pb = msg.field(1, 4, "body")
    if body_type == Body.NONE:
        raise _fail("bad_union", "body_type NONE" + (" with a body" if pb else ", no body"))
    if body_type not in (Body.Ping, Body.Pong):
        raise _fail("unknown_body", "body_type %d (a newer peer? skip the message)" % body_type)
    if not pb:
        raise _fail("bad_union", "body_type %d without a body" % body_type)
    what = "Ping" if body_type == Body.Ping else "Pong"
    body = _Table(buf, msg.target(pb, "body"), what)
    # Every known field of the body, so that the accessors only read
    # checked positions.
    if body_type == Body.Ping:
        body.field(0, 8, "seq")
        body.field(1, 8, "sent_ns")
        body.vector(2, "payload")
    else:
        body.field(0, 8, "seq")
        body.field(1, 8, "ping_sent_ns")
        body.field(2, 8, "received_ns")
        body.vector(3, "payload")
    return body_type, body


def _frozen(buf: Any) -> bytes:
    if isinstance(buf, bytes):
        return buf
    if isinstance(buf, str):
        raise TypeError("goipc: a bytes-like object is required, not 'str'")
    return bytes(memoryview(buf))


def verify(buf: Any) -> int:
    """Checks that ``buf`` (bytes-like) is a well-formed Message with a
    Ping or Pong body and returns the body type (``Body.Ping`` or
    ``Body.Pong``).

    Raises:
        InvalidMessageError: with ``reason`` naming the failed check;
            ``unknown_body`` means a newer peer's message (skip it rather
            than drop the connection).
    """
    return _verify(_frozen(buf))[0]


def identify(buf: Any) -> str:
    """``"ping"`` or ``"pong"`` for a valid message (InvalidMessageError
    otherwise)."""
    return "ping" if verify(buf) == Body.Ping else "pong"


def is_ping(buf: Any) -> bool:
    """True if ``buf`` is a valid Message/Ping."""
    try:
        return verify(buf) == Body.Ping
    except InvalidMessageError:
        return False


def is_pong(buf: Any) -> bool:
    """True if ``buf`` is a valid Message/Pong."""
    try:
        return verify(buf) == Body.Pong
    except InvalidMessageError:
        return False


def _parse(buf: bytes) -> Union[Ping, Pong]:
    body_type, body = _verify(buf)
    # Verified: the generated accessors read only checked positions.
    msg = _fb_message.Message.GetRootAs(buf, 0)
    tab = msg.Body()
    assert tab is not None and msg.BodyType() == body_type
    if body_type == Body.Ping:
        p = _fb_ping.Ping()
        p.Init(tab.Bytes, tab.Pos)
        start, length = body.vector(2, "payload")
        return Ping(p.Seq(), p.SentNs(), buf[start : start + length])
    q = _fb_pong.Pong()
    q.Init(tab.Bytes, tab.Pos)
    start, length = body.vector(3, "payload")
    return Pong(q.Seq(), buf[start : start + length], q.PingSentNs(), q.ReceivedNs())


def parse(buf: Any) -> Union[Ping, Pong]:
    """Verifies ``buf`` and returns its body as a :class:`Ping` or
    :class:`Pong` (payload copied).

    Raises:
        InvalidMessageError: not a valid Ping or Pong message.
    """
    return _parse(_frozen(buf))


def parse_ping(buf: Any) -> Ping:
    """Verifies ``buf`` and returns its Ping.

    Raises:
        InvalidMessageError: invalid, or (reason ``wrong_body``) a Pong.
    """
    m = _parse(_frozen(buf))
    if not isinstance(m, Ping):
        raise _fail("wrong_body", "a Pong, want a Ping")
    return m


def parse_pong(buf: Any) -> Pong:
    """Verifies ``buf`` and returns its Pong (all four fields).

    Raises:
        InvalidMessageError: invalid, or (reason ``wrong_body``) a Ping.
    """
    m = _parse(_frozen(buf))
    if not isinstance(m, Pong):
        raise _fail("wrong_body", "a Ping, want a Pong")
    return m
