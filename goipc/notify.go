package goipc

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/goipc/goipc/goipc/internal/sys"
)

// notifyFD is a connection's pollable descriptor: an eventfd of this
// process (never shared with the peer) that the watcher makes readable
// when the peer rings our doorbell or goes away, for event loops
// (epoll, asyncio, tokio) that wait on many connections.
type notifyFD struct {
	mu sync.Mutex   // serialises creation and close
	fd atomic.Int32 // -1 until NotifyFD is first called, and after close
	// pending pairs with the watcher's signal: set after each write to
	// the eventfd, cleared (with a read that resets the counter) by the
	// next call on the connection.
	pending atomic.Bool
}

func (n *notifyFD) open() bool { return n.fd.Load() >= 0 }

// signal makes the descriptor readable, if there is one.
func (n *notifyFD) signal() {
	if fd := n.fd.Load(); fd >= 0 {
		sys.SignalEventFD(int(fd))
		n.pending.Store(true)
	}
}

// drain resets the descriptor's readiness: the call that drains it is
// about to look at the ring itself. Costs one atomic load when nothing
// is pending.
func (n *notifyFD) drain() {
	if n.pending.Load() && n.pending.CompareAndSwap(true, false) {
		if fd := n.fd.Load(); fd >= 0 {
			sys.DrainEventFD(int(fd))
		}
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
// TryRecv-style calls with timeout 0) may now succeed: a message arrived,
// ring space was freed, or the connection ended (closed or peer gone). It
// is for event loops (epoll, asyncio's add_reader, tokio's AsyncFd) that
// wait on many connections without a thread each.
//
// The rules: a zero-timeout call that returns ErrTimeout arms the
// descriptor; wait until it is readable (level-triggered; a wakeup may be
// spurious); then call again. Any call on the connection resets the
// readiness, so always call until ErrTimeout before waiting again. The
// descriptor belongs to the connection: do not read, write or close it;
// Close closes it (remove it from epoll sets first). Every call returns
// the same descriptor.
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
	// so that the first wait is preceded by a call that arms it.
	c.notify.signal()
	return fd, nil
}
