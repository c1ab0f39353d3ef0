//! Ping/Pong: building and verifying against the cross-language wire
//! files, malformed input, and Messenger on a connection, including
//! against the C ABI's typed helpers (which verify with Go's
//! goipc/message).

mod common;

use std::time::Duration;

use common::{LONG, pair, pattern};
use goipc::message::{self, build_ping, build_pong, parse, parse_ping, parse_pong};
use goipc::{Error, Messenger, fb, sys};

// The fixed values of interop_tests/wire/README.md.
const SEQ: u64 = 42;
const PING_SENT_NS: i64 = 1234567890123456789;
const PONG_RECEIVED_NS: i64 = 1234567890987654321;
const PAYLOAD: [u8; 13] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

fn wire(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop_tests/wire/testdata").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn reads_every_languages_wire_files() {
    for lang in ["go", "python", "rust"] {
        let ping = wire(&format!("ping_{lang}.bin"));
        let p = parse_ping(&ping).unwrap_or_else(|e| panic!("ping_{lang}: {e}"));
        assert_eq!((p.seq(), p.sent_ns()), (SEQ, PING_SENT_NS), "ping_{lang}");
        assert_eq!(p.payload().unwrap().bytes(), PAYLOAD, "ping_{lang}");
        let pong = wire(&format!("pong_{lang}.bin"));
        let p = parse_pong(&pong).unwrap_or_else(|e| panic!("pong_{lang}: {e}"));
        assert_eq!((p.seq(), p.ping_sent_ns(), p.received_ns()), (SEQ, PING_SENT_NS, PONG_RECEIVED_NS));
        assert_eq!(p.payload().unwrap().bytes(), PAYLOAD, "pong_{lang}");
        assert_eq!(parse(&pong).unwrap().body_type(), fb::Body::Pong);
        assert_eq!(&pong[4..8], message::IDENTIFIER.as_bytes());
    }
}

/// Our builders write the same bytes as Go's hand-laid writers (and the
/// Python and Rust wire writers).
#[test]
fn builds_the_same_bytes_as_go() {
    let mut b = flatbuffers::FlatBufferBuilder::new();
    for lang in ["go", "python", "rust"] {
        assert_eq!(build_ping(&mut b, SEQ, PING_SENT_NS, &PAYLOAD), wire(&format!("ping_{lang}.bin")), "{lang}");
        assert_eq!(
            build_pong(&mut b, SEQ, PING_SENT_NS, PONG_RECEIVED_NS, &PAYLOAD),
            wire(&format!("pong_{lang}.bin")),
            "{lang}"
        );
    }
    // Sizes as documented in goipc.h: Ping 64 + ((n + 11) & !7), Pong 72 + ...
    for n in [1usize, 13, 64, 100, 1000] {
        let payload = pattern(n, 3);
        let padded = (n + 11) & !7;
        assert_eq!(build_ping(&mut b, 1, 2, &payload).len(), 64 + padded, "ping {n}");
        assert_eq!(build_pong(&mut b, 1, 2, 3, &payload).len(), 72 + padded, "pong {n}");
    }
}

#[test]
fn malformed_input_is_an_error_never_a_panic() {
    assert_eq!(parse(&[]).unwrap_err(), Error::NotAMessage { len: 0 });
    assert_eq!(parse(b"GIPC").unwrap_err(), Error::NotAMessage { len: 4 });
    let mut ping = wire("ping_go.bin");
    let mut other = ping.clone();
    other[4..8].copy_from_slice(b"XXXX");
    assert!(matches!(parse(&other), Err(Error::NotAMessage { .. })));
    // Root offset past the end.
    let mut bad = ping.clone();
    let n = bad.len() as u32;
    bad[..4].copy_from_slice(&n.to_le_bytes());
    assert!(matches!(parse(&bad), Err(Error::InvalidMessage(_))));
    // Wrong body.
    let e = parse_pong(&ping).unwrap_err();
    assert_eq!(e, Error::UnexpectedBody { expected: fb::Body::Pong, got: fb::Body::Ping });
    assert!(matches!(parse_ping(&wire("pong_go.bin")), Err(Error::UnexpectedBody { .. })));
    // Every truncation and every single-byte change: Ok or Err, no panic,
    // and an accepted buffer's fields all read.
    for len in 0..ping.len() {
        if let Ok(p) = parse_ping(&ping[..len]) {
            let _ = (p.seq(), p.sent_ns(), p.payload().map(|v| v.bytes().len()));
        }
    }
    for i in 0..ping.len() {
        for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            let old = ping[i];
            ping[i] = v;
            if let Ok(m) = parse(&ping) {
                if let Some(p) = m.body_as_ping() {
                    let _ = (p.seq(), p.sent_ns(), p.payload().map(|v| v.bytes().len()));
                }
            }
            ping[i] = old;
        }
    }
}

