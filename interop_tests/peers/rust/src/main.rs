//! The Rust peer of the interop matrix (interop_tests/run.py), on the Rust
//! binding (bindings/rust): Ping/Pong through `goipc::Messenger`, built and
//! verified with the Rust FlatBuffers code. Same command line and JSON
//! lines as every other peer (docs/INTEROP.md):
//!
//! ```text
//! peer consumer --listen PATH [--protocol-version V] [--once] [--tokio | --calls]
//! peer producer --dial PATH --scenario NAME [--n N] [--size B]
//!               [--rounds R] [--ring-size BYTES] [--max-message BYTES]
//!               [--protocol-version V] [--snapshot FILE]
//! ```
//!
//! Only what is test-only lives here: the scenarios sizes, burst, stream
//! (the kill points), version and layout, and a consumer that reports each
//! connection's end. The pingpong and calls scenarios run the ping-pong
//! example, examples/ping-pong/rust/ping.rs, the program users read.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use goipc::{Conn, Error, Listener, Messenger, Options, PingRequest, sys};

const LANG: &str = "rust";
/// Every blocking call is bounded: a bug shows as a timeout, never a hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

// ---- The documented constants this peer depends on ----------------------

// Status codes (include/goipc.h): the values are ABI; a change must break
// this build.
const _: () = {
    assert!(sys::GOIPC_ABI_VERSION == 1);
    assert!(sys::GOIPC_OK == 0);
    assert!(sys::GOIPC_ERR_INVALID_ARGUMENT == 1);
    assert!(sys::GOIPC_ERR_TIMEOUT == 2);
    assert!(sys::GOIPC_ERR_CLOSED == 3);
    assert!(sys::GOIPC_ERR_PEER_CLOSED == 4);
    assert!(sys::GOIPC_ERR_MESSAGE_TOO_LARGE == 5);
    assert!(sys::GOIPC_ERR_BUFFER_TOO_SMALL == 6);
    assert!(sys::GOIPC_ERR_PROTOCOL == 7);
    assert!(sys::GOIPC_ERR_PERMISSION == 8);
    assert!(sys::GOIPC_ERR_SYSTEM == 9);
    assert!(sys::GOIPC_ERR_ADDRESS_IN_USE == 10);
    assert!(sys::GOIPC_ERR_NOT_SUPPORTED == 11);
    assert!(sys::GOIPC_ERR_LIMIT == 12);
};

const STATUS_NAMES: [&str; 13] = [
    "ok",
    "invalid_argument",
    "timeout",
    "closed",
    "peer_closed",
    "message_too_large",
    "buffer_too_small",
    "protocol",
    "permission",
    "system",
    "address_in_use",
    "not_supported",
    "limit",
];

/// Layout v2 (the diagram in internal/layout/layout.go, docs/LAYOUT.md) and
/// the Ping bytes (docs/MESSAGES.md).
mod layout {
    pub const HELLO_MAGIC: u64 = 0x5348_2d43_5049_4f47; // "GOIPC-HS"
    pub const HELLO_SIZE: usize = 32;
    pub const PROTOCOL_VERSION: u64 = 2;
    pub const LAYOUT_VERSION: u64 = 2;
    pub const SEG_MAGIC: u64 = 0x4d48_5343_5049_4f47; // "GOIPCSHM"
    pub const SEG_READY: u64 = 0x5944_4552; // "REDY"
    pub const OFF_LAYOUT: usize = 0x008;
    pub const OFF_CONTROL_SIZE: usize = 0x00C;
    pub const OFF_SEG_SIZE: usize = 0x010;
    pub const OFF_MAX_MESSAGE: usize = 0x018;
    pub const OFF_FLAGS: usize = 0x01C;
    pub const OFF_CREATOR_PID: usize = 0x020;
    pub const OFF_ACCEPTOR_PID: usize = 0x024;
    pub const OFF_RING0_OFF: usize = 0x028;
    pub const OFF_RING0_CAP: usize = 0x030;
    pub const OFF_RING1_OFF: usize = 0x038;
    pub const OFF_RING1_CAP: usize = 0x040;
    pub const OFF_CREATED_NS: usize = 0x048;
    pub const OFF_PROTOCOL: usize = 0x050;
    pub const OFF_RESERVED54: usize = 0x054; // 40 zero bytes up to ready
    pub const OFF_READY: usize = 0x07C;
    pub const OFF_RING0_CTL: usize = 0x080;
    pub const OFF_RING1_CTL: usize = 0x180;
    pub const RING_CTL_SIZE: usize = 0x100;
    pub const OFF_PATH_LEN: usize = 0x280;
    pub const OFF_PATH: usize = 0x284;
    pub const MAX_PATH: usize = 108;
    pub const OFF_RESERVED2F0: usize = 0x2F0; // zero up to the control size
    pub const CONTROL_SIZE: usize = 0x1000;
    // Ring control block: the producer's 128-byte block, then the consumer's.
    pub const CTL_HEAD: usize = 0x00;
    pub const CTL_DATA_EC: usize = 0x08;
    pub const CTL_PROD_MSGS: usize = 0x10;
    pub const CTL_PROD_BYTES: usize = 0x18;
    pub const CTL_PROD_PARKS: usize = 0x20;
    pub const CTL_PROD_WAKES: usize = 0x28;
    pub const CTL_PROD_END: usize = 0x30; // reserved up to the consumer's block
    pub const CTL_TAIL: usize = 0x80;
    pub const CTL_SPACE_EC: usize = 0x88;
    pub const CTL_CONS_MSGS: usize = 0x90;
    pub const CTL_CONS_BYTES: usize = 0x98;
    pub const CTL_CONS_PARKS: usize = 0xA0;
    pub const CTL_CONS_WAKES: usize = 0xA8;
    pub const CTL_CONS_END: usize = 0xB0; // reserved up to the block's end
    pub const CACHE_BLOCK: usize = 128;
    // An eventcount word: futex waiters, doorbell flag, epoch (the futex
    // word, the 32-bit half at +4).
    pub const EC_WAITERS_MASK: u64 = 0x7fff_ffff;
    pub const EC_DOORBELL: u64 = 1 << 31;
    pub const EC_EPOCH_SHIFT: u32 = 32;
    pub const EC_EPOCH_HALF: usize = 4;
    pub const FRAME_HEADER: usize = 8;
    pub const FRAME_ALIGN: usize = 8;
    pub const KIND_MESSAGE: u64 = 0;
    pub const BODY_TYPE_OFF: usize = 23;
    pub const BODY_PING: u8 = 1;
    pub const PING_SEQ_OFF: usize = 56;
    pub const PING_VEC_BASE: usize = 64;
    pub const SEQ: u64 = 42;
    pub const PAYLOAD: [u8; 13] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    pub const DAY_NS: u64 = 24 * 60 * 60 * 1_000_000_000;

