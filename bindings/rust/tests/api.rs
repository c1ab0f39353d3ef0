//! The safe API in one process: every public method of Listener, Conn,
//! RecvView and Reservation, bad input, timeouts, peer close, threads.

mod common;

use std::os::unix::net::UnixListener;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::{LONG, pair, pair_with, pattern, sock_path};
use goipc::{Conn, Error, Listener, Options, Spin, sys};

const ENOENT: i32 = 2;

// ---- Listener ---------------------------------------------------------

#[test]
fn bind_accept_dial_close() {
    let path = sock_path("basic");
    let l = Listener::bind(&path).unwrap();
    assert!(path.exists(), "bind creates the socket file");
    assert_ne!(l.as_raw(), 0);
    std::thread::scope(|s| {
        let t = s.spawn(|| l.accept().unwrap());
        let d = Conn::dial(&path, None).unwrap();
        let a = t.join().unwrap();
        assert_ne!(d.as_raw(), a.as_raw());
        d.send(b"x").unwrap();
        assert_eq!(a.recv().unwrap(), b"x");
        d.close().unwrap();
        a.close().unwrap();
    });
    l.close().unwrap();
    assert!(!path.exists(), "close removes the socket file");
    // Nothing listens any more: ENOENT.
    match Conn::dial(&path, Some(LONG)) {
        Err(e @ Error::System { errno: ENOENT, .. }) => assert_eq!(e.errno(), Some(ENOENT)),
        other => panic!("dial after close: {other:?}"),
    }
}

#[test]
fn drop_closes_listener() {
    let path = sock_path("droplistener");
    drop(Listener::bind(&path).unwrap());
    assert!(!path.exists());
    // The path is free again.
    let _l = Listener::bind(&path).unwrap();
}

#[test]
fn bind_bad_input() {
    assert!(matches!(Listener::bind(""), Err(Error::InvalidArgument(_))));
    let e = Listener::bind("/tmp/a\0b").unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(ref m) if m.contains("NUL")), "{e:?}");
    // Longer than a socket path can be (107 bytes).
    let long = format!("/tmp/{}", "x".repeat(103)); // 108 bytes
    assert!(matches!(Conn::dial(&long, Some(LONG)), Err(Error::InvalidArgument(_))));
    let e = Listener::bind(&long).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    // 107 bytes is the longest that works.
    let longest = format!("/tmp/goipc-rs-{}-{}", std::process::id(), "y".repeat(200))[..107].to_owned();
    let l = Listener::bind(&longest).unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| l.accept_timeout(LONG).unwrap());
        Conn::dial(&longest, Some(LONG)).unwrap();
        t.join().unwrap();
    });
    // A directory that does not exist.
    let e = Listener::bind("/nonexistent-goipc-dir/x.sock").unwrap_err();
    assert!(matches!(e, Error::System { errno: ENOENT, .. }), "{e:?}");
}

#[test]
fn bind_address_in_use() {
    let path = sock_path("inuse");
    let _l = Listener::bind(&path).unwrap();
    let e = Listener::bind(&path).unwrap_err();
    assert!(matches!(e, Error::AddressInUse(_)), "{e:?}");
    assert_eq!(e.status(), sys::GOIPC_ERR_ADDRESS_IN_USE);
    // A path that exists and is not a socket.
    let file = sock_path("regularfile");
    std::fs::write(&file, b"not a socket").unwrap();
    let e = Listener::bind(&file).unwrap_err();
    std::fs::remove_file(&file).unwrap();
    assert!(matches!(e, Error::AddressInUse(_)), "{e:?}");
}

/// A refused bind probes the live listener with a connection; that
/// listener then sees one failed client, and serves real ones afterwards.
#[test]
fn refused_bind_leaves_the_live_listener_serving() {
    let path = sock_path("probe");
    let l = Listener::bind(&path).unwrap();
    assert!(matches!(Listener::bind(&path), Err(Error::AddressInUse(_))));
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            for _ in 0..3 {
                match l.accept_timeout(LONG) {
                    Ok(c) => return c,
                    Err(Error::PeerClosed | Error::Protocol(_)) => continue, // the probe
                    Err(e) => panic!("{e:?}"),
                }
            }
            panic!("no client accepted")
        });
        let d = Conn::dial(&path, Some(LONG)).unwrap();
        let a = t.join().unwrap();
        d.send(b"served").unwrap();
        assert_eq!(a.recv_timeout(LONG).unwrap(), b"served");
    });
}

