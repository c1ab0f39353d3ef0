//! The ping-pong example in Rust (examples/README.md): a producer that
//! times round trips to a consumer that echoes every message (`goipc
//! pong`, the Go example, or pong.rs next to this file). It is the one Rust
//! ping program: the Rust peer of `goipc bench --peers rust` (bench/peers.go,
//! docs/BENCHMARKS.md "Cross-language rows"): an example of the crate in
//! bindings/rust (its Cargo.toml names it `ping_pong`), built by
//! `make bench-peers` with `cargo build --release --example ping_pong` into
//! bindings/rust/target/release/examples/ping_pong, where the bench looks.
//!
//!   ping_pong [--transport goipc|unix] --path PATH [--size N] [--iters N]
//!             [--warmup N] [--typed] [--call] [--threads N] [--tokio]
//!             [--timeout-ms MS]
//!
//! (--dial is another name for --path, -n for --iters.) The consumer
//! listens on PATH and answers every message. This program connects to it
//! and does warmup + iters round trips (defaults 1000 + 10000) of SIZE
//! bytes (default 64):
//!   - goipc: through this crate's safe API, `Conn::dial_with`, then
//!     `Conn::send` + `Conn::recv_into` (blocking; the library reports a
//!     consumer that went away as `Error::PeerClosed`, so nothing hangs).
//!     With --typed each message is the kit's FlatBuffers Ping with a
//!     SIZE-byte payload (`Messenger::send_ping`) and the answer a Pong
//!     with the same seq and payload (`Messenger::recv_pong`). With --call
//!     each round trip is one call, a request answered by its reply
//!     (`Conn::call_into`, or `Messenger::call_ping` with --typed);
//!     --threads N makes the calls from N threads at once on the one
//!     connection (a `Conn` is `Sync`), each checking that it got the
//!     reply to its own request (the interop matrix's calls scenario).
//!     With --tokio the round trips run on a current-thread tokio runtime
//!     through the crate's `tokio` feature (`AsyncConn::dial_with`, then
//!     `send(..).await` + `recv_into(..).await`, or `call_into(..).await`
//!     with --call; typed: a Ping built with `message::build_ping`, its
//!     answer read with `message::parse_pong`), and --threads N makes the
//!     calls from N futures at once on the one runtime thread instead of N
//!     threads. This program must then be built with the feature (`cargo
//!     build --features tokio --example ping_pong`; the Makefile's builds
//!     do);
//!   - unix: a std `UnixStream`: `write_all` the SIZE bytes, `read_exact`
//!     them back.
//!
//! Every send and receive (or call) waits at most --timeout-ms (default
//! 10000; -1: as long as it takes), so that a consumer that stops
//! answering (SIGSTOP, a hang) fails the run with "no answer within ..."
//! instead of hanging it; one that goes away is `Error::PeerClosed` (or
//! EOF on the socket) at once.
//!
//! The warm-up round trips come first, then the timed ones; with threads,
//! round trip i is made by thread i mod N. PATH may also be a nats://
//! address (docs/NATS.md): libgoipc dials it through a NATS server.
//!
//! Each round trip after the warm-up is timed with `Instant` (the monotonic
//! clock); every reply, warm-up included, must equal what was sent (each
//! message carries its sequence number in its first 8 bytes). Prints one
//! JSON line on stdout with the round-trip percentiles in ns (and
//! `per_s`, timed round trips per second of wall time; `tokio` says whether
//! they ran on tokio), or
//! `{"error": ...}` and exit status 1 on any failure (2: bad command line).
//!
//! The crate's benchmarks (bindings/rust/examples/bench.rs, tokio_bench.rs)
//! time this file's `round_trips` and `tokio_round_trips`, included as a
//! module: that is why `Config`, `Transport` and those are `pub`.

use std::io::{ErrorKind, Read, Write};
use std::iter::StepBy;
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use goipc::{Conn, Messenger, Options, fb};

const USAGE: &str = "ping_pong [--transport goipc|unix] --path PATH [--size N] [--iters N] [--warmup N] [--typed] [--call] [--threads N] [--tokio] [--timeout-ms MS]";

/// Bound on connect + handshake.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The default bound on each send and receive of a round trip.
pub const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(10);

/// Room a Ping or Pong needs for its fields around the payload.
const TYPED_ROOM: usize = 128;

