//! The Rust benchmark (`make bench-rust`): in one run, the Rust -> Go round
//! trip over goipc (this process against `goipc pong`) and the same
//! ping/pong between two Rust processes over a std UnixStream, 64 B each.
//!
//!   cargo run --release --example bench -- --goipc build/bin/goipc
//!       [-n N] [--size BYTES] [--warmup W] [--rounds R] [--timeout-ms MS]
//!
//! Five series, measured in R interleaved rounds (each series in turn,
//! then again) so that a noisy neighbour hits all of them alike. The goipc
//! and UnixStream raw series are the round trips of the ping-pong example
//! (examples/ping-pong/rust/ping.rs, included as `support::ping`: written
//! once, there), every answer checked:
//!   - goipc raw: SIZE-byte messages, echoed by the Go consumer;
//!   - goipc Ping/Pong: a FlatBuffers Ping with a SIZE-byte payload,
//!     answered by the Go consumer with a Pong (built and verified on both
//!     sides; the example's --typed);
//!   - UnixStream raw: SIZE bytes written, echoed by a child process (this
//!     binary re-executed with --unix-echo), read back with read_exact;
//!   - UnixStream Ping/Pong: the same FlatBuffers messages as goipc's, each
//!     framed by a u32 length, answered by a child (--unix-pong) that
//!     verifies the Ping and builds the Pong with the same code;
//!   - goipc call: SIZE-byte requests answered by the Go consumer with
//!     their echo as the call's reply (`Conn::call_into`, one FFI call;
//!     the example's --call).
//!
//! The UnixStream Ping/Pong series (length-framed FlatBuffers over a
//! socket) is the benchmark's own: no example sends typed messages over a
//! plain socket.
//!
//! Prints each series' percentiles and the p50 ratios. Exit status 1 on
//! any error (a failed or mismatched round trip included). Every send and
//! receive (or call) of a round trip waits at most --timeout-ms (default
//! 10000; -1: no bound): a peer that stops answering fails the run with
//! "no answer within MS ms" instead of hanging it.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use goipc::{Conn, message};

use support::ping::Transport;

const USAGE: &str = "bench --goipc PATH_TO_GOIPC_CLI [-n N] [--size BYTES] [--warmup W] [--rounds R] [--timeout-ms MS]";

/// The UnixStream peer: connect, echo every byte until EOF.
fn unix_echo(path: &str, size: usize) -> ExitCode {
    let mut s = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench --unix-echo: connect {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut buf = vec![0u8; size.max(1)];
    loop {
        match s.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench --unix-echo: read: {e}");
                return ExitCode::FAILURE;
            }
        }
        if let Err(e) = s.write_all(&buf) {
            eprintln!("bench --unix-echo: write: {e}");
            return ExitCode::FAILURE;
        }
    }
}

/// Reads one u32-length-framed message into `buf`; Ok(false) at EOF.
fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    buf.resize(u32::from_le_bytes(len) as usize, 0);
    r.read_exact(buf)?;
    Ok(true)
}

/// Appends `msg` with its u32 length to `out` (cleared first).
fn frame(out: &mut Vec<u8>, msg: &[u8]) {
    out.clear();
    out.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    out.extend_from_slice(msg);
}

/// The UnixStream Ping/Pong peer: answer each framed Ping with a framed
/// Pong, as `goipc pong` does on a goipc connection.
fn unix_pong(path: &str) -> ExitCode {
    let s = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench --unix-pong: connect {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut w = s.try_clone().expect("clone UnixStream");
    let mut r = BufReader::new(s);
    let mut b = flatbuffers::FlatBufferBuilder::with_capacity(256);
    let (mut rx, mut tx) = (Vec::new(), Vec::new());
    loop {
        match read_frame(&mut r, &mut rx) {
            Ok(true) => {}
            Ok(false) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench --unix-pong: read: {e}");
                return ExitCode::FAILURE;
            }
        }
        let received = message::monotonic_ns();
        let ping = match message::parse_ping(&rx) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("bench --unix-pong: {e}");
                return ExitCode::FAILURE;
            }
        };
        let payload = ping.payload().map(|v| v.bytes()).unwrap_or_default();
        frame(&mut tx, message::build_pong(&mut b, ping.seq(), ping.sent_ns(), received, payload));
        if let Err(e) = w.write_all(&tx) {
            eprintln!("bench --unix-pong: write: {e}");
            return ExitCode::FAILURE;
        }
    }
}

