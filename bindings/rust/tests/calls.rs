//! Calls: many threads calling on one shared connection with every reply
//! checked against its request, replies out of order, timeouts and late
//! replies, the peer closing with calls in flight, typed calls against the
//! Go server (`goipc pong`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{LONG, answer_for, pair, pair_with, request_for};
use goipc::{Conn, Error, Messenger, Options, PingRequest};

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

type Servers = Vec<std::thread::JoinHandle<Error>>;

/// Server threads answering on `server` with `serve` until the
/// connection ends.
fn spawn_servers_with(
    server: &Arc<Conn>,
    n: usize,
    answered: &Arc<AtomicUsize>,
    serve: fn(&Conn, &AtomicUsize) -> Error,
) -> Servers {
    (0..n)
        .map(|_| {
            let (s, a) = (Arc::clone(server), Arc::clone(answered));
            std::thread::spawn(move || serve(&s, &a))
        })
        .collect()
}

/// Server threads answering on `server` with answer_for.
fn spawn_servers(server: &Arc<Conn>, n: usize, answered: &Arc<AtomicUsize>) -> Servers {
    spawn_servers_with(server, n, answered, serve)
}

/// Closes `client` and checks that every server then ended with
/// PeerClosed, after answering `calls` calls in all.
fn close_and_join(client: Conn, servers: Servers, answered: &AtomicUsize, calls: usize) {
    assert_eq!(answered.load(Ordering::Relaxed), calls);
    client.close().unwrap();
    for t in servers {
        assert!(matches!(t.join().unwrap(), Error::PeerClosed));
    }
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
    close_and_join(client, servers, &answered, CALLERS * CALLS);
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

/// Answers Ping calls on `c` with their Pongs (recv_ping_request +
/// reply_pong) until the connection ends; returns how it ended.
fn serve_pings(c: &Conn, answered: &AtomicUsize) -> Error {
    let mut buf = vec![0u8; 1024];
    loop {
        let (call, seq, sent_ns, len) = match c.recv_ping_request(&mut buf, None) {
            Ok(PingRequest::Ping { call, seq, sent_ns, len }) => (call, seq, sent_ns, len),
            Ok(other) => panic!("not a Ping: {other:?}"),
            Err(e) => return e,
        };
        answered.fetch_add(1, Ordering::Relaxed); // before the reply frees its caller
        if let Err(e) = c.reply_pong(call, seq, sent_ns, 0, &buf[..len], None) {
            return e;
        }
    }
}

#[test]
fn typed_server_many_threads_one_connection() {
    let (client, server) = pair();
    let server = Arc::new(server);
    let answered = Arc::new(AtomicUsize::new(0));
    let servers = spawn_servers_with(&server, 2, &answered, serve_pings);
    const CALLERS: usize = 6;
    const CALLS: usize = 300;
    std::thread::scope(|s| {
        for k in 0..CALLERS {
            let client = &client;
            s.spawn(move || {
                let mut buf = vec![0u8; 512];
                for i in 0..CALLS {
                    let (seq, payload) = ((k as u64) << 32 | i as u64, request_for(k, i));
                    let (pong_seq, n) = client.call_ping(seq, &payload, &mut buf, Some(LONG)).expect("call_ping");
                    assert_eq!((pong_seq, &buf[..n]), (seq, &payload[..]), "caller {k} call {i}: not its own Pong");
                }
            });
        }
    });
    close_and_join(client, servers, &answered, CALLERS * CALLS);
}

#[test]
fn typed_server_errors() {
    let (client, server) = pair();
    let mut buf = vec![0u8; 256];
    std::thread::scope(|s| {
        // A payload larger than the buffer: the request stays queued.
        let caller = s.spawn(|| {
            let mut got = [0u8; 128];
            let (seq, n) = client.call_ping(7, &[5u8; 100], &mut got, Some(LONG)).expect("call_ping");
            (seq, got[..n].to_vec())
        });
        assert!(matches!(
            server.recv_ping_request(&mut buf[..4], Some(LONG)),
            Err(Error::BufferTooSmall { needed: 100 })
        ));
        let Ok(PingRequest::Ping { call, seq: 7, sent_ns, len: 100 }) = server.recv_ping_request(&mut buf, Some(LONG))
        else {
            panic!("the kept Ping");
        };
        assert!(sent_ns > 0 && buf[..100] == [5u8; 100]);
        server.reply_pong(call, 7, sent_ns, 0, &buf[..100], Some(LONG)).unwrap();
        assert_eq!(caller.join().unwrap(), (7, vec![5u8; 100]));

        // A request that is not a Ping: its id and bytes, to answer it.
        let caller = s.spawn(|| client.call(b"not a ping", Some(LONG)).expect("call"));
        let Ok(PingRequest::NotPing { call, len: 10 }) = server.recv_ping_request(&mut buf, Some(LONG)) else {
            panic!("want NotPing");
        };
        assert_eq!(&buf[..10], b"not a ping");
        server.reply(call, b"refused", Some(LONG)).unwrap();
        assert_eq!(caller.join().unwrap(), b"refused");
    });
    assert!(matches!(server.reply_pong(0, 1, 0, 0, b"x", None), Err(Error::InvalidArgument(_))));
    let big = vec![0u8; server.max_message_size().unwrap()];
    assert!(matches!(server.reply_pong(1, 1, 0, 0, &big, None), Err(Error::MessageTooLarge(_))));
    assert!(matches!(server.recv_ping_request(&mut buf, Some(Duration::ZERO)), Err(Error::Timeout)));
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
    // MAX_INFLIGHT_CALLS_LIMIT restates goipc.h's prose ("at most 65536";
    // the header has no constant for it): the library takes the limit and
    // refuses one more itself.
    let at_limit = goipc::Listener::bind_with(&path, &with_call_cap(goipc::MAX_INFLIGHT_CALLS_LIMIT));
    assert!(at_limit.is_ok(), "max_inflight_calls at the limit: {at_limit:?}");
    drop(at_limit);
    let mut raw = goipc::sys::goipc_options::zeroed();
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut l: goipc::sys::goipc_listener = 0;
    // SAFETY: options initialised for their size, a NUL-terminated path and
    // an out-parameter, for the duration of the calls.
    let st = unsafe {
        goipc::sys::goipc_options_init_sized(&mut raw, size_of::<goipc::sys::goipc_options>());
        raw.max_inflight_calls = (goipc::MAX_INFLIGHT_CALLS_LIMIT + 1) as i64;
        goipc::sys::goipc_listen_ex(cpath.as_ptr(), &raw, &mut l)
    };
    assert_eq!(st, goipc::sys::GOIPC_ERR_INVALID_ARGUMENT, "the library took max_inflight_calls above the limit");
}
