//! The `tokio` feature: AsyncConn and AsyncListener. Many connections in
//! one runtime, cancellation without loss in both directions, timeouts, a
//! peer killed with SIGKILL and a close from another task waking every
//! waiter, waits in both directions at once (a call in one direction
//! keeps the other's wakeup), futures of one direction queued in call
//! order (a queued send keeps the waiting one's wakeup), and the
//! tokio_pong example serving Go and C producers. Run by `make test-rust` (--features tokio).
//!
//! Every wait is bounded by `LONG` (tokio::time::timeout): a lost wakeup
//! fails the test instead of hanging it.

#![cfg(feature = "tokio")]

mod common;

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{LONG, Proc, go_pong, goipc_bin, sock_path};
use goipc::{AsyncConn, AsyncListener, Error, Limit, Listener, Options, Spin};
use tokio::time::timeout;

/// Small rings: segments are allocated in full (8 MiB per connection by
/// default), and a small ring fills fast.
fn small(spin: Spin) -> Options {
    let mut o = Options::default();
    o.ring_size = 4096;
    o.max_message_size = 1024;
    o.spin = spin;
    o
}

/// Both ends of one connection in this runtime: (dialer's end, accepted end).
async fn pair_with(opts: &Options) -> (Arc<AsyncConn>, Arc<AsyncConn>) {
    let path = sock_path("tokio");
    let l = AsyncListener::bind_with(&path, opts).unwrap();
    let c = AsyncConn::dial_with(&path, opts, Some(LONG)).await.unwrap();
    let s = timeout(LONG, l.accept()).await.unwrap().unwrap();
    (Arc::new(c), Arc::new(s))
}

/// Sends `size`-byte messages until the ring is full; returns how many.
async fn fill(c: &AsyncConn, size: usize) -> usize {
    let mut n = 0;
    while timeout(Duration::from_millis(50), c.send(&vec![0u8; size])).await.is_ok() {
        n += 1;
    }
    n
}

/// poll(2) on one descriptor: true if readable within `ms`.
fn readable(fd: i32, ms: i32) -> bool {
    common::poll_readable(fd, ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_calls_against_go_pong() {
    let pong = go_pong(&[]);
    let c = AsyncConn::dial(&pong.path, Some(LONG)).await.unwrap();
    assert_eq!(c.max_message_size().unwrap(), 1 << 20);
    for i in 0..300u32 {
        let m: Vec<u8> = i.to_le_bytes().repeat(1 + (i as usize % 40));
        c.send(&m).await.unwrap();
        assert_eq!(c.recv().await.unwrap(), m);
    }
    c.send(b"0123456789").await.unwrap();
    let mut small_buf = [0u8; 2];
    assert_eq!(c.recv_into(&mut small_buf).await, Err(Error::BufferTooSmall { needed: 10 }));
    let mut buf = [0u8; 64];
    assert_eq!(c.recv_into(&mut buf).await.unwrap(), 10, "still queued after BufferTooSmall");
    let big = common::pattern(300_000, 1);
    c.send(&big).await.unwrap();
    assert_eq!(c.recv().await.unwrap(), big, "grows past the capacity hint");
    c.close();
    assert_eq!(c.recv().await, Err(Error::Closed));
    assert_eq!(c.send(b"x").await, Err(Error::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_in_one_runtime() {
    // The 100 dials run at once on tokio's blocking pool: more handshakes
    // than the listener's default bound of pending ones (64), beyond which
    // it drops the oldest (the dial gets PeerClosed) on a loaded machine.
    let pong = go_pong(&["--max-pending", "128"]);
    let path = Arc::new(pong.path.clone());
    let mut tasks = Vec::new();
    for k in 0..100u32 {
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut o = Options::default();
            o.ring_size = 16384;
            o.max_message_size = 1024;
            let c = AsyncConn::dial_with(&*path, &o, Some(LONG)).await.unwrap();
            for i in 0..100u32 {
                let m = format!("{k}:{i}").into_bytes();
                c.send(&m).await.unwrap();
                assert_eq!(timeout(LONG, c.recv()).await.unwrap().unwrap(), m);
            }
            k
        }));
    }
    for (k, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), k as u32);
    }
}