#[test]
fn bind_with_bad_options() {
    let mut o = Options::default();
    o.max_message_size = usize::MAX;
    let e = Listener::bind_with(sock_path("badopts"), &o).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let mut o = Options::default();
    o.ring_size = 1000; // not a power of two
    let e = Conn::dial_with(sock_path("nolistener"), &o, Some(LONG)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

#[test]
fn accept_timeout() {
    let l = Listener::bind(sock_path("accepttimeout")).unwrap();
    assert_eq!(l.accept_timeout(Duration::ZERO).unwrap_err(), Error::Timeout);
    let t0 = Instant::now();
    assert_eq!(l.accept_timeout(Duration::from_millis(50)).unwrap_err(), Error::Timeout);
    let dt = t0.elapsed();
    assert!(dt >= Duration::from_millis(50) && dt < Duration::from_secs(5), "{dt:?}");
}

#[test]
fn many_threads_accept_on_one_listener() {
    let path = sock_path("manyaccept");
    let l = Listener::bind(&path).unwrap();
    const N: usize = 4;
    std::thread::scope(|s| {
        let acceptors: Vec<_> = (0..N)
            .map(|_| {
                s.spawn(|| {
                    let c = l.accept_timeout(LONG).unwrap();
                    let m = c.recv_timeout(LONG).unwrap();
                    c.send(&m).unwrap();
                })
            })
            .collect();
        let dialers: Vec<_> = (0..N)
            .map(|i| {
                let path = &path;
                s.spawn(move || {
                    let c = Conn::dial(path, Some(LONG)).unwrap();
                    let msg = pattern(100, i as u64);
                    c.send(&msg).unwrap();
                    assert_eq!(c.recv_timeout(LONG).unwrap(), msg);
                })
            })
            .collect();
        for t in acceptors.into_iter().chain(dialers) {
            t.join().unwrap();
        }
    });
}

// ---- Dial -------------------------------------------------------------

#[test]
fn dial_bad_input() {
    assert!(matches!(Conn::dial("", Some(LONG)), Err(Error::InvalidArgument(_))));
    assert!(matches!(Conn::dial("/tmp/a\0b", Some(LONG)), Err(Error::InvalidArgument(_))));
    let e = Conn::dial(sock_path("nothing"), Some(LONG)).unwrap_err();
    assert!(matches!(e, Error::System { errno: ENOENT, .. }), "{e:?}");
    assert!(e.to_string().starts_with("goipc: "), "{e}");
}

#[test]
fn dial_zero_timeout_times_out() {
    let path = sock_path("dialzero");
    let _l = Listener::bind(&path).unwrap();
    assert_eq!(Conn::dial(&path, Some(Duration::ZERO)).unwrap_err(), Error::Timeout);
}

/// The listener completes handshakes concurrently, before anyone calls
/// accept: the dial succeeds at once, and accept hands out the queued
/// connection later.
#[test]
fn dial_completes_before_accept() {
    let path = sock_path("noaccept");
    let l = Listener::bind(&path).unwrap();
    let d = Conn::dial(&path, Some(LONG)).unwrap();
    d.send(b"queued").unwrap();
    let a = l.accept_timeout(Duration::ZERO).unwrap();
    assert_eq!(a.recv_timeout(LONG).unwrap(), b"queued");
    assert_eq!(l.accept_timeout(Duration::ZERO).unwrap_err(), Error::Timeout);
}

#[test]
fn dial_not_a_goipc_listener() {
    // A plain Unix socket that answers the handshake with garbage.
    let path = sock_path("notgoipc");
    let ul = UnixListener::bind(&path).unwrap();
    let t = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = ul.accept().unwrap();
        let mut buf = [0u8; 256];
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nthis is not goipc at all, padding padding padding");
        let _ = s.read(&mut buf);
    });
    let e = Conn::dial(&path, Some(LONG)).unwrap_err();
    t.join().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
}

