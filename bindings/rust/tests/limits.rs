//! Listener limits (Error::Limit) and the connection's notification
//! descriptor (Conn::notify_fd).

mod common;

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use common::{LONG, pair, pair_with, sock_path};
use goipc::{Conn, Error, Limit, Listener, Options, sys};

/// max_conns = 1: the second dial gets Error::Limit naming MaxConns, the
/// listener's accept reports the refused client and stays usable, and the
/// first connection keeps working.
#[test]
fn max_conns_refuses_the_second_client() {
    let path = sock_path("limit");
    let mut o = Options::default();
    o.max_conns = Limit::AtMost(1);
    let l = Listener::bind_with(&path, &o).unwrap();
    let first = Conn::dial(&path, Some(LONG)).unwrap();
    let server = l.accept_timeout(LONG).unwrap();
    let e = Conn::dial(&path, Some(LONG)).unwrap_err();
    match &e {
        Error::Limit(m) => assert!(m.contains("MaxConns"), "{m}"),
        other => panic!("second dial: {other:?}"),
    }
    assert_eq!(e.status(), sys::GOIPC_ERR_LIMIT);
    match l.accept_timeout(LONG) {
        Err(Error::Limit(m)) => assert!(m.contains("MaxConns"), "{m}"),
        other => panic!("accept of the refused client: {other:?}"),
    }
    first.send(b"still here").unwrap();
    assert_eq!(server.recv_timeout(LONG).unwrap(), b"still here");
    server.send(b"yes").unwrap();
    assert_eq!(first.recv_timeout(LONG).unwrap(), b"yes");
}

#[test]
fn max_segment_size_refuses_a_large_ring() {
    let mut lo = Options::default();
    lo.max_segment_size = Limit::AtMost(1 << 16);
    let path = sock_path("seg");
    let l = Listener::bind_with(&path, &lo).unwrap();
    let mut d = Options::default();
    d.ring_size = 1 << 20;
    d.max_message_size = 4096;
    match Conn::dial_with(&path, &d, Some(LONG)) {
        Err(Error::Limit(m)) => assert!(m.contains("MaxSegmentSize"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(l.accept_timeout(LONG), Err(Error::Limit(_))));
}

#[test]
fn unlimited_listener_serves() {
    let mut lo = Options::default();
    lo.max_conns = Limit::Unlimited;
    lo.max_segment_size = Limit::Unlimited;
    lo.max_mapped_bytes = Limit::Unlimited;
    lo.max_pending_handshakes = Limit::Unlimited;
    let (a, b) = pair_with(&Options::default(), &lo);
    a.send(b"x").unwrap();
    assert_eq!(b.recv_timeout(LONG).unwrap(), b"x");
}

#[test]
fn bad_limit_is_refused_before_the_library() {
    let mut o = Options::default();
    o.max_pending_handshakes = Limit::AtMost(0);
    let path = sock_path("badlimit");
    match Listener::bind_with(&path, &o) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("max_pending_handshakes"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(!path.exists());
}

/// poll(2) on one descriptor with a timeout in ms: true if readable.
fn readable(fd: BorrowedFd<'_>, ms: i32) -> bool {
    common::poll_readable(fd.as_raw_fd(), ms)
}

#[test]
fn notify_fd_follows_messages_space_and_peer_close() {
    let mut o = Options::default();
    o.ring_size = 4096;
    o.max_message_size = 512;
    let (a, b) = pair_with(&o, &Options::default());
    let fd = b.notify_fd().unwrap();
    assert_eq!(b.notify_fd().unwrap().as_raw_fd(), fd.as_raw_fd(), "the same descriptor every time");
    assert_eq!(b.recv_timeout(Duration::ZERO).unwrap_err(), Error::Timeout); // arms it
    assert!(!readable(fd, 0));
    a.send(b"ping").unwrap();
    assert!(readable(fd, 10_000));
    assert_eq!(b.recv_timeout(Duration::ZERO).unwrap(), b"ping");
    // (Not asserted: quiet again. Readiness may be spurious, and the
    // library's watcher can make it so just after the message was taken.)

    // Ring space: fill a's ring, then let b take one message.
    let afd = a.notify_fd().unwrap();
    let mut sent = 0;
    while a.send_timeout(&[7u8; 200], Duration::ZERO).is_ok() {
        sent += 1;
    }
    assert!(sent > 0);
    assert!(!readable(afd, 0));
    b.recv_timeout(LONG).unwrap();
    assert!(readable(afd, 10_000));
    a.send_timeout(&[7u8; 200], Duration::ZERO).unwrap();

    // Peer close: `sent` messages are queued for b (one taken, one more
    // sent); b takes one more, then a goes away.
    assert!(b.recv_timeout(Duration::ZERO).is_ok());
    drop(a);
    assert!(readable(fd, 10_000));
    let mut got = 0;
    loop {
        match b.recv_timeout(Duration::ZERO) {
            Ok(_) => got += 1,
            Err(Error::PeerClosed) => break,
            // Readiness may have been spurious (left from an earlier
            // message): wait for the next event, as an event loop does.
            Err(Error::Timeout) => assert!(readable(fd, 10_000), "the peer's close never made the descriptor readable"),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(got, sent - 1, "every message sent before the close is delivered first");
}

#[test]
fn notify_fd_of_a_pair_differs() {
    let (a, b) = pair();
    assert_ne!(a.notify_fd().unwrap().as_raw_fd(), b.notify_fd().unwrap().as_raw_fd());
}

/// Sends 200-byte messages with a zero timeout until `conn`'s ring is
/// full; returns how many went.
fn fill(conn: &Conn) -> usize {
    let mut n = 0;
    while conn.send_timeout(&[7u8; 200], Duration::ZERO).is_ok() {
        n += 1;
    }
    n
}

/// `free_space_in_pieces` on the receiver (here the accepted side): after
/// one receive from a full ring the sender still has no room (a 208-byte
/// frame of a 256-byte piece is held back); once the receiver has read
/// everything, all of it is back. Without it one receive frees room.
#[test]
fn free_space_in_pieces_returns_space_once_all_is_read() {
    let mut dial_opts = Options::default();
    dial_opts.ring_size = 4096;
    dial_opts.max_message_size = 512;
    let mut listen_opts = Options::default();
    listen_opts.free_space_in_pieces = true;
    let (a, b) = pair_with(&dial_opts, &listen_opts);
    let sent = fill(&a);
    assert!(sent > 2, "{sent} messages filled the ring");
    assert_eq!(b.recv_timeout(LONG).unwrap().len(), 200);
    assert_eq!(a.send_timeout(&[7u8; 200], Duration::ZERO).unwrap_err(), Error::Timeout);
    let mut got = 1;
    while b.recv_timeout(Duration::ZERO).is_ok() {
        got += 1;
    }
    assert_eq!(got, sent);
    assert_eq!(fill(&a), sent);

    // The default: one receive frees room at once.
    let (a, b) = pair_with(&dial_opts, &Options::default());
    assert!(fill(&a) > 2);
    b.recv_timeout(LONG).unwrap();
    a.send_timeout(&[7u8; 200], Duration::ZERO).unwrap();
}
