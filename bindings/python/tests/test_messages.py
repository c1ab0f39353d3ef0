"""goipc.messages: building with the generated code, the verifier, parsing,
and the cross-language wire files of interop_tests/wire."""

from __future__ import annotations

import struct

import pytest

from goipc import messages
from goipc.messages import Body, InvalidMessageError, Ping, Pong

from conftest import REPO

WIRE = REPO / "interop_tests" / "wire" / "testdata"
# The fixed field values of interop_tests/wire/README.md.
SEQ = 42
PING_SENT_NS = 1234567890123456789
PONG_RECEIVED_NS = 1234567890987654321
PAYLOAD = bytes(range(13))


def test_build_parse_round_trip():
    b = messages.build_ping(7, b"hello", sent_ns=123)
    assert messages.parse_ping(b) == Ping(7, 123, b"hello")
    assert messages.parse(b) == Ping(7, 123, b"hello")
    assert messages.identify(b) == "ping" and messages.is_ping(b) and not messages.is_pong(b)
    assert messages.verify(b) == Body.Ping
    b = messages.build_pong(7, b"hello", ping_sent_ns=123, received_ns=456)
    assert messages.parse_pong(b) == Pong(7, b"hello", 123, 456)
    assert messages.identify(b) == "pong" and messages.is_pong(b)


@pytest.mark.parametrize("n", list(range(0, 20)) + [63, 64, 65, 1000])
def test_payload_lengths_and_sizes(n):
    payload = bytes((i * 31) & 0xFF for i in range(n))
    b = messages.build_ping(2**64 - 1, payload, sent_ns=-5)
    assert messages.parse_ping(b) == Ping(2**64 - 1, -5, payload)
    # Non-zero fields: the builder writes the hand-laid size (docs/MESSAGES.md).
    assert len(b) == messages.ping_size(n)
    b = messages.build_pong(1, payload, ping_sent_ns=2, received_ns=3)
    assert messages.parse_pong(b).payload == payload
    assert len(b) == messages.pong_size(n)


def test_default_times_are_monotonic_now():
    import time

    t0 = time.monotonic_ns()
    p = messages.parse_ping(messages.build_ping(1))
    assert t0 <= p.sent_ns <= time.monotonic_ns()
    assert p.payload == b""


def test_parse_accepts_bytes_like():
    b = messages.build_ping(3, b"xy", sent_ns=9)
    for buf in (bytearray(b), memoryview(b), memoryview(bytearray(b))):
        assert messages.parse_ping(buf) == Ping(3, 9, b"xy")


@pytest.mark.parametrize("kind", ["ping", "pong"])
@pytest.mark.parametrize("lang", ["go", "python", "rust"])
def test_wire_files_parse(kind, lang):
    buf = (WIRE / ("%s_%s.bin" % (kind, lang))).read_bytes()
    if kind == "ping":
        assert messages.parse_ping(buf) == Ping(SEQ, PING_SENT_NS, PAYLOAD)
    else:
        assert messages.parse_pong(buf) == Pong(SEQ, PAYLOAD, PING_SENT_NS, PONG_RECEIVED_NS)


def test_builders_write_the_wire_bytes():
    """Same bytes as Go's and Rust's writers (interop_tests/wire)."""
    assert messages.build_ping(SEQ, PAYLOAD, sent_ns=PING_SENT_NS) == (WIRE / "ping_go.bin").read_bytes()
    pong = messages.build_pong(SEQ, PAYLOAD, ping_sent_ns=PING_SENT_NS, received_ns=PONG_RECEIVED_NS)
    assert pong == (WIRE / "pong_go.bin").read_bytes()


def test_wrong_body():
    with pytest.raises(InvalidMessageError) as ei:
        messages.parse_pong(messages.build_ping(1))
    assert ei.value.reason == "wrong_body"
    with pytest.raises(InvalidMessageError) as ei:
        messages.parse_ping(messages.build_pong(1))
    assert ei.value.reason == "wrong_body"


def _reason(buf) -> str:
    with pytest.raises(InvalidMessageError) as ei:
        messages.verify(buf)
    return ei.value.reason


def test_malformed_inputs():
    good = bytearray(messages.build_ping(5, b"abc", sent_ns=1))
    assert _reason(b"") == "truncated"
    assert _reason(good[:7]) == "truncated"
    bad = bytearray(good)
    bad[4:8] = b"XXXX"
    assert _reason(bad) == "bad_identifier"
    bad = bytearray(good)
    struct.pack_into("<I", bad, 0, len(good) + 100)
    assert _reason(bad) == "out_of_range"
    bad = bytearray(good)
    struct.pack_into("<I", bad, 0, 2)
    assert _reason(bad) == "misaligned"
    # Message vtable at 8: body_type at +7 of the table at 16 -> byte 23.
    bad = bytearray(good)
    bad[23] = 9
    assert _reason(bad) == "unknown_body"
    bad[23] = 0
    assert _reason(bad) == "bad_union"
    # vtable length odd
    bad = bytearray(good)
    struct.pack_into("<H", bad, 8, 7)
    assert _reason(bad) == "bad_vtable"


def test_every_truncation_is_rejected_or_valid():
    for kind in ("ping", "pong"):
        good = messages.build_ping(5, b"abcdefg", sent_ns=11) if kind == "ping" else messages.build_pong(5, b"abcdefg", 1, 2)
        for n in range(len(good)):
            try:
                m = messages.parse(good[:n])
            except InvalidMessageError as e:
                assert e.reason in ("truncated", "out_of_range"), (n, e)
            else:
                # Cut only in trailing padding: still the same message.
                assert m == messages.parse(good), n


def test_flipped_bytes_never_escape_the_verifier():
    """Every byte of a Ping and a Pong set to several values: the result is
    a valid message or InvalidMessageError, never another exception."""
    for good in (messages.build_ping(5, b"abcdefghi", sent_ns=11), messages.build_pong(5, b"abcdefghi", 1, 2)):
        for i in range(len(good)):
            for v in (0x00, 0x01, 0x04, 0x7F, 0x80, 0xFF):
                buf = bytearray(good)
                buf[i] = v
                try:
                    messages.parse(buf)
                except InvalidMessageError:
                    pass


def test_bad_arguments():
    with pytest.raises(ValueError):
        messages.build_ping(-1)
    with pytest.raises(ValueError):
        messages.build_ping(2**64)
    with pytest.raises(TypeError):
        messages.build_ping("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        messages.build_ping(1, "text")
    with pytest.raises(ValueError):
        messages.build_pong(1, b"", ping_sent_ns=2**63)
    with pytest.raises(TypeError):
        messages.parse("not bytes")  # type: ignore[arg-type]
