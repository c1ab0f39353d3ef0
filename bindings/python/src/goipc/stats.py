"""Connection statistics: :meth:`goipc.Conn.stats` returns a :class:`Stats`.

The numbers are the ones each end counts in the connection's shared segment
(the same ones ``goipc stat`` shows from outside the process, docs/STAT.md):
what this end moved, how often it slept, and whether a side sleeps now.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _lib


@dataclass(frozen=True)
class DirectionStats:
    """One direction of a connection, as this end counts it."""

    messages: int
    """Messages this end sent (``Stats.sent``) or received (``Stats.received``)."""
    bytes: int
    """Their payload bytes."""
    parks: int
    """Times this end slept: waiting for ring space (sent) or for a message (received)."""
    wakeups: int
    """Wakeups this end sent its peer."""
    capacity: int
    """The ring's capacity in bytes."""
    in_use: int
    """Ring bytes published and not yet consumed, now."""
    sender_parked: bool
    """The sending end of this direction is parked now (ring full)."""
    receiver_parked: bool
    """The receiving end of this direction is parked now (ring empty)."""


@dataclass(frozen=True)
class Stats:
    """A connection end's counters (``goipc_stats``)."""

    sent: DirectionStats
    """This end -> peer."""
    received: DirectionStats
    """Peer -> this end."""
    peer_pid: int
    """The peer's process id."""
    dialer: bool
    """True if this end dialed (it created the segment), False if it accepted."""
    opened_ns: int
    """When this end completed the handshake, Unix time in nanoseconds."""


def _direction(d: _lib.DirectionStats) -> DirectionStats:
    return DirectionStats(
        messages=d.messages,
        bytes=d.bytes,
        parks=d.parks,
        wakeups=d.wakeups,
        capacity=d.capacity,
        in_use=d.in_use,
        sender_parked=bool(d.sender_parked),
        receiver_parked=bool(d.receiver_parked),
    )


def from_c(s: _lib.Stats) -> Stats:
    """Converts a filled ``goipc_stats``."""
    return Stats(
        sent=_direction(s.sent),
        received=_direction(s.received),
        peer_pid=s.peer_pid,
        dialer=bool(s.dialer),
        opened_ns=s.opened_unix_ns,
    )
