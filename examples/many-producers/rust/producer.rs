//! The many-producers example in Rust (examples/README.md): one of the
//! producers a Go consumer serves at once
//! (`go run ./examples/many-producers/go consumer --listen PATH --producers K`).
//! An example of the crate in bindings/rust (`cargo run --example
//! many_producers -- ...` there).
//!
//!   many_producers --dial PATH --name NAME [-n N]
//!
//! Sends "NAME i" for i = 0..N-1, then "done", and checks the consumer's
//! answer: the number of messages it received from this connection (8
//! bytes, little-endian).

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let (mut path, mut name, mut n) = (None, String::from("rust"), 10_000u64);
    let mut args = std::env::args().skip(1);
    while let (Some(flag), Some(value)) = (args.next(), args.next()) {
        match flag.as_str() {
            "--dial" => path = Some(value),
            "--name" => name = value,
            "-n" => n = value.parse().unwrap_or(u64::MAX),
            _ => path = None,
        }
    }
    let Some(path) = path.filter(|_| n != u64::MAX) else {
        eprintln!("usage: many_producers --dial PATH --name NAME [-n N]");
        return ExitCode::from(2);
    };
    match produce(&path, &name, n) {
        Ok(counted) if counted == n => {
            println!("producer {name}: {n} messages, the consumer counted {counted}");
            ExitCode::SUCCESS
        }
        Ok(counted) => {
            eprintln!("producer {name}: sent {n} messages, the consumer counted {counted}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("producer {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends the messages and returns the consumer's count.
fn produce(path: &str, name: &str, n: u64) -> goipc::Result<u64> {
    let conn = goipc::Conn::dial(path, Some(Duration::from_secs(10)))?;
    for i in 0..n {
        conn.send(format!("{name} {i}").as_bytes())?; // waits while the ring is full
    }
    conn.send(b"done")?;
    let answer = conn.recv_timeout(Duration::from_secs(10))?;
    Ok(answer.try_into().map(u64::from_le_bytes).unwrap_or(u64::MAX))
}
