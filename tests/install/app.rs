//! The Rust program of make test-install: its Cargo.toml has only a path
//! dependency on bindings/rust (no build.rs of its own); it dials a
//! consumer, sends one message and prints the answer.
//! Usage: app SOCKET MESSAGE
use std::time::Duration;

fn main() -> Result<(), goipc::Error> {
    let args: Vec<String> = std::env::args().collect();
    assert_eq!(args.len(), 3, "usage: app SOCKET MESSAGE");
    let conn = goipc::Conn::dial(&args[1], Some(Duration::from_secs(5)))?;
    conn.send(args[2].as_bytes())?;
    let reply = conn.recv_timeout(Duration::from_secs(5))?;
    println!("{}", String::from_utf8_lossy(&reply));
    conn.close()
}