    const _: () = assert!(
        OFF_PROTOCOL + 4 == OFF_RESERVED54 && OFF_RESERVED54 + 40 == OFF_READY,
        "40 reserved bytes between the protocol version and ready"
    );
    const _: () = assert!(OFF_READY + 4 == OFF_RING0_CTL, "ready is the last header word");
    const _: () = assert!(
        OFF_RING1_CTL - OFF_RING0_CTL == RING_CTL_SIZE && RING_CTL_SIZE == 0x100,
        "ring control blocks are 256 bytes"
    );
    const _: () = assert!(OFF_RING1_CTL + RING_CTL_SIZE == OFF_PATH_LEN, "the path length follows the control blocks");
    const _: () = assert!(
        OFF_PATH_LEN + 4 == OFF_PATH && OFF_PATH + MAX_PATH == OFF_RESERVED2F0,
        "the path bytes fill up to 0x2F0"
    );
    const _: () = assert!(
        OFF_CREATED_NS.is_multiple_of(8) && CTL_PROD_MSGS.is_multiple_of(8) && CTL_CONS_MSGS.is_multiple_of(8),
        "64-bit words are 8-byte aligned"
    );
    const _: () = assert!(
        CTL_HEAD / CACHE_BLOCK == 0 && (CTL_PROD_END - 1) / CACHE_BLOCK == 0,
        "the producer's words on the first 128-byte block"
    );
    const _: () = assert!(
        CTL_TAIL / CACHE_BLOCK == 1 && (CTL_CONS_END - 1) / CACHE_BLOCK == 1,
        "the consumer's words on the second 128-byte block"
    );
    const _: () = assert!(
        EC_WAITERS_MASK & EC_DOORBELL == 0 && EC_WAITERS_MASK | EC_DOORBELL == 0xffff_ffff,
        "waiters and doorbell fill the eventcount's low half"
    );
    const _: () = assert!(EC_EPOCH_SHIFT as usize == 8 * EC_EPOCH_HALF, "the epoch (futex word) is the high half");

    pub const fn ping_size(n: usize) -> usize {
        64 + ((n + 11) & !7)
    }
    pub const fn pong_size(n: usize) -> usize {
        72 + ((n + 11) & !7)
    }
    pub const fn frame_size(n: usize) -> usize {
        (FRAME_HEADER + n + FRAME_ALIGN - 1) & !(FRAME_ALIGN - 1)
    }
}
use layout::{ping_size, pong_size};

// ---- Output: JSON lines ---------------------------------------------------

#[derive(Clone)]
enum J {
    S(String),
    U(u64),
    B(bool),
    A(Vec<u64>),
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn emit(fields: &[(&str, J)]) {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            let v = match v {
                J::S(s) => esc(s),
                J::U(u) => u.to_string(),
                J::B(b) => b.to_string(),
                J::A(a) => format!("[{}]", a.iter().map(u64::to_string).collect::<Vec<_>>().join(",")),
            };
            format!("{}:{v}", esc(k))
        })
        .collect();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{{{}}}", body.join(","));
    let _ = out.flush();
}

