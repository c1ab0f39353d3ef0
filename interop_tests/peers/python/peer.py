#!/usr/bin/env python3
"""The Python peer of the interop matrix (interop_tests/run.py).

Uses the `goipc` package of bindings/python (imported from the source
tree; it finds libgoipc.so in build/lib). Same command line and JSON lines
as every other peer (docs/INTEROP.md):

    peer.py consumer --listen PATH [--protocol-version V] [--once]
    peer.py producer --dial PATH --scenario NAME [--n N] [--size B] [--warmup W]
                     [--rounds R] [--ring-size BYTES] [--max-message BYTES]
                     [--protocol-version V] [--snapshot FILE]
    peer.py unix-echo --listen PATH --size B
    peer.py probe       can the binding run the peer? {"event":"probe","ok":...}
    peer.py features    what the binding offers {"event":"features",...}
"""

import argparse
import inspect
import json
import os
import socket
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python", "src"))

LANG = "python"
CALL_TIMEOUT = 10.0  # seconds; every blocking call is bounded

# Status codes (include/goipc.h), by value: the documented ABI.
STATUS_NAMES = ["ok", "invalid_argument", "timeout", "closed", "peer_closed", "message_too_large",
                "buffer_too_small", "protocol", "permission", "system", "address_in_use", "not_supported"]

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

    def pingpong(self):
        a = self.a
        c = self.dial()
        try:
            rtts = []
            start = 0
            now = time.monotonic_ns
            rt = self.round_trip
            for i in range(a.warmup + a.n):
                if i == a.warmup:
                    start = now()
                t0 = now()
                rt(c, i, a.size)
                if i >= a.warmup:
                    rtts.append(now() - t0)
            return latencies(rtts, now() - start, a.size)
        finally:
            c.close()

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
            c.recv_pong(CALL_TIMEOUT)
            got = "a Pong"
        except goipc.PeerClosedError:
            got = None
        except goipc.Error as e:
            got = repr(e)
        c.close()
        if got:
            raise Fail(f"after the snapshot: want peer closed, got {got}")
        with open(a.snapshot, "rb") as f:
            snap = f.read()
        bad += check_snapshot(snap, os.getpid(), a.ring_size, max_msg)
        if bad:
            raise Fail("layout disagreements: " + "; ".join(bad))
        return {"checked": "status codes, constants, hello, header, ring control blocks, frame, Ping bytes",
                "snapshot_bytes": len(snap)}

    def unix(self):
        a = self.a
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(300)
        s.connect(a.dial)
        msg = bytearray(payload_for(0, a.size))
        reply = bytearray(a.size)
        view = memoryview(reply)
        rtts = []
        now = time.monotonic_ns
        start = 0
        try:
            for i in range(a.warmup + a.n):
                if i == a.warmup:
                    start = now()
                if a.size >= 8:
                    struct.pack_into("<Q", msg, 0, i)
                t0 = now()
                s.sendall(msg)
                got = 0
                while got < a.size:
                    k = s.recv_into(view[got:])
                    if k == 0:
                        raise Fail(f"round trip {i}: the echo hung up")
                    got += k
                if i >= a.warmup:
                    rtts.append(now() - t0)
                if reply != msg:
                    raise Fail(f"answer {i} differs")
        finally:
            s.close()
        return latencies(rtts, now() - start, a.size)


def latencies(rtts, elapsed, size):
    rtts.sort()
    n = len(rtts)

    def pct(q):
        return rtts[int(q / 100 * (n - 1) + 0.5)]

    return {"round_trips": n, "size": size, "p50_ns": pct(50), "p99_ns": pct(99), "p999_ns": pct(99.9),
            "max_ns": rtts[-1], "elapsed_ns": elapsed, "round_trips_per_s": n * 1e9 / elapsed}


def run_producer(a):
    load()
    p = Producer(a)
    scenarios = {"pingpong": p.pingpong, "sizes": p.sizes, "burst": p.burst, "stream": p.stream,
                 "version": p.version, "layout": p.layout, "unix": p.unix}
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

