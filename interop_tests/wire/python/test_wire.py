"""Cross-language FlatBuffers wire files: the Python writer and reader.

Every language writes a Ping and a Pong with the same fixed field values
(interop_tests/wire/README.md) to interop_tests/wire/testdata/
{ping,pong}_{go,python,rust}.bin, and reads every language's files back,
checking every field. This file is both the pytest reader and the writer:

    build/venv/bin/python -m pytest interop_tests/wire/python   # read all
    build/venv/bin/python interop_tests/wire/python/test_wire.py write
                                                   # rewrite *_python.bin

(`make wire-files` rewrites every language's files, `make test-fbs` runs
the readers.) It uses the flatbuffers package pinned in requirements-dev.txt
and the generated code in bindings/python/src/goipc/fb, found through
sys.path, without the goipc Python package being installed.
"""

import importlib
import pathlib
import sys
import types

import flatbuffers
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
TESTDATA = ROOT / "interop_tests" / "wire" / "testdata"
PY_SRC = ROOT / "bindings" / "python" / "src"


def _load_fb():
    """Import goipc.fb from bindings/python/src without running
    goipc/__init__.py: that belongs to the Python binding, which may load
    libgoipc.so, and this test needs only the generated modules."""
    if "goipc" not in sys.modules:
        pkg = types.ModuleType("goipc")
        pkg.__path__ = [str(PY_SRC / "goipc")]
        sys.modules["goipc"] = pkg
    names = ("Body", "Message", "Ping", "Pong")
    mods = {n: importlib.import_module("goipc.fb." + n) for n in names}
    for m in mods.values():
        assert pathlib.Path(m.__file__).resolve().is_relative_to(PY_SRC), m.__file__
    return mods


FB = _load_fb()
Body = FB["Body"].Body
Message = FB["Message"]
Ping = FB["Ping"]
Pong = FB["Pong"]

# The fixed field values every language writes (interop_tests/wire/README.md).
SEQ = 42
PING_SENT_NS = 1234567890123456789
PONG_RECEIVED_NS = 1234567890987654321
PAYLOAD = bytes(range(13))  # 0x00..0x0c: odd length, so padding shows

LANGS = ("go", "python", "rust")


def build_ping():
    """A Message/Ping, fields added in schema order as Go's writers do."""
    b = flatbuffers.Builder(0)
    vec = b.CreateByteVector(PAYLOAD)
    Ping.PingStart(b)
    Ping.PingAddSeq(b, SEQ)
    Ping.PingAddSentNs(b, PING_SENT_NS)
    Ping.PingAddPayload(b, vec)
    body = Ping.PingEnd(b)
    return _finish(b, Body.Ping, body)


def build_pong():
    b = flatbuffers.Builder(0)
    vec = b.CreateByteVector(PAYLOAD)
    Pong.PongStart(b)
    Pong.PongAddSeq(b, SEQ)
    Pong.PongAddPingSentNs(b, PING_SENT_NS)
    Pong.PongAddReceivedNs(b, PONG_RECEIVED_NS)
    Pong.PongAddPayload(b, vec)
    body = Pong.PongEnd(b)
    return _finish(b, Body.Pong, body)


def _finish(b, body_type, body):
    Message.MessageStart(b)
    Message.MessageAddBody(b, body)
    Message.MessageAddBodyType(b, body_type)
    b.Finish(Message.MessageEnd(b), file_identifier=b"GIPC")
    return bytes(b.Output())


def _body(buf, want_type, cls):
    """Root Message, identifier and union checked; returns the body table.
    Python's runtime has no verifier: these files are trusted test data,
    and every field is checked below, so a bad file fails loudly."""
    assert len(buf) >= 8, "shorter than a header"
    assert Message.Message.MessageBufferHasIdentifier(buf, 0), buf[4:8]
    msg = Message.Message.GetRootAs(buf, 0)
    assert msg.BodyType() == want_type
    tab = msg.Body()
    assert tab is not None, "no body"
    obj = cls()
    obj.Init(tab.Bytes, tab.Pos)
    return obj


def read_ping(buf):
    p = _body(buf, Body.Ping, Ping.Ping)
    assert p.Seq() == SEQ
    assert p.SentNs() == PING_SENT_NS
    assert p.PayloadLength() == len(PAYLOAD)
    assert bytes(p.Payload(j) for j in range(p.PayloadLength())) == PAYLOAD
    assert not p.PayloadIsNone()


def read_pong(buf):
    p = _body(buf, Body.Pong, Pong.Pong)
    assert p.Seq() == SEQ
    assert p.PingSentNs() == PING_SENT_NS
    assert p.ReceivedNs() == PONG_RECEIVED_NS
    assert p.PayloadLength() == len(PAYLOAD)
    assert bytes(p.Payload(j) for j in range(p.PayloadLength())) == PAYLOAD
    assert not p.PayloadIsNone()


@pytest.mark.parametrize("lang", LANGS)
def test_ping_read_by_python(lang):
    read_ping((TESTDATA / f"ping_{lang}.bin").read_bytes())


@pytest.mark.parametrize("lang", LANGS)
def test_pong_read_by_python(lang):
    read_pong((TESTDATA / f"pong_{lang}.bin").read_bytes())


def test_python_writer_matches_committed_files():
    """The committed *_python.bin are what this writer writes today."""
    assert (TESTDATA / "ping_python.bin").read_bytes() == build_ping()
    assert (TESTDATA / "pong_python.bin").read_bytes() == build_pong()


@pytest.mark.parametrize("kind", ("ping", "pong"))
@pytest.mark.parametrize("lang", ("go", "rust"))
def test_python_bytes_equal_other_writers(kind, lang):
    """Python's builder is a port of Go's, and Rust's builder lays out the
    same tables the same way when fields are added in the same order: all
    three write identical bytes (the Go and Rust tests assert it too)."""
    ours = build_ping() if kind == "ping" else build_pong()
    assert (TESTDATA / f"{kind}_{lang}.bin").read_bytes() == ours


def test_python_writer_round_trip():
    read_ping(build_ping())
    read_pong(build_pong())


def write(outdir=TESTDATA):
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "ping_python.bin").write_bytes(build_ping())
    (outdir / "pong_python.bin").write_bytes(build_pong())


if __name__ == "__main__":
    if sys.argv[1:2] != ["write"]:
        sys.exit("usage: test_wire.py write [DIR]")
    write(*sys.argv[2:3])
