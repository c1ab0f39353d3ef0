package goipc

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/goipc/goipc/goipc/internal/sys"
)

// notifyFD is a connection's pollable descriptor: an eventfd of this
// process (never shared with the peer) that the watcher makes readable
// when the peer rings our doorbell or goes away, for event loops (epoll,
// asyncio, tokio) that wait on many connections.
//
// One descriptor serves both directions, so readiness is kept per
// direction: pending[dir] says a doorbell for dir arrived since dir's
// last failed try. A failed try resets only its own direction, and
// leaves the descriptor readable while the other direction is pending:
// a send that finds the ring full must not swallow the wakeup of a
// receive that waits on the same descriptor.
type notifyFD struct {
	mu sync.Mutex   // serialises creation and close
	fd atomic.Int32 // -1 until NotifyFD is first called, and after close
	// pending[dir] is set by the watcher before it writes the eventfd,
	// and cleared by dir's next failed try (reset).
	pending [2]atomic.Bool
	// waiting[dir] says dir's last call ended in a failed try (its caller
	// waits on the descriptor): set by reset, cleared when the next call
	// in dir begins. A pending direction nobody waits for (a wakeup that
	// was acted on, the initial readiness, a stale doorbell byte) must not
	// keep the descriptor readable through the other direction's resets.
	waiting [2]atomic.Bool
	// readable says the eventfd holds a count: set with each write,
	// cleared with each read, both under readMu, so that a reset that
	// finds it false skips the read(2) (a loop whose calls fail between
	// wakeups makes many) without ever leaving a count behind.
	readMu   sync.Mutex
	readable bool
}

// raise makes the eventfd readable.
func (n *notifyFD) raise(fd int32) {
	n.readMu.Lock()
	sys.SignalEventFD(int(fd))
	n.readable = true
	n.readMu.Unlock()
}

// drain makes the eventfd quiet, with a read(2) only if it is readable.
func (n *notifyFD) drain(fd int32) {
	n.readMu.Lock()
	if n.readable {
		sys.DrainEventFD(int(fd))
		n.readable = false
	}
	n.readMu.Unlock()
}

// live reports whether dir has a waiter whose wakeup arrived.
func (n *notifyFD) live(dir int) bool { return n.waiting[dir].Load() && n.pending[dir].Load() }

// begin marks dir as no longer waiting: a call in dir is about to look at
// the ring itself (and ends in reset again if it finds nothing).
func (n *notifyFD) begin(dir int) {
	if n.waiting[dir].Load() {
		n.waiting[dir].Store(false)
	}
}

func (n *notifyFD) open() bool { return n.fd.Load() >= 0 }

// signal marks dir pending and makes the descriptor readable, if there
// is one.
func (n *notifyFD) signal(dir int) {
	if fd := n.fd.Load(); fd >= 0 {
		// SYNC POINT: this store precedes the eventfd write; pairs with
		// reset's load of the other direction after its read.
		n.pending[dir].Store(true)
		n.raise(fd)
	}
}

// reset clears dir's readiness before its caller waits on the descriptor.
// The eventfd itself is read (reset) only when the other direction has
// nothing pending, and only if it holds a count (drain); if the other
// direction became pending meanwhile, its signal may have been consumed
// by that read, so the descriptor is made readable again. A spurious
// readiness can result, never a lost one.
func (n *notifyFD) reset(dir int) {
	fd := n.fd.Load()
	if fd < 0 {
		return
	}
	n.pending[dir].Store(false)
	n.waiting[dir].Store(true)
	if n.live(1 - dir) {
		return
	}
	n.drain(fd)
	if n.live(1 - dir) {
		n.raise(fd)
	}
}

// close closes the descriptor; called once, when the mapping is released.
func (n *notifyFD) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if fd := n.fd.Swap(-1); fd >= 0 {
		sys.Close(int(fd))
	}
}

// NotifyFD returns a file descriptor that becomes readable when a call on
// this connection that returned ErrTimeout without waiting (TrySend,
// zero-timeout receives) may now succeed: a message arrived, ring space
// was freed, or the connection ended (closed or peer gone). It is for
// event loops (epoll, asyncio's add_reader, tokio's AsyncFd) that wait on
// many connections without a thread each.
//
// The rules: a zero-timeout call that returns ErrTimeout arms the
// descriptor for its direction (receive or send) and resets that
// direction's readiness; wait until the descriptor is readable
// (level-triggered; a wakeup may be spurious); then call again. Calls that
// succeed leave the readiness alone, so the descriptor may stay readable
// until the next call that returns ErrTimeout. Readiness of one direction
// survives a failed call in the other. A send does not arm the descriptor
// for the reply: make one zero-timeout receive before the first wait. The
// descriptor belongs to the connection: do not read, write or close it;
// Close closes it (remove it from epoll sets first). Every call returns the
// same descriptor.
func (c *Conn) NotifyFD() (int, error) {
	if err := c.enter(dirRecv); err != nil {
		return -1, err
	}
	defer c.leave(dirRecv)
	c.notify.mu.Lock()
	defer c.notify.mu.Unlock()
	if fd := c.notify.fd.Load(); fd >= 0 {
		return int(fd), nil
	}
	fd, err := sys.NewEventFD()
	if err != nil {
		return -1, fmt.Errorf("goipc: NotifyFD: %w", err)
	}
	c.notify.fd.Store(int32(fd))
	// Events before the descriptor existed woke nobody: start readable,
	// so that the first wait is preceded by a call that arms it. No
	// direction is marked pending: the first failed call, in either
	// direction, makes it quiet.
	c.notify.raise(int32(fd))
	return fd, nil
}
