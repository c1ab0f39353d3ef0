#!/usr/bin/env python3
"""The Python peer of the interop matrix (interop_tests/run.py).

Uses the `goipc` package of bindings/python (imported from the source
tree; it finds libgoipc.so in build/lib). Same command line and JSON lines
as every other peer (docs/INTEROP.md):

    peer.py consumer --listen PATH [--protocol-version V] [--once] [--asyncio | --calls]
    peer.py producer --dial PATH --scenario NAME [--n N] [--size B]
                     [--rounds R] [--ring-size BYTES] [--max-message BYTES]
                     [--protocol-version V] [--snapshot FILE]
    peer.py probe       can the binding run the peer? {"event":"probe","ok":...}
    peer.py features    what the binding offers {"event":"features",...}

Only what is test-only lives here: the scenarios sizes, burst, stream (the
kill points), version and layout, and a consumer that reports each
connection's end. The pingpong and calls scenarios run the ping-pong
example, examples/ping-pong/python/ping.py, the program users read.
"""

import argparse
import inspect
import json
import os
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "src"))

LANG = "python"
CALL_TIMEOUT = 10.0  # seconds; every blocking call is bounded

# Status codes (include/goipc.h), by value: the documented ABI.
STATUS_NAMES = ["ok", "invalid_argument", "timeout", "closed", "peer_closed", "message_too_large",
                "buffer_too_small", "protocol", "permission", "system", "address_in_use", "not_supported",
                "limit"]

goipc = None  # imported by load()


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def load():
    global goipc
    import goipc as g  # noqa: E402  (bindings/python/src)

    goipc = g
    return g


def status_of(exc):
    st = getattr(exc, "status", None)
    if isinstance(st, int) and 0 <= st < len(STATUS_NAMES):
        return STATUS_NAMES[st]
    return "system"


def supports(fn, name):
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


# ---- probe / features --------------------------------------------------------


NEEDED = ["dial", "listen", "Error", "PeerClosedError", "TimeoutError", "ProtocolError", "MessageTooLargeError"]
NEEDED_CONN = ["send_ping", "recv_pong", "recv_ping", "send_pong", "max_message_size", "close"]


def run_probe():
    try:
        g = load()
        missing = [n for n in NEEDED if not hasattr(g, n)] + \
                  ["Conn." + n for n in NEEDED_CONN if not hasattr(getattr(g, "Conn", None), n)]
        if missing:
            emit(event="probe", ok=False, error="the goipc package lacks " + ", ".join(missing))
            return 1
        if hasattr(g, "load_library"):
            g.load_library()
    except Exception as e:  # the binding is not there (yet), or broken
        emit(event="probe", ok=False, error=f"import goipc from bindings/python/src: {type(e).__name__}: {e}")
        return 1
    emit(event="probe", ok=True)
    return 0


def features():
    g = load()
    return {
        "protocol_version_override": supports(g.dial, "protocol_version_override")
        and supports(g.listen, "protocol_version_override"),
        "ring_size": supports(g.dial, "ring_size"),
        "max_message_size": supports(g.dial, "max_message_size"),
    }


# ---- producer ------------------------------------------------------------------


class Fail(Exception):
    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


def fail_from(what, exc):
    return Fail(f"{what}: {exc}", status_of(exc))


_pattern = b""


def payload_for(seq, n):
    """pattern[seq % 251 : seq % 251 + n], pattern[i] = (i*7 + 3) & 0xff (every peer)."""
    global _pattern
    if len(_pattern) < n + 251:
        _pattern = bytes((i * 7 + 3) & 0xFF for i in range(n + 251))
    o = seq % 251
    return _pattern[o:o + n]


