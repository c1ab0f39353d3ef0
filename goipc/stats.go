package goipc

import (
	"sync/atomic"
	"time"
)

// DirectionStats are the counters of one direction of a connection, as
// this end counted them.
type DirectionStats struct {
	Messages uint64 // messages moved: sent (Sent) or received (Received) by this end
	Bytes    uint64 // their payload bytes
	Parks    uint64 // times this end parked: waiting for ring space (Sent) or for a message (Received)
	Wakeups  uint64 // wakeups this end sent the peer (futex wakes and doorbell rings)
	Capacity uint64 // the ring's capacity in bytes
	InUse    uint64 // ring bytes published and not yet consumed, now

	ReceiverParked bool // the receiving end of this direction is parked now
	SenderParked   bool // the sending end of this direction is parked (ring full) now
}

// Stats describe a connection end: what it moved, how often it slept.
type Stats struct {
	Sent     DirectionStats // this end -> peer
	Received DirectionStats // peer -> this end
	PeerPID  int
	Path     string    // the socket path the connection was made on
	Opened   time.Time // when this end completed the handshake
	Dialer   bool      // this end dialed (it created the segment)
}

// Stats returns the connection's counters. They come from the words this
// end writes into the segment (docs/LAYOUT.md), where goipc stat reads
// them too; a hostile peer could overwrite them, so treat them as
// statistics, not accounting. Safe to call from any goroutine, at any
// time: it never waits. After Close it returns ErrClosed.
func (c *Conn) Stats() (Stats, error) {
	if err := c.enter(dirRecv); err != nil {
		return Stats{}, err
	}
	defer c.leave(dirRecv)
	tx, rx := &c.prod.r, &c.cons.r
	return Stats{
		Sent: DirectionStats{
			Messages:       atomic.LoadUint64(tx.prodMsgs),
			Bytes:          atomic.LoadUint64(tx.prodBytes),
			Parks:          atomic.LoadUint64(tx.prodParks),
			Wakeups:        atomic.LoadUint64(tx.prodWakes),
			Capacity:       tx.cap,
			InUse:          inUse(tx),
			ReceiverParked: tx.dataEC.waiting(),
			SenderParked:   tx.spaceEC.waiting(),
		},
		Received: DirectionStats{
			Messages:       atomic.LoadUint64(rx.consMsgs),
			Bytes:          atomic.LoadUint64(rx.consBytes),
			Parks:          atomic.LoadUint64(rx.consParks),
			Wakeups:        atomic.LoadUint64(rx.consWakes),
			Capacity:       rx.cap,
			InUse:          inUse(rx),
			ReceiverParked: rx.dataEC.waiting(),
			SenderParked:   rx.spaceEC.waiting(),
		},
		PeerPID: int(c.peerPID),
		Path:    c.path,
		Opened:  c.opened,
		Dialer:  c.dialer,
	}, nil
}

// inUse is head - tail, clamped to the capacity (the peer's word may be
// anything).
func inUse(r *ringView) uint64 {
	h, t := atomic.LoadUint64(r.head), atomic.LoadUint64(r.tail)
	if h < t {
		return 0
	}
	return min(h-t, r.cap)
}