/// Ping/Pong round trips over a UnixStream to `unix_pong` (the goipc twin
/// is the example's --typed round trip). The socket's read and write
/// timeouts are `shape.timeout` (set by the caller).
fn unix_typed_round_trips(
    w: &mut UnixStream,
    r: &mut BufReader<UnixStream>,
    seq0: u64,
    n: usize,
    shape: &support::Shape,
) -> Result<support::Samples, String> {
    let (size, warmup) = (shape.size, shape.warmup);
    let step = |what: String| move |e: std::io::Error| support::ping::unix_failed(&what, &e, shape.timeout);
    let payload: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    let mut b = flatbuffers::FlatBufferBuilder::with_capacity(256);
    let (mut rx, mut tx) = (Vec::with_capacity(256), Vec::with_capacity(256));
    let mut rtt = Vec::with_capacity(n);
    let mut start = Instant::now();
    for i in 0..warmup + n {
        if i == warmup {
            start = Instant::now();
        }
        let seq = seq0 + i as u64;
        let t0 = Instant::now();
        frame(&mut tx, message::build_ping(&mut b, seq, message::monotonic_ns(), &payload));
        w.write_all(&tx).map_err(step(format!("unix write Ping {seq}")))?;
        if !read_frame(r, &mut rx).map_err(step(format!("unix read Pong {seq}")))? {
            return Err("unix Ping/Pong peer closed".into());
        }
        let pong = message::parse_pong(&rx).map_err(|e| format!("unix Pong {seq}: {e}"))?;
        let dt = t0.elapsed();
        if pong.seq() != seq || pong.payload().map(|p| p.bytes()).unwrap_or_default() != &payload[..] {
            return Err(format!("unix Pong {seq} does not match its Ping"));
        }
        if i >= warmup {
            rtt.push(dt.as_nanos() as u64);
        }
    }
    Ok(support::Samples { rtt, elapsed: start.elapsed() })
}