class Producer:
    def __init__(self, a):
        self.a = a

    def dial(self):
        kw = {}
        a = self.a
        if a.ring_size:
            kw["ring_size"] = a.ring_size
        if a.max_message:
            kw["max_message_size"] = a.max_message
        if a.protocol_version:
            if not supports(goipc.dial, "protocol_version_override"):
                raise Fail("the Python binding's dial() has no protocol_version_override", "not_supported")
            kw["protocol_version_override"] = a.protocol_version
        try:
            return goipc.dial(a.dial, CALL_TIMEOUT, **kw)
        except goipc.Error as e:
            raise fail_from("dial", e)

    def round_trip(self, c, seq, size):
        payload = payload_for(seq, size)
        try:
            c.send_ping(seq, payload, CALL_TIMEOUT)
        except goipc.Error as e:
            raise fail_from(f"send Ping {seq}", e)
        self.check_pong(c, seq, payload)

    @staticmethod
    def check_pong(c, seq, payload):
        try:
            pong = c.recv_pong(CALL_TIMEOUT)
        except goipc.Error as e:
            raise fail_from(f"receive Pong {seq}", e)
        if pong.seq != seq:
            raise Fail(f"Pong answers seq {pong.seq}, want {seq} (lost or reordered)")
        if pong.payload != payload:
            raise Fail(f"Pong {seq} payload ({len(pong.payload)} B) differs from the Ping's ({len(payload)} B)")

    def sizes(self):
        c = self.dial()
        try:
            max_msg = c.max_message_size
            max_msg = max_msg() if callable(max_msg) else max_msg
            maxp = max_payload(max_msg)
            sizes = [0, 1, 63, 64, 4095, 4096, 65536, maxp]
            seq = 0
            for s in sizes:
                for _ in range(3):
                    try:
                        self.round_trip(c, seq, s)
                    except Fail as e:
                        raise Fail(f"payload {s} B: {e}", e.status)
                    seq += 1
            big = maxp
            while ping_size(big) <= max_msg:
                big += 1
            try:
                c.send_ping(seq, payload_for(seq, big), CALL_TIMEOUT)
                raise Fail(f"a Ping with a {big} B payload ({ping_size(big)} B > max {max_msg} B) was sent; "
                           f"want message too large")
            except goipc.MessageTooLargeError:
                pass
            except goipc.Error as e:
                raise Fail(f"a Ping with a {big} B payload gave {e}; want message too large", status_of(e))
            self.round_trip(c, seq, 64)
            return {"sizes": sizes, "max_message": max_msg, "max_payload": maxp, "too_large_payload": big,
                    "round_trips": seq + 1}
        finally:
            c.close()

    def burst(self):
        a = self.a
        c = self.dial()
        try:
            seq = nxt = max_burst = 0
            for r in range(a.rounds):
                burst = 0
                while True:
                    try:
                        c.send_ping(seq, payload_for(seq, a.size), 0)
                    except goipc.TimeoutError:
                        break  # the ring is full: backpressure
                    except goipc.Error as e:
                        raise fail_from(f"round {r}: send Ping {seq}", e)
                    seq += 1
                    burst += 1
                    if burst > 10_000_000:
                        raise Fail(f"round {r}: 10M Pings sent and the ring never filled")
                if burst == 0:
                    raise Fail(f"round {r}: the ring was full before the first Ping")
                max_burst = max(max_burst, burst)
                while nxt < seq:
                    self.check_pong(c, nxt, payload_for(nxt, a.size))
                    nxt += 1
            return {"messages": seq, "rounds": a.rounds, "ring_full": a.rounds, "max_burst": max_burst,
                    "ring_size": a.ring_size}
        finally:
            c.close()

    def stream(self):
        a = self.a
        c = self.dial()
        i = 0
        try:
            while True:
                if i == a.n:
                    emit(event="streaming", lang=LANG, round_trips=i)
                self.round_trip(c, i, a.size)
                i += 1
        except Fail as e:
            if e.status == "peer_closed":
                return {"status": "peer_closed", "round_trips": i, "error": str(e)}
            raise Fail(f"want peer closed, got: {e}", e.status)
        finally:
            c.close()

    def version(self):
        try:
            c = self.dial()
        except Fail as e:
            if e.status == "protocol" and "version" in str(e):
                return {"status": "protocol", "message": str(e)}
            raise Fail(f"want a protocol error naming the version, got: {e}", e.status)
        c.close()
        raise Fail("dial succeeded; want a protocol version mismatch")

    def layout(self):
        a = self.a
        bad = check_constants()
        if not a.ring_size or not a.snapshot:
            raise Fail("layout needs --ring-size and --snapshot")
        c = self.dial()
        max_msg = c.max_message_size
        max_msg = max_msg() if callable(max_msg) else max_msg
        try:
            c.send_ping(L_SEQ, L_PAYLOAD, CALL_TIMEOUT)
        except goipc.Error as e:
            c.close()
            raise fail_from("send the Ping", e)
        # The capture closes the socket once the snapshot is written.
        try:
            got = await_capture_close(c)
        finally:
            c.close()
        if got:
            raise Fail(f"after the snapshot: want peer closed, got {got}")
        with open(a.snapshot, "rb") as f:
            snap = f.read()
        bad += check_snapshot(snap, SnapshotWant(os.getpid(), a.dial, a.ring_size, max_msg, time.time_ns()))
        if bad:
            raise Fail("layout disagreements: " + "; ".join(bad))
        return {"checked": "status codes, constants, hello, header (pids, creation time, protocol version, "
                           "socket path), ring control blocks (positions, counters, eventcounts), frame, Ping bytes",
                "snapshot_bytes": len(snap)}