/// A tiny xorshift, for reproducible cancellation points.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn micros(&mut self, max: u64) -> Duration {
        Duration::from_micros(self.next() % max)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_cancelled_loses_nothing() {
    const N: u32 = 3000;
    let (c, s) = pair_with(&Options::default()).await;
    let producer = tokio::spawn(async move {
        let mut rng = Rng(7);
        for i in 0..N {
            c.send(&i.to_le_bytes()).await.unwrap();
            if rng.next() % 50 == 0 {
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }
        c
    });
    let mut rng = Rng(11);
    let (mut expect, mut cancelled) = (0u32, 0);
    while expect < N {
        match timeout(rng.micros(300), s.recv()).await {
            Ok(m) => {
                assert_eq!(m.unwrap(), expect.to_le_bytes());
                expect += 1;
            }
            Err(_) => cancelled += 1,
        }
    }
    assert!(cancelled > 0, "no receive was cancelled: the test tested nothing");
    assert!(timeout(Duration::from_millis(10), s.recv()).await.is_err(), "nothing left over");
    producer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_cancelled_sends_all_or_nothing() {
    const N: u32 = 2000;
    let (c, s) = pair_with(&small(Spin::Default)).await;
    let consumer = tokio::spawn(async move {
        let mut rng = Rng(5);
        for i in 0..N {
            let m = timeout(LONG, s.recv()).await.unwrap().unwrap();
            assert_eq!(m, i.to_le_bytes().repeat(100), "message {i}");
            if rng.next() % 10 == 0 {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        s
    });
    let mut rng = Rng(13);
    let mut cancelled = 0;
    for i in 0..N {
        let m = i.to_le_bytes().repeat(100); // 400 bytes: ten fill the ring
        while timeout(rng.micros(300), c.send(&m)).await.is_err() {
            cancelled += 1; // nothing was sent: send the same one again
        }
    }
    let s = consumer.await.unwrap();
    assert!(cancelled > 0, "no send was cancelled: the test tested nothing");
    assert!(timeout(Duration::from_millis(10), s.recv()).await.is_err(), "no duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_leave_the_connection_usable() {
    let pong = go_pong(&[]);
    let c = AsyncConn::dial(&pong.path, Some(LONG)).await.unwrap();
    let t0 = std::time::Instant::now();
    assert!(timeout(Duration::from_millis(50), c.recv()).await.is_err());
    assert!(t0.elapsed() >= Duration::from_millis(50));
    c.send(b"after").await.unwrap();
    assert_eq!(timeout(LONG, c.recv()).await.unwrap().unwrap(), b"after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_in_both_directions_at_once() {
    const N: u32 = 3000;
    let (c, s) = pair_with(&small(Spin::SleepAtOnce)).await;
    let echo = tokio::spawn(async move {
        let mut rng = Rng(3);
        for _ in 0..N {
            let m = s.recv().await.unwrap();
            s.send(&m).await.unwrap();
            if rng.next() % 20 == 0 {
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }
    });
    let c2 = c.clone();
    let sender = tokio::spawn(async move {
        for i in 0..N {
            c2.send(&i.to_le_bytes().repeat(50)).await.unwrap();
        }
    });
    for i in 0..N {
        let m = timeout(LONG, c.recv()).await.expect("stuck").unwrap();
        assert_eq!(m, i.to_le_bytes().repeat(50));
    }
    sender.await.unwrap();
    echo.await.unwrap();
}

/// A descriptor readable before the event a test triggers would prove
/// nothing about that event.
const NOT_QUIET: &str = "the descriptor is readable while nothing can succeed (docs/C_API.md, goipc_conn_fd)";

/// Polls a future once, without a runtime wakeup (as another task's call
/// made in the same instant would).
fn poll_once<F: std::future::Future + ?Sized>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// A receiver waits on a connection whose send ring is full; the peer
/// sends (the descriptor becomes readable) and, before the runtime looks,
/// a send finds the ring still full: its call resets the send direction's
/// readiness only. The descriptor stays readable and the receiver gets
/// the message (nothing else wakes it: no call makes progress, no timer).
#[tokio::test(flavor = "current_thread")]
async fn a_failed_send_keeps_the_waiting_receive_s_wakeup() {
    let (c, s) = pair_with(&small(Spin::SleepAtOnce)).await;
    fill(&c, 500).await;
    let c1 = c.clone();
    let r = tokio::spawn(async move { c1.recv().await });
    tokio::task::yield_now().await; // its call finds nothing; it waits
    assert!(!r.is_finished());
    let fd = c.conn().notify_fd().unwrap().as_raw_fd();
    assert!(!readable(fd, 0), "{NOT_QUIET}");
    s.send(b"data").await.unwrap();
    assert!(readable(fd, 10_000));
    let mut probe = Box::pin(c.send(&[2u8; 500])); // nobody waits to send: it calls
    assert!(poll_once(probe.as_mut()).is_pending(), "the ring is still full");
    assert!(readable(fd, 0), "a failed send swallowed the receive's wakeup");
    assert_eq!(timeout(LONG, r).await.expect("receiver never woke").unwrap().unwrap(), b"data");
}

/// A connection whose sender task waits on a full ring, and the peer has
/// just freed space (the sender's wakeup: the descriptor is readable).
/// `queued` is sent to the waiting side first. Returns the two ends, the
/// sender task and the descriptor.
async fn sender_wakeup_pending(
    queued: Option<&[u8]>,
) -> (Arc<AsyncConn>, Arc<AsyncConn>, tokio::task::JoinHandle<goipc::Result<()>>, i32) {
    let (c, s) = pair_with(&small(Spin::SleepAtOnce)).await;
    if let Some(m) = queued {
        s.send(m).await.unwrap();
    }
    fill(&c, 500).await;
    let c1 = c.clone();
    let w = tokio::spawn(async move { c1.send(b"last").await });
    tokio::task::yield_now().await;
    assert!(!w.is_finished());
    let fd = c.conn().notify_fd().unwrap().as_raw_fd();
    assert!(!readable(fd, 0), "{NOT_QUIET}");
    s.recv().await.unwrap(); // frees space: the sender's wakeup
    assert!(readable(fd, 10_000));
    (c, s, w, fd)
}

/// A sender waits on a full ring; the peer frees space (readable) and a
/// receive takes a message that was already queued: a call that succeeds
/// leaves the readiness alone, so the sender is woken by the descriptor.
#[tokio::test(flavor = "current_thread")]
async fn a_receive_that_takes_a_message_keeps_the_waiting_send_s_wakeup() {
    let (c, _s, w, fd) = sender_wakeup_pending(Some(b"queued")).await;
    let mut probe = Box::pin(c.recv());
    assert_eq!(poll_once(probe.as_mut()), Poll::Ready(Ok(b"queued".to_vec())));
    assert!(readable(fd, 0), "a receive swallowed the send's wakeup");
    timeout(LONG, w).await.expect("sender never woke").unwrap().unwrap();
}

/// A sender waits on a full ring; the peer frees space (readable) and a
/// receive finds nothing (resetting the receive direction's readiness),
/// waits, and is dropped: the sender is woken by the descriptor.
#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_receive_keeps_the_waiting_send_s_wakeup() {
    let (c, _s, w, fd) = sender_wakeup_pending(None).await;
    let mut probe = Box::pin(c.recv());
    assert!(poll_once(probe.as_mut()).is_pending(), "nothing to receive");
    assert!(readable(fd, 0), "a failed receive swallowed the send's wakeup");
    drop(probe); // cancelled while waiting
    timeout(LONG, w).await.expect("sender never woke").unwrap().unwrap();
}

/// Two sends in one direction: a small one waits on a full ring; the peer
/// frees room for it but not for a large one, polled before the runtime
/// looks. Had the large send called the library, its failed call would
/// have reset the send direction's readiness, meant for the small one,
/// and nothing would have woken the small one again. It queues behind
/// the small one instead, and both go out, in call order.
#[tokio::test(flavor = "current_thread")]
async fn a_send_behind_a_waiting_send_keeps_its_wakeup() {
    let (c, s) = pair_with(&small(Spin::SleepAtOnce)).await;
    let filled = fill(&c, 500).await; // 512-byte frames: no byte of the ring left
    let c1 = c.clone();
    let small_send = tokio::spawn(async move { c1.send(b"small").await });
    tokio::task::yield_now().await;
    assert!(!small_send.is_finished());
    let fd = c.conn().notify_fd().unwrap().as_raw_fd();
    assert!(!readable(fd, 0), "{NOT_QUIET}");
    s.recv().await.unwrap(); // room for "small", not for 1000 bytes
    assert!(readable(fd, 10_000));
    let c2 = c.clone();
    let mut large = Box::pin(async move { c2.send(&[3u8; 1000]).await });
    assert!(poll_once(large.as_mut()).is_pending());
    assert!(readable(fd, 0), "the queued send reset the waiting send's readiness");
    timeout(LONG, small_send).await.expect("the waiting send never woke").unwrap().unwrap();
    let large = tokio::spawn(large);
    for i in 0..filled {
        let m = timeout(LONG, s.recv()).await.unwrap().unwrap();
        if i + 1 < filled {
            assert_eq!(m, vec![0u8; 500]);
        } else {
            assert_eq!(m, b"small");
        }
    }
    timeout(LONG, large).await.unwrap().unwrap().unwrap();
    assert_eq!(timeout(LONG, s.recv()).await.unwrap().unwrap(), vec![3u8; 1000]);
}

/// Five sends wait on a full ring and three receives on an empty one:
/// the sends go out, and the receives get messages, in the order of their
/// calls.
#[tokio::test(flavor = "current_thread")]
async fn waiters_of_one_direction_are_served_in_call_order() {
    let (c, s) = pair_with(&small(Spin::SleepAtOnce)).await;
    let filled = fill(&c, 500).await;
    let sends: Vec<_> = (0..5u8)
        .map(|i| {
            let c1 = c.clone();
            tokio::spawn(async move { c1.send(&[i]).await })
        })
        .collect();
    let recvs: Vec<_> = (0..3)
        .map(|_| {
            let c1 = c.clone();
            tokio::spawn(async move { c1.recv().await })
        })
        .collect();
    tokio::task::yield_now().await; // each makes its call, or queues, in spawn order
    assert!(!sends.iter().any(|t| t.is_finished()) && !recvs.iter().any(|t| t.is_finished()));
    for _ in 0..filled {
        assert_eq!(timeout(LONG, s.recv()).await.unwrap().unwrap(), vec![0u8; 500]);
    }
    for i in 0..5u8 {
        assert_eq!(timeout(LONG, s.recv()).await.unwrap().unwrap(), [i]);
    }
    for t in sends {
        timeout(LONG, t).await.unwrap().unwrap().unwrap();
    }
    for i in 0..3u8 {
        s.send(&[b'r', i]).await.unwrap();
    }
    for (i, t) in recvs.into_iter().enumerate() {
        assert_eq!(timeout(LONG, t).await.unwrap().unwrap().unwrap(), [b'r', i as u8]);
    }
}

/// The child side of peer_sigkill_wakes_every_waiter: with
/// GOIPC_TEST_PARKED_PEER set, this test binary listens there, accepts one
/// client, says so, and never reads. Without it, this test does nothing.
#[test]
fn parked_peer_child() {
    let Some(path) = std::env::var_os("GOIPC_TEST_PARKED_PEER") else { return };
    let l = Listener::bind(&path).unwrap();
    println!("parked peer: listening");
    let _c = l.accept_timeout(LONG).unwrap();
    println!("parked peer: accepted");
    std::thread::sleep(Duration::from_secs(600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_sigkill_wakes_every_waiter() {
    let path = sock_path("parked");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "parked_peer_child", "--nocapture", "--test-threads", "1"]);
    cmd.env("GOIPC_TEST_PARKED_PEER", &path);
    let mut peer = Proc::start(cmd, &path, "parked peer: listening");
    let c = Arc::new(AsyncConn::dial_with(&path, &small(Spin::Default), Some(LONG)).await.unwrap());
    fill(&c, 500).await;
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let c = c.clone();
        waiters.push(tokio::spawn(async move { c.recv().await.map(|_| ()) }));
    }
    let c2 = c.clone();
    waiters.push(tokio::spawn(async move { c2.send(&[0u8; 500]).await }));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(waiters.iter().all(|w| !w.is_finished()));
    peer.kill();
    peer.wait();
    for w in waiters {
        assert_eq!(timeout(LONG, w).await.expect("a waiter never woke").unwrap(), Err(Error::PeerClosed));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_from_another_task_wakes_every_waiter() {
    let (c, s) = pair_with(&small(Spin::Default)).await;
    let sent = fill(&c, 500).await;
    let mut waiters = Vec::new();
    for _ in 0..2 {
        let c = c.clone();
        waiters.push(tokio::spawn(async move { c.recv().await.map(|_| ()) }));
    }
    let c2 = c.clone();
    waiters.push(tokio::spawn(async move { c2.recv_into(&mut [0u8; 16]).await.map(|_| ()) }));
    let c3 = c.clone();
    waiters.push(tokio::spawn(async move { c3.send(b"x").await }));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(waiters.iter().all(|w| !w.is_finished()));
    let closer = c.clone();
    tokio::spawn(async move { closer.close() }).await.unwrap();
    for w in waiters {
        assert_eq!(timeout(LONG, w).await.expect("a waiter never woke").unwrap(), Err(Error::Closed));
    }
    c.close(); // twice is harmless
    // The peer gets what was sent, then PeerClosed.
    for _ in 0..sent {
        s.recv().await.unwrap();
    }
    assert_eq!(timeout(LONG, s.recv()).await.unwrap(), Err(Error::PeerClosed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_limits_and_close() {
    let path = sock_path("alimit");
    let mut o = Options::default();
    o.max_conns = Limit::AtMost(1);
    let l = Arc::new(AsyncListener::bind_with(&path, &o).unwrap());
    let c = AsyncConn::dial(&path, Some(LONG)).await.unwrap();
    let s = timeout(LONG, l.accept()).await.unwrap().unwrap();
    assert!(matches!(AsyncConn::dial(&path, Some(LONG)).await, Err(Error::Limit(_))));
    assert!(matches!(timeout(LONG, l.accept()).await.unwrap(), Err(Error::Limit(_))));
    c.send(b"ok").await.unwrap();
    assert_eq!(s.recv().await.unwrap(), b"ok");
    let l2 = l.clone();
    let waiting = tokio::spawn(async move { l2.accept().await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(10)).await;
    l.close();
    assert_eq!(timeout(LONG, waiting).await.unwrap().unwrap(), Err(Error::Closed));
    let mut forever = Options::default();
    forever.spin = Spin::Forever;
    assert!(matches!(AsyncListener::bind_with(sock_path("f"), &forever), Err(Error::InvalidArgument(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wraps_a_blocking_conn() {
    let (a, b) = common::pair();
    let a = AsyncConn::new(a).unwrap();
    b.send(b"from blocking").unwrap();
    assert_eq!(a.recv().await.unwrap(), b"from blocking");
    a.send(b"to blocking").await.unwrap();
    assert_eq!(b.recv_timeout(LONG).unwrap(), b"to blocking");
    drop(a);
    assert_eq!(b.recv_timeout(LONG), Err(Error::PeerClosed));
}

fn c_ping() -> std::path::PathBuf {
    let dir = match std::env::var_os("GOIPC_C_BIN") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../build/c"),
    };
    let p = dir.join("ping");
    assert!(p.is_file(), "the C ping example is missing at {}: run `make build`", p.display());
    p
}

/// The tokio_pong example serves Go (`goipc ping`, Ping/Pong and raw) and
/// C (`build/c/ping`, raw and --typed) producers at once; each checks
/// every answer and exits 0.
#[test]
fn tokio_pong_example_serves_go_and_c_producers() {
    let path = sock_path("tpong");
    let mut cmd = Command::new(common::example_bin("tokio_pong"));
    cmd.arg("--listen").arg(&path);
    let _pong = Proc::start(cmd, &path, "listening on");
    let n = "2000";
    let producers: Vec<Command> = vec![
        {
            let mut c = Command::new(goipc_bin());
            c.args(["ping", "-n", n, "--warmup", "0", "--dial"]).arg(&path);
            c
        },
        {
            let mut c = Command::new(goipc_bin());
            c.args(["ping", "-n", n, "--warmup", "0", "--raw", "--size", "100", "--dial"]).arg(&path);
            c
        },
        {
            let mut c = Command::new(c_ping());
            c.args(["-n", n, "--warmup", "0", "--dial"]).arg(&path);
            c
        },
        {
            let mut c = Command::new(c_ping());
            c.args(["-n", n, "--warmup", "0", "--typed", "--size", "32", "--dial"]).arg(&path);
            c
        },
    ];
    let children: Vec<_> = producers
        .into_iter()
        .map(|mut c| {
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            (format!("{c:?}"), c.spawn().unwrap())
        })
        .collect();
    for (what, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{what}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
