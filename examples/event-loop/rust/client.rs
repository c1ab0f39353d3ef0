//! The event-loop example in Rust (examples/README.md): many goipc
//! connections in one tokio runtime (the crate's `tokio` feature:
//! `AsyncConn`), no thread per connection, against a server that echoes
//! (the Go one: `go run ./examples/event-loop/go server --listen PATH`,
//! `goipc pong`, or tokio_pong.rs next to this file). An example of the
//! crate in bindings/rust (`cargo run --features tokio --example
//! event_loop -- ...` there).
//!
//!   event_loop --dial PATH [--conns N] [-n ROUNDS]
//!
//! Dials N connections, then runs ROUNDS round trips on every one at
//! once, a task each, on a current-thread runtime, checking every reply.
//! A task that waits parks on the connection's descriptor (tokio's
//! `AsyncFd`), so the process keeps a handful of threads whatever N is;
//! the line it prints gives that count. Exit status 0 when every reply
//! matched.

use std::process::ExitCode;
use std::time::Duration;

use goipc::{AsyncConn, Options};
use tokio::task::JoinSet;

fn main() -> ExitCode {
    let (mut path, mut conns, mut rounds) = (None, 1000usize, 100usize);
    let mut args = std::env::args().skip(1);
    while let (Some(flag), Some(value)) = (args.next(), args.next()) {
        match flag.as_str() {
            "--dial" => path = Some(value),
            "--conns" => conns = value.parse().unwrap_or(0),
            "-n" => rounds = value.parse().unwrap_or(usize::MAX),
            _ => path = None,
        }
    }
    let Some(path) = path.filter(|_| conns >= 1 && rounds != usize::MAX) else {
        eprintln!("usage: event_loop --dial PATH [--conns N] [-n ROUNDS]");
        return ExitCode::from(2);
    };
    // One thread runs every task. Dials run on the runtime's blocking
    // pool (the handshake blocks): bound it, or N dials at once would
    // start up to 512 threads.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(2).build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run(&path, conns, rounds)),
        Err(e) => Err(format!("tokio runtime: {e}")),
    };
    match result {
        Ok(threads) => {
            println!(
                "client rust: {conns} connections x {rounds} round trips in one tokio runtime, every reply checked; {threads} threads"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("client rust: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the round trips; returns the process's thread count at the end.
async fn run(path: &str, conns: usize, rounds: usize) -> Result<usize, String> {
    // Small rings: a segment is allocated in full when it is dialed, so
    // 16 KiB rings make 1000 connections cost 33 MB of shared memory (8 GB
    // with the default 4 MiB rings).
    let mut opts = Options::default();
    opts.ring_size = 16 << 10;
    opts.max_message_size = 1 << 10;
    let mut dials = JoinSet::new();
    for i in 0..conns {
        let (path, opts) = (path.to_owned(), opts.clone());
        dials.spawn(async move { (i, AsyncConn::dial_with(path, &opts, Some(Duration::from_secs(10))).await) });
    }
    let mut clients = JoinSet::new();
    while let Some(dialed) = dials.join_next().await {
        let (i, conn) = dialed.map_err(|e| e.to_string())?;
        let conn = conn.map_err(|e| format!("connection {i}: {e}"))?;
        clients.spawn(async move { ping_pong(&conn, i, rounds).await });
    }
    // A server that stops answering fails the run instead of hanging it.
    let all = async {
        while let Some(done) = clients.join_next().await {
            done.map_err(|e| e.to_string())??;
        }
        Ok::<(), String>(())
    };
    tokio::time::timeout(Duration::from_secs(120), all).await.map_err(|_| "no progress for 120 s".to_string())??;
    Ok(std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count()))
}

/// Runs the round trips of connection i and checks each reply.
async fn ping_pong(conn: &AsyncConn, i: usize, rounds: usize) -> Result<(), String> {
    let mut reply = [0u8; 64];
    for r in 0..rounds {
        let msg = format!("connection {i} round {r}");
        conn.send(msg.as_bytes()).await.map_err(|e| format!("connection {i}: {e}"))?;
        let n = conn.recv_into(&mut reply).await.map_err(|e| format!("connection {i}: {e}"))?;
        if &reply[..n] != msg.as_bytes() {
            return Err(format!("connection {i}: sent {msg:?}, got {:?}", String::from_utf8_lossy(&reply[..n])));
        }
    }
    Ok(())
}
