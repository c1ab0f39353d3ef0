//! Connection statistics: [`crate::Conn::stats`] returns a [`Stats`].
//!
//! The numbers each end counts in the connection's shared segment, the
//! same ones `goipc stat` shows from outside the process (docs/STAT.md).

use std::time::{Duration, SystemTime};

use crate::sys;

/// One direction of a connection, as this end counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectionStats {
    /// Messages this end sent ([`Stats::sent`]) or received ([`Stats::received`]).
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Times this end slept: waiting for ring space (sent) or for a message (received).
    pub parks: u64,
    /// Wakeups this end sent its peer (futex wakes and doorbell rings).
    pub wakeups: u64,
    /// The ring's capacity in bytes.
    pub capacity: u64,
    /// Ring bytes published and not yet consumed, now.
    pub in_use: u64,
    /// The sending end of this direction is parked now (ring full).
    pub sender_parked: bool,
    /// The receiving end of this direction is parked now (ring empty).
    pub receiver_parked: bool,
}

/// A connection end's counters (`goipc_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// This end -> peer.
    pub sent: DirectionStats,
    /// Peer -> this end.
    pub received: DirectionStats,
    /// The peer's process id.
    pub peer_pid: i64,
    /// This end dialed (it created the segment); false if it accepted.
    pub dialer: bool,
    /// When this end completed the handshake.
    pub opened: SystemTime,
}

impl DirectionStats {
    fn from_c(d: &sys::goipc_direction_stats) -> DirectionStats {
        DirectionStats {
            messages: d.messages,
            bytes: d.bytes,
            parks: d.parks,
            wakeups: d.wakeups,
            capacity: d.capacity,
            in_use: d.in_use,
            sender_parked: d.sender_parked != 0,
            receiver_parked: d.receiver_parked != 0,
        }
    }
}

impl Stats {
    pub(crate) fn from_c(s: &sys::goipc_stats) -> Stats {
        let ns = u64::try_from(s.opened_unix_ns).unwrap_or(0);
        Stats {
            sent: DirectionStats::from_c(&s.sent),
            received: DirectionStats::from_c(&s.received),
            peer_pid: s.peer_pid,
            dialer: s.dialer != 0,
            opened: SystemTime::UNIX_EPOCH + Duration::from_nanos(ns),
        }
    }
}
