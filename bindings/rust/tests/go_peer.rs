//! Across processes, against the Go CLI (build/bin/goipc, or $GOIPC_BIN):
//! a Rust producer and the Go consumer (`goipc pong`), that consumer
//! SIGKILLed, refused handshakes, a Go producer (`goipc ping`) against the
//! Rust consumer example, and the Rust examples themselves.

mod common;

use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::{LONG, Proc, example_bin, go_pong, goipc_bin, pattern, sock_path};
use goipc::{Conn, Error, Messenger, Options, message};

/// test_e2e_rust_producer_go_consumer_echo: raw messages of every size
/// class up to the maximum come back byte for byte.
#[test]
fn rust_producer_go_consumer_echo() {
    let pong = go_pong(&[]);
    let c = Conn::dial(&pong.path, Some(LONG)).unwrap();
    let max = c.max_message_size().unwrap();
    let mut buf = vec![0u8; max];
    for (i, len) in [0, 1, 7, 8, 63, 64, 65, 1000, 4096, 65536, 1_000_000, max].into_iter().enumerate() {
        let msg = pattern(len, i as u64);
        c.send_timeout(&msg, LONG).unwrap();
        let n = c.recv_into_timeout(&mut buf, LONG).unwrap();
        assert_eq!(&buf[..n], &msg[..], "len {len}");
    }
    for i in 0..2000u64 {
        let msg = pattern(64, i);
        c.send(&msg).unwrap();
        let v = c.recv_view_timeout(LONG).unwrap();
        assert_eq!(&*v, &msg[..]);
    }
    // recv into a Vec, and a reservation built in place.
    let mut r = c.reserve(5).unwrap();
    r.copy_from_slice(b"built");
    r.commit(5).unwrap();
    assert_eq!(c.recv_timeout(LONG).unwrap(), b"built");
    c.close().unwrap();
}

/// test_e2e_rust_ping_go_pong: FlatBuffers Pings answered by the Go
/// consumer with Pongs: same seq, sent_ns and payload, and a received_ns
/// taken on the same CLOCK_MONOTONIC between send and receive.
#[test]
fn rust_ping_go_pong() {
    let pong = go_pong(&[]);
    let c = Conn::dial(&pong.path, Some(LONG)).unwrap();
    let mut m = Messenger::new(&c);
    for seq in 0..3000u64 {
        let payload = pattern((seq as usize * 37) % 2000, seq);
        let before = message::monotonic_ns();
        m.send_ping_timeout(seq, &payload, LONG).unwrap();
        let p = m.recv_pong_timeout(LONG).unwrap();
        let after = message::monotonic_ns();
        assert_eq!(p.seq(), seq);
        assert_eq!(p.payload().map(|v| v.bytes()).unwrap_or_default(), &payload[..]);
        let sent = p.ping_sent_ns();
        assert!(before <= sent && sent <= p.received_ns() && p.received_ns() <= after, "clocks out of order");
    }
    // A malformed Ping (our identifier, broken offsets) comes back
    // unchanged, and the connection goes on.
    let mut b = flatbuffers::FlatBufferBuilder::new();
    let mut bad = message::build_ping(&mut b, 1, 2, b"x").to_vec();
    let n = bad.len() as u32;
    bad[..4].copy_from_slice(&n.to_le_bytes());
    c.send(&bad).unwrap();
    assert!(matches!(m.recv_timeout(LONG), Err(Error::InvalidMessage(_))));
    m.send_ping(7, b"still there").unwrap();
    assert_eq!(m.recv_pong_timeout(LONG).unwrap().seq(), 7);
}

/// test_e2e_rust_producer_go_consumer_sigkill: the consumer dies while a
/// receive is blocked (no timeout); the receive returns PeerClosed
/// promptly, and so does every later call.
#[test]
fn go_consumer_sigkill_gives_peer_closed() {
    let mut pong = go_pong(&[]);
    let c = Conn::dial(&pong.path, Some(LONG)).unwrap();
    c.send(b"alive?").unwrap();
    assert_eq!(c.recv_timeout(LONG).unwrap(), b"alive?");

    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            barrier.wait();
            let r = c.recv(); // waits as long as it takes
            (r, Instant::now())
        });
        barrier.wait();
        let t0 = Instant::now();
        pong.kill(); // SIGKILL
        let (r, t1) = t.join().unwrap();
        assert_eq!(r.unwrap_err(), Error::PeerClosed);
        let dt = t1.duration_since(t0);
        eprintln!("blocked recv returned PeerClosed {dt:?} after SIGKILL");
        assert!(dt < Duration::from_secs(1), "PeerClosed took {dt:?}");
    });
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(pong.wait().signal(), Some(9), "killed by SIGKILL");
    assert_eq!(c.send_timeout(b"x", LONG).unwrap_err(), Error::PeerClosed);
    assert_eq!(c.recv_timeout(Duration::ZERO).unwrap_err(), Error::PeerClosed);
    assert_eq!(Messenger::new(&c).recv_pong().unwrap_err(), Error::PeerClosed);
    c.close().unwrap();
}

