//! The `tokio` feature's calls: AsyncConn::call and call_into. Many tasks
//! calling on one connection against `goipc pong` (every reply checked
//! against its request), calls next to a waiting receive (they share the
//! receive direction's readiness), cancellation that never leaks a call
//! slot, a reply too large for call_into's buffer, the peer killed
//! (SIGKILL) and a close from another task with calls in flight. Run by
//! `make test-rust` (--features tokio).
//!
//! Every wait is bounded by `LONG` (tokio::time::timeout): a lost wakeup
//! fails the test instead of hanging it.

#![cfg(feature = "tokio")]

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{LONG, answer_for, go_pong, pair_with, request_for};
use goipc::{AsyncConn, Conn, Error, Options};
use tokio::time::timeout;

/// Answers every call request on `c` with `answer_for` until the
/// connection ends (a thread: the server side is blocking). Returns how
/// many it answered.
fn spawn_server(c: Arc<Conn>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        // Room for any request (the default max_message_size is 1 MiB).
        let mut buf = vec![0u8; 1 << 20];
        let mut answered = 0;
        while let Ok((id, n)) = c.recv_request(&mut buf, None) {
            if c.reply(id, &answer_for(&buf[..n]), None).is_err() {
                break;
            }
            answered += 1;
        }
        answered
    })
}

/// Default options but for `max_inflight_calls`.
fn with_call_cap(n: usize) -> Options {
    let mut o = Options::default();
    o.max_inflight_calls = n;
    o
}

/// Waits (polling the counters, bounded by LONG) until `c` has sent
/// `n` messages: the calls started are then in flight.
async fn sent_messages(c: &AsyncConn, n: u64) {
    let deadline = Instant::now() + LONG;
    while c.conn().stats().unwrap().sent.messages < n {
        assert!(Instant::now() < deadline, "{n} requests were never sent");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tasks_times_1000_calls_against_go_pong() {
    const TASKS: usize = 8;
    const CALLS: usize = 1000;
    let pong = go_pong(&[]);
    let c = Arc::new(AsyncConn::dial(&pong.path, Some(LONG)).await.unwrap());
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256];
                for seq in 0..CALLS {
                    // `goipc pong` answers a call with its request.
                    let req = request_for(task, seq);
                    if seq % 2 == 0 {
                        let reply = timeout(LONG, c.call(&req)).await.expect("a call never ended").unwrap();
                        assert_eq!(reply, req, "task {task} call {seq}: someone else's reply");
                    } else {
                        let n = timeout(LONG, c.call_into(&req, &mut buf)).await.expect("a call never ended").unwrap();
                        assert_eq!(&buf[..n], &req[..], "task {task} call {seq}: someone else's reply");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(c.conn().dropped_replies().unwrap(), 0);
    assert_eq!(c.conn().stats().unwrap().received.messages, (TASKS * CALLS) as u64);
}

/// Calls and a receive waiting for a plain message share the receive
/// direction's readiness: the server sends a plain message before every
/// tenth reply, and neither side loses its wakeup to the other's calls
/// that find nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_next_to_a_waiting_receive() {
    const TASKS: usize = 4;
    const CALLS: usize = 250;
    let (d, a) = pair_with(&Options::default(), &Options::default());
    let c = Arc::new(AsyncConn::new(d).unwrap());
    let server = std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        for i in 0..TASKS * CALLS {
            let (id, n) = a.recv_request(&mut buf, Some(LONG)).unwrap();
            if i % 10 == 0 {
                a.send_timeout(&(i as u64).to_le_bytes(), LONG).unwrap();
            }
            a.reply(id, &answer_for(&buf[..n]), Some(LONG)).unwrap();
        }
        a
    });
    let receiver = {
        let c = Arc::clone(&c);
        tokio::spawn(async move {
            for i in (0..TASKS * CALLS).step_by(10) {
                let m = timeout(LONG, c.recv()).await.expect("a receive never woke").unwrap();
                assert_eq!(m, (i as u64).to_le_bytes());
            }
        })
    };
    let callers: Vec<_> = (0..TASKS)
        .map(|task| {
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                for seq in 0..CALLS {
                    let req = request_for(task, seq);
                    let reply = timeout(LONG, c.call(&req)).await.expect("a call never ended").unwrap();
                    assert_eq!(reply, answer_for(&req));
                }
            })
        })
        .collect();
    for t in callers {
        t.await.unwrap();
    }
    receiver.await.unwrap();
    server.join().unwrap();
}

