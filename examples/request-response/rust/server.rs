//! The server side of the request/response example in Rust
//! (examples/README.md): answers calls with `Conn::recv_request` and
//! `Conn::reply`, from several threads on each connection. The service
//! squares numbers: a request is a u64 x (8 bytes, little-endian), its
//! reply x*x. An example of the crate in bindings/rust (`cargo run
//! --example request_response_server -- ...` there).
//!
//!   request_response_server --listen PATH [--clients K] [--threads W]
//!
//! Serves K connections (default 1), one after the other, each with W
//! threads (default 4) that take requests and answer them: a thread that
//! takes a request answers it while the others take the next ones, so
//! replies may leave in another order than the requests came (the call
//! ids route them). Prints "listening on PATH" once ready and, when K
//! clients have come and gone, how many calls it answered.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use goipc::{Conn, Error, Listener};

fn main() -> ExitCode {
    let (mut path, mut clients, mut threads) = (None, 1u64, 4u64);
    let mut args = std::env::args().skip(1);
    while let (Some(flag), Some(value)) = (args.next(), args.next()) {
        match flag.as_str() {
            "--listen" => path = Some(value),
            "--clients" => clients = value.parse().unwrap_or(0),
            "--threads" => threads = value.parse().unwrap_or(0),
            _ => path = None,
        }
    }
    let Some(path) = path.filter(|_| clients >= 1 && (1..=64).contains(&threads)) else {
        eprintln!("usage: request_response_server --listen PATH [--clients K] [--threads 1..64]");
        return ExitCode::from(2);
    };
    match serve(&path, clients, threads) {
        Ok(answered) => {
            println!("server rust: {clients} clients, {answered} calls answered");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("server rust: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(path: &str, clients: u64, threads: u64) -> goipc::Result<u64> {
    let listener = Listener::bind(path)?;
    println!("listening on {path}");
    let answered = AtomicU64::new(0);
    for _ in 0..clients {
        let conn = listener.accept()?;
        // Every worker ends when the client closes the connection; the
        // first other error is this connection's.
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads).map(|_| s.spawn(|| work(&conn, &answered))).collect();
            workers.into_iter().try_for_each(|w| w.join().expect("a worker panicked"))
        })?;
    }
    Ok(answered.into_inner())
}

/// Takes requests and answers them until the peer closes the connection.
fn work(conn: &Conn, answered: &AtomicU64) -> goipc::Result<()> {
    let mut req = [0u8; 8];
    loop {
        let (call, len) = match conn.recv_request(&mut req, None) {
            Ok(r) => r,
            Err(Error::PeerClosed) => return Ok(()),
            Err(e) => return Err(e),
        };
        if len != req.len() {
            return Err(Error::InvalidArgument(format!("a request is 8 bytes, got {len}")));
        }
        let x = u64::from_le_bytes(req);
        conn.reply(call, &x.wrapping_mul(x).to_le_bytes(), None)?;
        answered.fetch_add(1, Ordering::Relaxed);
    }
}