#[test]
fn listener_counts_the_failures_accept_cannot_report() {
    // 64 failed handshakes wait for accept; the others are counted, so
    // that every refused client is accounted for.
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let path = sock_path("dropped");
    let l = Listener::bind(&path).unwrap();
    assert_eq!(l.dropped_errors().unwrap(), 0);
    const EXTRA: u64 = 3;
    for _ in 0..64 + EXTRA {
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(&[0u8; 32]).unwrap(); // a hello of the right size, a bad magic
        s.set_read_timeout(Some(LONG)).unwrap();
        let _ = s.read(&mut [0u8; 16]); // the refusal: the handshake has failed
    }
    // A client has its refusal just before its failure is queued or
    // counted: wait for the count.
    let deadline = Instant::now() + LONG;
    while l.dropped_errors().unwrap() != EXTRA && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(l.dropped_errors().unwrap(), EXTRA);
    for i in 0..64 {
        let e = l.accept_timeout(Duration::ZERO).unwrap_err();
        assert!(matches!(e, Error::Protocol(_)), "accept {i}: {e:?}");
    }
    assert_eq!(l.accept_timeout(Duration::ZERO).unwrap_err(), Error::Timeout);
}

#[test]
fn listener_refuses_larger_max_message() {
    let mut lo = Options::default();
    lo.max_message_size = 4096;
    let path = sock_path("refuse");
    let l = Listener::bind_with(&path, &lo).unwrap();
    std::thread::scope(|s| {
        let acc = s.spawn(|| l.accept_timeout(LONG));
        let mut d = Options::default();
        d.max_message_size = 8192;
        let e = Conn::dial_with(&path, &d, Some(LONG)).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        // The listener saw a failed handshake (not a closed listener).
        let a = acc.join().unwrap();
        assert!(a.is_err());
        assert_ne!(a.unwrap_err(), Error::Closed);
    });
    // And accepts a dialer within its limit.
    std::thread::scope(|s| {
        let acc = s.spawn(|| l.accept_timeout(LONG).unwrap());
        let mut d = Options::default();
        d.max_message_size = 4096;
        let c = Conn::dial_with(&path, &d, Some(LONG)).unwrap();
        assert_eq!(c.max_message_size().unwrap(), 4096);
        assert_eq!(acc.join().unwrap().max_message_size().unwrap(), 4096);
    });
}

#[test]
fn options_every_field() {
    let mut o = Options::default();
    o.ring_size = 1 << 16;
    o.max_message_size = 1000;
    o.spin = Spin::For(Duration::from_micros(5));
    o.handshake_timeout = Some(Duration::from_secs(2));
    o.allow_any_uid = true;
    let (a, b) = pair_with(&o, &o);
    assert_eq!(a.max_message_size().unwrap(), 1000);
    assert_eq!(b.max_message_size().unwrap(), 1000);
    for spin in [Spin::Default, Spin::SleepAtOnce, Spin::Forever, Spin::For(Duration::ZERO)] {
        let mut o = Options::default();
        o.spin = spin;
        let (a, b) = pair_with(&o, &o);
        a.send(b"spin").unwrap();
        assert_eq!(b.recv_timeout(LONG).unwrap(), b"spin");
    }
}

#[test]
fn protocol_version_mismatch() {
    let mut lo = Options::default();
    lo.protocol_version_override = 99;
    let path = sock_path("proto");
    let l = Listener::bind_with(&path, &lo).unwrap();
    std::thread::scope(|s| {
        let acc = s.spawn(|| l.accept_timeout(LONG));
        let e = Conn::dial(&path, Some(LONG)).unwrap_err();
        assert!(matches!(e, Error::Protocol(_)), "{e:?}");
        assert!(acc.join().unwrap().is_err());
    });
}

// ---- Send and receive -------------------------------------------------

#[test]
fn send_recv_vec() {
    let (a, b) = pair();
    let max = a.max_message_size().unwrap();
    assert_eq!(max, 1 << 20, "default maximum message size");
    for (i, len) in [0, 1, 7, 8, 63, 64, 65, 1000, 4096, 65536, max].into_iter().enumerate() {
        let msg = pattern(len, i as u64);
        a.send(&msg).unwrap();
        assert_eq!(b.recv().unwrap(), msg, "len {len}");
        b.send_timeout(&msg, LONG).unwrap();
        assert_eq!(a.recv_timeout(LONG).unwrap(), msg, "len {len}");
    }
}

