//! The tokio benchmark (`make bench-rust-tokio`): in one run, 64 B round
//! trips to the Go consumer (`goipc pong`, started here) over one
//! connection driven by tokio (`AsyncConn`, current-thread runtime) and
//! over one driven by blocking calls (`Conn`), in interleaved rounds.
//!
//!   cargo run --release --features tokio --example tokio_bench -- --goipc build/bin/goipc
//!       [-n N] [--size BYTES] [--warmup W] [--rounds R]
//!
//! Prints each series' percentiles and the ratio of the p50s (the goal:
//! tokio within 2x of blocking). Exit status 1 on any error or mismatch.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use goipc::{AsyncConn, Conn};

const USAGE: &str = "tokio_bench --goipc PATH_TO_GOIPC_CLI [-n N] [--size BYTES] [--warmup W] [--rounds R]";

fn run(goipc: &str, n: usize, size: usize, warmup: usize, rounds: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("goipc-tokio-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join("pong.sock");
    let mut child = Command::new(goipc)
        .args(["pong", "--listen"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("start {goipc} pong: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let _reaper = support::Reaper(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
    if !line.contains("listening on") {
        return Err(format!("goipc pong did not start: {line:?}"));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let blocking =
        support::ping::Transport::Goipc(Conn::dial(&path, Some(Duration::from_secs(10))).map_err(|e| e.to_string())?);
    let asynch = rt.block_on(AsyncConn::dial(&path, Some(Duration::from_secs(10)))).map_err(|e| e.to_string())?;
    let (mut b_all, mut t_all) = (Vec::new(), Vec::new());
    let (mut b_time, mut t_time) = (Duration::ZERO, Duration::ZERO);
    for r in 0..rounds {
        // The blocking side: the ping-pong example's raw round trips.
        let b = support::example_round_trips(&blocking, false, false, r * (n + warmup), n, warmup, size)?;
        b_time += b.elapsed;
        b_all.extend(b.rtt);
        // The tokio side: the example's --tokio round trips.
        let t = rt.block_on(support::example_tokio_round_trips(&asynch, false, r * (n + warmup), n, warmup, size))?;
        t_time += t.elapsed;
        t_all.extend(t.rtt);
    }
    println!("== blocking Conn -> goipc pong, {size} B, {rounds} x {n}");
    let b50 = support::report(&mut b_all, b_time);
    println!("== tokio AsyncConn (current-thread runtime) -> goipc pong, {size} B, {rounds} x {n}");
    let t50 = support::report(&mut t_all, t_time);
    println!("tokio/blocking p50 ratio: {:.2} (goal <= 2)", t50 as f64 / b50.max(1) as f64);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> ExitCode {
    let args = support::Args::parse(USAGE, &["--goipc", "-n", "--size", "--warmup", "--rounds"], &[]);
    let Some(goipc) = args.value("--goipc") else { support::usage_exit(USAGE, "--goipc PATH is required") };
    let n = args.num(USAGE, "-n", 100_000).max(1) as usize;
    let size = args.num(USAGE, "--size", 64) as usize;
    let warmup = args.num(USAGE, "--warmup", 5_000) as usize;
    let rounds = args.num(USAGE, "--rounds", 3).max(1) as usize;
    match run(goipc, n, size, warmup, rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
