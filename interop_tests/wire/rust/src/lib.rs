//! Cross-language FlatBuffers wire files: the Rust writer and reader.
//!
//! Every language writes a Ping and a Pong with the same fixed field values
//! (interop_tests/wire/README.md) to interop_tests/wire/testdata/
//! {ping,pong}_{go,python,rust}.bin and reads every language's files back,
//! checking every field. `cargo test` reads; `cargo run -- write [DIR]`
//! rewrites *_rust.bin (`make wire-files` rewrites every language's).

// The generated code is the committed bindings/rust/src/generated file
// (`make generate`), included as is.
#[allow(clippy::all, unused_imports, dead_code, mismatched_lifetime_syntaxes)]
#[path = "../../../../bindings/rust/src/generated/goipc_generated.rs"]
mod goipc_generated;

pub use goipc_generated::goipc::fb;

use std::path::PathBuf;

/// The fixed field values every language writes.
pub const SEQ: u64 = 42;
pub const PING_SENT_NS: i64 = 1234567890123456789;
pub const PONG_RECEIVED_NS: i64 = 1234567890987654321;
/// 0x00..=0x0c: an odd length, so that vector padding shows.
pub const PAYLOAD: [u8; 13] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

pub const LANGS: [&str; 3] = ["go", "python", "rust"];

/// interop_tests/wire/testdata.
pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// A Message/Ping. Fields are added one by one in schema order, the order
/// the Go and Python writers use; the generated `Ping::create` adds them
/// largest first instead and would lay the table out differently.
pub fn build_ping() -> Vec<u8> {
    let mut b = flatbuffers::FlatBufferBuilder::new();
    let payload = b.create_vector(&PAYLOAD);
    let mut p = fb::PingBuilder::new(&mut b);
    p.add_seq(SEQ);
    p.add_sent_ns(PING_SENT_NS);
    p.add_payload(payload);
    let body = p.finish();
    finish(b, fb::Body::Ping, body.as_union_value())
}

/// A Message/Pong; see build_ping.
pub fn build_pong() -> Vec<u8> {
    let mut b = flatbuffers::FlatBufferBuilder::new();
    let payload = b.create_vector(&PAYLOAD);
    let mut p = fb::PongBuilder::new(&mut b);
    p.add_seq(SEQ);
    p.add_ping_sent_ns(PING_SENT_NS);
    p.add_received_ns(PONG_RECEIVED_NS);
    p.add_payload(payload);
    let body = p.finish();
    finish(b, fb::Body::Pong, body.as_union_value())
}

fn finish(
    mut b: flatbuffers::FlatBufferBuilder,
    t: fb::Body,
    body: flatbuffers::WIPOffset<flatbuffers::UnionWIPOffset>,
) -> Vec<u8> {
    let mut m = fb::MessageBuilder::new(&mut b);
    m.add_body(body);
    m.add_body_type(t);
    let root = m.finish();
    fb::finish_message_buffer(&mut b, root);
    b.finished_data().to_vec()
}

/// Reads a Ping through the verifying `flatbuffers::root` and checks every
/// field.
pub fn read_ping(buf: &[u8]) -> Result<(), String> {
    if !fb::message_buffer_has_identifier(buf) {
        return Err("file identifier is not GIPC".into());
    }
    let m = fb::root_as_message(buf).map_err(|e| format!("verifier: {e}"))?;
    let p = m.body_as_ping().ok_or_else(|| format!("body is {:?}, not Ping", m.body_type()))?;
    check("seq", p.seq(), SEQ)?;
    check("sent_ns", p.sent_ns(), PING_SENT_NS)?;
    let payload = p.payload().ok_or("no payload")?;
    check("payload", payload.bytes(), &PAYLOAD[..])
}

/// Reads a Pong through the verifying `flatbuffers::root` and checks every
/// field.
pub fn read_pong(buf: &[u8]) -> Result<(), String> {
    if !fb::message_buffer_has_identifier(buf) {
        return Err("file identifier is not GIPC".into());
    }
    let m = fb::root_as_message(buf).map_err(|e| format!("verifier: {e}"))?;
    let p = m.body_as_pong().ok_or_else(|| format!("body is {:?}, not Pong", m.body_type()))?;
    check("seq", p.seq(), SEQ)?;
    check("ping_sent_ns", p.ping_sent_ns(), PING_SENT_NS)?;
    check("received_ns", p.received_ns(), PONG_RECEIVED_NS)?;
    let payload = p.payload().ok_or("no payload")?;
    check("payload", payload.bytes(), &PAYLOAD[..])
}

fn check<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}
