package goipc

import (
	"sync/atomic"
	"time"
)

// alarm wakes a direction's doorbell waiter at its deadline: its function
// leaves a token on the direction's bell, and the waiter, woken, looks at
// the ring and at its state, which reports the deadline passed.
//
// It is set lazily: a wait sets it only when it is not set, or set for
// later than the wait's deadline. A wait with a long timeout that ends
// early (the common case: a Recv with a timeout that a message answers)
// leaves it set, and later waits with later deadlines keep it; when it
// goes off during one of them, that waiter looks, finds its own deadline
// still ahead, parks again and sets it anew. So a park makes no timer
// reset and waits with a plain channel receive, where a per-park timer
// cost a Reset, a Stop and a select over four channels (PERFORMANCE.md
// section 20).
type alarm struct {
	t atomic.Pointer[time.Timer] // made by the first wait with a deadline (AfterFunc)
	// at is when t goes off, as time since monoOrigin, or 0 when t is not
	// set or has gone off. SYNC POINT: stored by the waiter before it
	// arms t; cleared by t's function before it rings. So a non-zero at
	// means a token is on its way no later than at; a stale 0 only makes
	// the next wait set t again.
	at atomic.Int64
}

// monoOrigin is the origin of alarm times (its monotonic clock reading).
var monoOrigin = time.Now()

// setAlarm makes sure direction dir's alarm goes off no later than
// deadline. Called by the direction's waiter only (its lock).
func (c *Conn) setAlarm(dir int, deadline time.Time) {
	a := &c.alarms[dir]
	at := max(int64(deadline.Sub(monoOrigin)), 1)
	if cur := a.at.Load(); cur != 0 && cur <= at {
		return
	}
	a.at.Store(at)
	if t := a.t.Load(); t != nil {
		t.Reset(time.Until(deadline))
		return
	}
	a.t.Store(time.AfterFunc(time.Until(deadline), func() {
		a.at.Store(0)
		c.wakeBell(dir)
	}))
}

// stopAlarms stops the alarms of a released Conn (no call is in flight
// any more), so that their timers do not hold it until they go off.
func (c *Conn) stopAlarms() {
	for i := range c.alarms {
		if t := c.alarms[i].t.Load(); t != nil {
			t.Stop()
		}
	}
}