def run_producer(a):
    load()
    p = Producer(a)
    scenarios = {"sizes": p.sizes, "burst": p.burst, "stream": p.stream, "version": p.version, "layout": p.layout}
    if a.scenario not in scenarios:
        print(f"peer.py producer: unknown scenario {a.scenario}", file=sys.stderr)
        return 2
    try:
        r = scenarios[a.scenario]()
        r["ok"] = True
    except Fail as e:
        r = {"ok": False, "error": str(e)}
        if e.status:
            r["status"] = e.status
    except Exception as e:  # a bug in this peer or the binding: report it, never hang
        r = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    emit(event="result", lang=LANG, scenario=a.scenario, **r)
    return 0 if r["ok"] else 1


# ---- layout ----------------------------------------------------------------------

# The layout v2 constants this peer depends on (the diagram in
# internal/layout/layout.go, docs/LAYOUT.md, docs/MESSAGES.md); every peer
# has the same table and checks it against the bytes of a live connection
# (the capture snapshot).
L_HELLO_MAGIC = 0x53482D4350494F47  # "GOIPC-HS"
L_HELLO_SIZE = 32
L_PROTOCOL_VERSION = 2
L_LAYOUT_VERSION = 2
L_SEG_MAGIC = 0x4D48534350494F47  # "GOIPCSHM"
L_SEG_READY = 0x59444552  # "REDY"
L_OFF_LAYOUT, L_OFF_CONTROL_SIZE, L_OFF_SEG_SIZE = 0x008, 0x00C, 0x010
L_OFF_MAX_MESSAGE, L_OFF_FLAGS, L_OFF_CREATOR_PID, L_OFF_ACCEPTOR_PID = 0x018, 0x01C, 0x020, 0x024
L_OFF_RING0_OFF, L_OFF_RING0_CAP, L_OFF_RING1_OFF, L_OFF_RING1_CAP = 0x028, 0x030, 0x038, 0x040
L_OFF_CREATED_NS, L_OFF_PROTOCOL = 0x048, 0x050
L_OFF_RESERVED54, L_OFF_READY = 0x054, 0x07C  # 40 zero bytes up to ready
L_OFF_RING0_CTL, L_OFF_RING1_CTL, L_RING_CTL_SIZE = 0x080, 0x180, 0x100
L_OFF_PATH_LEN, L_OFF_PATH, L_MAX_PATH = 0x280, 0x284, 108
L_OFF_RESERVED2F0 = 0x2F0  # zero up to the control size
L_CONTROL_SIZE = 0x1000
# Ring control block: the producer's 128-byte block, then the consumer's.
L_CTL_HEAD, L_CTL_DATA_EC, L_CTL_PROD_MSGS, L_CTL_PROD_BYTES = 0x00, 0x08, 0x10, 0x18
L_CTL_PROD_PARKS, L_CTL_PROD_WAKES, L_CTL_PROD_END = 0x20, 0x28, 0x30
L_CTL_TAIL, L_CTL_SPACE_EC, L_CTL_CONS_MSGS, L_CTL_CONS_BYTES = 0x80, 0x88, 0x90, 0x98
L_CTL_CONS_PARKS, L_CTL_CONS_WAKES, L_CTL_CONS_END = 0xA0, 0xA8, 0xB0
L_CACHE_BLOCK = 128
# An eventcount word: futex waiters, doorbell flag, epoch (the futex word,
# the 32-bit half at +4).
L_EC_WAITERS_MASK, L_EC_DOORBELL, L_EC_EPOCH_SHIFT, L_EC_EPOCH_HALF = 0x7FFFFFFF, 1 << 31, 32, 4
L_FRAME_HEADER, L_FRAME_ALIGN, L_KIND_MESSAGE = 8, 8, 0
L_BODY_TYPE_OFF, L_BODY_PING, L_PING_SEQ_OFF, L_PING_VEC_BASE = 23, 1, 56, 64
L_SEQ = 42
L_PAYLOAD = bytes(range(13))
L_DAY_NS = 24 * 60 * 60 * 10**9

