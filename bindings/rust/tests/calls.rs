//! Calls: many threads calling on one shared connection with every reply
//! checked against its request, replies out of order, timeouts and late
//! replies, the peer closing with calls in flight, typed calls against the
//! Go server (`goipc pong`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{LONG, pair, pair_with};
use goipc::{Conn, Error, Messenger, Options};

/// The test servers' reply: the request reversed, then its length (u32
/// LE), so that a reply delivered to another call cannot pass for its own.
fn answer_for(req: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = req.iter().rev().copied().collect();
    out.extend_from_slice(&u32::try_from(req.len()).unwrap().to_le_bytes());
    out
}

fn request_for(caller: usize, seq: usize) -> Vec<u8> {
    let n = 16 + (caller * 7 + seq * 13) % 200;
    let mut b = Vec::with_capacity(n);
    b.extend_from_slice(&(caller as u64).to_le_bytes());
    b.extend_from_slice(&(seq as u64).to_le_bytes());
    b.extend((16..n).map(|i| (caller ^ seq ^ i) as u8));
    b
}

/// Answers requests on `c` with answer_for until the connection ends;
/// returns how many it answered.
fn serve(c: &Conn, answered: &AtomicUsize) -> Error {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let (id, n) = match c.recv_request(&mut buf, None) {
            Ok(r) => r,
            Err(e) => return e,
        };
        answered.fetch_add(1, Ordering::Relaxed); // before the reply frees its caller
        if let Err(e) = c.reply(id, &answer_for(&buf[..n]), None) {
            return e;
        }
    }
}

/// Server threads answering on `server` until the connection ends.
fn spawn_servers(server: &Arc<Conn>, n: usize, answered: &Arc<AtomicUsize>) -> Vec<std::thread::JoinHandle<Error>> {
    (0..n)
        .map(|_| {
            let (s, a) = (Arc::clone(server), Arc::clone(answered));
            std::thread::spawn(move || serve(&s, &a))
        })
        .collect()
}

#[test]
fn many_threads_one_connection() {
    let (client, server) = pair();
    let server = Arc::new(server);
    let answered = Arc::new(AtomicUsize::new(0));
    let servers = spawn_servers(&server, 3, &answered);
    const CALLERS: usize = 8;
    const CALLS: usize = 500;
    std::thread::scope(|s| {
        for k in 0..CALLERS {
            let client = &client;
            s.spawn(move || {
                let mut buf = vec![0u8; 512];
                for i in 0..CALLS {
                    let req = request_for(k, i);
                    let got = if i % 2 == 0 {
                        client.call(&req, Some(LONG)).expect("call")
                    } else {
                        let n = client.call_into(&req, &mut buf, Some(LONG)).expect("call_into");
                        buf[..n].to_vec()
                    };
                    assert_eq!(got, answer_for(&req), "caller {k} call {i}: another call's reply");
                }
            });
        }
    });
    assert_eq!(client.dropped_replies().unwrap(), 0);
    assert_eq!(answered.load(Ordering::Relaxed), CALLERS * CALLS);
    client.close().unwrap();
    for t in servers {
        assert!(matches!(t.join().unwrap(), Error::PeerClosed));
    }
}

#[test]
fn replies_out_of_order() {
    let (client, server) = pair();
    std::thread::scope(|s| {
        let callers: Vec<_> = (0..3)
            .map(|k| {
                let client = &client;
                s.spawn(move || client.call(&request_for(k, k), Some(LONG)).unwrap())
            })
            .collect();
        let mut reqs = Vec::new();
        for _ in 0..3 {
            let mut buf = vec![0u8; 512];
            let (id, n) = server.recv_request(&mut buf, Some(LONG)).unwrap();
            buf.truncate(n);
            reqs.push((id, buf));
        }
        for (id, req) in reqs.iter().rev() {
            server.reply(*id, &answer_for(req), Some(LONG)).unwrap();
        }
        for (k, c) in callers.into_iter().enumerate() {
            assert_eq!(c.join().unwrap(), answer_for(&request_for(k, k)));
        }
    });
}

#[test]
fn timeout_and_late_reply() {
    let (client, server) = pair();
    let t0 = Instant::now();
    assert!(matches!(client.call(b"slow", Some(Duration::from_millis(30))), Err(Error::Timeout)));
    assert!(t0.elapsed() >= Duration::from_millis(30));
    let mut buf = [0u8; 64];
    let (id, n) = server.recv_request(&mut buf, Some(LONG)).unwrap();
    assert_eq!(&buf[..n], b"slow");
    server.reply(id, b"late", None).unwrap(); // nobody waits for it
    let server = Arc::new(server);
    let servers = spawn_servers(&server, 1, &Arc::new(AtomicUsize::new(0)));
    assert_eq!(client.call(b"next", Some(LONG)).unwrap(), answer_for(b"next"));
    assert_eq!(client.dropped_replies().unwrap(), 1);
    // A reply larger than call()'s first buffer is kept and taken.
    let big = vec![7u8; 20_000];
    assert_eq!(client.call(&big, Some(LONG)).unwrap(), answer_for(&big));
    // call_into with a small buffer: the size needed, the reply dropped.
    let mut small = [0u8; 4];
    assert!(matches!(
        client.call_into(b"0123456789", &mut small, Some(LONG)),
        Err(Error::BufferTooSmall { needed: 14 })
    ));
    assert!(matches!(client.call(&vec![0u8; 1 << 20], None), Err(Error::MessageTooLarge(_))));
    client.close().unwrap();
    for t in servers {
        assert!(matches!(t.join().unwrap(), Error::PeerClosed));
    }
}

