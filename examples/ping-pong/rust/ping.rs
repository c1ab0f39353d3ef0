//! The ping-pong example in Rust (examples/README.md): a producer that
//! times round trips to a Go consumer that echoes every message. It is also
//! the Rust peer of `goipc bench --peers rust` (bench/peers.go,
//! docs/BENCHMARKS.md "Cross-language rows"): an example of the crate in
//! bindings/rust (its Cargo.toml names it `ping_pong`), built by
//! `make bench-peers` with `cargo build --release --example ping_pong` into
//! bindings/rust/target/release/examples/ping_pong, where the bench looks.
//!
//!   ping_pong --transport goipc|unix --path PATH --size N --iters N --warmup N
//!
//! The consumer (`goipc bench` or `go run ./examples/ping-pong/go pong`)
//! listens on PATH and echoes every message. This program connects to it
//! and does warmup + iters round trips of SIZE bytes:
//!   - goipc: through this crate's safe API, `Conn::dial_with`, then
//!     `Conn::send` + `Conn::recv_into` (blocking; the library reports a
//!     consumer that went away as `Error::PeerClosed`, so nothing hangs);
//!   - unix: a std `UnixStream`: `write_all` the SIZE bytes, `read_exact`
//!     them back.
//!
//! Each round trip after the warm-up is timed with `Instant` (the monotonic
//! clock); every reply, warm-up included, must equal what was sent (each
//! message carries its sequence number in its first 8 bytes). Prints one
//! JSON line on stdout with the round-trip percentiles in ns, or
//! `{"error": ...}` and exit status 1 on any failure (2: bad command line).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use goipc::{Conn, Options};

const USAGE: &str = "ping_pong --transport goipc|unix --path PATH --size N --iters N --warmup N";

/// Bound on connect + handshake.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The command line.
struct Config {
    transport: String,
    path: String,
    size: usize,
    iters: usize,
    warmup: usize,
}

fn parse_args() -> Result<Config, String> {
    let (mut transport, mut path, mut size, mut iters, mut warmup) = (None, None, None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || value.parse::<usize>().map_err(|_| format!("{flag}: {value:?} is not a non-negative integer"));
        match flag.as_str() {
            "--transport" => transport = Some(value.clone()),
            "--path" => path = Some(value.clone()),
            "--size" => size = Some(num()?),
            "--iters" => iters = Some(num()?),
            "--warmup" => warmup = Some(num()?),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    match (transport, path, size, iters, warmup) {
        (Some(transport), Some(path), Some(size), Some(iters), Some(warmup)) if iters >= 1 => {
            Ok(Config { transport, path, size, iters, warmup })
        }
        _ => Err("--transport, --path, --size, --iters (>= 1) and --warmup are required".into()),
    }
}

/// One connection to the consumer: a round trip sends `msg` and fills
/// `reply` (of the same length) with the answer.
enum Transport {
    Goipc(Conn),
    Unix(UnixStream),
}

impl Transport {
    fn open(cfg: &Config) -> Result<Transport, String> {
        match cfg.transport.as_str() {
            "goipc" => {
                let mut opts = Options::default();
                // The consumer listens with max(1 MiB, size); 0 is the 1 MiB default.
                if cfg.size > 1 << 20 {
                    opts.max_message_size = cfg.size;
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

    fn round_trip(&mut self, msg: &[u8], reply: &mut [u8]) -> Result<(), String> {
        match self {
            Transport::Goipc(c) => {
                c.send(msg).map_err(|e| format!("send: {e}"))?;
                let n = c.recv_into(reply).map_err(|e| format!("receive: {e}"))?;
                if n != msg.len() {
                    return Err(format!("reply of {n} bytes, sent {}", msg.len()));
                }
                Ok(())
            }
            Transport::Unix(s) => {
                s.write_all(msg).map_err(|e| format!("write: {e}"))?;
                s.read_exact(reply).map_err(|e| format!("read: {e}"))
            }
        }
    }
}

/// Nearest rank: the smallest sample with at least `permille`/1000 of them
/// at or below it (integer arithmetic, as the C and Python peers).
fn percentile(sorted: &[u64], permille: usize) -> u64 {
    let rank = (permille * sorted.len()).div_ceil(1000).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The timed round trips (ns, after the warm-up), every reply checked.
fn run(cfg: &Config) -> Result<Vec<u64>, String> {
    let mut t = Transport::open(cfg)?;
    let mut msg: Vec<u8> = (0..cfg.size).map(|j| (j * 131 + 7) as u8).collect();
    let mut reply = vec![0u8; cfg.size];
    let mut rtt = Vec::with_capacity(cfg.iters);
    let stamp_len = cfg.size.min(8);
    let clear_len = cfg.size.min(16);
    for i in 0..cfg.warmup + cfg.iters {
        msg[..stamp_len].copy_from_slice(&(i as u64).to_le_bytes()[..stamp_len]);
        reply[..clear_len].fill(0); // a stale buffer must not pass the check
        let t0 = Instant::now();
        t.round_trip(&msg, &mut reply).map_err(|e| format!("round trip {i}: {e}"))?;
        let dt = t0.elapsed();
        if reply != msg {
            let at = reply.iter().zip(&msg).position(|(a, b)| a != b).unwrap_or(0);
            return Err(format!(
                "round trip {i}: the reply differs from what was sent at byte {at} ({:#04x}, want {:#04x})",
                reply[at], msg[at]
            ));
        }
        if i >= cfg.warmup {
            rtt.push(u64::try_from(dt.as_nanos()).unwrap_or(u64::MAX));
        }
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
        "{{\"lang\":\"rust\",\"transport\":{},\"size\":{},\"iters\":{}",
        json_string(&cfg.transport),
        cfg.size,
        cfg.iters
    );
    match run(&cfg) {
        Ok(mut rtt) => {
            rtt.sort_unstable();
            println!(
                "{head},\"p50_ns\":{},\"p90_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"max_ns\":{}}}",
                percentile(&rtt, 500),
                percentile(&rtt, 900),
                percentile(&rtt, 990),
                percentile(&rtt, 999),
                rtt[rtt.len() - 1]
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