/// The command line.
pub struct Config {
    pub transport: String,
    pub path: String,
    pub size: usize,
    pub iters: usize,
    pub warmup: usize,
    pub typed: bool,
    pub call: bool,
    pub threads: usize,
    pub tokio: bool,
    /// Bound on each send and receive (or call); None: no bound.
    pub timeout: Option<Duration>,
}

fn parse_args() -> Result<Config, String> {
    let mut cfg = Config {
        transport: "goipc".into(),
        path: String::new(),
        size: 64,
        iters: 10_000,
        warmup: 1000,
        typed: false,
        call: false,
        threads: 1,
        tokio: false,
        timeout: Some(ROUND_TRIP_TIMEOUT),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--typed" => cfg.typed = true,
            "--call" => cfg.call = true,
            "--tokio" => cfg.tokio = true,
            _ => {
                let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
                let num =
                    || value.parse::<usize>().map_err(|_| format!("{flag}: {value:?} is not a non-negative integer"));
                match flag.as_str() {
                    "--transport" => cfg.transport = value.clone(),
                    "--path" | "--dial" => cfg.path = value.clone(),
                    "--size" => cfg.size = num()?,
                    "--iters" | "-n" => cfg.iters = num()?,
                    "--warmup" => cfg.warmup = num()?,
                    "--threads" => cfg.threads = num()?,
                    "--timeout-ms" if value == "-1" => cfg.timeout = None,
                    "--timeout-ms" => cfg.timeout = Some(Duration::from_millis(num()? as u64)),
                    _ => return Err(format!("unknown argument {flag:?}")),
                }
            }
        }
    }
    if cfg.path.is_empty() || cfg.iters < 1 || cfg.threads < 1 {
        return Err("--path is required and --iters and --threads must be at least 1".into());
    }
    // Replies to plain messages are not addressed: two receivers on one
    // connection would get each other's answers.
    if cfg.threads > 1 && !cfg.call {
        return Err("--threads needs --call".into());
    }
    if (cfg.typed || cfg.call || cfg.tokio) && cfg.transport != "goipc" {
        return Err("--typed, --call and --tokio need --transport goipc".into());
    }
    if cfg.timeout == Some(Duration::ZERO) {
        return Err("--timeout-ms must be at least 1 (or -1: no bound)".into());
    }
    Ok(cfg)
}

/// One connection to the consumer: a round trip sends `msg` and fills
/// `reply` (of the same length) with the answer.
pub enum Transport {
    Goipc(Conn),
    Unix(UnixStream),
}

impl Transport {
    fn open(cfg: &Config) -> Result<Transport, String> {
        match cfg.transport.as_str() {
            "goipc" => Conn::dial_with(&cfg.path, &dial_options(cfg), Some(DIAL_TIMEOUT))
                .map(Transport::Goipc)
                .map_err(|e| format!("goipc dial {}: {e}", cfg.path)),
            "unix" => {
                // The consumer listens before starting us; retry briefly all the same.
                let deadline = Instant::now() + DIAL_TIMEOUT;
                loop {
                    match UnixStream::connect(&cfg.path) {
                        Ok(s) => return Ok(Transport::Unix(s)),
                        Err(e)
                            if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused)
                                && Instant::now() < deadline =>
                        {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => return Err(format!("connect {}: {e}", cfg.path)),
                    }
                }
            }
            other => Err(format!("unknown transport {other:?} (goipc or unix)")),
        }
    }
}

/// The consumer listens with max(1 MiB, size); 0 is the 1 MiB default.
fn dial_options(cfg: &Config) -> Options {
    let mut opts = Options::default();
    let need = cfg.size + if cfg.typed { TYPED_ROOM } else { 0 };
    if need > 1 << 20 {
        opts.max_message_size = need;
    }
    opts
}

/// One round trip on a goipc connection, in one of four ways: raw or
/// typed (Ping/Pong, through `m`), send + receive or one call. A typed
/// answer must also carry `seq` back; its payload lands in `reply`.
fn goipc_round_trip(
    cfg: &Config,
    c: &Conn,
    m: &mut Messenger<'_>,
    seq: u64,
    msg: &[u8],
    reply: &mut [u8],
) -> Result<(), String> {
    let t = cfg.timeout;
    let n = if cfg.typed {
        let pong = if cfg.call {
            m.call_ping(seq, msg, t).map_err(|e| failed("call_ping", e, t))?
        } else {
            match t {
                Some(t) => m.send_ping_timeout(seq, msg, t),
                None => m.send_ping(seq, msg),
            }
            .map_err(|e| failed("send_ping", e, cfg.timeout))?;
            match t {
                Some(t) => m.recv_pong_timeout(t),
                None => m.recv_pong(),
            }
            .map_err(|e| failed("recv_pong", e, cfg.timeout))?
        };
        pong_payload(seq, &pong, reply)?
    } else if cfg.call {
        c.call_into(msg, reply, t).map_err(|e| failed("call", e, t))?
    } else {
        match t {
            Some(t) => c.send_timeout(msg, t),
            None => c.send(msg),
        }
        .map_err(|e| failed("send", e, cfg.timeout))?;
        match t {
            Some(t) => c.recv_into_timeout(reply, t),
            None => c.recv_into(reply),
        }
        .map_err(|e| failed("receive", e, cfg.timeout))?
    };
    check_len(n, msg)
}