#[test]
fn recv_into_and_buffer_too_small() {
    let (a, b) = pair();
    let msg = pattern(100, 1);
    a.send(&msg).unwrap();
    let mut small = [0u8; 10];
    assert_eq!(b.recv_into(&mut small).unwrap_err(), Error::BufferTooSmall { needed: 100 });
    // Still queued: a zero-length buffer reports the size again.
    assert_eq!(b.recv_into_timeout(&mut [], Duration::ZERO).unwrap_err(), Error::BufferTooSmall { needed: 100 });
    let mut buf = [0u8; 200];
    let n = b.recv_into(&mut buf).unwrap();
    assert_eq!(&buf[..n], &msg[..]);
    // An empty message fits an empty buffer.
    a.send(&[]).unwrap();
    assert_eq!(b.recv_into_timeout(&mut [], LONG).unwrap(), 0);
}

#[test]
fn message_too_large_leaves_connection_usable() {
    let mut o = Options::default();
    o.max_message_size = 4096;
    let (a, b) = pair_with(&o, &o);
    let e = a.send(&vec![0u8; 4097]).unwrap_err();
    assert!(matches!(e, Error::MessageTooLarge(_)), "{e:?}");
    assert_eq!(e.status(), sys::GOIPC_ERR_MESSAGE_TOO_LARGE);
    assert!(matches!(a.reserve(4097), Err(Error::MessageTooLarge(_))));
    a.send(&vec![5u8; 4096]).unwrap();
    assert_eq!(b.recv().unwrap(), vec![5u8; 4096]);
}

#[test]
fn recv_view_zero_copy() {
    let (a, b) = pair();
    a.send(b"first").unwrap();
    a.send(b"second").unwrap();
    a.send(b"").unwrap();
    {
        let v = b.recv_view().unwrap();
        assert_eq!(&*v, b"first");
        assert_eq!(v.as_ref(), b"first");
        // The same thread may not receive while holding the view.
        assert!(matches!(b.recv_timeout(Duration::ZERO), Err(Error::InvalidArgument(_))));
        assert!(matches!(b.recv_into(&mut [0u8; 8]), Err(Error::InvalidArgument(_))));
        // Dropped here: released.
    }
    let v = b.recv_view_timeout(LONG).unwrap();
    assert_eq!(&*v, b"second");
    v.release().unwrap();
    let v = b.recv_view().unwrap();
    assert!(v.is_empty());
    drop(v);
    assert_eq!(b.recv_view_timeout(Duration::ZERO).unwrap_err(), Error::Timeout);
}

#[test]
fn view_released_on_another_thread() {
    let (a, b) = pair();
    a.send(b"moved").unwrap();
    let v = b.recv_view().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            assert_eq!(&*v, b"moved");
            v.release().unwrap();
        });
    });
    a.send(b"next").unwrap();
    assert_eq!(b.recv_timeout(LONG).unwrap(), b"next");
}

#[test]
fn view_holds_other_threads_receives() {
    // Another thread's receive waits for the view, then gets the next
    // message: the view serialises the receive side.
    let (a, b) = pair();
    a.send(b"one").unwrap();
    a.send(b"two").unwrap();
    let v = b.recv_view().unwrap();
    std::thread::scope(|s| {
        let t = s.spawn(|| b.recv_timeout(LONG).unwrap());
        assert_eq!(&*v, b"one");
        drop(v);
        assert_eq!(t.join().unwrap(), b"two");
    });
}

#[test]
fn reserve_commit_abort() {
    let (a, b) = pair();
    let mut r = a.reserve(64).unwrap();
    assert_eq!(r.len(), 64);
    assert_eq!(r.as_ptr() as usize % 8, 0, "8-byte aligned");
    r[..5].copy_from_slice(b"hello");
    // The same thread may not send while holding the reservation.
    assert!(matches!(a.send_timeout(b"x", Duration::ZERO), Err(Error::InvalidArgument(_))));
    r.commit(5).unwrap();
    assert_eq!(b.recv_timeout(LONG).unwrap(), b"hello");

    // Dropping a reservation sends nothing.
    let mut r = a.reserve_timeout(16, LONG).unwrap();
    r.fill(9);
    drop(r);
    assert_eq!(b.recv_timeout(Duration::ZERO).unwrap_err(), Error::Timeout);
    // Nor does abort.
    a.reserve(16).unwrap().abort().unwrap();
    assert_eq!(b.recv_timeout(Duration::ZERO).unwrap_err(), Error::Timeout);
    // Committing more than reserved: refused, nothing sent.
    let e = a.reserve(8).unwrap().commit(9).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert_eq!(b.recv_timeout(Duration::ZERO).unwrap_err(), Error::Timeout);
    // A zero-length reservation is a valid empty message.
    a.reserve(0).unwrap().commit(0).unwrap();
    assert_eq!(b.recv_timeout(LONG).unwrap(), b"");
    // Usable afterwards.
    a.send(b"after").unwrap();
    assert_eq!(b.recv_timeout(LONG).unwrap(), b"after");
}

