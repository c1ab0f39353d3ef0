//! Shared by the benchmark examples (bench, tokio_bench): argument
//! parsing, the ping-pong example's round trips, and the percentile report
//! (`round trip: min ...`, `p50_ns=...`).

#![allow(dead_code)] // each example uses a subset

use std::iter::StepBy;
use std::ops::Range;
use std::time::{Duration, Instant};

/// Kills and reaps a child on every exit path.
pub struct Reaper(pub std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Minimal `--flag value` parser: flags in `with_value` take the next
/// argument; those in `switches` take none.
pub struct Args {
    pairs: Vec<(String, Option<String>)>,
}

impl Args {
    pub fn parse(usage: &str, with_value: &[&str], switches: &[&str]) -> Args {
        let mut pairs = Vec::new();
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            if with_value.contains(&a.as_str()) {
                let Some(v) = it.next() else { usage_exit(usage, &format!("{a} needs a value")) };
                pairs.push((a, Some(v)));
            } else if switches.contains(&a.as_str()) {
                pairs.push((a, None));
            } else {
                usage_exit(usage, &format!("unknown argument {a:?}"));
            }
        }
        Args { pairs }
    }

    pub fn value(&self, flag: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(f, _)| f == flag).and_then(|(_, v)| v.as_deref())
    }

    pub fn has(&self, flag: &str) -> bool {
        self.pairs.iter().any(|(f, _)| f == flag)
    }

    pub fn num(&self, usage: &str, flag: &str, default: u64) -> u64 {
        match self.value(flag) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| usage_exit(usage, &format!("{flag}: not a number: {v:?}"))),
        }
    }
}

pub fn usage_exit(usage: &str, why: &str) -> ! {
    eprintln!("{why}\nusage: {usage}");
    std::process::exit(2);
}

/// The ping-pong example's ping (examples/ping-pong/rust/ping.rs): the
/// benchmarks time its round trips rather than loops of their own, so each
/// behaviour is written once.
#[path = "../../../../examples/ping-pong/rust/ping.rs"]
pub mod ping;

/// What every series of a benchmark shares: the message size, the
/// unmeasured round trips before each series, and the bound on each send
/// and receive (or call) of a round trip.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub size: usize,
    pub warmup: usize,
    pub timeout: Option<Duration>,
}

/// The default bound on each step of a round trip, and the benchmarks'
/// `--timeout-ms MS` option (-1: none): a peer that stops answering fails
/// the run with "no answer within MS ms" instead of hanging it.
pub fn timeout_option(args: &Args, usage: &str) -> Option<Duration> {
    match args.value("--timeout-ms") {
        Some("-1") => None,
        _ => match args.num(usage, "--timeout-ms", ping::ROUND_TRIP_TIMEOUT.as_millis() as u64) {
            0 => usage_exit(usage, "--timeout-ms must be at least 1 (or -1: no bound)"),
            ms => Some(Duration::from_millis(ms)),
        },
    }
}

/// `n` round trips of the example's code on `t` (raw, or `typed`
/// Ping/Pong, as send + receive or one `call` each; every answer checked),
/// after `shape.warmup` unmeasured ones. `seq0` numbers the first.
pub fn example_round_trips(
    t: &ping::Transport,
    shape: &Shape,
    typed: bool,
    call: bool,
    seq0: usize,
    n: usize,
) -> Result<Samples, String> {
    let cfg = example_config(shape, typed, call, n);
    let [warmup, timed] = series_seqs(shape, seq0, n);
    ping::round_trips(&cfg, t, warmup)?;
    let start = Instant::now();
    let rtt = ping::round_trips(&cfg, t, timed)?;
    Ok(Samples { rtt, elapsed: start.elapsed() })
}

/// `example_round_trips` on a tokio `AsyncConn`: the example's --tokio
/// round trips.
#[cfg(feature = "tokio")]
pub async fn example_tokio_round_trips(
    conn: &goipc::AsyncConn,
    shape: &Shape,
    typed: bool,
    call: bool,
    seq0: usize,
    n: usize,
) -> Result<Samples, String> {
    let cfg = example_config(shape, typed, call, n);
    let [warmup, timed] = series_seqs(shape, seq0, n);
    ping::tokio_round_trips(&cfg, conn, warmup).await?;
    let start = Instant::now();
    let rtt = ping::tokio_round_trips(&cfg, conn, timed).await?;
    Ok(Samples { rtt, elapsed: start.elapsed() })
}

/// The sequence numbers of a series starting at `seq0`: its
/// `shape.warmup` unmeasured round trips, then its `n` timed ones.
fn series_seqs(shape: &Shape, seq0: usize, n: usize) -> [StepBy<Range<usize>>; 2] {
    let timed0 = seq0 + shape.warmup;
    [(seq0..timed0).step_by(1), (timed0..timed0 + n).step_by(1)]
}

/// The example's configuration for round trips on a connection made here.
fn example_config(shape: &Shape, typed: bool, call: bool, n: usize) -> ping::Config {
    ping::Config {
        transport: String::new(), // the round trips go by the connection given
        path: String::new(),
        size: shape.size,
        iters: n,
        warmup: shape.warmup,
        typed,
        call,
        threads: 1,
        tokio: false,
        timeout: shape.timeout,
    }
}

/// Measured round trips (ns) and the wall time they took.
pub struct Samples {
    pub rtt: Vec<u64>,
    pub elapsed: Duration,
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = (p / 100.0 * (sorted.len() - 1) as f64 + 0.5) as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sorts the samples and prints the report; returns p50 in ns.
pub fn report(samples: &mut [u64], elapsed: Duration) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let us = |ns: u64| ns as f64 / 1e3;
    let (p50, p90, p99, p999) =
        (percentile(samples, 50.0), percentile(samples, 90.0), percentile(samples, 99.0), percentile(samples, 99.9));
    println!(
        "round trip: min {:.2} us  p50 {:.2} us  p90 {:.2} us  p99 {:.2} us  p99.9 {:.2} us  max {:.2} us",
        us(samples[0]),
        us(p50),
        us(p90),
        us(p99),
        us(p999),
        us(samples[samples.len() - 1])
    );
    if !elapsed.is_zero() {
        println!("throughput: {:.0} round trips/s", samples.len() as f64 / elapsed.as_secs_f64());
    }
    println!("p50_ns={p50} p90_ns={p90} p99_ns={p99} p999_ns={p999}");
    p50
}