fn status_name(e: &Error) -> &'static str {
    usize::try_from(e.status()).ok().and_then(|i| STATUS_NAMES.get(i)).copied().unwrap_or("unknown")
}

// ---- Arguments ------------------------------------------------------------

#[derive(Default)]
struct Args {
    listen: Option<String>,
    dial: Option<String>,
    scenario: Option<String>,
    snapshot: Option<String>,
    n: u64,
    size: usize,
    rounds: u64,
    ring_size: usize,
    max_message: usize,
    proto: u32,
    once: bool,
    tokio: bool,
    calls: bool,
}

fn usage() -> ! {
    eprintln!("usage: peer consumer|producer [flags] (see docs/INTEROP.md)");
    std::process::exit(2)
}

fn parse_args(argv: &[String]) -> Args {
    let mut a = Args { n: 100_000, size: 32, rounds: 20, ..Args::default() };
    let mut i = 0;
    let num = |s: &str| s.parse::<u64>().unwrap_or_else(|_| usage());
    while i < argv.len() {
        let k = argv[i].as_str();
        if k == "--once" || k == "--tokio" || k == "--calls" {
            a.once |= k == "--once";
            a.tokio |= k == "--tokio";
            a.calls |= k == "--calls";
            i += 1;
            continue;
        }
        let v = argv.get(i + 1).unwrap_or_else(|| usage()).as_str();
        match k {
            "--listen" => a.listen = Some(v.into()),
            "--dial" => a.dial = Some(v.into()),
            "--scenario" => a.scenario = Some(v.into()),
            "--snapshot" => a.snapshot = Some(v.into()),
            "--n" | "-n" => a.n = num(v),
            "--size" => a.size = num(v) as usize,
            "--rounds" => a.rounds = num(v),
            "--ring-size" => a.ring_size = num(v) as usize,
            "--max-message" => a.max_message = num(v) as usize,
            "--protocol-version" => a.proto = num(v) as u32,
            _ => usage(),
        }
        i += 2;
    }
    a
}

// ---- Producer -------------------------------------------------------------

struct Fail {
    msg: String,
    status: Option<&'static str>,
}

fn fail(msg: impl Into<String>) -> Fail {
    Fail { msg: msg.into(), status: None }
}

fn fail_err(what: impl std::fmt::Display, e: &Error) -> Fail {
    Fail { msg: format!("{what}: {e}"), status: Some(status_name(e)) }
}