/// The message of a failed step; a timeout says the consumer stopped
/// answering.
fn failed(what: &str, e: goipc::Error, timeout: Option<Duration>) -> String {
    match (e, timeout) {
        (goipc::Error::Timeout, Some(t)) => no_answer(what, t),
        (e, _) => format!("{what}: {e}"),
    }
}

fn no_answer(what: &str, t: Duration) -> String {
    format!("{what}: no answer within {} ms (--timeout-ms): the consumer stopped answering", t.as_millis())
}

/// A typed answer must carry the Ping's seq back; its payload goes into
/// `reply`. Returns the payload's length.
fn pong_payload(seq: u64, pong: &fb::Pong<'_>, reply: &mut [u8]) -> Result<usize, String> {
    if pong.seq() != seq {
        return Err(format!("a Pong with seq {}, sent a Ping with seq {seq}", pong.seq()));
    }
    let payload = pong.payload().map(|p| p.bytes()).unwrap_or_default();
    let n = payload.len().min(reply.len());
    reply[..n].copy_from_slice(&payload[..n]);
    Ok(payload.len())
}

fn check_len(n: usize, msg: &[u8]) -> Result<(), String> {
    if n != msg.len() {
        return Err(format!("reply of {n} bytes, sent {}", msg.len()));
    }
    Ok(())
}

/// A round trip's message and the buffer its answer lands in, prepared and
/// checked the same way in every mode.
struct Buffers {
    msg: Vec<u8>,
    reply: Vec<u8>,
}

impl Buffers {
    fn new(size: usize) -> Buffers {
        Buffers { msg: (0..size).map(|j| (j * 131 + 7) as u8).collect(), reply: vec![0u8; size] }
    }

    /// Stamps round trip i's sequence number into the message's first (up
    /// to) 8 bytes and clears the reply's start: a stale buffer must not
    /// pass the check.
    fn prepare(&mut self, i: usize) {
        let stamp_len = self.msg.len().min(8);
        self.msg[..stamp_len].copy_from_slice(&(i as u64).to_le_bytes()[..stamp_len]);
        let clear_len = self.reply.len().min(16);
        self.reply[..clear_len].fill(0);
    }

    /// The answer of round trip i must equal what was sent.
    fn check(&self, i: usize) -> Result<(), String> {
        if self.reply == self.msg {
            return Ok(());
        }
        let at = self.reply.iter().zip(&self.msg).position(|(a, b)| a != b).unwrap_or(0);
        Err(format!(
            "round trip {i}: the reply differs from what was sent at byte {at} ({:#04x}, want {:#04x})",
            self.reply[at], self.msg[at]
        ))
    }
}

/// Nearest rank: the smallest sample with at least `permille`/1000 of them
/// at or below it (integer arithmetic, as the C and Python peers).
fn percentile(sorted: &[u64], permille: usize) -> u64 {
    let rank = (permille * sorted.len()).div_ceil(1000).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The timed round trips (ns, after the warm-up), every reply checked, and
/// the wall time they took.
fn run(cfg: &Config) -> Result<(Vec<u64>, Duration), String> {
    if cfg.tokio {
        return run_tokio(cfg);
    }
    let t = Transport::open(cfg)?;
    phase(cfg, &t, 0, cfg.warmup)?;
    let start = Instant::now();
    let rtt = phase(cfg, &t, cfg.warmup, cfg.warmup + cfg.iters)?;
    Ok((rtt, start.elapsed()))
}

/// Round trips `from..to` on `cfg.threads` threads (round trip i on
/// thread i mod threads), sharing the one connection; their times in ns.
fn phase(cfg: &Config, t: &Transport, from: usize, to: usize) -> Result<Vec<u64>, String> {
    if cfg.threads == 1 {
        return round_trips(cfg, t, (from..to).step_by(1));
    }
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..cfg.threads)
            .map(|g| s.spawn(move || round_trips(cfg, t, (from + g..to).step_by(cfg.threads))))
            .collect();
        let mut all = Vec::with_capacity(to - from);
        for w in workers {
            all.extend(w.join().map_err(|_| "a round-trip thread panicked".to_string())??);
        }
        Ok(all)
    })
}

