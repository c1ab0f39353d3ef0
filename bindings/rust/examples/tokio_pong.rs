//! An asynchronous Rust consumer on tokio (`--features tokio`): one task
//! per connection, no thread per connection. Answers each FlatBuffers Ping
//! with a Pong (same seq, sent_ns, payload) and echoes anything else, as
//! the Go consumer `goipc pong` does.
//!
//!   cargo run --release --features tokio --example tokio_pong -- --listen PATH [--once]
//!
//! Prints "goipc rust tokio pong: listening on PATH" when ready. --once:
//! serve one connection, then exit 0 when its peer closes it.

#[path = "support/mod.rs"]
mod support;

use std::process::ExitCode;
use std::sync::Arc;

use flatbuffers::FlatBufferBuilder;
use goipc::{AsyncConn, AsyncListener, Error, message};

const USAGE: &str = "tokio_pong --listen PATH [--once]";

/// Answers until the connection ends; returns how it ended.
async fn serve(conn: Arc<AsyncConn>) -> Error {
    let mut builder = FlatBufferBuilder::with_capacity(256);
    loop {
        let msg = match conn.recv().await {
            Ok(m) => m,
            Err(e) => return e,
        };
        let received_ns = message::monotonic_ns();
        let sent = match message::parse_ping(&msg) {
            Ok(p) => {
                let payload = p.payload().map(|v| v.bytes()).unwrap_or_default();
                let pong = message::build_pong(&mut builder, p.seq(), p.sent_ns(), received_ns, payload);
                conn.send(pong).await
            }
            Err(_) => conn.send(&msg).await,
        };
        if let Err(e) = sent {
            return e;
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = support::Args::parse(USAGE, &["--listen"], &["--once"]);
    let Some(path) = args.value("--listen") else { support::usage_exit(USAGE, "--listen PATH is required") };
    let listener = match AsyncListener::bind(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tokio_pong: listen {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("goipc rust tokio pong: listening on {path}");
    loop {
        let conn = match listener.accept().await {
            Ok(c) => Arc::new(c),
            // A failed handshake concerns that one client.
            Err(e) => {
                eprintln!("tokio_pong: rejected a client: {e}");
                continue;
            }
        };
        if args.has("--once") {
            return match serve(conn).await {
                Error::PeerClosed => ExitCode::SUCCESS,
                e => {
                    eprintln!("tokio_pong: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        tokio::spawn(async move {
            match serve(conn).await {
                Error::PeerClosed => {}
                e => eprintln!("tokio_pong: connection ended: {e}"),
            }
        });
    }
}
