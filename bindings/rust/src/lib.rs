//! goipc for Rust: a shared-memory message channel between two processes
//! on one Linux host, through the C ABI of `libgoipc.so`
//! (`include/goipc.h`). The guide is `docs/RUST.md`.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! // A consumer (usually another process; `goipc pong` is one in Go).
//! let listener = goipc::Listener::bind("/tmp/example.sock")?;
//! # let _ = &listener;
//! // A producer.
//! let conn = goipc::Conn::dial("/tmp/example.sock", Some(Duration::from_secs(5)))?;
//! conn.send(b"hello")?;
//! let answer: Vec<u8> = conn.recv()?;
//! # let _ = answer;
//! # Ok::<(), goipc::Error>(())
//! ```
//!
//! - [`Listener`] / [`Conn`]: listen, accept, dial; send, receive into a
//!   `Vec` or a slice, receive in place ([`RecvView`]), build in place
//!   ([`Reservation`]). Dropping closes. All are `Send + Sync` (see
//!   [`Conn`'s notes on threads](Conn#threads)).
//! - [`Error`]: one variant per C status code.
//! - [`message`] and [`Messenger`]: the kit's FlatBuffers `Ping`/`Pong`
//!   (schema/goipc.fbs), built with the `flatbuffers` crate and read with
//!   the verifying `flatbuffers::root`.
//! - [`sys`]: the raw C declarations.
//!
//! Linking (`build.rs`): by default the static library `libgoipc.a` goes
//! into the program, so a program whose `Cargo.toml` only says
//! `goipc = { path = ".../bindings/rust" }` builds and runs with `cargo run`,
//! with no build script and no `LD_LIBRARY_PATH` of its own. The archive is
//! an installed one (`make install`; found with pkg-config) or, if there is
//! none, built from the repository around the crate (`make lib-static`,
//! which needs Go). With `$GOIPC_LIBRARY_DIR` set, the crate links
//! `libgoipc.so` from there instead, with an rpath for its own tests and
//! examples only (dependents get the directory as `DEP_GOIPC_LIB_DIR`).
//! See docs/RUST.md.
//!
//! Process rules from the Go runtime inside the library: a child created
//! by `fork()` cannot use the library (calls return
//! [`Error::NotSupported`]; `std::process::Command` is fine, it execs);
//! one Go c-shared library per process; glibc only.

#![warn(missing_docs)]

#[cfg(feature = "tokio")]
mod async_tokio;
mod call;
mod conn;
mod error;
pub mod message;
mod stats;
#[allow(missing_docs)]
pub mod sys;

// The FlatBuffers code generated from schema/goipc.fbs by `make generate`
// (another owner's file: included as is, never edited).
#[allow(
    clippy::all,
    clippy::pedantic,
    unused_imports,
    dead_code,
    missing_docs,
    unsafe_op_in_unsafe_fn,
    mismatched_lifetime_syntaxes
)]
#[path = "generated/goipc_generated.rs"]
#[rustfmt::skip] // keep `cargo fmt` away from the generated file
mod generated;

#[cfg(feature = "tokio")]
pub use async_tokio::{AsyncConn, AsyncListener};
pub use call::PingRequest;
pub use conn::{Conn, Limit, Listener, MAX_INFLIGHT_CALLS_LIMIT, Options, RecvView, Reservation, Spin, abi_version};
pub use error::{Error, Result, strerror};
pub use message::{Messenger, fb};
pub use stats::{DirectionStats, Stats};