#[test]
fn reservation_committed_on_another_thread() {
    let (a, b) = pair();
    let mut r = a.reserve(3).unwrap();
    r.copy_from_slice(b"abc");
    std::thread::scope(|s| {
        s.spawn(move || r.commit(3).unwrap());
    });
    assert_eq!(b.recv_timeout(LONG).unwrap(), b"abc");
}

// ---- Timeouts and backpressure ----------------------------------------

#[test]
fn recv_timeouts() {
    let (_a, b) = pair();
    let mut buf = [0u8; 16];
    assert_eq!(b.recv_timeout(Duration::ZERO).unwrap_err(), Error::Timeout);
    assert_eq!(b.recv_into_timeout(&mut buf, Duration::ZERO).unwrap_err(), Error::Timeout);
    assert_eq!(b.recv_view_timeout(Duration::ZERO).unwrap_err(), Error::Timeout);
    for d in [Duration::from_millis(30), Duration::from_micros(1500)] {
        let t0 = Instant::now();
        assert_eq!(b.recv_into_timeout(&mut buf, d).unwrap_err(), Error::Timeout);
        let dt = t0.elapsed();
        // Rounded up to whole milliseconds, never down to "do not wait".
        assert!(dt >= d && dt < Duration::from_secs(5), "waited {dt:?} for {d:?}");
    }
}

#[test]
fn send_backpressure_and_timeout() {
    let mut o = Options::default();
    o.ring_size = 4096;
    o.max_message_size = 512;
    let (a, b) = pair_with(&o, &o);
    let msg = [7u8; 512];
    let mut sent = 0;
    loop {
        match a.send_timeout(&msg, Duration::ZERO) {
            Ok(()) => sent += 1,
            Err(Error::Timeout) => break,
            Err(e) => panic!("{e:?}"),
        }
        assert!(sent < 100, "a 4 KiB ring never filled");
    }
    assert!(sent >= 4, "only {sent} messages fit a 4 KiB ring");
    let t0 = Instant::now();
    assert_eq!(a.send_timeout(&msg, Duration::from_millis(30)).unwrap_err(), Error::Timeout);
    assert!(t0.elapsed() >= Duration::from_millis(30));
    assert!(matches!(a.reserve_timeout(512, Duration::ZERO), Err(Error::Timeout)));
    // A blocked send completes once the receiver makes room; nothing lost.
    std::thread::scope(|s| {
        let t = s.spawn(|| a.send(&[8u8; 512]));
        for _ in 0..sent {
            assert_eq!(b.recv_timeout(LONG).unwrap(), msg);
        }
        t.join().unwrap().unwrap();
        assert_eq!(b.recv_timeout(LONG).unwrap(), [8u8; 512]);
    });
}

// ---- Peer closed ------------------------------------------------------

#[test]
fn peer_close_delivers_then_reports() {
    let (a, b) = pair();
    for i in 0..3u8 {
        a.send(&[i; 10]).unwrap();
    }
    drop(a);
    for i in 0..3u8 {
        assert_eq!(b.recv_timeout(LONG).unwrap(), [i; 10], "messages sent before the close arrive");
    }
    assert_eq!(b.recv_timeout(LONG).unwrap_err(), Error::PeerClosed);
    assert_eq!(b.recv_into(&mut [0u8; 4]).unwrap_err(), Error::PeerClosed);
    assert_eq!(b.recv_view().unwrap_err(), Error::PeerClosed);
    assert_eq!(b.send(b"x").unwrap_err(), Error::PeerClosed);
    assert!(matches!(b.reserve(8), Err(Error::PeerClosed)));
    assert_eq!(Error::PeerClosed.status(), sys::GOIPC_ERR_PEER_CLOSED);
}

