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
//!             [--warmup N] [--typed] [--call] [--threads N]
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
//!     reply to its own request (the interop matrix's calls scenario);
//!   - unix: a std `UnixStream`: `write_all` the SIZE bytes, `read_exact`
//!     them back.
//!
//! The warm-up round trips come first, then the timed ones; with threads,
//! round trip i is made by thread i mod N. PATH may also be a nats://
//! address (docs/NATS.md): libgoipc dials it through a NATS server.
//!
//! Each round trip after the warm-up is timed with `Instant` (the monotonic
//! clock); every reply, warm-up included, must equal what was sent (each
//! message carries its sequence number in its first 8 bytes). Prints one
//! JSON line on stdout with the round-trip percentiles in ns (and
//! `per_s`, timed round trips per second of wall time), or
//! `{"error": ...}` and exit status 1 on any failure (2: bad command line).
//!
//! The crate's benchmarks (bindings/rust/examples/bench.rs, tokio_bench.rs)
//! time this file's `round_trips`, included as a module: that is why
//! `Config`, `Transport` and `round_trips` are `pub`.

use std::io::{ErrorKind, Read, Write};
use std::iter::StepBy;
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use goipc::{Conn, Messenger, Options};

const USAGE: &str = "ping_pong [--transport goipc|unix] --path PATH [--size N] [--iters N] [--warmup N] [--typed] [--call] [--threads N]";

/// Bound on connect + handshake.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

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
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--typed" => cfg.typed = true,
            "--call" => cfg.call = true,
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
    if (cfg.typed || cfg.call) && cfg.transport != "goipc" {
        return Err("--typed and --call need --transport goipc".into());
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
            "goipc" => {
                let mut opts = Options::default();
                // The consumer listens with max(1 MiB, size); 0 is the 1 MiB
                // default. A Ping or Pong needs room around its payload.
                let need = cfg.size + if cfg.typed { 128 } else { 0 };
                if need > 1 << 20 {
                    opts.max_message_size = need;
                }
                Conn::dial_with(&cfg.path, &opts, Some(DIAL_TIMEOUT))
                    .map(Transport::Goipc)
                    .map_err(|e| format!("goipc dial {}: {e}", cfg.path))
            }
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
    let n = if cfg.typed {
        let pong = if cfg.call {
            m.call_ping(seq, msg, None).map_err(|e| format!("call_ping: {e}"))?
        } else {
            m.send_ping(seq, msg).map_err(|e| format!("send_ping: {e}"))?;
            m.recv_pong().map_err(|e| format!("recv_pong: {e}"))?
        };
        if pong.seq() != seq {
            return Err(format!("a Pong with seq {}, sent a Ping with seq {seq}", pong.seq()));
        }
        let payload = pong.payload().map(|p| p.bytes()).unwrap_or_default();
        let n = payload.len().min(reply.len());
        reply[..n].copy_from_slice(&payload[..n]);
        payload.len()
    } else if cfg.call {
        c.call_into(msg, reply, None).map_err(|e| format!("call: {e}"))?
    } else {
        c.send(msg).map_err(|e| format!("send: {e}"))?;
        c.recv_into(reply).map_err(|e| format!("receive: {e}"))?
    };
    if n != msg.len() {
        return Err(format!("reply of {n} bytes, sent {}", msg.len()));
    }
    Ok(())
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
    let mut msg: Vec<u8> = (0..cfg.size).map(|j| (j * 131 + 7) as u8).collect();
    let mut reply = vec![0u8; cfg.size];
    let mut rtt = Vec::with_capacity(seqs.len());
    let stamp_len = cfg.size.min(8);
    let clear_len = cfg.size.min(16);
    for i in seqs {
        msg[..stamp_len].copy_from_slice(&(i as u64).to_le_bytes()[..stamp_len]);
        reply[..clear_len].fill(0); // a stale buffer must not pass the check
        let t0 = Instant::now();
        let done = match (t, messenger.as_mut()) {
            (Transport::Goipc(c), Some(m)) => goipc_round_trip(cfg, c, m, i as u64, &msg, &mut reply),
            (Transport::Goipc(_), None) => unreachable!("a goipc transport has its Messenger"),
            // `&UnixStream` reads and writes: the stream need not be borrowed mutably.
            (Transport::Unix(s), _) => {
                let mut s: &UnixStream = s;
                s.write_all(&msg)
                    .map_err(|e| format!("write: {e}"))
                    .and_then(|()| s.read_exact(&mut reply).map_err(|e| format!("read: {e}")))
            }
        };
        done.map_err(|e| format!("round trip {i}: {e}"))?;
        let dt = t0.elapsed();
        if reply != msg {
            let at = reply.iter().zip(&msg).position(|(a, b)| a != b).unwrap_or(0);
            return Err(format!(
                "round trip {i}: the reply differs from what was sent at byte {at} ({:#04x}, want {:#04x})",
                reply[at], msg[at]
            ));
        }
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
        "{{\"lang\":\"rust\",\"transport\":{},\"size\":{},\"iters\":{},\"typed\":{},\"call\":{},\"threads\":{}",
        json_string(&cfg.transport),
        cfg.size,
        cfg.iters,
        cfg.typed,
        cfg.call,
        cfg.threads
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