# The table's structure, checked at import as C and Rust check theirs at
# compile time.
assert L_OFF_PROTOCOL + 4 == L_OFF_RESERVED54 and L_OFF_RESERVED54 + 40 == L_OFF_READY
assert L_OFF_READY + 4 == L_OFF_RING0_CTL, "ready is the last header word"
assert L_OFF_RING1_CTL - L_OFF_RING0_CTL == L_RING_CTL_SIZE == 0x100, "ring control blocks are 256 bytes"
assert L_OFF_RING1_CTL + L_RING_CTL_SIZE == L_OFF_PATH_LEN and L_OFF_PATH_LEN + 4 == L_OFF_PATH
assert L_OFF_PATH + L_MAX_PATH == L_OFF_RESERVED2F0 <= L_CONTROL_SIZE
assert L_CTL_HEAD // L_CACHE_BLOCK == (L_CTL_PROD_END - 1) // L_CACHE_BLOCK == 0, "producer words on block 0"
assert L_CTL_TAIL // L_CACHE_BLOCK == (L_CTL_CONS_END - 1) // L_CACHE_BLOCK == 1, "consumer words on block 1"
assert L_EC_WAITERS_MASK & L_EC_DOORBELL == 0 and L_EC_WAITERS_MASK | L_EC_DOORBELL == 0xFFFFFFFF
assert L_EC_EPOCH_SHIFT == 8 * L_EC_EPOCH_HALF, "the epoch (futex word) is the high half"


def ping_size(n):
    return 64 + ((n + 11) & ~7)


def pong_size(n):
    return 72 + ((n + 11) & ~7)


def frame_size(n):
    return (L_FRAME_HEADER + n + L_FRAME_ALIGN - 1) & ~(L_FRAME_ALIGN - 1)


def max_payload(max_msg):
    n = max_msg
    while n > 0 and pong_size(n) > max_msg:
        n -= 1
    return n


