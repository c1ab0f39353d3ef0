//! The Rust consumer of the ping-pong example (examples/README.md): listens,
//! and on every connection answers each FlatBuffers Ping with a Pong
//! carrying the same seq, sent_ns and payload (and its own received_ns);
//! any other message is echoed unchanged, as the Go consumer `goipc pong`
//! does. An example of the crate in bindings/rust (its Cargo.toml names it
//! `pong`).
//!
//!   cargo run --release --example pong -- --listen PATH [--once]
//!
//! Prints "goipc rust pong: listening on PATH" when ready (scripts and
//! tests wait for that line). --once: serve one connection, then exit 0
//! when its peer closes it (1 if it ends with another error).

use std::process::ExitCode;

use goipc::{Conn, Error, Listener, Messenger, message};

const USAGE: &str = "pong --listen PATH [--once]";

/// Answers until the connection ends; returns how it ended.
fn serve(conn: &Conn) -> Error {
    let mut m = Messenger::new(conn);
    let mut buf = Vec::with_capacity(256);
    loop {
        // Copy the message out of the ring, then verify the copy (a peer
        // cannot change it under the verifier).
        {
            let v = match conn.recv_view() {
                Ok(v) => v,
                Err(e) => return e,
            };
            buf.clear();
            buf.extend_from_slice(&v);
        }
        let received_ns = message::monotonic_ns();
        let sent = match message::parse_ping(&buf) {
            Ok(p) => {
                let (seq, sent_ns) = (p.seq(), p.sent_ns());
                let payload = p.payload().map(|v| v.bytes()).unwrap_or_default();
                m.send_pong(seq, sent_ns, received_ns, payload)
            }
            Err(_) => conn.send(&buf),
        };
        if let Err(e) = sent {
            return e;
        }
    }
}

fn main() -> ExitCode {
    let (mut path, mut once) = (None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => path = args.next(),
            "--once" => once = true,
            other => {
                eprintln!("pong: unknown argument {other:?}\nusage: {USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = path else {
        eprintln!("pong: --listen PATH is required\nusage: {USAGE}");
        return ExitCode::from(2);
    };
    let path = path.as_str();
    let listener = match Listener::bind(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pong: listen {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("goipc rust pong: listening on {path}");
    if once {
        let conn = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("pong: accept: {e}");
                return ExitCode::FAILURE;
            }
        };
        return match serve(&conn) {
            Error::PeerClosed => ExitCode::SUCCESS,
            e => {
                eprintln!("pong: {e}");
                ExitCode::FAILURE
            }
        };
    }
    loop {
        match listener.accept() {
            Ok(conn) => {
                std::thread::spawn(move || match serve(&conn) {
                    Error::PeerClosed => {}
                    e => eprintln!("pong: connection ended: {e}"),
                });
            }
            // A failed handshake concerns that one client.
            Err(e) => eprintln!("pong: rejected a client: {e}"),
        }
    }
}