# The layout v1 constants this peer depends on (docs/LAYOUT.md,
# docs/MESSAGES.md); every peer has the same table and checks it against
# the bytes of a live connection (the capture snapshot).
L_HELLO_MAGIC = 0x53482D4350494F47  # "GOIPC-HS"
L_HELLO_SIZE = 32
L_PROTOCOL_VERSION = 1
L_LAYOUT_VERSION = 1
L_SEG_MAGIC = 0x4D48534350494F47  # "GOIPCSHM"
L_SEG_READY = 0x59444552  # "REDY"
L_OFF_LAYOUT, L_OFF_CONTROL_SIZE, L_OFF_SEG_SIZE = 0x008, 0x00C, 0x010
L_OFF_MAX_MESSAGE, L_OFF_FLAGS, L_OFF_CREATOR_PID, L_OFF_RESERVED24 = 0x018, 0x01C, 0x020, 0x024
L_OFF_RING0_OFF, L_OFF_RING0_CAP, L_OFF_RING1_OFF, L_OFF_RING1_CAP = 0x028, 0x030, 0x038, 0x040
L_OFF_RESERVED48, L_OFF_READY = 0x048, 0x07C
L_OFF_RING0_CTL, L_OFF_RING1_CTL, L_CTL_HEAD, L_CTL_TAIL = 0x080, 0x180, 0x00, 0x80
L_CONTROL_SIZE = 0x1000
L_FRAME_HEADER, L_FRAME_ALIGN, L_KIND_MESSAGE = 8, 8, 0
L_BODY_TYPE_OFF, L_BODY_PING, L_PING_SEQ_OFF, L_PING_VEC_BASE = 23, 1, 56, 64
L_SEQ = 42
L_PAYLOAD = bytes(range(13))


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


def check_snapshot(b, pid, ring_size, max_msg):
    bad = []

    def expect(what, got, want):
        if got != want:
            bad.append(f"{what}: got {got:#x}, want {want:#x}")

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
    expect("max message size", u32(seg, L_OFF_MAX_MESSAGE), max_msg)
    expect("flags", u32(seg, L_OFF_FLAGS), 0)
    expect("creator pid", u32(seg, L_OFF_CREATOR_PID), pid)
    expect("reserved at 0x24", u32(seg, L_OFF_RESERVED24), 0)
    cap0, cap1 = u64(seg, L_OFF_RING0_CAP), u64(seg, L_OFF_RING1_CAP)
    expect("ring 0 data offset", u64(seg, L_OFF_RING0_OFF), L_CONTROL_SIZE)
    expect("ring 0 capacity", cap0, ring_size)
    expect("ring 1 data offset", u64(seg, L_OFF_RING1_OFF), L_CONTROL_SIZE + cap0)
    expect("ring 1 capacity", cap1, ring_size)
    expect("segment size", u64(seg, L_OFF_SEG_SIZE), L_CONTROL_SIZE + cap0 + cap1)
    if any(seg[L_OFF_RESERVED48:L_OFF_READY]):
        bad.append("reserved bytes before ready are not zero")
    expect("ready", u32(seg, L_OFF_READY), L_SEG_READY)
    expect("ring 0 head (one Ping frame published)", u64(seg, L_OFF_RING0_CTL + L_CTL_HEAD), frame)
    expect("ring 0 tail", u64(seg, L_OFF_RING0_CTL + L_CTL_TAIL), 0)
    expect("ring 1 head", u64(seg, L_OFF_RING1_CTL + L_CTL_HEAD), 0)
    expect("ring 1 tail", u64(seg, L_OFF_RING1_CTL + L_CTL_TAIL), 0)
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
            serve(c)  # one client at a time: the matrix uses one per consumer
            if a.once:
                break
    finally:
        ln.close()
    return 0


def serve(c):
    n = malformed = in_a_row = 0
    err = None
    recv_ping, send_pong = c.recv_ping, c.send_pong
    while True:
        try:
            ping = recv_ping()
        except goipc.ProtocolError as e:  # one malformed message, dropped
            malformed += 1
            in_a_row += 1
            if in_a_row >= 3:
                err = e
                break
            continue
        except goipc.Error as e:
            err = e
            break
        in_a_row = 0
        try:
            send_pong(ping.seq, ping.sent_ns, ping.payload)
        except goipc.Error as e:
            err = e
            break
        n += 1
    emit(event="conn_end", lang=LANG, status=status_of(err), error=str(err), messages=n, malformed=malformed)
    c.close()


def run_unix_echo(a):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.unlink(a.listen)
    except FileNotFoundError:
        pass
    s.bind(a.listen)
    s.listen(1)
    s.settimeout(60)
    emit(event="ready", lang=LANG, path=a.listen)
    c, _ = s.accept()
    s.close()
    os.unlink(a.listen)
    c.settimeout(None)
    buf = bytearray(a.size)
    view = memoryview(buf)
    while True:
        got = 0
        while got < a.size:
            k = c.recv_into(view[got:])
            if k == 0:
                return 0
            got += k
        c.sendall(buf)


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
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--ring-size", type=int, default=0)
    ap.add_argument("--max-message", type=int, default=0)
    ap.add_argument("--protocol-version", type=int, default=0)
    ap.add_argument("--snapshot")
    ap.add_argument("--once", action="store_true")
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
        return run_consumer(a)
    if role == "producer" and a.dial and a.scenario:
        return run_producer(a)
    if role == "unix-echo" and a.listen:
        return run_unix_echo(a)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