/// Dropped call futures cancel their calls: more of them than
/// max_inflight_calls, timed out while waiting for the reply or for a
/// free slot, and the connection's calls still work; their late replies
/// are dropped, never delivered to another call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_free_their_slots() {
    const CAP: usize = 2;
    let (d, a) = pair_with(&with_call_cap(CAP), &Options::default());
    let c = Arc::new(AsyncConn::new(d).unwrap());
    let a = Arc::new(a);
    let mut buf = vec![0u8; 512];
    // Timed out while waiting for their replies (the server does not
    // answer yet): each is cancelled, so the next one gets a slot and
    // sends its request.
    for i in 0..3 * CAP {
        let r = timeout(Duration::from_millis(20), c.call(&request_for(0, i))).await;
        assert!(r.is_err(), "call {i} was answered by nobody: {r:?}");
        let (id, n) = a.recv_request(&mut buf, Some(LONG)).expect("a cancelled call kept its slot");
        assert_eq!(&buf[..n], &request_for(0, i)[..]);
        a.reply(id, b"late", Some(LONG)).unwrap(); // dropped by the calls that come next
    }
    // CAP calls in flight, aborted while they wait; a call behind them
    // times out while it waits for a slot, unsent.
    let held: Vec<_> = (0..CAP)
        .map(|i| {
            let c = Arc::clone(&c);
            tokio::spawn(async move { c.call(&request_for(1, i)).await })
        })
        .collect();
    sent_messages(&c, (4 * CAP) as u64).await;
    assert!(timeout(Duration::from_millis(50), c.call(b"unsent")).await.is_err());
    for t in held {
        t.abort();
        assert!(t.await.unwrap_err().is_cancelled());
    }
    assert_eq!(c.conn().stats().unwrap().sent.messages, (4 * CAP) as u64, "a call sent without a slot");
    // The server answers everything now, the abandoned requests first:
    // more calls than the cap, at once, all get their own replies.
    let server = spawn_server(Arc::clone(&a));
    let calls: Vec<_> = (0..3 * CAP)
        .map(|i| {
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                let req = request_for(2, i);
                assert_eq!(timeout(LONG, c.call(&req)).await.expect("a call never ended").unwrap(), answer_for(&req));
            })
        })
        .collect();
    for t in calls {
        t.await.unwrap();
    }
    // The abandoned calls' replies came before the new ones'.
    assert_eq!(c.conn().dropped_replies().unwrap(), (4 * CAP) as u64);
    c.close(); // the server's recv_request ends with PeerClosed
    assert_eq!(server.join().unwrap(), 4 * CAP);
}

/// A reply larger than call_into's buffer: BufferTooSmall with the size,
/// the call over (its only slot free again); `call` grows its vector for
/// a reply larger than its first 4 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_larger_than_the_buffer() {
    let (d, a) = pair_with(&with_call_cap(1), &Options::default());
    let c = AsyncConn::new(d).unwrap();
    let server = spawn_server(Arc::new(a));
    let mut small = [0u8; 8];
    let req = request_for(0, 0);
    let needed = answer_for(&req).len();
    assert_eq!(timeout(LONG, c.call_into(&req, &mut small)).await.unwrap(), Err(Error::BufferTooSmall { needed }));
    let mut buf = [0u8; 512];
    let n = timeout(LONG, c.call_into(&req, &mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], &answer_for(&req)[..]);
    let big = common::pattern(100_000, 3);
    assert_eq!(timeout(LONG, c.call(&big)).await.unwrap().unwrap(), answer_for(&big));
    drop(c);
    assert_eq!(server.join().unwrap(), 3);
}

/// Stops `pid` (SIGSTOP, with kill(1)) and waits, bounded by LONG, until
/// every thread of it is stopped: a signal is delivered asynchronously,
/// and a thread still running could answer a call.
fn stop(pid: u32) {
    let st = Command::new("kill").arg("-STOP").arg(pid.to_string()).status().expect("run kill");
    assert!(st.success(), "kill -STOP {pid}: {st}");
    let stopped = |stat: &str| stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T'));
    let deadline = Instant::now() + LONG;
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc/PID/task");
        let all = tasks.flatten().all(|t| std::fs::read_to_string(t.path().join("stat")).is_ok_and(|s| stopped(&s)));
        if all {
            return;
        }
        assert!(Instant::now() < deadline, "{pid} did not stop");
        std::thread::yield_now();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_sigkill_fails_every_call_in_flight() {
    let mut pong = go_pong(&[]);
    let c = Arc::new(AsyncConn::dial(&pong.path, Some(LONG)).await.unwrap());
    assert_eq!(c.call(b"alive").await.unwrap(), b"alive");
    // Stopped, it answers nothing: the calls below stay in flight.
    stop(pong.pid());
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let c = Arc::clone(&c);
            tokio::spawn(async move { c.call(&request_for(i, 0)).await })
        })
        .collect();
    sent_messages(&c, 5).await;
    assert!(calls.iter().all(|t| !t.is_finished()));
    pong.kill();
    pong.wait();
    let killed = Instant::now();
    for t in calls {
        assert_eq!(timeout(LONG, t).await.expect("a call never woke").unwrap(), Err(Error::PeerClosed));
    }
    // Promptly: the bound only catches a call woken by something else
    // than the peer's death (a 10 s timeout would have hit LONG).
    assert!(killed.elapsed() < LONG / 2, "calls took {:?} to see the peer's death", killed.elapsed());
    assert_eq!(c.call(b"after").await, Err(Error::PeerClosed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_from_another_task_fails_every_call() {
    let (d, _a) = pair_with(&Options::default(), &Options::default());
    let c = Arc::new(AsyncConn::new(d).unwrap());
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let c = Arc::clone(&c);
            let mut buf = vec![0u8; 64];
            tokio::spawn(async move {
                let req = request_for(i, 0);
                if i % 2 == 0 { c.call(&req).await.map(|_| ()) } else { c.call_into(&req, &mut buf).await.map(|_| ()) }
            })
        })
        .collect();
    sent_messages(&c, 4).await;
    let closer = Arc::clone(&c);
    tokio::spawn(async move { closer.close() }).await.unwrap();
    for t in calls {
        assert_eq!(timeout(LONG, t).await.expect("a call never woke").unwrap(), Err(Error::Closed));
    }
    assert_eq!(c.call(b"after").await, Err(Error::Closed));
}
