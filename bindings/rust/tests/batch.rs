//! Conn::send_batch and Conn::recv_batch: order across batches and a small
//! ring, a batch larger than the ring with a receiver thread, the timeout
//! prefix, buffer limits, errors, and a stream through the Go consumer.

mod common;

use std::time::Duration;

use common::{LONG, go_pong, pair, pair_with, pattern};
use goipc::{Conn, Error, Options};

/// Message i of a stream: 0 .. 300 bytes, its bytes from `pattern`.
fn stream(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| pattern((i * 37 + i / 3) % 301, i as u64)).collect()
}

fn small_ring_pair(ring_size: usize) -> (Conn, Conn) {
    let mut o = Options::default();
    o.ring_size = ring_size;
    o.max_message_size = 1024;
    pair_with(&o, &Options::default())
}

/// Receives `want.len()` messages with recv_batch (at most `max` per call,
/// into `cap` bytes) and checks them in order.
fn recv_all(c: &Conn, want: &[Vec<u8>], cap: usize, max: usize) {
    let mut buf = vec![0u8; cap];
    let mut sizes = vec![0usize; max];
    let mut i = 0;
    while i < want.len() {
        let n = c.recv_batch(&mut buf, &mut sizes, Some(LONG)).unwrap();
        assert!((1..=max).contains(&n) && i + n <= want.len(), "batch of {n} at message {i}");
        let mut off = 0;
        for &len in &sizes[..n] {
            assert_eq!(&buf[off..off + len], &want[i][..], "message {i}");
            off += len;
            i += 1;
        }
    }
}

#[test]
fn batches_keep_order_through_a_small_ring() {
    let (a, b) = small_ring_pair(16384);
    let msgs = stream(1000);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            for k in (1..=37).cycle() {
                if i == msgs.len() {
                    break;
                }
                let end = (i + k).min(msgs.len());
                assert_eq!(a.send_batch(&msgs[i..end], Some(LONG)).unwrap(), end - i);
                i = end;
            }
        });
        recv_all(&b, &msgs, 2048, 16);
    });
    // One batch of all 1000 (larger than the ring and than the stack
    // array), received into a buffer that holds one message at most.
    std::thread::scope(|s| {
        s.spawn(|| assert_eq!(a.send_batch(&msgs, None).unwrap(), msgs.len()));
        recv_all(&b, &msgs, 300, 64);
    });
    let mut sizes = [0usize; 4];
    assert_eq!(b.recv_batch(&mut [0u8; 64], &mut sizes, Some(Duration::ZERO)), Err(Error::Timeout));
}

#[test]
fn batch_larger_than_ring_with_plain_receiver() {
    let (a, b) = small_ring_pair(4096);
    let msgs: Vec<Vec<u8>> = (0..600).map(|i| pattern(64, i)).collect();
    let slices: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect(); // &[&[u8]] works too
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut buf = [0u8; 64];
            for (i, m) in msgs.iter().enumerate() {
                let n = b.recv_into_timeout(&mut buf, LONG).unwrap();
                assert_eq!(&buf[..n], &m[..], "message {i}");
            }
        });
        assert_eq!(a.send_batch(&slices, Some(LONG)).unwrap(), msgs.len());
    });
}

#[test]
fn timeout_zero_sends_a_prefix() {
    let (a, b) = small_ring_pair(4096);
    let msgs: Vec<Vec<u8>> = (0..200).map(|i| pattern(64, i)).collect();
    let mut buf = vec![0u8; 64 * 200];
    let mut sizes = vec![0usize; 200];
    let mut sent = 0;
    let mut received = 0;
    let mut calls = 0;
    while received < msgs.len() {
        if sent < msgs.len() {
            let n = a.send_batch(&msgs[sent..], Some(Duration::ZERO)).unwrap();
            assert!(n > 0, "an empty ring takes at least one message");
            sent += n;
            calls += 1;
        }
        // Exactly what was sent, and nothing more, is there.
        while received < sent {
            let n = b.recv_batch(&mut buf, &mut sizes, Some(Duration::ZERO)).unwrap();
            for (j, &len) in sizes[..n].iter().enumerate() {
                assert_eq!(&buf[j * 64..j * 64 + len], &msgs[received + j][..]);
            }
            received += n;
        }
        assert_eq!(received, sent);
        assert_eq!(b.recv_batch(&mut buf, &mut sizes, Some(Duration::ZERO)), Err(Error::Timeout));
    }
    assert!(calls > 1, "200 frames of 72 bytes do not fit a 4 KiB ring at once: the first batch was a prefix");
    // A full ring and a message that does not fit: Timeout, nothing sent.
    while a.send_timeout(&[0u8; 1000], Duration::ZERO).is_ok() {}
    assert_eq!(a.send_batch(&[&[0u8; 1000][..], b"y"], Some(Duration::from_millis(20))), Err(Error::Timeout));
}