/// The consumer dies while nothing is blocked: the next calls see it.
#[test]
fn go_consumer_sigkill_before_recv() {
    let mut pong = go_pong(&[]);
    let c = Conn::dial(&pong.path, Some(LONG)).unwrap();
    let mut m = Messenger::new(&c);
    m.send_ping(1, b"x").unwrap();
    assert_eq!(m.recv_pong_timeout(LONG).unwrap().seq(), 1);
    pong.kill();
    pong.wait();
    let t0 = Instant::now();
    assert_eq!(m.recv_pong_timeout(LONG).unwrap_err(), Error::PeerClosed);
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(m.send_ping(2, b"x").unwrap_err(), Error::PeerClosed);
}

#[test]
fn go_listener_protocol_mismatch() {
    let pong = go_pong(&["--protocol-version", "99"]);
    let e = Conn::dial(&pong.path, Some(LONG)).unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
}

#[test]
fn go_listener_refuses_larger_max_message() {
    let pong = go_pong(&["--max-message", "4096"]);
    let mut o = Options::default();
    o.max_message_size = 1 << 20;
    let e = Conn::dial_with(&pong.path, &o, Some(LONG)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    o.max_message_size = 4096;
    let c = Conn::dial_with(&pong.path, &o, Some(LONG)).unwrap();
    assert_eq!(c.max_message_size().unwrap(), 4096);
}

/// Many threads, each with its own connection to the Go consumer.
#[test]
fn threads_each_with_a_connection_to_go() {
    let pong = go_pong(&[]);
    std::thread::scope(|s| {
        for t in 0..6u64 {
            let path = &pong.path;
            s.spawn(move || {
                let c = Conn::dial(path, Some(LONG)).unwrap();
                let mut m = Messenger::new(&c);
                for i in 0..500 {
                    let seq = t * 1000 + i;
                    m.send_ping_timeout(seq, &seq.to_le_bytes(), LONG).unwrap();
                    let p = m.recv_pong_timeout(LONG).unwrap();
                    assert_eq!(p.seq(), seq);
                    assert_eq!(p.payload().unwrap().bytes(), seq.to_le_bytes());
                }
            });
        }
    });
}

/// One sender thread and one receiver thread on one connection to the Go
/// consumer (pipelined: the sender runs ahead), each with its Messenger.
#[test]
fn sender_and_receiver_threads_against_go() {
    const N: u64 = 20_000;
    let pong = go_pong(&[]);
    let c = Conn::dial(&pong.path, Some(LONG)).unwrap();
    std::thread::scope(|s| {
        let c = &c;
        s.spawn(move || {
            let mut m = Messenger::new(c);
            for seq in 0..N {
                m.send_ping_timeout(seq, &seq.to_le_bytes(), LONG).unwrap();
            }
        });
        let mut m = Messenger::new(c);
        for seq in 0..N {
            let p = m.recv_pong_timeout(LONG).unwrap();
            assert_eq!(p.seq(), seq, "in order");
            assert_eq!(p.payload().unwrap().bytes(), seq.to_le_bytes());
        }
    });
}

// ---- The examples ---------------------------------------------------------

/// The `{"key":value,...}` line `ping_pong` prints: the value of `key`
/// (its text, quotes included for a string).
fn json_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.split(&format!("\"{key}\":")).nth(1)?;
    rest.split([',', '}']).next()
}

/// test_e2e_ping_rust_pong_go: the ping-pong example's Rust ping
/// (`ping_pong`) against `goipc pong`, in its four ways: raw or typed
/// (Ping/Pong), send + receive or call. Exit 0 and one JSON line.
#[test]
fn ping_example_against_go_pong() {
    let pong = go_pong(&[]);
    for (typed, call) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut cmd = Command::new(example_bin("ping_pong"));
        cmd.arg("--dial").arg(&pong.path).args(["-n", "2000", "--warmup", "100"]);
        if typed {
            cmd.arg("--typed");
        }
        if call {
            cmd.arg("--call");
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "typed={typed} call={call}: {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(json_field(&stdout, "lang"), Some("\"rust\""), "{stdout}");
        assert_eq!(json_field(&stdout, "iters"), Some("2000"), "{stdout}");
        assert_eq!(json_field(&stdout, "typed"), Some(if typed { "true" } else { "false" }), "{stdout}");
        assert_eq!(json_field(&stdout, "call"), Some(if call { "true" } else { "false" }), "{stdout}");
        let p50: u64 = json_field(&stdout, "p50_ns").unwrap().parse().unwrap();
        assert!(p50 > 0, "{stdout}");
    }
}