def check_constants():
    """The binding's own constants agree with the documented ones."""
    bad = []
    errors = getattr(goipc, "errors", None)
    if errors is None:
        import goipc.errors as errors
    for value, name in enumerate(STATUS_NAMES):
        if value == 0:
            continue
        const = "ERR_" + name.upper()
        got = getattr(errors, const, None)
        if got != value:
            bad.append(f"goipc.errors.{const} = {got}, documented {value}")
    table = getattr(errors, "STATUS_ERRORS", None)
    if table is not None:
        for value in range(1, len(STATUS_NAMES)):
            if value not in table:
                bad.append(f"goipc.errors.STATUS_ERRORS has no class for status {value}")
    abi = getattr(goipc, "ABI_VERSION", None)
    if abi != 1:
        bad.append(f"goipc.ABI_VERSION = {abi}, documented 1")
    msgs = getattr(goipc, "messages", None)
    for n in (0, 1, 13, 63, 64, 4095, 4096, 65536):
        for fn, want in (("ping_size", ping_size(n)), ("pong_size", pong_size(n))):
            f = getattr(msgs, fn, None)
            if f is not None and f(n) != want:
                bad.append(f"goipc.messages.{fn}({n}) = {f(n)}, documented {want}")
    return bad


class SnapshotWant:
    """What the dialer knows about its own connection."""

    def __init__(self, pid, path, ring_size, max_msg, now_ns):
        self.pid, self.path, self.ring_size, self.max_msg, self.now_ns = pid, path, ring_size, max_msg, now_ns


def await_capture_close(c):
    """Waits until the capture has hung up (it does once the snapshot is
    written), with receives that never wait: a blocking receive would park,
    and parking writes ring 1's consumer counters and data eventcount, which
    the capture may be copying at that moment. Returns None, or what came
    instead of peer-closed."""
    deadline = time.monotonic() + CALL_TIMEOUT
    while True:
        try:
            c.recv_pong(0)
            return "a Pong"
        except goipc.PeerClosedError:
            return None
        except goipc.TimeoutError:
            pass
        except goipc.Error as e:
            return repr(e)
        if time.monotonic() > deadline:
            return f"no hang-up within {CALL_TIMEOUT:.0f} s"
        time.sleep(0.0001)  # polling with a deadline, as the capture polls ring 0's head


