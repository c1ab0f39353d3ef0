//! The listener's descriptor (`Listener::notify_fd`, `goipc_listener_fd`)
//! and `AsyncListener::accept`, which waits on it under the `tokio`
//! feature: readable exactly while a client is queued, an idle accept is
//! polled once (no timer), a dropped accept loses no client, close wakes
//! every pending accept, several accepting tasks take every client.
//!
//! Every wait is bounded by `LONG`: a lost wakeup fails the test instead
//! of hanging it.

#![cfg(feature = "tokio")]

mod common;

use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{LONG, poll_readable, sock_path};
use goipc::{AsyncConn, AsyncListener, Conn, Error, Listener};
use tokio::time::timeout;

#[test]
fn listener_notify_fd_is_readable_exactly_while_a_client_is_queued() {
    let path = sock_path("lnfd");
    let l = Listener::bind(&path).unwrap();
    let fd = l.notify_fd().unwrap().as_raw_fd();
    assert_eq!(l.notify_fd().unwrap().as_raw_fd(), fd, "every call returns the same descriptor");
    assert!(!poll_readable(fd, 0), "readable with no client");
    assert!(matches!(l.accept_timeout(Duration::ZERO), Err(Error::Timeout)));
    // Conn::dial returns once its connection is queued: readable at once.
    let clients: Vec<Conn> = (0..2).map(|_| Conn::dial(&path, Some(LONG)).unwrap()).collect();
    assert!(poll_readable(fd, 0), "two clients dialed, the descriptor is quiet");
    let first = l.accept_timeout(Duration::ZERO).unwrap();
    assert!(poll_readable(fd, 0), "quiet with a client still queued");
    let second = l.accept_timeout(Duration::ZERO).unwrap();
    assert!(!poll_readable(fd, 0), "readable after the queue drained");
    let dup: OwnedFd = l.notify_fd().unwrap().try_clone_to_owned().unwrap();
    l.close().unwrap();
    assert!(poll_readable(dup.as_raw_fd(), 0), "closing did not make the descriptor readable");
    drop((clients, first, second));
}

/// Counts the polls of the future it wraps.
struct CountPolls<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.as_mut().poll(cx)
    }
}

/// An accept waiting at an idle listener parks on the descriptor: the
/// runtime does not poll it again until a client comes (a 1-20 ms
/// backoff, as accept once had, would poll it tens of times in 300 ms).
#[tokio::test(flavor = "current_thread")]
async fn an_idle_accept_is_polled_once() {
    let path = sock_path("idle");
    let l = Arc::new(AsyncListener::bind(&path).unwrap());
    let polls = Arc::new(AtomicUsize::new(0));
    let l2 = l.clone();
    let waiting = tokio::spawn(CountPolls { inner: Box::pin(async move { l2.accept().await }), polls: polls.clone() });
    tokio::task::yield_now().await; // the accept runs: tries once, parks
    assert_eq!(polls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(300)).await; // the idle period
    assert_eq!(polls.load(Ordering::SeqCst), 1, "an idle accept was polled again");
    let c = AsyncConn::dial(&path, Some(LONG)).await.unwrap();
    let s = timeout(LONG, waiting).await.unwrap().unwrap().unwrap();
    c.send(b"hi").await.unwrap();
    assert_eq!(s.recv().await.unwrap(), b"hi");
}

/// Polls a future once, without a runtime wakeup.
fn poll_once<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// An accept dropped while it waits, or after its client arrived but
/// before it was polled again, took no client: the next accept gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_accept_loses_no_client() {
    let path = sock_path("drop");
    let l = AsyncListener::bind(&path).unwrap();
    let mut first = Box::pin(l.accept());
    assert!(poll_once(first.as_mut()).is_pending());
    drop(first);
    for i in 0..20u8 {
        let mut waiting = Box::pin(l.accept());
        assert!(poll_once(waiting.as_mut()).is_pending());
        let c = AsyncConn::dial(&path, Some(LONG)).await.unwrap();
        let s = match (i % 2 == 0).then(|| poll_once(waiting.as_mut())) {
            Some(Poll::Ready(s)) => s.unwrap(),
            _ => {
                // Dropped: parked, or woken but not yet polled.
                drop(waiting);
                timeout(LONG, l.accept()).await.unwrap().unwrap()
            }
        };
        c.send(&[i]).await.unwrap();
        assert_eq!(s.recv().await.unwrap(), [i]);
    }
    assert!(!poll_readable(l.listener().notify_fd().unwrap().as_raw_fd(), 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_wakes_every_pending_accept() {
    let l = Arc::new(AsyncListener::bind(sock_path("close")).unwrap());
    let polls = Arc::new(AtomicUsize::new(0));
    let pending: Vec<_> = (0..3)
        .map(|_| {
            let l = l.clone();
            let inner = Box::pin(async move { l.accept().await.map(|_| ()) });
            tokio::spawn(CountPolls { inner, polls: polls.clone() })
        })
        .collect();
    // Every accept has run and is parked on the descriptor (nobody dials,
    // so none can be done) before the close.
    let deadline = std::time::Instant::now() + LONG;
    while polls.load(Ordering::SeqCst) < 3 {
        assert!(std::time::Instant::now() < deadline, "the accepts never ran");
        tokio::task::yield_now().await;
    }
    assert!(pending.iter().all(|p| !p.is_finished()), "an accept ended without a client");
    l.close();
    for p in pending {
        assert_eq!(timeout(LONG, p).await.unwrap().unwrap(), Err(Error::Closed));
    }
    assert_eq!(l.accept().await.map(|_| ()), Err(Error::Closed));
    l.close(); // twice is harmless
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_accepting_tasks_take_every_client() {
    const CLIENTS: usize = 24;
    let path = sock_path("many");
    let l = Arc::new(AsyncListener::bind(&path).unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let acceptors: Vec<_> = (0..3)
        .map(|_| {
            let (l, tx) = (l.clone(), tx.clone());
            tokio::spawn(async move {
                loop {
                    if tx.send(l.accept().await.unwrap()).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    let mut dials = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let path = path.clone();
        dials.spawn(async move { AsyncConn::dial(&path, Some(LONG)).await.unwrap() });
    }
    let mut conns = Vec::new();
    while let Some(c) = dials.join_next().await {
        conns.push(c.unwrap());
    }
    let mut accepted = Vec::new();
    for _ in 0..CLIENTS {
        accepted.push(timeout(LONG, rx.recv()).await.unwrap().unwrap());
    }
    for a in &acceptors {
        a.abort();
    }
    for (i, c) in conns.iter().enumerate() {
        c.send(&[i as u8]).await.unwrap();
    }
    let mut got = Vec::new();
    for s in &accepted {
        got.push(s.recv().await.unwrap()[0] as usize);
    }
    got.sort_unstable();
    assert_eq!(got, (0..CLIENTS).collect::<Vec<_>>());
}
