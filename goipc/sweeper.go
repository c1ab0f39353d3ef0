package goipc

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// The sweeper: the ring poller (poller.go) for an event loop, whose own
// thread does the sweeping.
//
// An event loop (asyncio, tokio, epoll) waits on many connections with
// zero-timeout calls and their NotifyFDs. Each call that finds nothing
// arms its doorbell (tryFailed), so every message it then waits for costs
// the peer a write(2) on the socket, our watcher a read(2) and an eventfd
// write, and the loop an epoll wakeup and an eventfd read: about what a
// Unix socket costs. A busy loop does not need any of that: it has
// something to do every few microseconds. With a Sweeper attached, a
// failed zero-timeout call leaves its direction UN-armed on the sweeper's
// list instead; the loop calls Sweep between its other work (one load of
// each listed position word, no system call) to learn which waits may now
// succeed, and calls Arm when it goes idle: Arm does for every listed wait
// what a failed call does without a sweeper (arm, re-check), after which
// those waits are ordinary NotifyFD waits.
//
// The wakeup protocol between the processes is unchanged: a listed entry
// is a spinner (the peer sees no doorbell flag and rings nothing), and
// Arm's arm-then-check is the doorbell waiter's (docs/PROTOCOL.md, "The
// loop sweeper").

// Reported tokens carry their direction in the low bit: token<<1 |
// SweepSend or SweepRecv.
const (
	SweepSend = dirSend // ring space was freed (or the connection ended)
	SweepRecv = dirRecv // a message arrived (or the connection ended)
)

// MaxSweepToken is the largest token SetSweeper takes: reports shift it
// left by one.
const MaxSweepToken = 1<<63 - 1

// Sweeper watches the directions of the connections attached to it
// (SetSweeper) whose last zero-timeout call found nothing. It is meant
// for one event loop: Sweep and Arm are called from one thread at a time;
// Close of an attached connection, from any thread, is safe. The zero
// value is not usable: use NewSweeper.
type Sweeper struct {
	mu      sync.Mutex
	entries []*sweepEntry // listed waits; guarded by mu
	freed   bool          // Free was called; guarded by mu
}

// sweepEntry is a direction of a connection listed on a sweeper: the
// connection's own (Conn.sweeps[dir]). All fields are guarded by the
// sweeper's mu while it is listed (index >= 0).
type sweepEntry struct {
	c     *Conn
	dir   int
	ec    eventCount
	word  *uint64 // the position the failed call depends on (positionWord)
	seen  uint64  // its value when that call's check failed (positionSeen)
	token uint64  // what Sweep reports: the connection's token<<1 | dir
	// ended says the connection was closed, its peer went away, or it
	// broke: Sweep reports the entry without loading word, whose mapping
	// may be about to go.
	ended bool
	index int // place in Sweeper.entries, -1 while not listed
}

// NewSweeper returns an empty sweeper.
func NewSweeper() *Sweeper { return &Sweeper{} }

// SetSweeper attaches c to s (or, with nil, detaches it): from now on a
// zero-timeout call on c that finds nothing to do (TrySend, a receive or
// a call's wait with timeout 0) lists its direction on s, un-armed,
// instead of arming the doorbell: Sweep reports token<<1|SweepRecv (or
// SweepSend) once it may succeed, Arm hands it back to NotifyFD. A
// direction listed on another sweeper (or on s under an older token) is
// taken off it first. It creates c's NotifyFD if there is none yet:
// waits handed back by Arm end on it. token must be at most
// MaxSweepToken.
func (c *Conn) SetSweeper(s *Sweeper, token uint64) error {
	if token > MaxSweepToken {
		return fmt.Errorf("%w: sweeper token %d is larger than %d", ErrInvalidArgument, token, uint64(MaxSweepToken))
	}
	if s != nil {
		if _, err := c.NotifyFD(); err != nil {
			return err
		}
	}
	c.sweepMu.Lock()
	defer c.sweepMu.Unlock()
	c.sweepToken.Store(token)
	// c's entries are listed only on the sweeper c.sweeper points to, and
	// guarded by its lock: unlist them and move the pointer in one
	// critical section of the old sweeper. A call listing itself (add)
	// or ending the entries (endSweeps) checks the pointer under the lock
	// it takes, so it sees c on the old sweeper before, or on s after.
	old := c.sweeper.Load()
	if old == nil {
		c.sweeper.Store(s)
		return nil
	}
	old.mu.Lock()
	for dir := range c.sweeps {
		old.unlink(&c.sweeps[dir])
	}
	c.sweeper.Store(s)
	old.mu.Unlock()
	return nil
}