#[test]
fn blocked_recv_wakes_on_peer_close() {
    let (a, b) = pair();
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            barrier.wait();
            let r = b.recv();
            (r, Instant::now())
        });
        barrier.wait();
        let t0 = Instant::now();
        a.close().unwrap();
        let (r, t1) = t.join().unwrap();
        assert_eq!(r.unwrap_err(), Error::PeerClosed);
        assert!(t1.duration_since(t0) < Duration::from_secs(1));
    });
}

// ---- Threads ----------------------------------------------------------

/// One sender thread and one receiver thread on each side of a pair, each
/// direction checked in order.
#[test]
fn sender_and_receiver_threads_share_a_conn() {
    const N: u64 = 20_000;
    let (a, b) = pair();
    std::thread::scope(|s| {
        // b echoes with a receiver thread feeding a sender thread.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(64);
        let b = &b;
        s.spawn(move || {
            for _ in 0..N {
                tx.send(b.recv_timeout(LONG).unwrap()).unwrap();
            }
        });
        s.spawn(move || {
            for m in rx {
                b.send_timeout(&m, LONG).unwrap();
            }
        });
        let a = &a;
        let sender = s.spawn(move || {
            for i in 0..N {
                a.send_timeout(&i.to_le_bytes(), LONG).unwrap();
            }
        });
        let mut buf = [0u8; 8];
        for i in 0..N {
            let n = a.recv_into_timeout(&mut buf, LONG).unwrap();
            assert_eq!(n, 8);
            assert_eq!(u64::from_le_bytes(buf), i, "in order");
        }
        sender.join().unwrap();
    });
}

/// Several receiver threads on one connection: every message is delivered
/// exactly once.
#[test]
fn concurrent_receivers_get_each_message_once() {
    const N: u64 = 4000;
    const T: usize = 4;
    let (a, b) = pair();
    let got: Vec<Vec<u64>> = std::thread::scope(|s| {
        let rs: Vec<_> = (0..T)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    let mut buf = [0u8; 8];
                    loop {
                        match b.recv_into_timeout(&mut buf, LONG) {
                            Ok(8) if buf == [0xff; 8] => return mine,
                            Ok(8) => mine.push(u64::from_le_bytes(buf)),
                            other => panic!("{other:?}"),
                        }
                    }
                })
            })
            .collect();
        for i in 0..N {
            a.send(&i.to_le_bytes()).unwrap();
        }
        for _ in 0..T {
            a.send(&[0xff; 8]).unwrap();
        }
        rs.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut all: Vec<u64> = got.into_iter().flatten().collect();
    all.sort_unstable();
    assert_eq!(all, (0..N).collect::<Vec<_>>());
}