fn run(goipc: &str, n: usize, shape: &support::Shape, rounds: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("goipc-rs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let result = run_in(&dir, goipc, n, shape, rounds);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(dir: &std::path::Path, goipc: &str, n: usize, shape: &support::Shape, rounds: usize) -> Result<(), String> {
    let size = shape.size;
    // The Go consumer; wait for its ready line (not a fixed sleep).
    let gsock = dir.join("pong.sock");
    let mut child = Command::new(goipc)
        .arg("pong")
        .arg("--listen")
        .arg(&gsock)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {goipc} pong: {e}"))?;
    let out = child.stdout.take().unwrap();
    let _pong = support::Reaper(child);
    let mut line = String::new();
    let mut lines = BufReader::new(out);
    while !line.contains("listening on") {
        line.clear();
        if lines.read_line(&mut line).map_err(|e| format!("read goipc pong output: {e}"))? == 0 {
            return Err("goipc pong exited before its ready line".into());
        }
    }
    let conn = Conn::dial(&gsock, Some(Duration::from_secs(10))).map_err(|e| format!("dial goipc pong: {e}"))?;
    let goipc = Transport::Goipc(conn);

    // The UnixStream peers: child processes, as the Go consumer is one.
    let exe: PathBuf = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let unix_peer = |mode: &str| -> Result<(UnixStream, support::Reaper), String> {
        let path = dir.join(format!("{}.sock", mode.trim_start_matches('-')));
        let ul = UnixListener::bind(&path).map_err(|e| format!("bind {}: {e}", path.display()))?;
        let child = Command::new(&exe)
            .arg(mode)
            .arg(&path)
            .arg("--size")
            .arg(size.to_string())
            .spawn()
            .map_err(|e| format!("spawn the {mode} child: {e}"))?;
        let reaper = support::Reaper(child);
        let (s, _) = ul.accept().map_err(|e| format!("accept the {mode} child: {e}"))?;
        Ok((s, reaper))
    };
    let (echo, _echo) = unix_peer("--unix-echo")?;
    let echo = Transport::Unix(echo);
    let (mut pw, _pong2) = unix_peer("--unix-pong")?;
    // Both directions of the socket (pr reads a clone of it).
    pw.set_read_timeout(shape.timeout)
        .and_then(|()| pw.set_write_timeout(shape.timeout))
        .map_err(|e| format!("UnixStream timeouts: {e}"))?;
    let mut pr = BufReader::new(pw.try_clone().map_err(|e| format!("clone UnixStream: {e}"))?);

    // Interleaved rounds; the warmup runs once per series, in round 0.
    let per = n.div_ceil(rounds);
    let mut series: [(Vec<u64>, Duration); 5] = Default::default();
    for r in 0..rounds {
        let sh = support::Shape { warmup: if r == 0 { shape.warmup } else { 0 }, ..*shape };
        let seq0 = r * (per + shape.warmup);
        let runs = [
            support::example_round_trips(&goipc, &sh, false, false, seq0, per)?,
            support::example_round_trips(&goipc, &sh, true, false, seq0, per)?,
            support::example_round_trips(&echo, &sh, false, false, seq0, per)?,
            unix_typed_round_trips(&mut pw, &mut pr, seq0 as u64, per, &sh)?,
            support::example_round_trips(&goipc, &sh, false, true, seq0, per)?,
        ];
        for (acc, s) in series.iter_mut().zip(runs) {
            acc.0.extend(s.rtt);
            acc.1 += s.elapsed;
        }
    }
    drop((echo, pw, pr));
    if let Transport::Goipc(conn) = goipc {
        conn.close().map_err(|e| format!("close: {e}"))?;
    }

    let count = series[0].0.len();
    let titles = [
        format!("goipc raw: Rust -> Go `goipc pong` echo, {size} B messages"),
        format!("goipc Ping/Pong: Rust Ping (FlatBuffers, {size} B payload) -> Go `goipc pong` -> Pong"),
        format!("UnixStream raw: Rust -> Rust echo child, {size} B"),
        "UnixStream Ping/Pong: the same FlatBuffers messages, length-framed, Rust -> Rust child".to_owned(),
        format!("goipc call: Rust Conn::call_into -> Go `goipc pong` echo as the reply, {size} B"),
    ];
    let mut p50 = [0u64; 5];
    for (i, (title, (rtt, elapsed))) in titles.iter().zip(series.iter_mut()).enumerate() {
        println!("== {title}, n={count} ==");
        p50[i] = support::report(rtt, *elapsed);
        println!();
    }
    let us = |ns: u64| ns as f64 / 1e3;
    let ratio = |u: u64, g: u64| u as f64 / g.max(1) as f64;
    println!("p50 round trip, {size} B, same run ({rounds} interleaved rounds, {count} round trips per series):");
    println!(
        "  raw:       goipc Rust->Go {:.2} us, UnixStream Rust<->Rust {:.2} us: goipc is {:.1}x lower",
        us(p50[0]),
        us(p50[2]),
        ratio(p50[2], p50[0])
    );
    println!(
        "  Ping/Pong: goipc Rust->Go {:.2} us, UnixStream Rust<->Rust {:.2} us: goipc is {:.1}x lower",
        us(p50[1]),
        us(p50[3]),
        ratio(p50[3], p50[1])
    );
    println!(
        "  goipc Ping/Pong against UnixStream raw (FlatBuffers work on one side only): {:.1}x lower",
        ratio(p50[2], p50[1])
    );
    println!(
        "  call:      goipc Conn::call_into {:.2} us = {:.2}x the raw send + receive round trip (target <= 1.1x)",
        us(p50[4]),
        ratio(p50[4], p50[0])
    );
    let met = ratio(p50[2], p50[0]) >= 10.0;
    println!("target: goipc 64 B p50 at least 10x lower than UnixStream: {}", if met { "met" } else { "NOT met" });
    Ok(())
}

fn main() -> ExitCode {
    let args = support::Args::parse(
        USAGE,
        &["--goipc", "-n", "--size", "--warmup", "--rounds", "--timeout-ms", "--unix-echo", "--unix-pong"],
        &[],
    );
    let size = args.num(USAGE, "--size", 64) as usize;
    if let Some(path) = args.value("--unix-echo") {
        return unix_echo(path, size);
    }
    if let Some(path) = args.value("--unix-pong") {
        return unix_pong(path);
    }
    let Some(goipc) = args.value("--goipc") else { support::usage_exit(USAGE, "--goipc PATH is required") };
    let n = args.num(USAGE, "-n", 200_000) as usize;
    let warmup = args.num(USAGE, "--warmup", 10_000) as usize;
    let rounds = args.num(USAGE, "--rounds", 4).max(1) as usize;
    if n == 0 {
        support::usage_exit(USAGE, "-n must be at least 1");
    }
    let shape = support::Shape { size, warmup, timeout: support::timeout_option(&args, USAGE) };
    match run(goipc, n, &shape, rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
