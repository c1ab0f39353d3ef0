//! Shared by the benchmark examples (bench, tokio_bench):
//! argument parsing, the round-trip loops, and the percentile report
//! (`round trip: min ...`, `p50_ns=...`).

#![allow(dead_code)] // each example uses a subset

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use goipc::{Conn, Messenger};

/// Kills and reaps a child on every exit path.
pub struct Reaper(pub std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A timeout per round trip: a peer that stops answering fails the run.
pub const ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Round trips of FlatBuffers Ping -> Pong on `conn`: each Pong must carry
/// the Ping's seq, sent_ns and payload. `seq0` numbers the first Ping.
/// Returns the measured round trips (ns) after `warmup` unmeasured ones.
pub fn typed_round_trips(
    m: &mut Messenger<'_>,
    seq0: u64,
    n: usize,
    warmup: usize,
    size: usize,
) -> Result<Samples, String> {
    let payload: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    let mut rtt = Vec::with_capacity(n);
    let mut start = Instant::now();
    for i in 0..warmup + n {
        if i == warmup {
            start = Instant::now();
        }
        let seq = seq0 + i as u64;
        let t0 = Instant::now();
        m.send_ping_timeout(seq, &payload, ROUND_TRIP_TIMEOUT).map_err(|e| format!("send Ping {seq}: {e}"))?;
        let pong = m.recv_pong_timeout(ROUND_TRIP_TIMEOUT).map_err(|e| format!("receive Pong {seq}: {e}"))?;
        let dt = t0.elapsed();
        if pong.seq() != seq {
            return Err(format!("Pong seq {} answers Ping {seq}", pong.seq()));
        }
        if pong.payload().map(|p| p.bytes()).unwrap_or_default() != &payload[..] {
            return Err(format!("Pong {seq}: payload differs from the Ping's"));
        }
        if i >= warmup {
            rtt.push(dt.as_nanos() as u64);
        }
    }
    Ok(Samples { rtt, elapsed: start.elapsed() })
}

/// Round trips of raw `size`-byte messages that the peer echoes exactly
/// (one send and one recv_into each: one call into the library each).
pub fn raw_round_trips(conn: &Conn, seq0: u64, n: usize, warmup: usize, size: usize) -> Result<Samples, String> {
    let mut msg: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    let mut reply = vec![0u8; size];
    let mut rtt = Vec::with_capacity(n);
    let mut start = Instant::now();
    for i in 0..warmup + n {
        if i == warmup {
            start = Instant::now();
        }
        let seq = seq0 + i as u64;
        if size >= 8 {
            msg[..8].copy_from_slice(&seq.to_le_bytes());
        }
        let t0 = Instant::now();
        conn.send_timeout(&msg, ROUND_TRIP_TIMEOUT).map_err(|e| format!("send {seq}: {e}"))?;
        let got = conn.recv_into_timeout(&mut reply, ROUND_TRIP_TIMEOUT).map_err(|e| format!("receive {seq}: {e}"))?;
        let dt = t0.elapsed();
        if reply[..got] != msg[..] {
            return Err(format!("answer {seq} differs from what was sent ({got} bytes, want {size})"));
        }
        if i >= warmup {
            rtt.push(dt.as_nanos() as u64);
        }
    }
    Ok(Samples { rtt, elapsed: start.elapsed() })
}

/// Calls whose peer answers with the request (`goipc pong`): one
/// `Conn::call_into` per round trip, next to raw_round_trips' send +
/// receive.
pub fn call_round_trips(conn: &Conn, seq0: u64, n: usize, warmup: usize, size: usize) -> Result<Samples, String> {
    let mut req: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    let mut reply = vec![0u8; size];
    let mut rtt = Vec::with_capacity(n);
    let mut start = Instant::now();
    for i in 0..warmup + n {
        if i == warmup {
            start = Instant::now();
        }
        let seq = seq0 + i as u64;
        if size >= 8 {
            req[..8].copy_from_slice(&seq.to_le_bytes());
        }
        let t0 = Instant::now();
        let got = conn.call_into(&req, &mut reply, Some(ROUND_TRIP_TIMEOUT)).map_err(|e| format!("call {seq}: {e}"))?;
        let dt = t0.elapsed();
        if reply[..got] != req[..] {
            return Err(format!("reply {seq} differs from the request ({got} bytes, want {size})"));
        }
        if i >= warmup {
            rtt.push(dt.as_nanos() as u64);
        }
    }
    Ok(Samples { rtt, elapsed: start.elapsed() })
}

/// Round trips over a Unix stream socket whose peer echoes every byte.
pub fn unix_round_trips(
    s: &mut UnixStream,
    seq0: u64,
    n: usize,
    warmup: usize,
    size: usize,
) -> Result<Samples, String> {
    let mut msg: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    let mut reply = vec![0u8; size];
    let mut rtt = Vec::with_capacity(n);
    let mut start = Instant::now();
    for i in 0..warmup + n {
        if i == warmup {
            start = Instant::now();
        }
        let seq = seq0 + i as u64;
        if size >= 8 {
            msg[..8].copy_from_slice(&seq.to_le_bytes());
        }
        let t0 = Instant::now();
        s.write_all(&msg).map_err(|e| format!("unix write {seq}: {e}"))?;
        s.read_exact(&mut reply).map_err(|e| format!("unix read {seq}: {e}"))?;
        let dt = t0.elapsed();
        if reply != msg {
            return Err(format!("unix answer {seq} differs from what was sent"));
        }
        if i >= warmup {
            rtt.push(dt.as_nanos() as u64);
        }
    }
    Ok(Samples { rtt, elapsed: start.elapsed() })
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