def check_snapshot(b, w):
    bad = []

    def expect(what, got, want):
        if got != want:
            bad.append(f"{what}: got {got:#x}, want {want:#x}")

    def expect_zero(what, buf, start, end):
        for off in range(start, end):
            if buf[off]:
                bad.append(f"{what}: byte {off:#x} is {buf[off]:#x}, want 0")
                return

    frame = frame_size(ping_size(len(L_PAYLOAD)))
    if len(b) != L_HELLO_SIZE + L_CONTROL_SIZE + frame:
        return [f"snapshot is {len(b)} bytes, want {L_HELLO_SIZE + L_CONTROL_SIZE + frame}"]
    hello, seg = b[:L_HELLO_SIZE], b[L_HELLO_SIZE:]

    def u32(buf, off):
        return struct.unpack_from("<I", buf, off)[0]

    def u64(buf, off):
        return struct.unpack_from("<Q", buf, off)[0]

    expect("hello magic", u64(hello, 0), L_HELLO_MAGIC)
    expect("hello protocol version", u32(hello, 8), L_PROTOCOL_VERSION)
    expect("hello layout version", u32(hello, 12), L_LAYOUT_VERSION)
    expect("hello segment size = header segment size", u64(hello, 16), u64(seg, L_OFF_SEG_SIZE))
    expect("hello reserved", u64(hello, 24), 0)
    expect("segment magic", u64(seg, 0), L_SEG_MAGIC)
    expect("layout version", u32(seg, L_OFF_LAYOUT), L_LAYOUT_VERSION)
    expect("control size", u32(seg, L_OFF_CONTROL_SIZE), L_CONTROL_SIZE)
    expect("max message size", u32(seg, L_OFF_MAX_MESSAGE), w.max_msg)
    expect("flags", u32(seg, L_OFF_FLAGS), 0)
    expect("creator pid", u32(seg, L_OFF_CREATOR_PID), w.pid)
    # A goipc listener writes its pid here when it accepts; the capture is
    # not one and writes nothing into the segment.
    expect("acceptor pid (the capture writes nothing)", u32(seg, L_OFF_ACCEPTOR_PID), 0)
    cap0, cap1 = u64(seg, L_OFF_RING0_CAP), u64(seg, L_OFF_RING1_CAP)
    expect("ring 0 data offset", u64(seg, L_OFF_RING0_OFF), L_CONTROL_SIZE)
    expect("ring 0 capacity", cap0, w.ring_size)
    expect("ring 1 data offset", u64(seg, L_OFF_RING1_OFF), L_CONTROL_SIZE + cap0)
    expect("ring 1 capacity", cap1, w.ring_size)
    expect("segment size", u64(seg, L_OFF_SEG_SIZE), L_CONTROL_SIZE + cap0 + cap1)
    created = u64(seg, L_OFF_CREATED_NS)
    if not (created > 0 and abs(created - w.now_ns) <= L_DAY_NS):
        bad.append(f"created {created} ns is not within a day of now ({w.now_ns} ns)")
    expect("protocol version", u32(seg, L_OFF_PROTOCOL), L_PROTOCOL_VERSION)
    expect_zero("reserved before ready", seg, L_OFF_RESERVED54, L_OFF_READY)
    expect("ready", u32(seg, L_OFF_READY), L_SEG_READY)
    path = os.fsencode(w.path)
    expect("socket path length", u32(seg, L_OFF_PATH_LEN), len(path))
    stored = bytes(seg[L_OFF_PATH:L_OFF_PATH + min(u32(seg, L_OFF_PATH_LEN), L_MAX_PATH)])
    if stored != path:
        bad.append(f"socket path {stored!r}, want the dialed {path!r}")
    expect_zero("socket path after its length", seg, L_OFF_PATH + min(len(path), L_MAX_PATH), L_OFF_PATH + L_MAX_PATH)
    expect_zero("reserved after the path", seg, L_OFF_RESERVED2F0, L_CONTROL_SIZE)

    # One Ping published on ring 0, nothing consumed, ring 1 untouched;
    # nobody waited (the capture never does, the dialer polled its receive
    # without waiting), so every eventcount is still 0.
    for name, ctl_off, head, msgs, nbytes in (("ring 0", L_OFF_RING0_CTL, frame, 1, ping_size(len(L_PAYLOAD))),
                                              ("ring 1", L_OFF_RING1_CTL, 0, 0, 0)):
        ctl = seg[ctl_off:ctl_off + L_RING_CTL_SIZE]
        expect(f"{name} head", u64(ctl, L_CTL_HEAD), head)
        expect(f"{name} messages published", u64(ctl, L_CTL_PROD_MSGS), msgs)
        expect(f"{name} payload bytes published", u64(ctl, L_CTL_PROD_BYTES), nbytes)
        expect(f"{name} producer parks", u64(ctl, L_CTL_PROD_PARKS), 0)
        expect(f"{name} producer wakeups", u64(ctl, L_CTL_PROD_WAKES), 0)
        expect(f"{name} tail", u64(ctl, L_CTL_TAIL), 0)
        expect(f"{name} messages consumed", u64(ctl, L_CTL_CONS_MSGS), 0)
        expect(f"{name} bytes consumed", u64(ctl, L_CTL_CONS_BYTES), 0)
        expect(f"{name} consumer parks", u64(ctl, L_CTL_CONS_PARKS), 0)
        expect(f"{name} consumer wakeups", u64(ctl, L_CTL_CONS_WAKES), 0)
        for ec_name, ec_off in (("data eventcount", L_CTL_DATA_EC), ("space eventcount", L_CTL_SPACE_EC)):
            word = u64(ctl, ec_off)
            expect(f"{name} {ec_name} waiters", word & L_EC_WAITERS_MASK, 0)
            expect(f"{name} {ec_name} doorbell flag", (word & L_EC_DOORBELL) >> 31, 0)
            expect(f"{name} {ec_name} epoch", word >> L_EC_EPOCH_SHIFT, 0)
            expect(f"{name} {ec_name} futex word (epoch)", u32(ctl, ec_off + L_EC_EPOCH_HALF), 0)
        expect_zero(f"{name} producer block reserved", ctl, L_CTL_PROD_END, L_CTL_TAIL)
        expect_zero(f"{name} consumer block reserved", ctl, L_CTL_CONS_END, L_RING_CTL_SIZE)

    expect("frame length = Ping size", u32(seg, L_CONTROL_SIZE), ping_size(len(L_PAYLOAD)))
    expect("frame kind", u32(seg, L_CONTROL_SIZE + 4), L_KIND_MESSAGE)
    msg = seg[L_CONTROL_SIZE + L_FRAME_HEADER:]
    if msg[4:8] != b"GIPC":
        bad.append(f"file identifier {msg[4:8]!r}, want b'GIPC'")
    expect("body type (Ping)", msg[L_BODY_TYPE_OFF], L_BODY_PING)
    expect("Ping seq", u64(msg, L_PING_SEQ_OFF), L_SEQ)
    v = (4 + len(L_PAYLOAD) + 7) & ~7
    pad = v - ((4 + len(L_PAYLOAD) + 3) & ~3)
    expect("payload length", u32(msg, L_PING_VEC_BASE + pad), len(L_PAYLOAD))
    if msg[L_PING_VEC_BASE + pad + 4:L_PING_VEC_BASE + pad + 4 + len(L_PAYLOAD)] != L_PAYLOAD:
        bad.append("payload bytes differ")
    # This language's FlatBuffers reader (the generated goipc.fb) agrees.
    try:
        from goipc.fb.Body import Body
        from goipc.fb.Message import Message
        from goipc.fb.Ping import Ping

        if not Message.MessageBufferHasIdentifier(msg, 0):
            bad.append("goipc.fb: no GIPC identifier")
        m = Message.GetRootAs(msg, 0)
        if m.BodyType() != Body.Ping or Body.Ping != L_BODY_PING:
            bad.append(f"goipc.fb: body type {m.BodyType()}, want Ping ({L_BODY_PING})")
        else:
            p = Ping()
            t = m.Body()
            p.Init(t.Bytes, t.Pos)
            if p.Seq() != L_SEQ or bytes(p.Payload(i) for i in range(p.PayloadLength())) != L_PAYLOAD:
                bad.append("goipc.fb reads other values from the Ping")
    except Exception as e:
        bad.append(f"goipc.fb: {type(e).__name__}: {e}")
    return bad