type Fields = Vec<(&'static str, J)>;

/// The payload of a Ping with sequence number seq and n bytes is
/// pattern[seq % 251 .. seq % 251 + n], pattern[i] = i*7 + 3 (every peer).
fn pattern(max_len: usize) -> Vec<u8> {
    (0..max_len + 251).map(|i| (i * 7 + 3) as u8).collect()
}

fn payload(pat: &[u8], seq: u64, n: usize) -> &[u8] {
    let o = (seq % 251) as usize;
    &pat[o..o + n]
}

fn check_pong(m: &mut Messenger<'_>, seq: u64, want: &[u8]) -> Result<(), Fail> {
    let pong = m.recv_pong_timeout(CALL_TIMEOUT).map_err(|e| fail_err(format!("receive Pong {seq}"), &e))?;
    if pong.seq() != seq {
        return Err(fail(format!("Pong answers seq {}, want {seq} (lost or reordered)", pong.seq())));
    }
    let got = pong.payload().map(|p| p.bytes()).unwrap_or(&[]);
    if got != want {
        return Err(fail(format!("Pong {seq} payload ({} B) differs from the Ping's ({} B)", got.len(), want.len())));
    }
    Ok(())
}

fn round_trip(m: &mut Messenger<'_>, pat: &[u8], seq: u64, size: usize) -> Result<(), Fail> {
    let p = payload(pat, seq, size);
    m.send_ping_timeout(seq, p, CALL_TIMEOUT).map_err(|e| fail_err(format!("send Ping {seq}"), &e))?;
    check_pong(m, seq, p)
}

fn max_payload(max_msg: usize) -> usize {
    let mut n = max_msg;
    while n > 0 && pong_size(n) > max_msg {
        n -= 1;
    }
    n
}

struct Producer {
    a: Args,
}

impl Producer {
    fn dial(&self) -> Result<Conn, Fail> {
        let mut o = Options::default();
        o.ring_size = self.a.ring_size;
        o.max_message_size = self.a.max_message;
        o.protocol_version_override = self.a.proto;
        Conn::dial_with(self.a.dial.as_deref().unwrap_or_default(), &o, Some(CALL_TIMEOUT))
            .map_err(|e| fail_err("dial", &e))
    }

    fn sizes(&self) -> Result<Fields, Fail> {
        let c = self.dial()?;
        let max_msg = c.max_message_size().map_err(|e| fail_err("max_message_size", &e))?;
        let maxp = max_payload(max_msg);
        let sizes = [0, 1, 63, 64, 4095, 4096, 65536, maxp];
        let pat = pattern(maxp + 64);
        let mut m = Messenger::new(&c);
        let mut seq = 0u64;
        for &s in &sizes {
            for _ in 0..3 {
                round_trip(&mut m, &pat, seq, s).map_err(|f| Fail { msg: format!("payload {s} B: {}", f.msg), ..f })?;
                seq += 1;
            }
        }
        let mut big = maxp;
        while ping_size(big) <= max_msg {
            big += 1;
        }
        match m.send_ping_timeout(seq, payload(&pat, seq, big), CALL_TIMEOUT) {
            Err(Error::MessageTooLarge(_)) => {}
            other => {
                return Err(fail(format!(
                    "a Ping with a {big} B payload ({} B > max {max_msg} B) gave {:?}, want message too large",
                    ping_size(big),
                    other.err()
                )));
            }
        }
        round_trip(&mut m, &pat, seq, 64)?;
        Ok(vec![
            ("sizes", J::A(sizes.iter().map(|&s| s as u64).collect())),
            ("max_message", J::U(max_msg as u64)),
            ("max_payload", J::U(maxp as u64)),
            ("too_large_payload", J::U(big as u64)),
            ("round_trips", J::U(seq + 1)),
        ])
    }

    fn burst(&self) -> Result<Fields, Fail> {
        let a = &self.a;
        let c = self.dial()?;
        let mut m = Messenger::new(&c);
        let pat = pattern(a.size);
        let (mut seq, mut next, mut max_burst) = (0u64, 0u64, 0u64);
        for r in 0..a.rounds {
            let mut burst = 0u64;
            loop {
                match m.send_ping_timeout(seq, payload(&pat, seq, a.size), Duration::ZERO) {
                    Ok(()) => {}
                    Err(Error::Timeout) => break, // the ring is full: backpressure
                    Err(e) => return Err(fail_err(format!("round {r}: send Ping {seq}"), &e)),
                }
                seq += 1;
                burst += 1;
                if burst > 10_000_000 {
                    return Err(fail(format!("round {r}: 10M Pings sent and the ring never filled")));
                }
            }
            if burst == 0 {
                return Err(fail(format!("round {r}: the ring was full before the first Ping")));
            }
            max_burst = max_burst.max(burst);
            while next < seq {
                check_pong(&mut m, next, payload(&pat, next, a.size))?;
                next += 1;
            }
        }
        Ok(vec![
            ("messages", J::U(seq)),
            ("rounds", J::U(a.rounds)),
            ("ring_full", J::U(a.rounds)),
            ("max_burst", J::U(max_burst)),
            ("ring_size", J::U(a.ring_size as u64)),
        ])
    }

    fn stream(&self) -> Result<Fields, Fail> {
        let a = &self.a;
        let c = self.dial()?;
        let mut m = Messenger::new(&c);
        let pat = pattern(a.size);
        let mut i = 0u64;
        loop {
            if i == a.n {
                emit(&[("event", J::S("streaming".into())), ("lang", J::S(LANG.into())), ("round_trips", J::U(i))]);
            }
            if let Err(f) = round_trip(&mut m, &pat, i, a.size) {
                if f.status == Some("peer_closed") {
                    return Ok(vec![
                        ("status", J::S("peer_closed".into())),
                        ("round_trips", J::U(i)),
                        ("error", J::S(f.msg)),
                    ]);
                }
                return Err(Fail { msg: format!("want peer closed, got: {}", f.msg), ..f });
            }
            i += 1;
        }
    }

    fn version(&self) -> Result<Fields, Fail> {
        match self.dial() {
            Ok(_) => Err(fail("dial succeeded; want a protocol version mismatch")),
            Err(f) if f.status == Some("protocol") && f.msg.contains("version") => {
                Ok(vec![("status", J::S("protocol".into())), ("message", J::S(f.msg))])
            }
            Err(f) => Err(Fail { msg: format!("want a protocol error naming the version, got: {}", f.msg), ..f }),
        }
    }

    fn layout(&self) -> Result<Fields, Fail> {
        let a = &self.a;
        let mut bad = check_constants();
        let (Some(snapshot), true) = (a.snapshot.as_deref(), a.ring_size > 0) else {
            return Err(fail("layout needs --ring-size and --snapshot"));
        };
        let c = self.dial()?;
        let max_msg = c.max_message_size().map_err(|e| fail_err("max_message_size", &e))?;
        let mut m = Messenger::new(&c);
        m.send_ping_timeout(layout::SEQ, &layout::PAYLOAD, CALL_TIMEOUT).map_err(|e| fail_err("send the Ping", &e))?;
        // The capture closes the socket once the snapshot is written.
        await_capture_close(&mut m).map_err(|e| fail(format!("after the snapshot: want peer closed, got {e}")))?;
        drop(m);
        drop(c);
        let snap = std::fs::read(snapshot).map_err(|e| fail(format!("read {snapshot}: {e}")))?;
        let now_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let want = SnapshotWant {
            pid: u64::from(std::process::id()),
            path: a.dial.as_deref().unwrap_or_default(),
            ring_size: a.ring_size as u64,
            max_msg: max_msg as u64,
            now_ns,
        };
        bad.extend(check_snapshot(&snap, &want));
        if !bad.is_empty() {
            return Err(fail(format!("layout disagreements: {}", bad.join("; "))));
        }
        Ok(vec![("checked", J::S(LAYOUT_CHECKED.into())), ("snapshot_bytes", J::U(snap.len() as u64))])
    }
}

/// The binding's constants and the library agree with the documented ones.
fn check_constants() -> Vec<String> {
    let mut bad = Vec::new();
    if goipc::abi_version() != 1 {
        bad.push(format!("goipc::abi_version() = {}, documented 1", goipc::abi_version()));
    }
    let unknown = goipc::strerror(STATUS_NAMES.len() as i32);
    for st in 0..STATUS_NAMES.len() as i32 {
        if goipc::strerror(st) == unknown {
            bad.push(format!("goipc::strerror({st}) is unknown to the library"));
        }
    }
    if goipc::message::IDENTIFIER != "GIPC" {
        bad.push(format!("goipc::message::IDENTIFIER = {}, documented GIPC", goipc::message::IDENTIFIER));
    }
    if goipc::fb::Body::Ping.0 != layout::BODY_PING || goipc::fb::Body::Pong.0 != 2 {
        bad.push("goipc::fb::Body values differ from the schema (Ping = 1, Pong = 2)".into());
    }
    // The Rust builder's sizes agree with goipc.h's formulas (all scalars
    // non-zero: the builder leaves out fields equal to their default).
    let mut b = flatbuffers_builder();
    for n in [0usize, 1, 13, 63, 64, 4095, 4096] {
        let p = vec![7u8; n];
        let got = goipc::message::build_ping(&mut b, 1, 1, &p).len();
        if got != ping_size(n) {
            bad.push(format!("goipc::message::build_ping with {n} B is {got} B, documented {}", ping_size(n)));
        }
        let got = goipc::message::build_pong(&mut b, 1, 1, 1, &p).len();
        if got != pong_size(n) {
            bad.push(format!("goipc::message::build_pong with {n} B is {got} B, documented {}", pong_size(n)));
        }
    }
    bad
}

fn flatbuffers_builder() -> flatbuffers::FlatBufferBuilder<'static> {
    flatbuffers::FlatBufferBuilder::with_capacity(1024)
}