#[test]
fn monotonic_clock_moves_forward() {
    let a = message::monotonic_ns();
    let b = message::monotonic_ns();
    assert!(a > 0 && b >= a);
}

#[test]
fn messenger_ping_pong_in_process() {
    let (a, b) = pair();
    let mut ma = Messenger::new(&a);
    let mut mb = Messenger::new(&b);
    assert_eq!(ma.conn().as_raw(), a.as_raw());
    for seq in 0..100u64 {
        let payload = pattern((seq as usize * 13) % 300, seq);
        let before = message::monotonic_ns();
        ma.send_ping(seq, &payload).unwrap();
        let (ping_seq, sent, got) = {
            let p = mb.recv_ping().unwrap();
            (p.seq(), p.sent_ns(), p.payload().map(|v| v.bytes().to_vec()).unwrap_or_default())
        };
        assert_eq!((ping_seq, &got), (seq, &payload));
        assert!(sent >= before && sent <= message::monotonic_ns());
        mb.send_pong(ping_seq, sent, 0, &got).unwrap();
        let p = ma.recv_pong().unwrap();
        assert_eq!((p.seq(), p.ping_sent_ns()), (seq, sent));
        assert!(p.received_ns() >= sent);
        assert_eq!(p.payload().map(|v| v.bytes()).unwrap_or_default(), &payload[..]);
    }
    // The timeout variants.
    ma.send_ping_timeout(7, b"t", LONG).unwrap();
    assert_eq!(mb.recv_timeout(LONG).unwrap().body_type(), fb::Body::Ping);
    mb.send_pong_timeout(7, 1, 2, b"t", LONG).unwrap();
    let p = ma.recv_pong_timeout(LONG).unwrap();
    assert_eq!((p.seq(), p.ping_sent_ns(), p.received_ns()), (7, 1, 2));
    assert_eq!(ma.recv_pong_timeout(Duration::ZERO).unwrap_err(), Error::Timeout);
    assert_eq!(mb.recv_ping_timeout(Duration::from_millis(10)).unwrap_err(), Error::Timeout);
    assert_eq!(mb.recv_timeout(Duration::ZERO).unwrap_err(), Error::Timeout);
}

#[test]
fn messenger_reports_bad_messages_and_stays_usable() {
    let (a, b) = pair();
    let mut ma = Messenger::new(&a);
    let mut mb = Messenger::new(&b);
    a.send(b"raw bytes, not a message").unwrap();
    assert_eq!(mb.recv_ping().unwrap_err(), Error::NotAMessage { len: 24 });
    let mut bad = wire("ping_go.bin");
    let n = bad.len() as u32;
    bad[..4].copy_from_slice(&n.to_le_bytes());
    a.send(&bad).unwrap();
    assert!(matches!(mb.recv(), Err(Error::InvalidMessage(_))));
    ma.send_pong(1, 2, 3, b"").unwrap();
    assert_eq!(mb.recv_ping().unwrap_err(), Error::UnexpectedBody { expected: fb::Body::Ping, got: fb::Body::Pong });
    // Still usable.
    ma.send_ping(5, b"ok").unwrap();
    assert_eq!(mb.recv_ping().unwrap().seq(), 5);
    // A large payload grows the receive buffer.
    let big = pattern(500_000, 1);
    ma.send_ping(6, &big).unwrap();
    assert_eq!(mb.recv_ping().unwrap().payload().unwrap().bytes(), &big[..]);
    // A payload that makes the message too large is refused, nothing sent.
    let max = a.max_message_size().unwrap();
    assert!(matches!(ma.send_ping(8, &vec![0u8; max]), Err(Error::MessageTooLarge(_))));
    assert_eq!(mb.recv_timeout(Duration::ZERO).unwrap_err(), Error::Timeout);
}

