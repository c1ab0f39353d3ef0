//! The tokio benchmark (`make bench-rust-tokio`): in one run, 64 B round
//! trips to the Go consumer (`goipc pong`, started here) over one
//! connection driven by tokio (`AsyncConn`, current-thread runtime) and
//! over one driven by blocking calls (`Conn`), in interleaved rounds: as
//! send + receive, and as calls (`AsyncConn::call_into` against
//! `Conn::call_into`, the request echoed as the reply). The round trips
//! are the ping-pong example's (support::ping), every answer checked.
//!
//!   cargo run --release --features tokio --example tokio_bench -- --goipc build/bin/goipc
//!       [-n N] [--size BYTES] [--warmup W] [--rounds R] [--timeout-ms MS]
//!
//! Prints each series' percentiles and the ratios of the p50s (the goal:
//! tokio within 2x of blocking). Every send and receive (or call) waits at
//! most --timeout-ms (default 10000; -1: no bound), so a consumer that
//! stops answering fails the run with "no answer within MS ms" instead of
//! hanging it. Exit status 1 on any error or mismatch.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use goipc::{AsyncConn, Conn};

const USAGE: &str =
    "tokio_bench --goipc PATH_TO_GOIPC_CLI [-n N] [--size BYTES] [--warmup W] [--rounds R] [--timeout-ms MS]";

fn run(goipc: &str, n: usize, shape: &support::Shape, rounds: usize) -> Result<(), String> {
    let size = shape.size;
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
    // blocking raw, tokio raw, blocking call, tokio call
    let mut series: [(Vec<u64>, Duration); 4] = Default::default();
    for r in 0..rounds {
        let seq0 = r * (n + shape.warmup);
        let runs = [
            support::example_round_trips(&blocking, shape, false, false, seq0, n)?,
            rt.block_on(support::example_tokio_round_trips(&asynch, shape, false, false, seq0, n))?,
            support::example_round_trips(&blocking, shape, false, true, seq0, n)?,
            rt.block_on(support::example_tokio_round_trips(&asynch, shape, false, true, seq0, n))?,
        ];
        for (acc, s) in series.iter_mut().zip(runs) {
            acc.0.extend(s.rtt);
            acc.1 += s.elapsed;
        }
    }
    let titles = [
        "blocking Conn send + recv_into",
        "tokio AsyncConn (current-thread runtime) send + recv_into",
        "blocking Conn::call_into",
        "tokio AsyncConn::call_into (current-thread runtime)",
    ];
    let mut p50 = [0u64; 4];
    for (i, (title, (rtt, elapsed))) in titles.iter().zip(series.iter_mut()).enumerate() {
        println!("== {title} -> goipc pong, {size} B, {rounds} x {n}");
        p50[i] = support::report(rtt, *elapsed);
    }
    let ratio = |t: u64, b: u64| t as f64 / b.max(1) as f64;
    println!("tokio/blocking p50 ratio, send + receive: {:.2} (goal <= 2)", ratio(p50[1], p50[0]));
    println!("tokio/blocking p50 ratio, call: {:.2} (goal <= 2)", ratio(p50[3], p50[2]));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> ExitCode {
    let args = support::Args::parse(USAGE, &["--goipc", "-n", "--size", "--warmup", "--rounds", "--timeout-ms"], &[]);
    let Some(goipc) = args.value("--goipc") else { support::usage_exit(USAGE, "--goipc PATH is required") };
    let n = args.num(USAGE, "-n", 100_000).max(1) as usize;
    let size = args.num(USAGE, "--size", 64) as usize;
    let warmup = args.num(USAGE, "--warmup", 5_000) as usize;
    let rounds = args.num(USAGE, "--rounds", 3).max(1) as usize;
    let shape = support::Shape { size, warmup, timeout: support::timeout_option(&args, USAGE) };
    match run(goipc, n, &shape, rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