/// `ping_pong` exits non-zero on errors, with an error line: nothing
/// listening, bad usage, and a consumer that answers Pings with something
/// else.
#[test]
fn ping_example_fails_loudly() {
    let st = Command::new(example_bin("ping_pong"))
        .arg("--dial")
        .arg(sock_path("nobody"))
        .args(["-n", "10"])
        .output()
        .unwrap();
    assert_eq!(st.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&st.stdout);
    assert!(json_field(&stdout, "error").is_some_and(|e| e.contains("dial")), "{stdout}");
    let st = Command::new(example_bin("ping_pong")).arg("--bogus").output().unwrap();
    assert_eq!(st.status.code(), Some(2));
    let st = Command::new(example_bin("ping_pong")).output().unwrap();
    assert_eq!(st.status.code(), Some(2));

    // A consumer that echoes (Rust listener in this process): the Ping
    // comes back as a Ping, not a Pong.
    let path = sock_path("echoer");
    let l = goipc::Listener::bind(&path).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let c = l.accept_timeout(LONG).unwrap();
            while let Ok(m) = c.recv() {
                if c.send(&m).is_err() {
                    break;
                }
            }
        });
        let out = Command::new(example_bin("ping_pong"))
            .arg("--dial")
            .arg(&path)
            .args(["-n", "5", "--typed"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("recv_pong") && err.contains("Pong"), "{err}");
    });
}

/// `ping_pong` bounds every round trip (--timeout-ms): against a consumer
/// that accepts and then never answers, it fails with "no answer within"
/// instead of hanging; blocking and (built with the tokio feature) on
/// tokio, as send + receive and as calls. The benchmarks (bench,
/// tokio_bench) time these round trips.
#[test]
fn ping_example_fails_on_a_silent_consumer() {
    let mut variants: Vec<&[&str]> = vec![&[], &["--call"], &["--typed", "--call", "--threads", "2"]];
    if cfg!(feature = "tokio") {
        variants.extend([&["--tokio"][..], &["--tokio", "--call", "--threads", "2"]]);
    }
    for flags in variants {
        let path = sock_path("silent");
        let l = goipc::Listener::bind(&path).unwrap();
        std::thread::scope(|s| {
            let (done, ended) = std::sync::mpsc::channel::<()>();
            s.spawn(move || {
                let _held = l.accept_timeout(LONG).unwrap();
                let _ = ended.recv_timeout(LONG); // holds the connection open, silent
            });
            let t0 = Instant::now();
            let out = Command::new(example_bin("ping_pong"))
                .arg("--dial")
                .arg(&path)
                .args(["-n", "10", "--warmup", "0", "--timeout-ms", "300"])
                .args(flags)
                .output()
                .unwrap();
            done.send(()).unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(1), "{flags:?}: {stdout}");
            let err = json_field(&stdout, "error").unwrap_or_default();
            assert!(err.contains("round trip 0") && err.contains("no answer within 300 ms"), "{flags:?}: {stdout}");
            assert!(t0.elapsed() < LONG, "{flags:?}: took {:?}", t0.elapsed());
        });
    }
}

/// test_e2e_go_producer_rust_consumer: `goipc ping` (Go, Ping/Pong and
/// raw) against the ping-pong example's Rust `pong`, which exits 0 once its client is done.
#[test]
fn go_ping_rust_pong_example() {
    for raw in [false, true] {
        let path = sock_path("rustpong");
        let mut cmd = Command::new(example_bin("pong"));
        cmd.arg("--listen").arg(&path).arg("--once");
        let mut pong = Proc::start(cmd, &path, "goipc rust pong: listening on");
        let mut ping = Command::new(goipc_bin());
        ping.arg("ping").arg("--dial").arg(&path).args(["-n", "3000", "--warmup", "100"]);
        if raw {
            ping.arg("--raw");
        }
        let out = ping.output().unwrap();
        assert!(
            out.status.success(),
            "goipc ping (raw={raw}): {:?}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let st = pong.wait();
        assert!(st.success(), "rust pong --once: {st:?}");
    }
}

/// The Rust `pong` answers our own Messenger too, several clients at once.
#[test]
fn rust_ping_rust_pong_example() {
    let path = sock_path("rustpong2");
    let mut cmd = Command::new(example_bin("pong"));
    cmd.arg("--listen").arg(&path);
    let pong = Proc::start(cmd, &path, "goipc rust pong: listening on");
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let path = &pong.path;
            s.spawn(move || {
                let c = Conn::dial(path, Some(LONG)).unwrap();
                let mut m = Messenger::new(&c);
                for seq in 0..300 {
                    m.send_ping(t << 32 | seq, b"abc").unwrap();
                    let p = m.recv_pong_timeout(LONG).unwrap();
                    assert_eq!(p.seq(), t << 32 | seq);
                    assert!(p.received_ns() >= p.ping_sent_ns());
                }
                c.send(b"raw").unwrap();
                assert_eq!(c.recv_timeout(LONG).unwrap(), b"raw");
            });
        }
    });
}
