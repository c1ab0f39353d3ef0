//! A Rust producer: dials a goipc consumer (for example the Go one,
//! `goipc pong --listen PATH`), sends N FlatBuffers Pings, checks that
//! every Pong carries the Ping's seq and payload, and prints round-trip
//! percentiles.
//!
//!   cargo run --release --example ping -- --dial PATH [-n N] [--size BYTES]
//!       [--warmup W] [--raw] [--spin-forever]
//!
//! --raw sends raw bytes and expects an exact echo instead. One call into
//! the library per send and one per receive. Exit status 0 only if every
//! round trip succeeded and matched; 1 on any error; 2 on bad usage.

#[path = "support/mod.rs"]
mod support;

use std::process::ExitCode;
use std::time::Duration;

use goipc::{Conn, Messenger, Options, Spin};

const USAGE: &str = "ping --dial PATH [-n N] [--size BYTES] [--warmup W] [--raw] [--spin-forever]";

fn main() -> ExitCode {
    let args = support::Args::parse(USAGE, &["--dial", "-n", "--size", "--warmup"], &["--raw", "--spin-forever"]);
    let Some(path) = args.value("--dial") else { support::usage_exit(USAGE, "--dial PATH is required") };
    let n = args.num(USAGE, "-n", 100_000) as usize;
    let size = args.num(USAGE, "--size", 64) as usize;
    let warmup = args.num(USAGE, "--warmup", 1000) as usize;
    if n == 0 {
        support::usage_exit(USAGE, "-n must be at least 1");
    }
    let raw = args.has("--raw");

    let mut opts = Options::default();
    if args.has("--spin-forever") {
        opts.spin = Spin::Forever;
    }
    if size > (1 << 20) - 128 {
        opts.max_message_size = size + 128;
    }
    let conn = match Conn::dial_with(path, &opts, Some(Duration::from_secs(10))) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ping: dial {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if raw {
        support::raw_round_trips(&conn, 0, n, warmup, size)
    } else {
        support::typed_round_trips(&mut Messenger::new(&conn), 0, n, warmup, size)
    };
    match result {
        Ok(mut s) => {
            let kind = if raw { "raw messages" } else { "Ping/Pong round trips" };
            println!("rust ping: {n} {kind} of {size} B payload to {path}");
            support::report(&mut s.rtt, s.elapsed);
        }
        Err(e) => {
            eprintln!("ping: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = conn.close() {
        eprintln!("ping: close: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