/// The round trips of `seqs`, each reply checked; their times in ns.
pub fn round_trips(cfg: &Config, t: &Transport, seqs: StepBy<Range<usize>>) -> Result<Vec<u64>, String> {
    // A Messenger keeps the buffer typed messages are built in; it borrows
    // the connection, so each thread has its own.
    let mut messenger = match t {
        Transport::Goipc(c) => Some(Messenger::new(c)),
        Transport::Unix(_) => None,
    };
    if let Transport::Unix(s) = t {
        s.set_read_timeout(cfg.timeout).and_then(|()| s.set_write_timeout(cfg.timeout)).map_err(|e| e.to_string())?;
    }
    let mut b = Buffers::new(cfg.size);
    let mut rtt = Vec::with_capacity(seqs.len());
    for i in seqs {
        b.prepare(i);
        let t0 = Instant::now();
        let done = match (t, messenger.as_mut()) {
            (Transport::Goipc(c), Some(m)) => goipc_round_trip(cfg, c, m, i as u64, &b.msg, &mut b.reply),
            (Transport::Goipc(_), None) => unreachable!("a goipc transport has its Messenger"),
            // `&UnixStream` reads and writes: the stream need not be borrowed mutably.
            (Transport::Unix(s), _) => {
                let mut s: &UnixStream = s;
                s.write_all(&b.msg)
                    .map_err(|e| unix_failed("write", &e, cfg.timeout))
                    .and_then(|()| s.read_exact(&mut b.reply).map_err(|e| unix_failed("read", &e, cfg.timeout)))
            }
        };
        done.map_err(|e| format!("round trip {i}: {e}"))?;
        let dt = t0.elapsed();
        b.check(i)?;
        rtt.push(u64::try_from(dt.as_nanos()).unwrap_or(u64::MAX));
    }
    Ok(rtt)
}

/// The message of a failed socket step; a timeout (EAGAIN from a socket
/// with SO_RCVTIMEO / SO_SNDTIMEO) says the consumer stopped answering.
/// Also used by bench.rs for its Ping/Pong socket.
pub fn unix_failed(what: &str, e: &std::io::Error, timeout: Option<Duration>) -> String {
    match (e.kind(), timeout) {
        (ErrorKind::WouldBlock | ErrorKind::TimedOut, Some(t)) => no_answer(what, t),
        _ => format!("{what}: {e}"),
    }
}

/// `run` on a current-thread tokio runtime (--tokio).
#[cfg(feature = "tokio")]
fn run_tokio(cfg: &Config) -> Result<(Vec<u64>, Duration), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async {
        let conn = goipc::AsyncConn::dial_with(&cfg.path, &dial_options(cfg), Some(DIAL_TIMEOUT))
            .await
            .map_err(|e| format!("goipc dial {}: {e}", cfg.path))?;
        tokio_phase(cfg, &conn, 0, cfg.warmup).await?;
        let start = Instant::now();
        let rtt = tokio_phase(cfg, &conn, cfg.warmup, cfg.warmup + cfg.iters).await?;
        Ok((rtt, start.elapsed()))
    })
}

/// `phase` on tokio: round trips `from..to` from `cfg.threads` futures
/// at once (round trip i in future i mod threads) on the one connection,
/// all polled by this task; their times in ns.
#[cfg(feature = "tokio")]
async fn tokio_phase(cfg: &Config, conn: &goipc::AsyncConn, from: usize, to: usize) -> Result<Vec<u64>, String> {
    let mut parts: Vec<_> =
        (0..cfg.threads).map(|g| Box::pin(tokio_round_trips(cfg, conn, (from + g..to).step_by(cfg.threads)))).collect();
    let mut done: Vec<Option<Result<Vec<u64>, String>>> = parts.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (part, out) in parts.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                match part.as_mut().poll(cx) {
                    std::task::Poll::Ready(r) => *out = Some(r),
                    std::task::Poll::Pending => waiting = true,
                }
            }
        }
        if waiting { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    let mut all = Vec::with_capacity(to - from);
    for out in done {
        all.extend(out.expect("every part is done")?);
    }
    Ok(all)
}