/// A message from a newer peer (a body type this schema does not know) is
/// skipped by recv_ping / recv_pong and returned as is by recv.
#[test]
fn unknown_body_from_a_newer_peer_is_skipped() {
    let mut b = flatbuffers::FlatBufferBuilder::new();
    let payload = b.create_vector(&[1u8, 2, 3]);
    let mut p = fb::PingBuilder::new(&mut b);
    p.add_seq(99);
    p.add_payload(payload);
    let body = p.finish().as_union_value();
    let mut m = fb::MessageBuilder::new(&mut b);
    m.add_body(body);
    m.add_body_type(fb::Body(3)); // "Shutdown" in the test-only v2 schema
    let root = m.finish();
    fb::finish_message_buffer(&mut b, root);
    let future = b.finished_data().to_vec();

    let (a, c) = pair();
    let mut ma = Messenger::new(&a);
    let mut mc = Messenger::new(&c);
    a.send(&future).unwrap();
    assert_eq!(mc.recv().unwrap().body_type(), fb::Body(3));
    a.send(&future).unwrap();
    a.send(&future).unwrap();
    ma.send_ping(100, b"after").unwrap();
    assert_eq!(mc.recv_ping_timeout(LONG).unwrap().seq(), 100);
    a.send(&future).unwrap();
    ma.send_pong(101, 0, 0, b"").unwrap();
    assert_eq!(mc.recv_pong().unwrap().seq(), 101);
    // Skipping stays within the timeout.
    a.send(&future).unwrap();
    assert_eq!(mc.recv_ping_timeout(Duration::from_millis(20)).unwrap_err(), Error::Timeout);
}

/// test_e2e_ping_rust_c_typed_helpers: our Ping is read by the C ABI's
/// goipc_recv_ping (Go's verifier), its goipc_send_pong by our Messenger,
/// and the other way round.
#[test]
fn rust_messages_against_c_typed_helpers() {
    let (a, b) = pair();
    let mut ma = Messenger::new(&a);
    let payload = pattern(64, 9);

    ma.send_ping(11, &payload).unwrap();
    let (mut seq, mut sent, mut len) = (0u64, 0i64, 0usize);
    let mut buf = [0u8; 128];
    // SAFETY: live handle, valid out-parameters and buffer.
    let st = unsafe {
        sys::goipc_recv_ping(b.as_raw(), &mut seq, &mut sent, buf.as_mut_ptr().cast(), buf.len(), &mut len, 10_000)
    };
    assert_eq!(st, sys::GOIPC_OK, "{}", goipc::strerror(st));
    assert_eq!((seq, &buf[..len]), (11, &payload[..]));
    assert!(sent > 0 && sent <= message::monotonic_ns());

    // SAFETY: live handle, payload valid for its length.
    let st = unsafe { sys::goipc_send_pong(b.as_raw(), seq, sent, 0, buf.as_ptr().cast(), len, 10_000) };
    assert_eq!(st, sys::GOIPC_OK);
    let p = ma.recv_pong().unwrap();
    assert_eq!((p.seq(), p.ping_sent_ns()), (11, sent));
    assert!(p.received_ns() >= sent);
    assert_eq!(p.payload().unwrap().bytes(), &payload[..]);

    // C Ping -> Rust; Rust Pong -> C.
    // SAFETY: as above.
    let st = unsafe { sys::goipc_send_ping(b.as_raw(), 12, payload.as_ptr().cast(), payload.len(), 10_000) };
    assert_eq!(st, sys::GOIPC_OK);
    let (seq, sent) = {
        let p = ma.recv_ping().unwrap();
        assert_eq!(p.payload().unwrap().bytes(), &payload[..]);
        (p.seq(), p.sent_ns())
    };
    assert_eq!(seq, 12);
    ma.send_pong(seq, sent, 0, &payload).unwrap();
    let mut seq2 = 0u64;
    // SAFETY: as above.
    let st =
        unsafe { sys::goipc_recv_pong(b.as_raw(), &mut seq2, buf.as_mut_ptr().cast(), buf.len(), &mut len, 10_000) };
    assert_eq!(st, sys::GOIPC_OK);
    assert_eq!((seq2, &buf[..len]), (12, &payload[..]));

    // The C helper rejects our raw bytes as PROTOCOL, for that message only.
    a.send(b"not a message at all").unwrap();
    // SAFETY: as above.
    let st =
        unsafe { sys::goipc_recv_pong(b.as_raw(), &mut seq2, buf.as_mut_ptr().cast(), buf.len(), &mut len, 10_000) };
    assert_eq!(st, sys::GOIPC_ERR_PROTOCOL);
}