/// Many threads, each with its own connection to one listener.
#[test]
fn many_connections_in_parallel() {
    const T: usize = 8;
    let path = sock_path("parallel");
    let l = Listener::bind(&path).unwrap();
    std::thread::scope(|s| {
        let l = &l;
        s.spawn(move || {
            for _ in 0..T {
                let c = l.accept_timeout(LONG).unwrap();
                std::thread::spawn(move || {
                    while let Ok(m) = c.recv() {
                        if c.send(&m).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        for t in 0..T {
            let path = &path;
            s.spawn(move || {
                let c = Conn::dial(path, Some(LONG)).unwrap();
                let mut buf = vec![0u8; 300];
                for i in 0..500 {
                    let msg = pattern(1 + (i * 7 + t) % 300, (t * 1000 + i) as u64);
                    c.send_timeout(&msg, LONG).unwrap();
                    let n = c.recv_into_timeout(&mut buf, LONG).unwrap();
                    assert_eq!(&buf[..n], &msg[..]);
                }
            });
        }
    });
}

#[test]
fn conn_and_listener_move_between_threads() {
    let (a, b) = pair();
    let a = std::thread::spawn(move || {
        a.send(b"from a thread").unwrap();
        a
    })
    .join()
    .unwrap();
    assert_eq!(b.recv_timeout(LONG).unwrap(), b"from a thread");
    drop(a);
    let l = Listener::bind(sock_path("movelistener")).unwrap();
    std::thread::spawn(move || l.close().unwrap()).join().unwrap();
}

// ---- Raw handles ------------------------------------------------------

#[test]
fn raw_handles_work_with_sys() {
    let (a, b) = pair();
    let mut n = 0usize;
    // SAFETY: a live handle and a writable out-parameter.
    let st = unsafe { sys::goipc_conn_max_message_size(a.as_raw(), &mut n) };
    assert_eq!(st, sys::GOIPC_OK);
    assert_eq!(n, b.max_message_size().unwrap());
    // A handle this library never issued: INVALID_ARGUMENT, no crash.
    // SAFETY: the library validates handles.
    let st = unsafe { sys::goipc_conn_max_message_size(0, &mut n) };
    assert_eq!(st, sys::GOIPC_ERR_INVALID_ARGUMENT);
}

/// The raw functions the safe API does not call (goipc_listen, goipc_dial
/// without options) and the thread-local error reporting, directly.
#[test]
fn raw_sys_functions() {
    use std::ffi::{CStr, CString};
    let path = sock_path("rawsys");
    let cpath = CString::new(path.to_str().unwrap()).unwrap();
    let mut l: sys::goipc_listener = 0;
    // SAFETY: valid NUL-terminated path and out-parameter throughout;
    // handles are used only while open.
    unsafe {
        assert_eq!(sys::goipc_listen(cpath.as_ptr(), &mut l), sys::GOIPC_OK);
        assert_ne!(l, 0);
        // A second listener on the path: ADDRESS_IN_USE, with a message.
        let mut l2: sys::goipc_listener = 0;
        assert_eq!(sys::goipc_listen(cpath.as_ptr(), &mut l2), sys::GOIPC_ERR_ADDRESS_IN_USE);
        assert_eq!(l2, 0, "out-parameter untouched on failure");
        let msg = CStr::from_ptr(sys::goipc_last_error_message()).to_str().unwrap();
        assert!(msg.starts_with("goipc: "), "{msg}");
        let lh = l; // handles are integers: Send
        // The refused goipc_listen above probed the live listener by
        // connecting to it: that probe is a failed client for the next
        // accept (PEER_CLOSED), so keep accepting, as the header says.
        let acc = std::thread::spawn(move || {
            let mut c: sys::goipc_conn = 0;
            let mut failed = 0;
            loop {
                match sys::goipc_accept(lh, 10_000, &mut c) {
                    sys::GOIPC_ERR_PEER_CLOSED | sys::GOIPC_ERR_PROTOCOL if failed < 3 => failed += 1,
                    st => return (st, c),
                }
            }
        });
        let mut d: sys::goipc_conn = 0;
        assert_eq!(sys::goipc_dial(cpath.as_ptr(), 10_000, &mut d), sys::GOIPC_OK);
        let (st, a) = acc.join().unwrap();
        assert_eq!(st, sys::GOIPC_OK);
        assert_eq!(sys::goipc_send(d, b"raw".as_ptr().cast(), 3, 1000), sys::GOIPC_OK);
        let mut buf = [0u8; 8];
        let mut n = 0usize;
        assert_eq!(sys::goipc_recv(a, buf.as_mut_ptr().cast(), buf.len(), &mut n, 1000), sys::GOIPC_OK);
        assert_eq!(&buf[..n], b"raw");
        // NULL where a pointer is required: INVALID_ARGUMENT, no crash.
        assert_eq!(
            sys::goipc_recv(a, buf.as_mut_ptr().cast(), 8, std::ptr::null_mut(), 0),
            sys::GOIPC_ERR_INVALID_ARGUMENT
        );
        assert_eq!(sys::goipc_conn_close(d), sys::GOIPC_OK);
        assert_eq!(sys::goipc_conn_close(d), sys::GOIPC_ERR_CLOSED, "double close is harmless");
        // A closed handle: CLOSED, and the error maps to Error::Closed.
        assert_eq!(sys::goipc_send(d, b"x".as_ptr().cast(), 1, 0), sys::GOIPC_ERR_CLOSED);
        assert_eq!(sys::goipc_conn_close(a), sys::GOIPC_OK);
        assert_eq!(sys::goipc_listener_close(l), sys::GOIPC_OK);
        assert_eq!(sys::goipc_listener_close(l), sys::GOIPC_ERR_CLOSED);
        // An errno for an OS error: dialing a path that does not exist.
        assert_eq!(sys::goipc_dial(cpath.as_ptr(), 1000, &mut d), sys::GOIPC_ERR_SYSTEM);
        assert_eq!(sys::goipc_last_errno(), ENOENT);
    }
}