/// `f`, bounded by `timeout` (--timeout-ms) with `tokio::time::timeout`;
/// `what` names the step in the error.
#[cfg(feature = "tokio")]
async fn bounded<T>(
    what: &str,
    timeout: Option<Duration>,
    f: impl std::future::Future<Output = goipc::Result<T>>,
) -> Result<T, String> {
    let r = match timeout {
        Some(t) => tokio::time::timeout(t, f).await.map_err(|_| no_answer(what, t))?,
        None => f.await,
    };
    r.map_err(|e| format!("{what}: {e}"))
}

#[cfg(not(feature = "tokio"))]
fn run_tokio(_: &Config) -> Result<(Vec<u64>, Duration), String> {
    Err("--tokio: this ping_pong was built without the crate's tokio feature \
         (cargo build --release --features tokio --example ping_pong)"
        .into())
}

/// `round_trips` on a tokio `AsyncConn` (--tokio): the same checks, the
/// library calls awaited (a blocking loop cannot await, so the loop is
/// written twice).
#[cfg(feature = "tokio")]
pub async fn tokio_round_trips(
    cfg: &Config,
    conn: &goipc::AsyncConn,
    seqs: StepBy<Range<usize>>,
) -> Result<Vec<u64>, String> {
    let mut b = Buffers::new(cfg.size);
    // Typed: the Ping is built here (AsyncConn sends bytes) and the Pong
    // received whole, then verified.
    let mut builder = flatbuffers::FlatBufferBuilder::with_capacity(cfg.size + TYPED_ROOM);
    let mut answer = vec![0u8; if cfg.typed { cfg.size + TYPED_ROOM } else { 0 }];
    let mut rtt = Vec::with_capacity(seqs.len());
    for i in seqs {
        b.prepare(i);
        let t0 = Instant::now();
        let (t, at) = (cfg.timeout, |e: String| format!("round trip {i}: {e}"));
        let n = if cfg.typed {
            let ping = goipc::message::build_ping(&mut builder, i as u64, goipc::message::monotonic_ns(), &b.msg);
            let len = if cfg.call {
                bounded("call with a Ping", t, conn.call_into(ping, &mut answer)).await.map_err(at)?
            } else {
                bounded("send Ping", t, conn.send(ping)).await.map_err(at)?;
                bounded("receive Pong", t, conn.recv_into(&mut answer)).await.map_err(at)?
            };
            let pong = goipc::message::parse_pong(&answer[..len]).map_err(|e| at(e.to_string()))?;
            pong_payload(i as u64, &pong, &mut b.reply).map_err(at)?
        } else if cfg.call {
            bounded("call", t, conn.call_into(&b.msg, &mut b.reply)).await.map_err(at)?
        } else {
            bounded("send", t, conn.send(&b.msg)).await.map_err(at)?;
            bounded("receive", t, conn.recv_into(&mut b.reply)).await.map_err(at)?
        };
        let dt = t0.elapsed();
        check_len(n, &b.msg).map_err(at)?;
        b.check(i)?;
        rtt.push(u64::try_from(dt.as_nanos()).unwrap_or(u64::MAX));
    }
    Ok(rtt)
}

/// `s` as a JSON string, quotes included.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() -> ExitCode {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ping_pong: {e}\nusage: {USAGE}");
            return ExitCode::from(2);
        }
    };
    let head = format!(
        "{{\"lang\":\"rust\",\"transport\":{},\"size\":{},\"iters\":{},\"typed\":{},\"call\":{},\"threads\":{},\"tokio\":{}",
        json_string(&cfg.transport),
        cfg.size,
        cfg.iters,
        cfg.typed,
        cfg.call,
        cfg.threads,
        cfg.tokio
    );
    match run(&cfg) {
        Ok((mut rtt, elapsed)) => {
            rtt.sort_unstable();
            println!(
                "{head},\"p50_ns\":{},\"p90_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"max_ns\":{},\"per_s\":{:.0}}}",
                percentile(&rtt, 500),
                percentile(&rtt, 900),
                percentile(&rtt, 990),
                percentile(&rtt, 999),
                rtt[rtt.len() - 1],
                rtt.len() as f64 / elapsed.as_secs_f64().max(1e-9)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ping_pong: {e}");
            println!("{head},\"error\":{}}}", json_string(&e));
            ExitCode::FAILURE
        }
    }
}
