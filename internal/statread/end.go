package statread

import "time"

// End is one connection end: a process holding a goipc segment, seen from
// that process.
type End struct {
	PID     int    // the process holding this end
	Name    string // its /proc/PID/comm (raw: may hold any byte)
	PeerPID int    // the other end's pid as written in the segment (0: not yet accepted)
	Dialer  bool   // this end dialed (created the segment); else it accepted
	// Segment identifies the segment (its memfd's inode): both ends of a
	// connection report the same value.
	Segment uint64
	Header  Header

	Sent     Direction // this end -> peer
	Received Direction // peer -> this end
}

// Direction are one direction's counters, as the end's own side of the
// ring counts them (the sender's counters for Sent, the receiver's for
// Received), like (*goipc.Conn).Stats.
type Direction struct {
	Capacity uint64 // ring bytes
	InUse    uint64 // ring bytes published and not yet consumed
	Messages uint64 // messages this end sent (Sent) or received (Received)
	Bytes    uint64 // their payload bytes
	Parks    uint64 // times this end parked: for space (Sent) or for a message (Received)
	Wakeups  uint64 // wakeups this end sent its peer

	SenderParked   bool // the sending side of this direction is parked now (ring full)
	ReceiverParked bool // the receiving side of this direction is parked now (ring empty)
}

// Age is how long ago the segment was created, or 0 when unknown.
func (e End) Age(now time.Time) time.Duration {
	if e.Header.Created.IsZero() || now.Before(e.Header.Created) {
		return 0
	}
	return now.Sub(e.Header.Created)
}

// newEnd derives an end from a validated header. Ring 0 is the dialer's
// sending ring, ring 1 the listener's.
func newEnd(pid int, name string, segment uint64, h Header, dialer bool) End {
	tx, rx, peer := h.Rings[1], h.Rings[0], h.CreatorPID
	if dialer {
		tx, rx, peer = h.Rings[0], h.Rings[1], h.AcceptorPID
	}
	return End{
		PID: pid, Name: name, PeerPID: int(peer), Dialer: dialer, Segment: segment, Header: h,
		Sent: Direction{
			Capacity: tx.Capacity, InUse: tx.InUse(),
			Messages: tx.ProducerMessages, Bytes: tx.ProducerBytes,
			Parks: tx.ProducerParks, Wakeups: tx.ProducerWakeups,
			SenderParked: tx.ProducerParked(), ReceiverParked: tx.ConsumerParked(),
		},
		Received: Direction{
			Capacity: rx.Capacity, InUse: rx.InUse(),
			Messages: rx.ConsumerMessages, Bytes: rx.ConsumerBytes,
			Parks: rx.ConsumerParks, Wakeups: rx.ConsumerWakeups,
			SenderParked: rx.ProducerParked(), ReceiverParked: rx.ConsumerParked(),
		},
	}
}

// Unreadable is a descriptor that looks like a goipc segment (a memfd
// named "goipc") but could not be read or failed validation.
type Unreadable struct {
	PID    int
	Name   string
	FD     int
	Reason string
}

// Snapshot is what one Scan found.
type Snapshot struct {
	Taken      time.Time
	Ends       []End
	Unreadable []Unreadable
}
