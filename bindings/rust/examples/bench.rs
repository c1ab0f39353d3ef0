//! The Rust benchmark (`make bench-rust`): in one run, the Rust -> Go round
//! trip over goipc (this process against `goipc pong`) and the same
//! ping/pong between two Rust processes over a std UnixStream, 64 B each.
//!
//!   cargo run --release --example bench -- --goipc build/bin/goipc
//!       [-n N] [--size BYTES] [--warmup W] [--rounds R]
//!
//! Three series, measured in R interleaved rounds (goipc Ping/Pong, goipc
//! raw, UnixStream, then again) so that a noisy neighbour hits all of them
//! alike:
//!   - goipc typed: FlatBuffers Ping with a SIZE-byte payload, answered by
//!     the Go consumer with a Pong (built and verified on both sides);
//!   - goipc raw: SIZE-byte messages, echoed by the Go consumer;
//!   - UnixStream: SIZE bytes written, echoed by a child process (this
//!     binary re-executed with --unix-echo), read back with read_exact.
//!
//! Prints each series' percentiles and the p50 ratios. Exit status 1 on
//! any error (a failed or mismatched round trip included).

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use goipc::{Conn, Messenger};

const USAGE: &str = "bench --goipc PATH_TO_GOIPC_CLI [-n N] [--size BYTES] [--warmup W] [--rounds R]";

/// Kills and reaps a child on every exit path.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

fn run(goipc: &str, n: usize, size: usize, warmup: usize, rounds: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("goipc-rs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let result = run_in(&dir, goipc, n, size, warmup, rounds);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(
    dir: &std::path::Path,
    goipc: &str,
    n: usize,
    size: usize,
    warmup: usize,
    rounds: usize,
) -> Result<(), String> {
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
    let _pong = Reaper(child);
    let mut line = String::new();
    let mut lines = BufReader::new(out);
    while !line.contains("listening on") {
        line.clear();
        if lines.read_line(&mut line).map_err(|e| format!("read goipc pong output: {e}"))? == 0 {
            return Err("goipc pong exited before its ready line".into());
        }
    }
    let conn = Conn::dial(&gsock, Some(Duration::from_secs(10))).map_err(|e| format!("dial goipc pong: {e}"))?;
    let mut m = Messenger::new(&conn);

    // The UnixStream peer: a second process, as the Go consumer is.
    let usock = dir.join("unix.sock");
    let ul = UnixListener::bind(&usock).map_err(|e| format!("bind {}: {e}", usock.display()))?;
    let exe: PathBuf = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let echo = Command::new(exe)
        .arg("--unix-echo")
        .arg(&usock)
        .arg("--size")
        .arg(size.to_string())
        .spawn()
        .map_err(|e| format!("spawn the UnixStream echo child: {e}"))?;
    let _echo = Reaper(echo);
    let (mut us, _) = ul.accept().map_err(|e| format!("accept the UnixStream echo child: {e}"))?;

    // Interleaved rounds; the warmup runs once per series, in round 0.
    let per = n.div_ceil(rounds);
    let (mut typed, mut raw, mut unix) = (Vec::new(), Vec::new(), Vec::new());
    let (mut t_typed, mut t_raw, mut t_unix) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for r in 0..rounds {
        let w = if r == 0 { warmup } else { 0 };
        let seq0 = (r * (per + warmup)) as u64;
        let s = support::typed_round_trips(&mut m, seq0, per, w, size)?;
        typed.extend(s.rtt);
        t_typed += s.elapsed;
        let s = support::raw_round_trips(&conn, seq0, per, w, size)?;
        raw.extend(s.rtt);
        t_raw += s.elapsed;
        let s = support::unix_round_trips(&mut us, seq0, per, w, size)?;
        unix.extend(s.rtt);
        t_unix += s.elapsed;
    }
    drop(us);
    conn.close().map_err(|e| format!("close: {e}"))?;

    let count = typed.len();
    println!("== goipc typed: Rust Ping (FlatBuffers, {size} B payload) -> Go pong -> Pong, n={count} ==");
    let g_typed = support::report(&mut typed, t_typed);
    println!();
    println!("== goipc raw: Rust -> Go pong echo, {size} B messages, n={count} ==");
    let g_raw = support::report(&mut raw, t_raw);
    println!();
    println!("== baseline: Rust -> Rust echo over a std UnixStream, {size} B, n={count} ==");
    let u = support::report(&mut unix, t_unix);
    println!();
    let us = |ns: u64| ns as f64 / 1e3;
    println!(
        "p50 round trip, {size} B, same run ({rounds} interleaved rounds): goipc Rust->Go Ping/Pong {:.2} us, \
         raw {:.2} us; UnixStream Rust<->Rust {:.2} us",
        us(g_typed),
        us(g_raw),
        us(u)
    );
    let ratio = |g: u64| u as f64 / g.max(1) as f64;
    println!(
        "goipc is {:.1}x lower (Ping/Pong) and {:.1}x lower (raw) than UnixStream (target >= 10x: {})",
        ratio(g_typed),
        ratio(g_raw),
        if ratio(g_typed) >= 10.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = support::Args::parse(USAGE, &["--goipc", "-n", "--size", "--warmup", "--rounds", "--unix-echo"], &[]);
    let size = args.num(USAGE, "--size", 64) as usize;
    if let Some(path) = args.value("--unix-echo") {
        return unix_echo(path, size);
    }
    let Some(goipc) = args.value("--goipc") else { support::usage_exit(USAGE, "--goipc PATH is required") };
    let n = args.num(USAGE, "-n", 200_000) as usize;
    let warmup = args.num(USAGE, "--warmup", 10_000) as usize;
    let rounds = args.num(USAGE, "--rounds", 4).max(1) as usize;
    if n == 0 {
        support::usage_exit(USAGE, "-n must be at least 1");
    }
    match run(goipc, n, size, warmup, rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