#[test]
fn peer_closes_with_calls_in_flight() {
    let (client, server) = pair();
    let client = Arc::new(client);
    let callers: Vec<_> = (0..6)
        .map(|k| {
            let client = Arc::clone(&client);
            std::thread::spawn(move || client.call(&request_for(k, 0), None))
        })
        .collect();
    let mut buf = [0u8; 512];
    for _ in 0..6 {
        server.recv_request(&mut buf, Some(LONG)).unwrap(); // in flight, unanswered
    }
    let t0 = Instant::now();
    server.close().unwrap();
    for c in callers {
        assert!(matches!(c.join().unwrap(), Err(Error::PeerClosed)));
    }
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[test]
fn calls_against_go_pong() {
    let pong = common::go_pong(&[]);
    let conn = Conn::dial(&pong.path, Some(LONG)).unwrap();
    assert_eq!(conn.call(b"echo me", Some(LONG)).unwrap(), b"echo me");
    let mut buf = [0u8; 64];
    assert_eq!(conn.call_ping(9, b"typed", &mut buf, Some(LONG)).unwrap(), (9, 5));
    assert_eq!(&buf[..5], b"typed");
    let mut m = Messenger::new(&conn);
    let pong_msg = m.call_ping(10, b"built", Some(LONG)).unwrap();
    assert_eq!(pong_msg.seq(), 10);
    assert_eq!(pong_msg.payload().map(|p| p.bytes()), Some(&b"built"[..]));
    std::thread::scope(|s| {
        for k in 0..4 {
            let conn = &conn;
            s.spawn(move || {
                for i in 0..200 {
                    let req = request_for(k, i);
                    assert_eq!(conn.call(&req, Some(LONG)).unwrap(), req);
                }
            });
        }
    });
    conn.close().unwrap();
}

#[test]
fn version_1_peer_cannot_call() {
    let path = common::sock_path("v1");
    let l = goipc::Listener::bind(&path).unwrap();
    let mut opts = goipc::Options::default();
    opts.protocol_version_override = 1;
    assert!(matches!(Conn::dial_with(&path, &opts, Some(LONG)), Err(Error::Protocol(_))));
    assert!(matches!(l.accept_timeout(LONG), Err(Error::Protocol(_))));
}

/// Receives the next request on `server` within `timeout`: (id, bytes).
fn next_request(server: &Conn, timeout: Duration) -> goipc::Result<(u64, Vec<u8>)> {
    let mut buf = vec![0u8; 512];
    let (id, n) = server.recv_request(&mut buf, Some(timeout))?;
    buf.truncate(n);
    Ok((id, buf))
}

/// Default options but for `max_inflight_calls`.
fn with_call_cap(n: usize) -> Options {
    let mut o = Options::default();
    o.max_inflight_calls = n;
    o
}

/// `Options::max_inflight_calls`: with a cap of 2, two calls in flight
/// make a third wait, unsent, until one of them ends; a listener's cap
/// holds on the connections it accepts.
#[test]
fn max_inflight_calls_makes_the_next_call_wait() {
    let capped = with_call_cap(2);
    let (client, server) = pair_with(&capped, &Options::default());
    std::thread::scope(|s| {
        let first: Vec<_> = [&b"one"[..], b"two"]
            .into_iter()
            .map(|req| {
                let client = &client;
                s.spawn(move || client.call(req, Some(LONG)).unwrap())
            })
            .collect();
        let mut held = [next_request(&server, LONG).unwrap(), next_request(&server, LONG).unwrap()];
        held.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!((&held[0].1[..], &held[1].1[..]), (&b"one"[..], &b"two"[..]));
        // No free slot: the call times out without sending its request.
        assert!(matches!(client.call(b"unsent", Some(Duration::from_millis(50))), Err(Error::Timeout)));
        let client = &client;
        let third = s.spawn(move || client.call(b"three", Some(LONG)).unwrap());
        // Neither "unsent" nor "three" reached the server.
        assert!(matches!(next_request(&server, Duration::from_millis(100)), Err(Error::Timeout)));
        server.reply(held[0].0, &answer_for(b"one"), Some(LONG)).unwrap(); // frees a slot
        let (id, req) = next_request(&server, LONG).unwrap();
        assert_eq!(req, b"three");
        server.reply(id, &answer_for(&req), Some(LONG)).unwrap();
        server.reply(held[1].0, &answer_for(b"two"), Some(LONG)).unwrap();
        assert_eq!(third.join().unwrap(), answer_for(b"three"));
        let got: Vec<_> = first.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(got, [answer_for(b"one"), answer_for(b"two")]);
    });

    // The listener's cap (1) is the accepted end's, not the dialer's.
    let listener_cap = with_call_cap(1);
    let (dialer, accepted) = pair_with(&Options::default(), &listener_cap);
    std::thread::scope(|s| {
        let accepted = &accepted;
        let held = s.spawn(move || accepted.call(b"held", Some(LONG)).unwrap());
        let (id, req) = next_request(&dialer, LONG).unwrap();
        assert_eq!(req, b"held");
        assert!(matches!(accepted.call(b"second", Some(Duration::from_millis(50))), Err(Error::Timeout)));
        assert!(matches!(next_request(&dialer, Duration::from_millis(100)), Err(Error::Timeout)));
        dialer.reply(id, b"done", Some(LONG)).unwrap();
        assert_eq!(held.join().unwrap(), b"done");
    });

    // Out of range: refused before the library is called, naming the field.
    let path = common::sock_path("cap");
    let too_many = with_call_cap(goipc::MAX_INFLIGHT_CALLS_LIMIT + 1);
    match goipc::Listener::bind_with(&path, &too_many) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("max_inflight_calls"), "{m}"),
        other => panic!("max_inflight_calls above the limit: {other:?}"),
    }
}