// add lists c's direction dir, whose check has just failed, on s; it
// reports false when s no longer takes it (detached from c, or freed):
// the caller then arms the doorbell as without a sweeper. The caller
// holds dir's lock and a reference on the mapping.
func (s *Sweeper) add(c *Conn, dir int, ec eventCount) bool {
	e := &c.sweeps[dir]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.freed || c.sweeper.Load() != s {
		return false
	}
	e.c, e.dir, e.ec = c, dir, ec
	e.word, e.seen = c.positionWord(dir), *c.positionSeen(dir)
	e.token = c.sweepToken.Load()<<1 | uint64(dir)
	// Close and the peer watcher mark the listed entries ended, under mu,
	// after storing closed or peerGone (endSweeps): either they see this
	// entry, or this load sees their store.
	e.ended = c.over()
	if e.index < 0 {
		e.index = len(s.entries)
		s.entries = append(s.entries, e)
	}
	return true
}

// over reports whether the connection is over: closed, broken, or its
// peer gone.
func (c *Conn) over() bool {
	return c.closed.Load() || c.peerGone.Load() || c.broken.Load() != nil
}

// endSweeps marks c's listed entries ended, so that the next Sweep reports
// them without touching the mapping, which may be released after this
// returns. Called by Close and the peer watcher (wakeLocalWaiters) and
// when the connection breaks (fail).
func (c *Conn) endSweeps() {
	for {
		s := c.sweeper.Load()
		if s == nil {
			return
		}
		s.mu.Lock()
		if c.sweeper.Load() != s {
			// SetSweeper moved c meanwhile: its entries are guarded by
			// the new sweeper's lock now.
			s.mu.Unlock()
			continue
		}
		for dir := range c.sweeps {
			if e := &c.sweeps[dir]; e.index >= 0 {
				e.ended = true
			}
		}
		s.mu.Unlock()
		return
	}
}

// unlink removes e from entries if it is listed. s.mu is held.
func (s *Sweeper) unlink(e *sweepEntry) { s.entries = unlist(s.entries, e) }

func (e *sweepEntry) listIndex() *int { return &e.index }

// listed is an entry of a list that keeps its own place in it (-1: not
// listed): the ring poller's and the sweeper's.
type listed interface{ listIndex() *int }

// unlist removes e from list, if it is there, by moving the last entry
// into its place, and returns the shorter list.
func unlist[E listed](list []E, e E) []E {
	i := *e.listIndex()
	if i < 0 {
		return list
	}
	last := len(list) - 1
	list[i] = list[last]
	*list[i].listIndex() = i
	var none E
	list[last] = none
	*e.listIndex() = -1
	return list[:last]
}

// Len is the number of listed waits.
func (s *Sweeper) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Sweep looks at every listed wait once and reports, in tokens, those that
// may now succeed (the peer published or freed space) or whose connection
// ended (closed, peer gone, broken): they leave the list, and the caller
// should make their calls again (a call that still finds nothing lists
// itself again). It returns how many it reported, at most len(tokens);
// the others stay listed for the next Sweep. No system call, no
// allocation.
func (s *Sweeper) Sweep(tokens []uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := 0; i < len(s.entries) && n < len(tokens); {
		e := s.entries[i]
		// SYNC POINT: this load pairs with the peer's seq-cst store of its
		// position (publish); the reported call re-checks the ring. ended
		// is checked first: an ended connection's mapping may be gone.
		if e.ended || atomic.LoadUint64(e.word) != e.seen {
			tokens[n] = e.token
			n++
			s.unlink(e) // moves the last entry to i
			continue
		}
		i++
	}
	return n
}

// Arm hands every listed wait back to its NotifyFD: the event loop is
// going idle. For each, it does what a zero-timeout call that finds
// nothing does without a sweeper: it resets the descriptor's readiness
// for the direction, arms the doorbell and looks at the position word
// once more. Waits that may already succeed (or whose connection ended)
// are reported in tokens, as by Sweep; those that do not fit in tokens
// make their NotifyFD readable instead, so none is lost. The list ends
// empty. It returns how many it reported.
func (s *Sweeper) Arm(tokens []uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.armLocked(tokens)
}

// armLocked is Arm with s.mu held.
func (s *Sweeper) armLocked(tokens []uint64) int {
	n := 0
	for _, e := range s.entries {
		e.index = -1
		ready := e.ended
		if !ready {
			e.c.resetNotify(e.dir)
			e.ec.arm()
			// SYNC POINT: the RMW of arm precedes this load (Dekker with
			// the peer's publish-then-load in notify), as in tryFailed.
			if atomic.LoadUint64(e.word) != e.seen {
				e.ec.disarm()
				ready = true
			}
		}
		if !ready {
			continue
		}
		if n < len(tokens) {
			tokens[n] = e.token
			n++
		} else if !e.ended {
			e.c.notify.signal(e.dir)
		}
		// An ended connection's NotifyFD was made readable when it ended
		// (or closed with it).
	}
	clear(s.entries)
	s.entries = s.entries[:0]
	return n
}

// Free empties s and stops it from taking waits: connections still
// attached to it arm their doorbells again on a failed call, as without a
// sweeper. Listed waits are handed back as by Arm, into tokens. Free
// after Free reports nothing.
func (s *Sweeper) Free(tokens []uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.freed = true
	return s.armLocked(tokens)
}