# ---- consumer ------------------------------------------------------------------


def run_consumer(a):
    load()
    kw = {}
    if a.protocol_version:
        if not supports(goipc.listen, "protocol_version_override"):
            emit(event="listen_error", lang=LANG, status="not_supported",
                 error="the Python binding's listen() has no protocol_version_override")
            return 1
        kw["protocol_version_override"] = a.protocol_version
    try:
        ln = goipc.listen(a.listen, **kw)
    except goipc.Error as e:
        emit(event="listen_error", lang=LANG, status=status_of(e), error=str(e))
        return 1
    emit(event="ready", lang=LANG, path=a.listen)
    try:
        while True:
            try:
                c = ln.accept()
            except goipc.ClosedError:
                break
            except goipc.Error as e:  # a failed handshake concerns that one client
                emit(event="accept_error", lang=LANG, status=status_of(e), error=str(e))
                if a.once:
                    break
                continue
            (serve_calls if a.calls else serve)(c)  # one client at a time: the matrix uses one per consumer
            if a.once:
                break
    finally:
        ln.close()
    return 0


class Served:
    """What one served connection reports in its conn_end event."""

    def __init__(self):
        self.n = self.malformed = self.in_a_row = 0

    def bad(self):
        """One malformed message, dropped; True once three in a row end
        the connection."""
        self.malformed += 1
        self.in_a_row += 1
        return self.in_a_row >= 3

    def answered(self):
        self.in_a_row = 0
        self.n += 1

    def end(self, c, err):
        emit(event="conn_end", lang=LANG, status=status_of(err), error=str(err), messages=self.n,
             malformed=self.malformed)
        c.close()