#[test]
fn recv_batch_limits_and_too_small() {
    let (a, b) = pair();
    let msgs = stream(11);
    assert_eq!(a.send_batch(&msgs[1..], None).unwrap(), 10);
    let mut buf = vec![0u8; 4096];
    let mut sizes = [0usize; 8];
    // sizes.len() bounds the batch.
    assert_eq!(b.recv_batch(&mut buf, &mut sizes[..3], None).unwrap(), 3);
    assert_eq!(&buf[..sizes[0]], &msgs[1][..]);
    // A first message larger than buf: its size, and it stays.
    let need = msgs[4].len();
    assert_eq!(b.recv_batch(&mut buf[..need - 1], &mut sizes, None), Err(Error::BufferTooSmall { needed: need }));
    // The rest in one call, starting with it.
    assert_eq!(b.recv_batch(&mut buf, &mut sizes, None).unwrap(), 7);
    assert_eq!(&buf[..need], &msgs[4][..]);
    assert_eq!(sizes[6], msgs[10].len());
    // Empty messages fit an empty buffer.
    assert_eq!(a.send_batch(&[b"", b""], None).unwrap(), 2);
    assert_eq!(b.recv_batch(&mut [], &mut sizes, None).unwrap(), 2);
    assert_eq!(&sizes[..2], &[0, 0]);
}

#[test]
fn batch_errors() {
    let mut o = Options::default();
    o.max_message_size = 1024;
    let (a, b) = pair_with(&o, &Options::default());
    let big = vec![0u8; 1025];
    match a.send_batch(&[&b"ok"[..], &big, b"ok"], None) {
        Err(Error::MessageTooLarge(m)) => assert!(m.contains("message 1"), "{m}"),
        other => panic!("oversized message in a batch: {other:?}"),
    }
    assert_eq!(a.send_batch::<&[u8]>(&[], None), Ok(0));
    let mut buf = [0u8; 64];
    // None of that was sent.
    assert_eq!(b.recv_batch(&mut buf, &mut [0usize; 4], Some(Duration::ZERO)), Err(Error::Timeout));
    assert!(matches!(b.recv_batch(&mut buf, &mut [], None), Err(Error::InvalidArgument(_))));
    // A reservation (view) held by this thread: it would wait for itself.
    let r = a.reserve(8).unwrap();
    assert!(matches!(a.send_batch(&[b"x"], None), Err(Error::InvalidArgument(_))));
    r.commit(8).unwrap();
    let v = b.recv_view().unwrap();
    assert!(matches!(b.recv_batch(&mut buf, &mut [0usize; 4], None), Err(Error::InvalidArgument(_))));
    drop(v);
    // The peer closes: what it sent, then PeerClosed.
    assert_eq!(a.send_batch(&[b"1", b"2"], None).unwrap(), 2);
    a.close().unwrap();
    let mut sizes = [0usize; 4];
    assert_eq!(b.recv_batch(&mut buf, &mut sizes, Some(LONG)).unwrap(), 2);
    assert_eq!(&buf[..2], b"12");
    assert_eq!(b.recv_batch(&mut buf, &mut sizes, Some(LONG)), Err(Error::PeerClosed));
}

/// rust_batch_producer_go_consumer: the echoes of `goipc pong` come back
/// in order, received in batches.
#[test]
fn rust_batch_producer_go_consumer() {
    let pong = go_pong(&[]);
    let c = Conn::dial(&pong.path, Some(LONG)).unwrap();
    let msgs = stream(2000);
    std::thread::scope(|s| {
        s.spawn(|| {
            for chunk in msgs.chunks(100) {
                assert_eq!(c.send_batch(chunk, Some(LONG)).unwrap(), chunk.len());
            }
        });
        recv_all(&c, &msgs, 4096, 32);
    });
}
