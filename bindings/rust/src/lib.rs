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
//! Linking: `build.rs` links `libgoipc.so` from `$GOIPC_LIBRARY_DIR`, else
//! the project's `build/lib` (`make lib`), and sets an rpath for this
//! crate's tests and examples. Programs that depend on this crate find the
//! library through their own rpath (the directory is in
//! `DEP_GOIPC_LIB_DIR` for their build script), `LD_LIBRARY_PATH`, or an
//! installed copy.
//!
//! Process rules from the Go runtime inside the library: a child created
//! by `fork()` cannot use the library (calls return
//! [`Error::NotSupported`]; `std::process::Command` is fine, it execs);
//! one Go c-shared library per process; glibc only.

#![warn(missing_docs)]

mod conn;
mod error;
pub mod message;
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

pub use conn::{Conn, Limit, Listener, Options, RecvView, Reservation, Spin, abi_version};
pub use error::{Error, Result, strerror};
pub use message::{Messenger, fb};
