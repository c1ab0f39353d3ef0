//! The server side of the event-loop example in Rust (examples/README.md):
//! a consumer on tokio (the crate's `tokio` feature: `AsyncListener`,
//! `AsyncConn`), one task per connection, no thread per connection.
//! Answers each FlatBuffers Ping with a Pong (same seq, sent_ns, payload)
//! and echoes anything else, as the Go consumer `goipc pong` does. An
//! example of the crate in bindings/rust:
//!
//!   cargo run --release --features tokio --example tokio_pong -- --listen PATH [--once]
//!
//! Prints "goipc rust tokio pong: listening on PATH" when ready. --once:
//! serve one connection, then exit 0 when its peer closes it.

use std::process::ExitCode;
use std::sync::Arc;

use flatbuffers::FlatBufferBuilder;
use goipc::{AsyncConn, AsyncListener, Error, message};

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
    let (mut path, mut once) = (None, false);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--listen" => path = args.next(),
            "--once" => once = true,
            _ => path = None,
        }
    }
    let Some(path) = path else {
        eprintln!("usage: tokio_pong --listen PATH [--once]");
        return ExitCode::from(2);
    };
    let path = path.as_str();
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
        if once {
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
