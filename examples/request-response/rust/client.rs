//! The request/response example in Rust (examples/README.md): several
//! threads call at once on one shared connection, against a server that
//! squares numbers (the Go one:
//! `go run ./examples/request-response/go server --listen PATH`, or
//! server.rs next to this file). An example of the crate in bindings/rust
//! (`cargo run --example request_response -- ...` there).
//!
//!   request_response --dial PATH [--threads T] [-n N]
//!
//! Thread t sends x = t*1000000 + i (a u64, 8 bytes little-endian) for
//! i = 0..N-1 with `Conn::call` and checks that the reply is x*x: every
//! request of the run is different, so a reply routed to the wrong thread
//! fails the check. Prints one line and exits 0 when every reply matched
//! its request.

use std::process::ExitCode;
use std::time::Duration;

/// Keeps x below 2^32: x*x fits in 64 bits, no two requests share a reply.
const MAX_CALLS: u64 = 1_000_000;
const MAX_THREADS: u64 = 4000;

fn main() -> ExitCode {
    let (mut path, mut threads, mut n) = (None, 8u64, 1000u64);
    let mut args = std::env::args().skip(1);
    while let (Some(flag), Some(value)) = (args.next(), args.next()) {
        match flag.as_str() {
            "--dial" => path = Some(value),
            "--threads" => threads = value.parse().unwrap_or(0),
            "-n" => n = value.parse().unwrap_or(u64::MAX),
            _ => path = None,
        }
    }
    let Some(path) = path.filter(|_| (1..=MAX_THREADS).contains(&threads) && n <= MAX_CALLS) else {
        eprintln!("usage: request_response --dial PATH [--threads 1..{MAX_THREADS}] [-n 0..{MAX_CALLS}]");
        return ExitCode::from(2);
    };
    let conn = match goipc::Conn::dial(&path, Some(Duration::from_secs(10))) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("client rust: dial {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Conn is Sync: the threads borrow the one connection.
    let conn = &conn;
    let failures: Vec<String> = std::thread::scope(|s| {
        let callers: Vec<_> = (0..threads).map(|t| s.spawn(move || caller(conn, t, n))).collect();
        callers.into_iter().filter_map(|h| h.join().expect("a caller panicked").err()).collect()
    });
    if !failures.is_empty() {
        eprintln!("client rust: {}", failures.join("\n"));
        return ExitCode::FAILURE;
    }
    println!("client rust: {threads} threads x {n} calls on one connection, every reply matched its request");
    ExitCode::SUCCESS
}

/// Makes n calls and checks every reply.
fn caller(conn: &goipc::Conn, t: u64, n: u64) -> Result<(), String> {
    for i in 0..n {
        let x = t * MAX_CALLS + i;
        // One library call per round trip. (call_into reads the reply into
        // a buffer of yours, without an allocation.)
        let reply = conn
            .call(&x.to_le_bytes(), Some(Duration::from_secs(10)))
            .map_err(|e| format!("thread {t}, call {i}: {e}"))?;
        if reply != (x * x).to_le_bytes() {
            return Err(format!("thread {t}, call {i}: sent {x}, got the reply {reply:?}"));
        }
    }
    Ok(())
}
