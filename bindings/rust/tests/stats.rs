//! `Conn::stats`: counts exactly what was sent and received (through every
//! send and receive call), in process and against the Go consumer, and
//! sees a message in flight.

mod common;

use std::time::{Duration, SystemTime};

use common::{LONG, go_pong, pair_with};
use goipc::{Conn, Options};

/// `n` messages of sizes 0, 3, 6, ... (mod 1000) from `a` to `b` through
/// `send` and `reserve`/`commit`, received through `recv`, `recv_into` and
/// `recv_view`; returns their payload bytes.
fn exchange(a: &Conn, b: &Conn, n: usize) -> u64 {
    let mut total = 0u64;
    let mut buf = vec![0u8; 1000];
    for i in 0..n {
        let len = i * 3 % 1000;
        total += len as u64;
        if i % 2 == 0 {
            a.send_timeout(&vec![7u8; len], LONG).unwrap();
        } else {
            let r = a.reserve_timeout(len, LONG).unwrap();
            r.commit(len).unwrap();
        }
        let got = match i % 3 {
            0 => b.recv_timeout(LONG).unwrap().len(),
            1 => b.recv_into_timeout(&mut buf, LONG).unwrap(),
            _ => b.recv_view_timeout(LONG).unwrap().len(),
        };
        assert_eq!(got, len, "message {i}");
    }
    total
}

#[test]
fn stats_count_exactly() {
    let before = SystemTime::now();
    let mut opts = Options::default();
    opts.ring_size = 1 << 16;
    opts.max_message_size = 1000;
    let (a, b) = pair_with(&opts, &Options::default());
    let up = exchange(&a, &b, 1001);
    let down = exchange(&b, &a, 333);
    assert!(up > 2 * (1 << 16), "the rings must wrap (padding frames must not count)");
    let (sa, sb) = (a.stats().unwrap(), b.stats().unwrap());
    assert_eq!((sa.sent.messages, sa.sent.bytes, sb.received.messages, sb.received.bytes), (1001, up, 1001, up));
    assert_eq!((sb.sent.messages, sb.sent.bytes, sa.received.messages, sa.received.bytes), (333, down, 333, down));
    for d in [sa.sent, sa.received, sb.sent, sb.received] {
        assert_eq!((d.capacity, d.in_use, d.sender_parked, d.receiver_parked), (1 << 16, 0, false, false), "{d:?}");
    }
    assert!(sa.dialer && !sb.dialer);
    let me = i64::from(std::process::id());
    assert_eq!((sa.peer_pid, sb.peer_pid), (me, me));
    assert!(sa.opened + Duration::from_secs(1) >= before && sa.opened <= SystemTime::now(), "{:?}", sa.opened);

    // Not yet received: an 8-byte frame header and the payload padded to 8.
    a.send(&[0u8; 100]).unwrap();
    let (sa, sb) = (a.stats().unwrap(), b.stats().unwrap());
    assert_eq!((sa.sent.in_use, sb.received.in_use), (112, 112));
    assert_eq!((sa.sent.messages, sb.received.messages), (1002, 1001));
}

#[test]
fn stats_against_go_pong() {
    let pong = go_pong(&[]);
    let c = Conn::dial(&pong.path, Some(LONG)).unwrap();
    let mut bytes = 0u64;
    for i in 0..500usize {
        let m = vec![1u8; i % 77];
        bytes += m.len() as u64;
        c.send(&m).unwrap();
        assert_eq!(c.recv_timeout(LONG).unwrap(), m);
    }
    let s = c.stats().unwrap();
    assert_eq!((s.sent.messages, s.sent.bytes, s.received.messages, s.received.bytes), (500, bytes, 500, bytes));
    assert_eq!(s.peer_pid, i64::from(pong.pid()));
    assert!(s.dialer);
}