def serve(c):
    st = Served()
    err = None
    recv_ping, send_pong = c.recv_ping, c.send_pong
    while True:
        try:
            ping = recv_ping()
        except goipc.ProtocolError as e:
            if st.bad():
                err = e
                break
            continue
        except goipc.Error as e:
            err = e
            break
        try:
            send_pong(ping.seq, ping.sent_ns, ping.payload)
        except goipc.Error as e:
            err = e
            break
        st.answered()
    st.end(c, err)


def serve_calls(c):
    """--calls: answers each call request, a Ping with its Pong
    (recv_ping_request + reply_pong: verified and built by the library),
    anything else with its own bytes, as `goipc pong` does."""
    st = Served()
    err = None
    while True:
        try:
            try:
                call, ping = c.recv_ping_request()
                c.reply_pong(call, ping.seq, ping.sent_ns, ping.payload)
            except goipc.ProtocolError as e:  # not a Ping: its id and bytes come with the error
                if getattr(e, "request", None) is None:
                    raise
                c.reply(e.call_id, e.request)
        except goipc.Error as e:
            err = e
            break
        st.answered()
    st.end(c, err)


def run_consumer_asyncio(a):
    """The consumer on goipc.aio: one asyncio loop, a task per client,
    the same events as run_consumer."""
    load()
    import asyncio

    import goipc.aio as aio

    kw = {"protocol_version_override": a.protocol_version} if a.protocol_version else {}
    try:
        ln = aio.listen(a.listen, **kw)
    except goipc.Error as e:
        emit(event="listen_error", lang=LANG, status=status_of(e), error=str(e))
        return 1

    async def serve_async(c):
        st = Served()
        err = None
        while True:
            try:
                ping = await c.recv_ping()
            except goipc.ProtocolError as e:
                if st.bad():
                    err = e
                    break
                continue
            except goipc.Error as e:
                err = e
                break
            try:
                await c.send_pong(ping.seq, ping.sent_ns, ping.payload)
            except goipc.Error as e:
                err = e
                break
            st.answered()
        st.end(c, err)

    async def main():
        emit(event="ready", lang=LANG, path=a.listen)
        tasks = []
        async with ln:
            while True:
                try:
                    c = await ln.accept()
                except goipc.ClosedError:
                    break
                except goipc.Error as e:  # a failed handshake concerns that one client
                    emit(event="accept_error", lang=LANG, status=status_of(e), error=str(e))
                    if a.once:
                        break
                    continue
                tasks.append(asyncio.ensure_future(serve_async(c)))
                if a.once:
                    break
            await asyncio.gather(*tasks)

    asyncio.run(main())
    return 0


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    role = sys.argv[1]
    ap = argparse.ArgumentParser(prog="peer.py " + role)
    ap.add_argument("--listen")
    ap.add_argument("--dial")
    ap.add_argument("--scenario")
    ap.add_argument("--n", "-n", type=int, default=100000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--ring-size", type=int, default=0)
    ap.add_argument("--max-message", type=int, default=0)
    ap.add_argument("--protocol-version", type=int, default=0)
    ap.add_argument("--snapshot")
    ap.add_argument("--once", action="store_true")
    ap.add_argument("--asyncio", action="store_true", help="consumer: serve with goipc.aio")
    ap.add_argument("--calls", action="store_true", help="consumer: answer call requests (a Pong for a Ping)")
    a = ap.parse_args(sys.argv[2:])
    if role == "probe":
        return run_probe()
    if role == "features":
        try:
            emit(event="features", lang=LANG, **features())
        except Exception as e:
            emit(event="features", lang=LANG, error=f"{type(e).__name__}: {e}")
        return 0
    if role == "consumer" and a.listen:
        return run_consumer_asyncio(a) if a.asyncio else run_consumer(a)
    if role == "producer" and a.dial and a.scenario:
        return run_producer(a)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