/// What the result line says the layout scenario checked.
const LAYOUT_CHECKED: &str = "status codes, constants, hello, header (pids, creation time, protocol version, \
                              socket path), ring control blocks (positions, counters, eventcounts), frame, Ping bytes";

/// What the dialer knows about its own connection.
struct SnapshotWant<'a> {
    pid: u64,
    /// The path it dialed.
    path: &'a str,
    ring_size: u64,
    max_msg: u64,
    /// Wall clock, to judge the creation time.
    now_ns: u64,
}

/// Waits until the capture has hung up (it does once the snapshot is
/// written), with receives that never wait: a blocking receive would park,
/// and parking writes ring 1's consumer counters and data eventcount, which
/// the capture may be copying at that moment.
fn await_capture_close(m: &mut Messenger<'_>) -> Result<(), String> {
    let deadline = Instant::now() + CALL_TIMEOUT;
    loop {
        match m.recv_pong_timeout(Duration::ZERO) {
            Err(Error::PeerClosed) => return Ok(()),
            Err(Error::Timeout) if Instant::now() < deadline => {}
            Err(e) => return Err(e.to_string()),
            Ok(_) => return Err("a Pong".into()),
        }
        // Polling with a deadline, as the capture polls ring 0's head.
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn check_snapshot(b: &[u8], w: &SnapshotWant<'_>) -> Vec<String> {
    use layout::*;
    let mut bad = Vec::new();
    let frame = frame_size(ping_size(PAYLOAD.len()));
    if b.len() != HELLO_SIZE + CONTROL_SIZE + frame {
        return vec![format!("snapshot is {} bytes, want {}", b.len(), HELLO_SIZE + CONTROL_SIZE + frame)];
    }
    let mut expect = |what: &str, got: u64, want: u64| {
        if got != want {
            bad.push(format!("{what}: got {got:#x}, want {want:#x}"));
        }
    };
    let first_non_zero = |buf: &[u8], from: usize, to: usize| (from..to).find(|&off| buf[off] != 0);
    let u32_at = |buf: &[u8], off: usize| u64::from(u32::from_le_bytes(buf[off..off + 4].try_into().unwrap()));
    let u64_at = |buf: &[u8], off: usize| u64::from_le_bytes(buf[off..off + 8].try_into().unwrap());
    let (hello, seg) = b.split_at(HELLO_SIZE);
    let mut expect_zero = |what: &str, buf: &[u8], from: usize, to: usize| {
        if let Some(off) = first_non_zero(buf, from, to) {
            expect(&format!("{what}: byte {off:#x}"), u64::from(buf[off]), 0);
        }
    };
    expect_zero("hello reserved", hello, 24, 32);
    expect_zero("reserved before ready", seg, OFF_RESERVED54, OFF_READY);
    let path = w.path.as_bytes();
    expect_zero("socket path after its length", seg, OFF_PATH + path.len().min(MAX_PATH), OFF_PATH + MAX_PATH);
    expect_zero("reserved after the path", seg, OFF_RESERVED2F0, CONTROL_SIZE);
    for (name, ctl) in [("ring 0", OFF_RING0_CTL), ("ring 1", OFF_RING1_CTL)] {
        let ctl = &seg[ctl..ctl + RING_CTL_SIZE];
        expect_zero(&format!("{name} producer block reserved"), ctl, CTL_PROD_END, CTL_TAIL);
        expect_zero(&format!("{name} consumer block reserved"), ctl, CTL_CONS_END, RING_CTL_SIZE);
    }
    expect("hello magic", u64_at(hello, 0), HELLO_MAGIC);
    expect("hello protocol version", u32_at(hello, 8), PROTOCOL_VERSION);
    expect("hello layout version", u32_at(hello, 12), LAYOUT_VERSION);
    expect("hello segment size = header segment size", u64_at(hello, 16), u64_at(seg, OFF_SEG_SIZE));
    expect("segment magic", u64_at(seg, 0), SEG_MAGIC);
    expect("layout version", u32_at(seg, OFF_LAYOUT), LAYOUT_VERSION);
    expect("control size", u32_at(seg, OFF_CONTROL_SIZE), CONTROL_SIZE as u64);
    expect("max message size", u32_at(seg, OFF_MAX_MESSAGE), w.max_msg);
    expect("flags", u32_at(seg, OFF_FLAGS), 0);
    expect("creator pid", u32_at(seg, OFF_CREATOR_PID), w.pid);
    // A goipc listener writes its pid here when it accepts; the capture is
    // not one and writes nothing into the segment.
    expect("acceptor pid (the capture writes nothing)", u32_at(seg, OFF_ACCEPTOR_PID), 0);
    let (cap0, cap1) = (u64_at(seg, OFF_RING0_CAP), u64_at(seg, OFF_RING1_CAP));
    expect("ring 0 data offset", u64_at(seg, OFF_RING0_OFF), CONTROL_SIZE as u64);
    expect("ring 0 capacity", cap0, w.ring_size);
    expect("ring 1 data offset", u64_at(seg, OFF_RING1_OFF), CONTROL_SIZE as u64 + cap0);
    expect("ring 1 capacity", cap1, w.ring_size);
    expect("segment size", u64_at(seg, OFF_SEG_SIZE), CONTROL_SIZE as u64 + cap0 + cap1);
    let created = u64_at(seg, OFF_CREATED_NS);
    expect(
        "created (unix ns) is within a day of now",
        u64::from(created > 0 && created.abs_diff(w.now_ns) <= DAY_NS),
        1,
    );
    expect("protocol version", u32_at(seg, OFF_PROTOCOL), PROTOCOL_VERSION);
    expect("ready", u32_at(seg, OFF_READY), SEG_READY);
    let stored = u32_at(seg, OFF_PATH_LEN);
    expect("socket path length", stored, path.len() as u64);
    let stored = &seg[OFF_PATH..OFF_PATH + (stored as usize).min(MAX_PATH)];
    expect("socket path = the dialed path", u64::from(stored == path), 1);

    // One Ping published on ring 0, nothing consumed, ring 1 untouched;
    // nobody waited (the capture never does, the dialer polled its receive
    // without waiting), so every eventcount is still 0.
    let ping = ping_size(PAYLOAD.len()) as u64;
    for (name, ctl, head, msgs, bytes) in
        [("ring 0", OFF_RING0_CTL, frame as u64, 1, ping), ("ring 1", OFF_RING1_CTL, 0, 0, 0)]
    {
        let ctl = &seg[ctl..ctl + RING_CTL_SIZE];
        expect(&format!("{name} head"), u64_at(ctl, CTL_HEAD), head);
        expect(&format!("{name} messages published"), u64_at(ctl, CTL_PROD_MSGS), msgs);
        expect(&format!("{name} payload bytes published"), u64_at(ctl, CTL_PROD_BYTES), bytes);
        expect(&format!("{name} producer parks"), u64_at(ctl, CTL_PROD_PARKS), 0);
        expect(&format!("{name} producer wakeups"), u64_at(ctl, CTL_PROD_WAKES), 0);
        expect(&format!("{name} tail"), u64_at(ctl, CTL_TAIL), 0);
        expect(&format!("{name} messages consumed"), u64_at(ctl, CTL_CONS_MSGS), 0);
        expect(&format!("{name} bytes consumed"), u64_at(ctl, CTL_CONS_BYTES), 0);
        expect(&format!("{name} consumer parks"), u64_at(ctl, CTL_CONS_PARKS), 0);
        expect(&format!("{name} consumer wakeups"), u64_at(ctl, CTL_CONS_WAKES), 0);
        for (ec, off) in [("data eventcount", CTL_DATA_EC), ("space eventcount", CTL_SPACE_EC)] {
            let word = u64_at(ctl, off);
            expect(&format!("{name} {ec} waiters"), word & EC_WAITERS_MASK, 0);
            expect(&format!("{name} {ec} doorbell flag"), (word & EC_DOORBELL) >> 31, 0);
            expect(&format!("{name} {ec} epoch"), word >> EC_EPOCH_SHIFT, 0);
            expect(&format!("{name} {ec} futex word (epoch)"), u32_at(ctl, off + EC_EPOCH_HALF), 0);
        }
    }
    expect("frame length = Ping size", u32_at(seg, CONTROL_SIZE), ping_size(PAYLOAD.len()) as u64);
    expect("frame kind", u32_at(seg, CONTROL_SIZE + 4), KIND_MESSAGE);
    let msg = &seg[CONTROL_SIZE + FRAME_HEADER..];
    expect("file identifier \"GIPC\"", u64::from(&msg[4..8] == b"GIPC"), 1);
    expect("body type (Ping)", u64::from(msg[BODY_TYPE_OFF]), u64::from(BODY_PING));
    expect("Ping seq", u64_at(msg, PING_SEQ_OFF), SEQ);
    let v = (4 + PAYLOAD.len() + 7) & !7;
    let pad = v - ((4 + PAYLOAD.len() + 3) & !3);
    expect("payload length", u32_at(msg, PING_VEC_BASE + pad), PAYLOAD.len() as u64);
    let start = PING_VEC_BASE + pad + 4;
    expect("payload bytes", u64::from(msg[start..start + PAYLOAD.len()] == PAYLOAD), 1);
    // This language's verifying reader agrees with the bytes.
    match goipc::message::parse_ping(msg) {
        Ok(p) if p.seq() == SEQ && p.payload().map(|v| v.bytes()) == Some(&PAYLOAD[..]) => {}
        Ok(_) => bad.push("goipc::message::parse_ping reads other values".into()),
        Err(e) => bad.push(format!("goipc::message::parse_ping: {e}")),
    }
    bad
}

fn run_producer(a: Args) -> ExitCode {
    let Some(scenario) = a.scenario.clone() else { usage() };
    if a.dial.is_none() {
        usage();
    }
    let p = Producer { a };
    let r = match scenario.as_str() {
        "sizes" => p.sizes(),
        "burst" => p.burst(),
        "stream" => p.stream(),
        "version" => p.version(),
        "layout" => p.layout(),
        _ => {
            eprintln!("peer producer: unknown scenario {scenario}");
            return ExitCode::from(2);
        }
    };
    let mut fields: Fields =
        vec![("event", J::S("result".into())), ("lang", J::S(LANG.into())), ("scenario", J::S(scenario))];
    let ok = r.is_ok();
    match r {
        Ok(extra) => {
            fields.push(("ok", J::B(true)));
            fields.extend(extra);
        }
        Err(f) => {
            fields.push(("ok", J::B(false)));
            fields.push(("error", J::S(f.msg)));
            if let Some(s) = f.status {
                fields.push(("status", J::S(s.into())));
            }
        }
    }
    emit(&fields);
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

// ---- Consumer -------------------------------------------------------------

/// A `listen_error` or `accept_error` event for `e`.
fn emit_error(event: &str, e: &Error) {
    emit(&[
        ("event", J::S(event.into())),
        ("lang", J::S(LANG.into())),
        ("status", J::S(status_name(e).into())),
        ("error", J::S(e.to_string())),
    ]);
}

/// The `conn_end` event of a served connection.
fn emit_conn_end(err: &Error, messages: u64, malformed: u64) {
    emit(&[
        ("event", J::S("conn_end".into())),
        ("lang", J::S(LANG.into())),
        ("status", J::S(status_name(err).into())),
        ("error", J::S(err.to_string())),
        ("messages", J::U(messages)),
        ("malformed", J::U(malformed)),
    ]);
}

fn run_consumer(a: Args) -> ExitCode {
    let Some(path) = a.listen.as_deref() else { usage() };
    let mut o = Options::default();
    o.protocol_version_override = a.proto;
    let ln = match Listener::bind_with(path, &o) {
        Ok(l) => l,
        Err(e) => {
            emit_error("listen_error", &e);
            return ExitCode::FAILURE;
        }
    };
    emit(&[("event", J::S("ready".into())), ("lang", J::S(LANG.into())), ("path", J::S(path.into()))]);
    loop {
        match ln.accept() {
            // One client at a time: the matrix uses one per consumer.
            Ok(c) if a.calls => serve_calls(c),
            Ok(c) => serve(c),
            Err(Error::Closed) => break,
            Err(e) => emit_error("accept_error", &e),
        }
        if a.once {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn serve(c: Conn) {
    let mut m = Messenger::new(&c);
    let (mut n, mut malformed, mut in_a_row) = (0u64, 0u64, 0u32);
    let mut buf = Vec::new();
    let err = loop {
        let (seq, sent) = match m.recv_ping() {
            Ok(p) => {
                buf.clear();
                buf.extend_from_slice(p.payload().map(|v| v.bytes()).unwrap_or(&[]));
                (p.seq(), p.sent_ns())
            }
            // One malformed message, consumed; the connection stays usable.
            Err(e @ (Error::InvalidMessage(_) | Error::NotAMessage { .. } | Error::UnexpectedBody { .. })) => {
                malformed += 1;
                in_a_row += 1;
                if in_a_row >= 3 {
                    break e;
                }
                continue;
            }
            Err(e) => break e,
        };
        in_a_row = 0;
        if let Err(e) = m.send_pong(seq, sent, 0, &buf) {
            break e;
        }
        n += 1;
    };
    emit_conn_end(&err, n, malformed);
}

/// --calls: answers each call request, a Ping with its Pong (built in the
/// ring by `Conn::reply_pong`), anything else with its own bytes, as
/// `goipc pong` does.
fn serve_calls(c: Conn) {
    let mut req = vec![0u8; c.max_message_size().unwrap_or(1 << 20)];
    let mut n = 0u64;
    let err = loop {
        let answered = match c.recv_ping_request(&mut req, None) {
            Ok(PingRequest::Ping { call, seq, sent_ns, len }) => c.reply_pong(call, seq, sent_ns, 0, &req[..len], None),
            Ok(PingRequest::NotPing { call, len }) => c.reply(call, &req[..len.min(req.len())], None),
            Err(Error::BufferTooSmall { needed }) => {
                req.resize(needed, 0); // the Ping stays queued
                continue;
            }
            Err(e) => break e,
        };
        if let Err(e) = answered {
            break e;
        }
        n += 1;
    };
    emit_conn_end(&err, n, 0);
}

/// The consumer on the tokio feature (AsyncListener, one task per
/// client on a current-thread runtime), with the same events.
fn run_consumer_tokio(a: Args) -> ExitCode {
    let Some(path) = a.listen.clone() else { usage() };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("peer: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let mut o = Options::default();
        o.protocol_version_override = a.proto;
        let ln = match goipc::AsyncListener::bind_with(&path, &o) {
            Ok(l) => l,
            Err(e) => {
                emit_error("listen_error", &e);
                return ExitCode::FAILURE;
            }
        };
        emit(&[("event", J::S("ready".into())), ("lang", J::S(LANG.into())), ("path", J::S(path.clone()))]);
        let mut tasks = Vec::new();
        loop {
            match ln.accept().await {
                Ok(c) => tasks.push(tokio::spawn(serve_tokio(c))),
                Err(Error::Closed) => break,
                Err(e) => emit_error("accept_error", &e),
            }
            if a.once {
                break;
            }
        }
        for t in tasks {
            let _ = t.await;
        }
        ExitCode::SUCCESS
    })
}

async fn serve_tokio(c: goipc::AsyncConn) {
    let mut b = flatbuffers::FlatBufferBuilder::with_capacity(1024);
    let (mut n, mut malformed, mut in_a_row) = (0u64, 0u64, 0u32);
    let err = loop {
        let msg = match c.recv().await {
            Ok(m) => m,
            Err(e) => break e,
        };
        let (seq, sent, payload) = match goipc::message::parse_ping(&msg) {
            Ok(p) => (p.seq(), p.sent_ns(), p.payload().map(|v| v.bytes()).unwrap_or(&[])),
            // One malformed message, consumed; the connection stays usable.
            Err(e) => {
                malformed += 1;
                in_a_row += 1;
                if in_a_row >= 3 {
                    break e;
                }
                continue;
            }
        };
        in_a_row = 0;
        let pong = goipc::message::build_pong(&mut b, seq, sent, goipc::message::monotonic_ns(), payload);
        if let Err(e) = c.send(pong).await {
            break e;
        }
        n += 1;
    };
    emit_conn_end(&err, n, malformed);
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.len() < 2 {
        usage();
    }
    let a = parse_args(&argv[2..]);
    match argv[1].as_str() {
        "consumer" if a.tokio => run_consumer_tokio(a),
        "consumer" => run_consumer(a),
        "producer" => run_producer(a),
        "features" => {
            emit(&[("event", J::S("features".into())), ("protocol_version_override", J::B(true))]);
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}
