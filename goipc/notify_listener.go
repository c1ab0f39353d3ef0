package goipc

import (
	"fmt"

	"github.com/goipc/goipc/goipc/internal/sys"
)

// levelFD is a pollable descriptor whose readiness its owner keeps equal
// to a condition it tracks under its own lock (a listener's: something is
// queued for Accept, or the listener is closed). Unlike a connection's
// notifyFD, whose events come from the peer through the watcher, every
// change of the condition happens in this process under that lock, so the
// readiness can be exact: no spurious wakeups, no stale readiness, and no
// wakeup can fall between a failed try and the wait (the failed try and
// the change that would satisfy it are ordered by the lock).
//
// The zero value has no descriptor yet. All methods must be called with
// the owner's lock held.
type levelFD struct {
	fd       int  // the eventfd, while open
	open     bool // created and not yet closed
	readable bool // the eventfd's counter is non-zero
}

// create makes the eventfd (once), readable if ready says so.
func (l *levelFD) create(ready bool) (int, error) {
	if l.open {
		return l.fd, nil
	}
	fd, err := sys.NewEventFD()
	if err != nil {
		return -1, fmt.Errorf("goipc: NotifyFD: %w", err)
	}
	l.fd, l.open, l.readable = fd, true, false
	l.set(ready)
	return fd, nil
}

// set makes the descriptor readable or quiet, with a system call only
// when that changes.
func (l *levelFD) set(ready bool) {
	if !l.open || ready == l.readable {
		return
	}
	if ready {
		sys.SignalEventFD(l.fd)
	} else {
		sys.DrainEventFD(l.fd)
	}
	l.readable = ready
}

// close makes the descriptor readable, so that a poll(2) blocked on it
// (or on a duplicate) wakes, then closes it.
func (l *levelFD) close() {
	if !l.open {
		return
	}
	l.set(true)
	sys.Close(l.fd)
	l.open = false
}
