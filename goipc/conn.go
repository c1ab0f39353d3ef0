package goipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/goipc/goipc/goipc/internal/sys"
)

const (
	dirSend = 0
	dirRecv = 1
)

// Conn is one end of a goipc connection: a duplex message channel over a
// shared-memory segment. Create it with Dial or Listener.Accept.
//
// A Conn is safe for concurrent use: sends are serialised with each other,
// receives with each other, and a send and a receive run in parallel.
// Send-then-Recv from several goroutines does not pair requests with
// answers: use Call, which routes each reply to its caller by id, from
// any number of goroutines (docs/PROTOCOL.md, "Calls").
// Close may be called at any time from any goroutine; it interrupts blocked
// calls, which return ErrClosed.
//
// An idle Conn costs no thread and no CPU: a call that waits longer than
// its spin budget and a short futex window sleeps through the Go netpoller
// on the connection's socket (see docs/PROTOCOL.md).
type Conn struct {
	seg  *segment
	prod producer
	cons consumer
	spin time.Duration // the configured budget: the ceiling of the adaptive one

	// spinNow is each direction's adaptive spin budget, guarded by that
	// direction's lock (sendMu, the receive side's; await runs under it).
	// 0 after a spin was preempted: parks at once, with a probe every
	// spinProbeEvery waits.
	spinNow      [2]time.Duration
	spinProbe    [2]uint32 // waits since the last probe
	spinProbeGap [2]uint32 // waits between probes now (0 means 1)
	// spinWins counts each direction's waits in a row that ended while
	// spinning (up to spinStreak); with spinStreaks (SpinDefault), a
	// full streak extends the budget to spinExtended.
	spinWins    [2]uint32
	spinStreaks bool
	// After a wait that parked though a publish of ours had woken the
	// peer (afterPark): spinArmed says the next wait is a long probe
	// (spinNow raised to the full budget, spinProbeGap marked), and
	// wokeProbe and wokeGap schedule those probes. Guarded like spinNow.
	spinArmed          [2]bool
	wokeProbe, wokeGap [2]uint8
	// alarms bound each direction's doorbell waits (alarm.go); guarded
	// likewise.
	alarms [2]alarm
	// bells[dir] gets a token when the peer rings our doorbell (the
	// watcher reads a byte from the socket): re-check the rings.
	bells [2]chan struct{}
	// ended is closed when the Conn is closed or the peer is gone: it
	// wakes the calls waiting off the ring (for a call slot, for a reply
	// routed by another); doorbell waiters get a token on their bell.
	ended     chan struct{}
	endedOnce sync.Once

	sendMu sync.Mutex // serialises senders; held from Reserve to Commit
	// rx is the receive side: its lock (held from RecvView to
	// ReleaseView, and by a caller reading replies) and the routing of
	// call replies (recvside.go).
	rx recvSide

	// inflight counts, per direction, calls in progress plus an open
	// reservation or view: while it is non-zero the mapping must stay. Each
	// counter is on its own cache block so that a sender and a receiver on
	// different cores do not share a line.
	inflight [2]struct {
		n atomic.Int64
		_ [cacheBlock - 8]byte
	}
	closed    atomic.Bool // set once by Close; pairs with inflight (see enter)
	peerGone  atomic.Bool // set by watchPeer when the socket reports EOF
	broken    atomic.Pointer[error]
	release   sync.Once
	onRelease func() // returns the connection's share of a listener's limits
	sock      *net.UnixConn
	sockRaw   syscall.RawConn // for doorbell writes
	watchDone chan struct{}
	peerPID   int32
	dialer    bool
	path      string
	opened    time.Time

	notify notifyFD // the descriptor of NotifyFD, once asked for

	// replied, on an accepted Conn, is closed once the listener has
	// answered the handshake: Accept can hand the Conn out just before
	// that (it is queued first, so that a dialer whose Dial returned
	// finds it), and Close waits for it so that the dialer gets its OK,
	// then ErrPeerClosed, never a handshake cut short. nil on a dialer.
	replied chan struct{}

	// polls are each direction's entry on the ring poller's list while
	// a call in that direction parks (guarded by the direction's lock
	// and, while listed, by poller.mu).
	polls [2]pollEntry

	// sweeper is the Sweeper this Conn's failed zero-timeout calls list
	// themselves on (SetSweeper; nil: they arm their doorbell), under
	// sweepToken; sweeps are their entries (guarded by that sweeper's
	// mu while listed). sweepMu serialises SetSweeper.
	sweeper    atomic.Pointer[Sweeper]
	sweepToken atomic.Uint64
	sweepMu    sync.Mutex
	sweeps     [2]sweepEntry

	// doorbellOnly skips the futex stage of a park (set by Pipe, before
	// the ends are shared): when both ends are goroutines of one process,
	// a futex sleeper holds its P until sysmon retakes it, starving the
	// process's other goroutines (a bridge's network I/O among them).
	doorbellOnly bool

	// wakesSeen is each direction's count of this end's wakes of the
	// peer (the low bits of the segment's wake statistics) at its last
	// park: a change means a publish of ours woke the peer (afterPark).
	// Guarded like spinNow. (Small: these counters share one word of
	// the Conn; docs/PERFORMANCE.md section 22.)
	wakesSeen [2]uint16
	// epochsLooked is, per direction, the low byte of the sum of the
	// epochs of the peer's two eventcounts (which only our futex wakes
	// of the peer move) at that direction's last wait (futexWokePeer).
	// Guarded like spinNow; a byte is enough.
	epochsLooked [2]uint8
	// wonSinceYield counts, per direction, the waits won by spinning
	// since the direction last let the process's other goroutines run
	// (yieldToOthers). Guarded like spinNow.
	wonSinceYield [2]uint8
	// locked is Options.ThreadLocked: the calls never yield their P to
	// others (yieldToOthers). Set at creation.
	locked bool
}

func newConn(seg *segment, dialer bool, sock *net.UnixConn, o *resolved, peerPID int32, path string, onRelease func()) (*Conn, error) {
	txRing, rxRing := 1, 0
	if dialer {
		txRing, rxRing = 0, 1
	}
	raw, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &Conn{
		seg:         seg,
		prod:        producer{r: seg.rings[txRing]},
		cons:        consumer{r: seg.rings[rxRing]},
		spin:        o.spin,
		spinNow:     [2]time.Duration{o.spin, o.spin},
		spinStreaks: o.spinStreaks,
		locked:      o.threadLocked,
		bells:       [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)},
		ended:       make(chan struct{}),
		onRelease:   onRelease,
		sock:        sock,
		sockRaw:     raw,
		watchDone:   make(chan struct{}),
		peerPID:     peerPID,
		dialer:      dialer,
		path:        path,
		opened:      time.Now(),
	}
	c.notify.fd.Store(-1)
	c.polls[dirSend].index, c.polls[dirRecv].index = -1, -1
	c.polls[dirSend].pendingIndex, c.polls[dirRecv].pendingIndex = -1, -1
	c.sweeps[dirSend].index, c.sweeps[dirRecv].index = -1, -1
	c.rx.init(o.maxInflightCalls)
	c.prod.ring = c.ringData
	c.cons.ring = c.ringSpace
	if o.freeSpaceInPieces {
		c.cons.piece = c.cons.r.cap / freedPieces
	}
	go c.watchPeer()
	return c, nil
}

// Doorbell bytes: what a side writes to the socket to wake a peer that
// announced a doorbell wait. The value says which wait: a message was
// published on the peer's receive ring, or space was freed on its send
// ring. A watcher treats any other byte as both.
var (
	doorbellData  = []byte{'D'}
	doorbellSpace = []byte{'S'}
)

func (c *Conn) ringData()  { c.ringDoorbell(doorbellData) }
func (c *Conn) ringSpace() { c.ringDoorbell(doorbellSpace) }

// ringDoorbell wakes the peer's doorbell waiter: one byte on the socket,
// which the peer's watcher reads through its netpoller. A full socket
// buffer (EAGAIN) means the peer has not read the bytes already there:
// each was written for an arm of its own (one ring per arm), so a legit
// peer has at most a few pending and reads them soon; only a peer that
// stopped reading its socket fills it, and it only loses its own wakeups.
func (c *Conn) ringDoorbell(b []byte) {
	c.sockRaw.Write(func(fd uintptr) bool {
		sys.Write(int(fd), b)
		return true
	})
}

// watchPeer reads the socket until it ends. The peer writes only doorbell
// bytes to it after the handshake, each a reason to re-check the rings;
// EOF (or any error) means the peer closed or died. The kernel closes a
// dead process's sockets, so this also catches SIGKILL.
func (c *Conn) watchPeer() {
	defer close(c.watchDone)
	var b [64]byte
	for {
		n, err := c.sock.Read(b[:])
		var data, space bool
		for _, x := range b[:n] {
			data = data || x != doorbellSpace[0]
			space = space || x != doorbellData[0]
		}
		if data {
			c.wakeBell(dirRecv)
			c.notify.signal(dirRecv)
		}
		if space {
			c.wakeBell(dirSend)
			c.notify.signal(dirSend)
		}
		if err != nil {
			break
		}
	}
	// Hold a reference while touching the mapping: a concurrent Close
	// could otherwise release it under us.
	if c.enter(dirRecv) == nil {
		c.peerGone.Store(true)
		c.wakeLocalWaiters()
		c.notify.signal(dirRecv)
		c.notify.signal(dirSend)
		c.leave(dirRecv)
	}
}

// wakeBell hands a direction's doorbell waiter a token, without blocking:
// a token already there does the same job.
func (c *Conn) wakeBell(dir int) {
	select {
	case c.bells[dir] <- struct{}{}:
	default:
	}
}

// wakeLocalWaiters interrupts our own blocked calls (they re-check state):
// futex waiters through the eventcounts, doorbell waiters through a token
// on each doorbell channel (doorbellPark receives from its channel alone,
// or with a context's Done), calls waiting off the ring through ended.
// Each direction has one doorbell waiter at a time (its lock), so one
// token wakes it.
func (c *Conn) wakeLocalWaiters() {
	c.cons.r.dataEC.wakeAll()
	c.prod.r.spaceEC.wakeAll()
	c.endedOnce.Do(func() { close(c.ended) })
	c.wakeBell(dirRecv)
	c.wakeBell(dirSend)
	c.endSweeps()
}

// enter registers a call in direction dir; it fails if the Conn is closed.
func (c *Conn) enter(dir int) error {
	// SYNC POINT: this increment precedes the load of closed; Close stores
	// closed before tryRelease loads the counters (Dekker): either we see
	// closed, or tryRelease sees our count and leaves the mapping alone.
	c.inflight[dir].n.Add(1)
	if c.closed.Load() {
		c.leave(dir)
		return ErrClosed
	}
	return nil
}

func (c *Conn) leave(dir int) {
	if c.inflight[dir].n.Add(-1) == 0 && c.closed.Load() {
		c.tryRelease()
	}
}

func (c *Conn) tryRelease() {
	if c.closed.Load() && c.inflight[dirSend].n.Load() == 0 && c.inflight[dirRecv].n.Load() == 0 {
		c.release.Do(func() {
			c.stopAlarms()
			c.seg.unmap()
			c.notify.close()
			if c.onRelease != nil {
				c.onRelease()
			}
		})
	}
}

// Close closes the connection. Blocked calls return ErrClosed; the peer
// sees ErrPeerClosed once it has received what was sent. The mapping is
// released when the last call returns and any open view or reservation is
// released. Closing twice returns ErrClosed.
func (c *Conn) Close() error {
	// Close holds a reference of its own until it is done with the
	// mapping: a call that sees closed and leaves must not release it yet.
	c.inflight[dirSend].n.Add(1)
	if !c.closed.CompareAndSwap(false, true) {
		c.leave(dirSend)
		return ErrClosed
	}
	c.wakeLocalWaiters()
	if c.replied != nil {
		<-c.replied // one small write on an idle socket: never long
	}
	err := c.sock.Close()
	<-c.watchDone
	c.leave(dirSend)
	return err
}

// MaxMessageSize is the largest message this connection carries.
func (c *Conn) MaxMessageSize() int { return int(c.seg.maxMessage) }

// PeerPID is the process id of the peer, from SO_PEERCRED.
func (c *Conn) PeerPID() int { return int(c.peerPID) }

// fail records a protocol error: the connection is unusable from now on.
func (c *Conn) fail(err error) error {
	c.broken.CompareAndSwap(nil, &err)
	c.endSweeps()
	return err
}

// waitFor describes how long a call may wait.
type waitFor struct {
	// timeout, when > 0, bounds the wait. It becomes deadline the first
	// time the call looks at the clock, which only a call that has to
	// wait does: a call that finds its message or ring space at once
	// reads no clock (time.Now costs about as much as the rest of such a
	// call, docs/PERFORMANCE.md).
	timeout  time.Duration
	deadline time.Time // zero: no deadline (yet: see fixDeadline)
	try      bool      // never wait
	ctx      context.Context
}

func timeoutWait(d time.Duration) waitFor {
	switch {
	case d < 0:
		return waitFor{}
	case d == 0:
		return waitFor{try: true}
	default:
		return waitFor{timeout: d}
	}
}

// startDeadline fixes the deadline of a call with a timeout, once.
func (w *waitFor) startDeadline(now time.Time) {
	if w.timeout > 0 && w.deadline.IsZero() {
		w.deadline = now.Add(w.timeout)
	}
}

// fixDeadline fixes the deadline now if it is not yet: call it before
// reading w.deadline to sleep off the ring.
func (w *waitFor) fixDeadline() {
	if w.timeout > 0 && w.deadline.IsZero() {
		w.deadline = time.Now().Add(w.timeout)
	}
}

// state returns the error that ends a wait, if any: local close, a broken
// connection, a dead peer, a done context, an expired deadline. It reads
// the clock only for a call with a timeout.
func (c *Conn) state(w *waitFor) error {
	if w.timeout > 0 {
		return c.stateAt(w, time.Now())
	}
	return c.stateNoClock(w)
}

// stateAt is state at a time the caller has just read.
func (c *Conn) stateAt(w *waitFor, now time.Time) error {
	if err := c.stateNoClock(w); err != nil {
		return err
	}
	if w.timeout > 0 {
		w.startDeadline(now)
		if !now.Before(w.deadline) {
			return ErrTimeout
		}
	}
	return nil
}

// stateNoClock is state without the deadline: what a call checks before
// its first look at the ring.
func (c *Conn) stateNoClock(w *waitFor) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if p := c.broken.Load(); p != nil {
		return *p
	}
	if c.peerGone.Load() {
		return ErrPeerClosed
	}
	if w.ctx != nil {
		if err := w.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// fastPath reports whether a call that holds its direction may try the
// ring at once, before await: nothing is wrong with the connection and no
// context needs a look. (Close was checked when the call entered, and a
// dead peer's last messages are still delivered, as await's finalCheck
// does.) The caller clears its direction's NotifyFD wait first
// (notify.begin), as await does.
func (c *Conn) fastPath(w *waitFor) bool {
	return w.ctx == nil && c.broken.Load() == nil
}

// await polls ready until it reports true or an error: it spins for the
// direction's spin budget, then parks (see park). ready must be cheap and
// idempotent. drain makes a dead peer's already-published data still count
// as ready. The caller holds dir's lock.
func (c *Conn) await(dir int, ec eventCount, ready func() (bool, error), w *waitFor, drain bool) error {
	c.notify.begin(dir)
	if err := c.stateNoClock(w); err != nil {
		return c.finalCheck(ready, err, drain)
	}
	if ok, err := ready(); ok || err != nil {
		return err
	}
	if w.try {
		return c.tryFailed(dir, ec, ready)
	}
	budget := c.spinBudget(dir)
	stretch := c.futexWokePeer(dir)
	fromZero := budget == 0 && stretch
	if fromZero {
		// Parked at once, we would make the peer we just woke wake us in
		// turn (spinFor: "after a futex wake"). If this spin loses, the
		// budget stays 0 (no halving below).
		budget = c.spin
	}
	pollerWatches := budget > 0 && c.spin != SpinForever && pollerBusy()
	if pollerWatches {
		// The ring poller is sweeping for other parked calls: it watches
		// this one too, without taking a P of its own (poller.go).
		budget = 0
	}
	var start time.Time
	if budget > 0 {
		var outcome int
		var err error
		outcome, start, err = c.spinFor(dir, c.spinLimit(dir, budget), ready, w, drain, stretch)
		c.noteStreak(dir, outcome == spinWon)
		switch outcome {
		case spinWon:
			c.adaptSpin(dir, true)
			if c.wonSinceYield[dir]++; c.wonSinceYield[dir] >= spinWinsPerYield {
				c.wonSinceYield[dir] = 0
				c.yieldToOthers(0)
			}
			return err
		case spinEnded:
			return err
		case spinPreemptedOut:
			// We were descheduled while spinning: the machine has more
			// runnable threads than cores, and spinning keeps the peer
			// (or others) off a CPU. Park at once until a probe wins.
			if c.spin != SpinForever {
				c.spinNow[dir] = 0
			}
			start = time.Time{}
		}
	}
	w.fixDeadline()
	c.countPark(dir)
	err := c.park(dir, ec, ready, w, drain)
	if err == nil && !pollerWatches {
		// (A wait the poller watched did not spin: nothing to adapt.)
		lostSoon := !fromZero && !start.IsZero() && time.Since(start) < 2*budget
		c.afterPark(dir, budget, lostSoon)
	}
	return err
}

// afterPark adapts a direction's spin budget after a wait that parked
// and ended well (out of line: the waits that spin never pay for it).
// budget is what the wait spun; lostSoon says the spin lost, yet the
// wait ended within twice the budget after it began.
//
// A spin that lost, in a wait that ended soon after, halves the budget
// (adaptSpin): the peer most likely needed the CPU we were spinning on
// (more runnable threads than cores). Except when a publish of ours had
// woken the peer and the spin was shorter than the full budget: a parked
// peer answers only after its wakeup (several µs on a guest, tens when
// its vCPU halted), which no short spin outlasts, so its loss says
// nothing about the CPU.
//
// And after such a wake, a reduced budget (0 after a preemption, or
// down to the floor after losses) makes the next wait a probe of the
// whole budget: the first after the wake at once, the next ones after
// gaps that double up to spinProbeEvery parks while they lose; a won
// probe keeps the full budget (adaptSpin) and the next wake probes at
// once again. A lost one leaves the budget at 0. Without these, both ends
// of a ping-pong that fell together (a host hiccup preempting both
// spins) locked in: each parked, each answered the other only after a
// wakeup, and the short spins of both kept losing to each other's
// wakeups. Measured: two goroutines at 5.9-9.5 µs round trips instead of
// 0.8-0.9 in 5 of 6 runs, with 74,000-125,000 of 240,000 waits parked
// (docs/PERFORMANCE.md, sections 9 and 22). The waits that spin pay
// nothing for this: it all happens here, after a park, and the probe is
// the budget they read.
//
//go:noinline
func (c *Conn) afterPark(dir int, budget time.Duration, lostSoon bool) {
	if c.spin == SpinForever || c.spin <= 0 {
		return
	}
	// Either side's wakes count (the peer woke to read, or to write:
	// either way it was parked). The wake counts are the segment's
	// statistics words, which our two sides write with plain stores (the
	// other one under the other direction's lock) and a hostile peer may
	// overwrite: they only hint, and a wrong hint costs one probe.
	wakes := uint16(atomic.LoadUint64(c.prod.r.prodWakes) + atomic.LoadUint64(c.cons.r.consWakes))
	woke := wakes != c.wakesSeen[dir]
	c.wakesSeen[dir] = wakes
	if c.spinArmed[dir] {
		c.spinArmed[dir] = false
		if c.spinProbeGap[dir]&spinArmedMark == 0 {
			// A win since the probe was armed (adaptSpin cleared the
			// mark): the probe won. The next wake probes at once.
			c.wokeGap[dir] = 0
		} else {
			// This wait was the probe, and it lost.
			c.spinProbeGap[dir] &^= spinArmedMark
			c.spinNow[dir] = 0
			return
		}
	}
	if lostSoon && !(woke && budget < c.spin) {
		c.adaptSpin(dir, false)
	}
	if !woke || c.spinNow[dir] >= c.spin {
		return
	}
	c.wokeProbe[dir]++
	if gap := max(1, c.wokeGap[dir]); c.wokeProbe[dir] >= gap {
		c.wokeProbe[dir], c.wokeGap[dir] = 0, min(2*gap, spinProbeEvery)
		c.spinNow[dir] = c.spin
		c.spinArmed[dir] = true
		c.spinProbeGap[dir] |= spinArmedMark
	}
}

// spinArmedMark, in spinProbeGap, says a long probe is armed
// (afterPark); any won spin clears it with the gap (adaptSpin).
const spinArmedMark = 1 << 31

// spinStreak and spinExtended: with SpinDefault, a direction whose last
// spinStreak waits all ended while it spun, at its full budget, spins up
// to spinExtended before it parks. Such a direction is a pair answering
// each other at memory speed, whose rare longer wait (the peer
// interrupted or preempted for tens of microseconds) costs more parked
// than spun through: a park and its wakeup cost 30-65 µs on a guest whose
// idle vCPUs halt, and each one makes the other side's next wait long
// too. The first wait that ends otherwise (parked, preempted, ended by
// the connection's state) ends the streak, so a connection that goes
// quiet spins spinExtended once, then DefaultSpin again. Only while no
// other call of the process is parked: a server's many connections keep
// the default budget (docs/PROTOCOL.md, "Adaptive spinning"; measured in
// docs/PERFORMANCE.md).
const (
	spinStreak   = 64
	spinExtended = time.Millisecond
)

// spinLimit is how long a wait with this budget spins: the budget, or
// spinExtended on a winning streak at the full default budget while no
// other call of the process is parked (nothing then waits for the P the
// longer spin may hold).
func (c *Conn) spinLimit(dir int, budget time.Duration) time.Duration {
	if c.spinStreaks && budget == c.spin && c.spinWins[dir] >= spinStreak && parkedCalls.Load() == 0 {
		return spinExtended
	}
	return budget
}

// noteStreak counts a spin that ended the wait (won), or ends the streak.
func (c *Conn) noteStreak(dir int, won bool) {
	if won {
		c.spinWins[dir] = min(c.spinWins[dir]+1, spinStreak)
	} else {
		c.spinWins[dir] = 0
	}
}

// spinProbeEvery is how often, at most, a direction whose budget fell to
// 0 tries a short spin again, to find out whether the contention is over.
const spinProbeEvery = 32

// spinBudget is how long this wait may spin: the direction's budget, or,
// while the budget is 0, a probe now and then. The first probe comes with
// the first wait after the fall and spins the whole configured budget;
// the next ones spin the floor (1/16 of it), after gaps that double up to
// spinProbeEvery waits while they keep losing. A won probe restores the
// budget (adaptSpin) and the next fall starts over. Under lasting
// contention that is a short probe every spinProbeEvery waits, and a
// probe, long or short, ends at the first look after it lost the CPU; a
// lone preemption on a quiet machine costs one parked wait. The first
// probe is long because both ends fall at once: each then parks at once,
// so each answers the other only after a futex wakeup, and short probes
// on both sides keep losing to each other (measured: 4 preemptions left a
// pair parking for 30,000 waits; docs/PERFORMANCE.md).
func (c *Conn) spinBudget(dir int) time.Duration {
	b := c.spinNow[dir]
	if b > 0 || c.spin <= 0 {
		return b
	}
	c.spinProbe[dir]++
	gap := max(1, c.spinProbeGap[dir])
	if c.spinProbe[dir] < gap {
		return 0
	}
	c.spinProbe[dir] = 0
	c.spinProbeGap[dir] = min(2*gap, spinProbeEvery)
	if gap == 1 {
		return c.spin
	}
	return c.spin / 16
}

// spinPreempted is a gap between two looks at the clock in the spin loop
// that only a lost CPU explains (a look comes every microsecond or so).
const spinPreempted = 50 * time.Microsecond

// How a spin ended.
const (
	spinWon          = iota // ready (or a ring error): the wait is over
	spinEnded               // the call's state ended the wait (err)
	spinLost                // the budget ran out, or no spin slot was free: park
	spinPreemptedOut        // we lost the CPU while spinning: park
)

// spinPollsPerLook is how many times the spin loop polls the ring between
// two looks at the clock and at the connection's state. A poll costs a few
// nanoseconds and a look tens, so a wait that ends within the first
// polls, as most waits for a peer that answers at memory speed do, reads
// no clock at all.
const spinPollsPerLook = 128

// spinFor polls ready for up to budget, counted from its first look at the
// clock, which it returns as start (zero if the wait ended before, or if
// no spin slot was free then). The spin slot (spinners) is taken at the
// first look too, so a short wait never touches it; a call that finds no
// slot free then stops spinning and parks.
//
// It yields its P (runtime.Gosched) at every look only when GOMAXPROCS is
// 1. With more Ps, other goroutines run on the other Ps, a spin lasts at
// most its budget (50 µs by default; Go itself lets a goroutine compute
// for 10 ms before it preempts it), and spinners are at most half the Ps.
// A yield is not free: in a goroutine locked to its thread, as every call
// from C through libgoipc is, it costs two context switches; in any
// goroutine it wakes an idle P's thread (runtime.wakep), which on a machine
// with as many busy threads as cores takes the core of the peer we are
// waiting for (docs/PERFORMANCE.md).
//
// After a futex wake of ours (stretch; await makes such a wait spin even
// at a budget of 0), two things change, both because the peer answers
// only once its thread runs again. At the first look, if it has not run
// yet, the spin yields the CPU once (sched_yield): the kernel may have
// queued the woken thread on this CPU, behind our spin (on a guest whose
// idle vCPU halted it does), and a spin that held it there would delay
// the very answer it waits for. And a spin that reaches its budget while
// the peer has run again goes on to spinAfterWake times the budget: a
// park then would make the peer's answer wake us in turn, and two ends
// answering each other only after wakeups stay parked. Measured in
// docs/PERFORMANCE.md section 23.
func (c *Conn) spinFor(dir int, budget time.Duration, ready func() (bool, error), w *waitFor, drain, stretch bool) (outcome int, start time.Time, err error) {
	var last time.Time
	var yield, yielded bool
	defer func() {
		if !start.IsZero() {
			spinners.release()
		}
	}()
	// A poll is a load of the one word the wait depends on, compared with
	// its value when ready last failed: a receive waits for the peer's
	// head to move, a send for its tail. ready runs again only when it
	// moved (or at a look).
	word, seen := c.positionWord(dir), c.positionSeen(dir)
	// A receive that expects a small frame also loads the lines the
	// frame will be written to (consumer.nextFrameLines).
	warm := dir == dirRecv && c.cons.expectsSmallFrame()
	var warm1, warm2 *uint64
	if warm {
		warm1, warm2 = c.cons.nextFrameLines()
	}
	for i := 1; ; i++ {
		if warm {
			// Loads only to pull the lines in: atomic so that the
			// compiler keeps them although their values are unused.
			atomic.LoadUint64(warm1)
			atomic.LoadUint64(warm2)
		}
		if i == 1 || atomic.LoadUint64(word) != *seen {
			if ok, err := ready(); ok || err != nil {
				return spinWon, start, err
			}
			if warm {
				// (Again: ready may have skipped a padding frame.)
				warm1, warm2 = c.cons.nextFrameLines()
			}
		}
		if i%spinPollsPerLook != 0 {
			continue
		}
		now := time.Now()
		if err := c.stateAt(w, now); err != nil {
			return spinEnded, start, c.finalCheck(ready, err, drain)
		}
		switch {
		case start.IsZero():
			if !spinners.acquire() {
				return spinLost, start, nil
			}
			start = now
			// With one P, the goroutines we wait for (an in-process
			// peer among them) run only when we yield.
			yield = runtime.GOMAXPROCS(0) == 1
		case now.Sub(last) > spinPreempted:
			return spinPreemptedOut, start, nil
		case now.Sub(start) >= budget:
			if !stretch || !c.peerLeftFutex() {
				return spinLost, start, nil
			}
			stretch = false
			budget = max(budget, spinAfterWake*c.spin)
		}
		if stretch && !yielded && !c.peerLeftFutex() {
			// The peer we woke has not run yet: if the kernel queued its
			// thread on this CPU, let it run now rather than after our
			// spin. The look after it counts from here, so that the time
			// the peer ran does not read as a preemption.
			yielded = true
			sys.Yield()
			now = time.Now()
		}
		last = now
		if yield {
			runtime.Gosched()
		}
	}
}

// spinWinsPerYield: a direction whose waits keep ending in won spins
// lets the process's parked calls run every this many (yieldToOthers).
const spinWinsPerYield = 16

// yieldToOthers hands the P to the process's other goroutines if other
// calls of the process wait to run: parked ones (some may be runnable,
// woken by their doorbell or the ring poller: they count until they run;
// self is 1 if the caller itself still counts as parked), or ones that
// yielded here. A wait that spins and wins never enters the scheduler,
// and nor does one woken from a futex sleep (a system call that keeps
// the P), so a goroutine whose round trips keep ending that way holds
// its P until the runtime preempts it after 10 ms, and the calls woken
// meanwhile wait that long: with 8 producers in one client process,
// round trips of 10-30 ms while two producers spun (docs/PERFORMANCE.md
// section 24). A lone connection (nobody parked or yielding) never
// yields here: a yield with an idle P wakes a thread to look for work.
// Nor does a ThreadLocked one: there a yield costs two context switches
// (4 C threads on their own connections: a third fewer round trips).
func (c *Conn) yieldToOthers(self int32) {
	if !c.locked && (parkedCalls.Load() > self || yielders.Load() > 0) {
		yieldP()
	}
}

// yielders counts the calls inside yieldP: queued behind the process's
// other goroutines, they wait for a P again, and a call that keeps its P
// by spinning should let them have it (yieldToOthers). yieldsForOthers
// counts yieldP's calls (tests read it).
var (
	yielders        atomic.Int32
	yieldsForOthers atomic.Uint64
)

// yieldP lets the process's other runnable goroutines run first
// (runtime.Gosched puts this one at the end of the global run queue).
func yieldP() {
	yielders.Add(1)
	yieldsForOthers.Add(1)
	runtime.Gosched()
	yielders.Add(-1)
}

// futexWokePeer reports whether a publish of ours woke the peer from a
// futex wait since this direction's last wait, on a connection that
// stretches its spin then: a finite budget, and no other call of the
// process parked (a server's many connections keep the plain rules). Our
// futex wakes are what move the epochs of the peer's eventcounts (a
// doorbell ring does not; the peer may also move them when it closes,
// which costs one stretched spin). The words are on our own blocks (we
// load them on every publish), so the look costs no cache miss.
func (c *Conn) futexWokePeer(dir int) bool {
	e := uint8(atomic.LoadUint64(c.prod.r.dataEC.word)>>32) + uint8(atomic.LoadUint64(c.cons.r.spaceEC.word)>>32)
	if e == c.epochsLooked[dir] {
		return false
	}
	c.epochsLooked[dir] = e
	return c.spin > 0 && c.spin != SpinForever && parkedCalls.Load() == 0
}

// peerLeftFutex reports whether no futex waiter is announced on either
// of the peer's eventcounts: a woken waiter withdraws its announcement
// only once its thread runs again.
func (c *Conn) peerLeftFutex() bool {
	return (atomic.LoadUint64(c.prod.r.dataEC.word)|atomic.LoadUint64(c.cons.r.spaceEC.word))&ecWaitersMask == 0
}

// spinAfterWake: a spin after a futex wake of ours that reaches its
// budget with the peer running again goes on to this many times the
// configured budget (spinFor).
const spinAfterWake = 4

// adaptSpin moves a direction's spin budget: doubling (up to the configured
// budget; from 0, a won probe restarts at 1/16 of it) after a spin that
// caught the peer, halving (down to 1/16 of it) after a spin that lost to
// CPU contention. SpinForever never adapts.
func (c *Conn) adaptSpin(dir int, won bool) {
	if c.spin == SpinForever {
		return
	}
	b := c.spinNow[dir]
	if won {
		c.spinNow[dir] = min(c.spin, max(2*b, c.spin/16))
		c.spinProbe[dir], c.spinProbeGap[dir] = 0, 0
	} else {
		c.spinNow[dir] = max(c.spin/16, b/2)
	}
}

// countPark records, in the segment's statistics, that this side parked.
func (c *Conn) countPark(dir int) {
	if dir == dirRecv {
		c.cons.n.parks++
		*c.cons.r.consParks = c.cons.n.parks
	} else {
		c.prod.n.parks++
		*c.prod.r.prodParks = c.prod.n.parks
	}
}

// futexWindow is how long a parked call sleeps on the futex, holding its
// thread, before it moves to the doorbell, which holds none. A peer that
// answers within the window wakes us the cheapest way; an idle connection
// pays one futex timeout and then costs nothing.
var futexWindow = 2 * time.Millisecond

// park sleeps until ready: on the futex for futexWindow when one of the
// process's futex slots is free (they bound the threads parked calls
// hold), then on the doorbell.
//
// The ring poller (poller.go) takes the doorbell stage of the calls that
// found no futex slot, or found the poller already sweeping: a process
// with more waiting calls than cores, where it saves a system call per
// message. A lone call that outlasted its futex window waits on its
// doorbell directly: the kernel wakes it however busy the machine is,
// while a poller competing with busy threads for a core may not run for
// a time slice.
func (c *Conn) park(dir int, ec eventCount, ready func() (bool, error), w *waitFor, drain bool) error {
	n := parkedCalls.Add(1)
	defer parkedCalls.Add(-1)
	usePoller := (int64(n) > pollerMinParked.Load() || yielders.Load() > 0) && c.usePoller()
	if !c.doorbellOnly && !(usePoller && pollerBusy()) && futexSleepers.acquire() {
		done, slept, err := c.futexPark(ec, ready, w, drain)
		futexSleepers.release()
		if done {
			if slept {
				// Other calls of this process may be runnable: hand them
				// our P (this call still counts as parked). A futex sleep
				// is a system call that keeps the P, and one that ends
				// every few microseconds (a busy peer answering) is never
				// retaken by sysmon: round trip after round trip, the
				// goroutine would keep its P until the runtime preempts it
				// 10 ms later, while the calls woken meanwhile wait
				// (yieldToOthers, docs/PERFORMANCE.md section 24).
				c.yieldToOthers(1)
			}
			return err
		}
		usePoller = false
	}
	return c.doorbellPark(dir, ec, ready, w, drain, usePoller)
}

// futexPark sleeps on ec's futex until ready or for futexWindow. done
// reports that the wait is over (with err); slept, that it slept at
// least once.
func (c *Conn) futexPark(ec eventCount, ready func() (bool, error), w *waitFor, drain bool) (done, slept bool, err error) {
	if w.ctx != nil && w.ctx.Done() != nil {
		// The callback may run after this call returned: it takes its own
		// reference so that it never touches a released mapping.
		stop := context.AfterFunc(w.ctx, func() {
			if c.enter(dirRecv) == nil {
				ec.wakeAll()
				c.leave(dirRecv)
			}
		})
		defer stop()
	}
	until := time.Now().Add(futexWindow)
	if !w.deadline.IsZero() && w.deadline.Before(until) {
		until = w.deadline
	}
	for {
		epoch := ec.prepare()
		if ok, err := ready(); ok || err != nil {
			ec.cancel()
			return true, slept, err
		}
		if err := c.state(w); err != nil {
			ec.cancel()
			return true, slept, c.finalCheck(ready, err, drain)
		}
		left := time.Until(until)
		if left <= 0 {
			ec.cancel()
			return false, slept, nil
		}
		ec.wait(epoch, left)
		slept = true
		ec.cancel()
	}
}

// doorbellPark announces a doorbell wait on ec and sleeps on the Go
// netpoller (the watcher reading the socket) until ready: no thread, no
// periodic wakeup. With usePoller the call goes on the ring poller's list
// instead, un-armed, and the poller arms it once the process is quiet.
func (c *Conn) doorbellPark(dir int, ec eventCount, ready func() (bool, error), w *waitFor, drain, usePoller bool) error {
	timed := !w.deadline.IsZero()
	var cancelled <-chan struct{}
	if w.ctx != nil {
		cancelled = w.ctx.Done()
	}
	var e *pollEntry
	if usePoller {
		e = &c.polls[dir]
		e.c, e.dir, e.ec, e.word = c, dir, ec, c.positionWord(dir)
	}
	for {
		if e != nil {
			e.seen = *c.positionSeen(dir)
			poller.add(e)
		} else {
			ec.arm()
		}
		if ok, err := ready(); ok || err != nil {
			c.unpark(e, ec, false)
			return err
		}
		if err := c.state(w); err != nil {
			c.unpark(e, ec, c.notify.open())
			return c.finalCheck(ready, err, drain)
		}
		if timed {
			c.setAlarm(dir, w.deadline)
		}
		if cancelled == nil {
			// A plain receive, a third of the CPU of a select at 1024
			// producers (perf): the peer's ring, the poller, the end
			// (wakeLocalWaiters) and the deadline (the alarm) all leave
			// a token here, and each is followed by a look at the ring
			// and the state.
			<-c.bells[dir]
		} else {
			select {
			case <-c.bells[dir]:
			case <-cancelled:
			}
		}
		if e != nil {
			// Off the poller's list before the next look, disarmed if it
			// armed for us: the next round registers afresh.
			c.unpark(e, ec, false)
		}
	}
}

// usePoller reports whether this Conn's parked calls go to the ring
// poller (poller.go) rather than straight to their doorbell: all but
// SpinNever's, which asked for the least CPU, and a NotifyFD user's,
// whose descriptor reports the arms a call leaves behind (tryFailed).
//
// Nor while the poller is backing off after it was starved of CPU (a
// busier machine than it can serve: poller.go), which costs a clock read
// only while a backoff is recorded.
func (c *Conn) usePoller() bool {
	return c.spin > 0 && !c.notify.open() && !poller.starved()
}

// positionWord is the shared word a wait in dir depends on: the peer's
// tail for a send (space), its head for a receive (data).
func (c *Conn) positionWord(dir int) *uint64 {
	if dir == dirRecv {
		return c.cons.r.head
	}
	return c.prod.r.tail
}

// positionSeen is where the ring keeps positionWord's value as of the
// last failed ready().
func (c *Conn) positionSeen(dir int) *uint64 {
	if dir == dirRecv {
		return &c.cons.headSeen
	}
	return &c.prod.tailSeen
}

// unpark ends a doorbell wait's announcement: off the poller's list (and
// disarmed if the poller armed it), or disarmed, unless keepArm (a
// NotifyFD user keeps the arm: the descriptor then reports the peer's
// next move).
func (c *Conn) unpark(e *pollEntry, ec eventCount, keepArm bool) {
	armed := true
	if e != nil {
		armed = poller.remove(e)
	}
	if armed && !keepArm {
		ec.disarm()
	}
}

// tryFailed ends a call that may not wait. When the connection has a
// NotifyFD, the caller is about to wait on it: this resets the
// descriptor's readiness for dir (notifyFD.reset), arms the doorbell, so
// that the descriptor becomes readable when the peer next publishes (or
// frees space), and looks once more: what the peer published before the
// arm would ring nothing. With a Sweeper attached, the direction is
// listed on it instead, un-armed (sweeper.go): the reset costs no system
// call then unless the descriptor was made readable.
func (c *Conn) tryFailed(dir int, ec eventCount, ready func() (bool, error)) error {
	if !c.notify.open() {
		return ErrTimeout
	}
	c.resetNotify(dir)
	if dir == dirRecv && c.rx.signalled {
		// This look routed another call's reply and signalled the
		// descriptor for it; the reset above may have read that away.
		c.notify.signal(dirRecv)
	}
	if s := c.sweeper.Load(); s != nil && s.add(c, dir, ec) {
		return ErrTimeout
	}
	ec.arm()
	if ok, err := ready(); ok || err != nil {
		ec.disarm()
		c.notify.begin(dir)
		return err
	}
	return ErrTimeout
}

// resetNotify quiets dir's readiness on NotifyFD before the caller waits
// on it (notifyFD.reset), and makes it readable again if the connection
// has ended meanwhile. The watcher (peer gone), Close and fail store
// their flag before they signal the descriptor; a reset that read such a
// signal away would leave it quiet for good, since nothing signals an
// ended connection again.
func (c *Conn) resetNotify(dir int) {
	c.notify.reset(dir)
	// SYNC POINT: this load follows the eventfd read in reset; pairs with
	// the store of peerGone, closed or broken that precedes the ender's
	// signal (the eventfd write that read consumed).
	if c.over() {
		c.notify.signal(dir)
	}
}

// finalCheck runs when a wait ends with err. For a peer that is gone, a
// receiver looks once more: what the peer published before it died was
// published before the socket reported its death, so this look sees it.
func (c *Conn) finalCheck(ready func() (bool, error), err error, drain bool) error {
	if drain && err == ErrPeerClosed {
		if ok, rerr := ready(); ok || rerr != nil {
			return rerr
		}
	}
	return err
}

// ---- sending ----

// Send writes msg as one message, waiting for ring space as long as it
// takes (backpressure: nothing is ever dropped or overwritten).
func (c *Conn) Send(msg []byte) error { return c.send(msg, waitFor{}) }

// SendTimeout is Send with a timeout: < 0 waits forever, 0 never waits
// (ErrTimeout if the ring is full).
func (c *Conn) SendTimeout(msg []byte, timeout time.Duration) error {
	return c.send(msg, timeoutWait(timeout))
}

// SendContext is Send that gives up when ctx is done, returning ctx.Err().
func (c *Conn) SendContext(ctx context.Context, msg []byte) error {
	return c.send(msg, waitFor{ctx: ctx})
}

// TrySend is Send that never waits: ErrTimeout if the ring is full.
func (c *Conn) TrySend(msg []byte) error { return c.send(msg, waitFor{try: true}) }

func (c *Conn) send(msg []byte, w waitFor) error {
	buf, err := c.reserve(len(msg), w)
	if err != nil {
		return err
	}
	copy(buf, msg)
	return c.commit(uint64(len(msg)))
}

// SendBatch sends msgs in order, each as one message, and publishes them
// together: the peer's ring position moves, and a sleeping peer is woken,
// once per batch instead of once per message. Use it to stream many
// small messages (docs/PERFORMANCE.md, "Streams"); the peer receives
// them one by one as usual. It waits for ring space as Send does,
// publishing what it has written before it waits, so a batch may be
// larger than the ring. It returns how many messages were sent: all of
// them, or, with an error, the first n (the others were not sent).
func (c *Conn) SendBatch(msgs [][]byte) (int, error) { return c.sendBatch(msgs, waitFor{}) }

// SendBatchTimeout is SendBatch with a timeout for the whole batch: < 0
// waits forever, 0 never waits (it sends what fits, then ErrTimeout).
func (c *Conn) SendBatchTimeout(msgs [][]byte, timeout time.Duration) (int, error) {
	return c.sendBatch(msgs, timeoutWait(timeout))
}

func (c *Conn) sendBatch(msgs [][]byte, w waitFor) (sent int, err error) {
	for i, m := range msgs {
		if uint64(len(m)) > c.prod.r.maxMsg {
			return 0, fmt.Errorf("%w: message %d of the batch is %d bytes, maximum is %d", ErrMessageTooLarge, i, len(m), c.prod.r.maxMsg)
		}
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	if err := c.lockSend(); err != nil {
		return 0, err
	}
	defer func() {
		c.prod.flush()
		c.unlockSend()
	}()
	for _, m := range msgs {
		if err := c.reserveLocked(uint64(len(m)), &w); err != nil {
			return sent, err
		}
		if c.closed.Load() {
			c.prod.abort()
			return sent, ErrClosed
		}
		copy(c.prod.reservedBytes(), m)
		c.prod.stage(uint64(len(m)))
		sent++
	}
	return sent, nil
}

// lockSend takes the send side for a reservation or a batch: it fails at
// once, holding nothing, if the connection is closed or the peer is gone
// (a dead peer will read nothing more: better fail than fill its ring).
func (c *Conn) lockSend() error {
	if err := c.enter(dirSend); err != nil {
		return err
	}
	c.sendMu.Lock()
	if c.peerGone.Load() {
		c.unlockSend()
		return ErrPeerClosed
	}
	c.notify.begin(dirSend)
	return nil
}

func (c *Conn) unlockSend() {
	c.sendMu.Unlock()
	c.leave(dirSend)
}

// reserveLocked reserves room for an n-byte frame, the send side held,
// waiting for space as w allows. Frames a batch staged are published
// before it waits: the peer frees space only for what it can see.
func (c *Conn) reserveLocked(n uint64, w *waitFor) error {
	if c.fastPath(w) {
		if ok, err := c.prod.tryReserve(n); ok && err == nil {
			return nil
		}
	}
	c.prod.flush()
	err := c.await(dirSend, c.prod.r.spaceEC, func() (bool, error) { return c.prod.tryReserve(n) }, w, false)
	if err != nil && isProtocol(err) {
		c.fail(err)
	}
	return err
}

// Reserve reserves room for a message of up to n bytes and returns it, for
// the caller to fill in place; Commit publishes it, AbortReserve drops it.
// Until then the send side is locked: other senders wait. Like a
// sync.Mutex, the lock is not reentrant: sending again on the goroutine
// that holds a reservation, before Commit or AbortReserve, deadlocks (the
// C API detects that case per thread). timeout is as for SendTimeout. The returned slice must not be used after Commit or
// AbortReserve.
func (c *Conn) Reserve(n int, timeout time.Duration) ([]byte, error) {
	return c.reserve(n, timeoutWait(timeout))
}

func (c *Conn) reserve(n int, w waitFor) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("%w: negative message size %d", ErrInvalidArgument, n)
	}
	if uint64(n) > c.prod.r.maxMsg {
		return nil, fmt.Errorf("%w: %d bytes, maximum is %d", ErrMessageTooLarge, n, c.prod.r.maxMsg)
	}
	// The send side stays locked until Commit/AbortReserve: a pending
	// reservation excludes other senders.
	if err := c.lockSend(); err != nil {
		return nil, err
	}
	if err := c.reserveLocked(uint64(n), &w); err != nil {
		c.unlockSend()
		return nil, err
	}
	return c.prod.reservedBytes(), nil
}

// Commit publishes the first n bytes of the reserved space as one message
// (n may be less than reserved) and unlocks the send side.
func (c *Conn) Commit(n int) error {
	if !c.prod.reserved {
		return fmt.Errorf("%w: Commit without Reserve", ErrInvalidArgument)
	}
	if n < 0 || uint64(n) > c.prod.resLen {
		return fmt.Errorf("%w: Commit of %d bytes, %d reserved", ErrInvalidArgument, n, c.prod.resLen)
	}
	return c.commit(uint64(n))
}

// commit is Commit of n checked bytes.
func (c *Conn) commit(n uint64) error {
	if c.closed.Load() {
		c.prod.abort()
		c.unlockSend()
		return ErrClosed
	}
	c.prod.commit(n)
	c.unlockSend()
	return nil
}

// AbortReserve drops a pending reservation and unlocks the send side.
func (c *Conn) AbortReserve() error {
	if !c.prod.reserved {
		return fmt.Errorf("%w: AbortReserve without Reserve", ErrInvalidArgument)
	}
	c.prod.abort()
	c.unlockSend()
	return nil
}

// ---- receiving ----

// Recv returns a copy of the next message, waiting as long as it takes.
func (c *Conn) Recv() ([]byte, error) { return c.recvCopy(waitFor{}) }

// RecvTimeout is Recv with a timeout: < 0 waits forever, 0 never waits.
func (c *Conn) RecvTimeout(timeout time.Duration) ([]byte, error) {
	return c.recvCopy(timeoutWait(timeout))
}

// RecvContext is Recv that gives up when ctx is done, returning ctx.Err().
func (c *Conn) RecvContext(ctx context.Context) ([]byte, error) {
	return c.recvCopy(waitFor{ctx: ctx})
}

func (c *Conn) recvCopy(w waitFor) ([]byte, error) {
	view, err := c.recvView(w)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(view))
	copy(out, view)
	return out, c.ReleaseView()
}

// RecvInto copies the next message into buf and returns its length. If buf
// is too small it returns the message's length and an error wrapping
// ErrBufferTooSmall, and the message stays queued. timeout is as for
// RecvTimeout.
func (c *Conn) RecvInto(buf []byte, timeout time.Duration) (int, error) {
	view, err := c.recvView(timeoutWait(timeout))
	if err != nil {
		return 0, err
	}
	n := len(view)
	if n > len(buf) {
		c.unview(false)
		return n, fmt.Errorf("%w: message is %d bytes, buffer %d", ErrBufferTooSmall, n, len(buf))
	}
	copy(buf, view)
	return n, c.ReleaseView()
}

// RecvBatch receives up to len(sizes) messages in one call: it waits for
// the first as RecvInto does (timeout as for RecvTimeout), then takes the
// messages already published behind it, as many as fit, copying them one
// after another into buf. It returns how many it took: message i is
// sizes[i] bytes and starts in buf at the sum of sizes[:i]. Their ring
// space goes back to the peer once for the batch. Use it to drain a
// stream of small messages (docs/PERFORMANCE.md, "Streams"). A first
// message larger than buf fails with ErrBufferTooSmall, its size in
// sizes[0], and stays in the ring, as with RecvInto; a later one that
// does not fit ends the batch and is the next call's first.
func (c *Conn) RecvBatch(buf []byte, sizes []int, timeout time.Duration) (int, error) {
	if len(sizes) == 0 {
		return 0, fmt.Errorf("%w: RecvBatch needs room for at least one size", ErrInvalidArgument)
	}
	w := timeoutWait(timeout)
	f, err := c.recvFrame(takeMessage, &w)
	if err != nil {
		return 0, err
	}
	if len(f.payload) > len(buf) {
		sizes[0] = len(f.payload)
		c.unview(false)
		return 0, fmt.Errorf("%w: message is %d bytes, buffer %d", ErrBufferTooSmall, len(f.payload), len(buf))
	}
	off := copy(buf, f.payload)
	sizes[0] = off
	n := 1
	c.cons.viewHeld = false
	if !c.closed.Load() {
		c.cons.take(c.cons.viewFrame, c.cons.viewLen)
		for n < len(sizes) {
			var g frameView
			var fs uint64
			stalled := false
			ok, err := c.pump(takeMessage, nil, 0, &g, &fs, &stalled)
			if err != nil && isProtocol(err) {
				c.fail(err) // the next call reports it; these messages were whole
			}
			if !ok || err != nil || stalled || len(g.payload) > len(buf)-off {
				break
			}
			sizes[n] = copy(buf[off:], g.payload)
			off += sizes[n]
			n++
			c.cons.take(fs, uint64(len(g.payload)))
		}
		c.cons.settle()
	}
	c.unlockRecv()
	c.leave(dirRecv)
	return n, nil
}

// RecvView returns the next message in place, in the ring: no copy. The
// slice is valid until ReleaseView, which must be called before the next
// receive; until then other receivers wait (receiving again on the same
// goroutine before ReleaseView deadlocks, as with a sync.Mutex). The peer cannot overwrite the
// message before it is released. timeout is as for RecvTimeout.
func (c *Conn) RecvView(timeout time.Duration) ([]byte, error) {
	return c.recvView(timeoutWait(timeout))
}

func (c *Conn) recvView(w waitFor) ([]byte, error) {
	f, err := c.recvFrame(takeMessage, &w)
	return f.payload, err
}

// ReleaseView releases the message returned by RecvView, returning its
// ring space to the peer.
func (c *Conn) ReleaseView() error { return c.unview(true) }

func (c *Conn) unview(consume bool) error {
	if !c.cons.viewHeld {
		return fmt.Errorf("%w: ReleaseView without RecvView", ErrInvalidArgument)
	}
	c.cons.viewHeld = false
	if consume && !c.closed.Load() {
		c.cons.consume(c.cons.viewFrame, c.cons.viewLen)
	}
	c.unlockRecv()
	c.leave(dirRecv)
	return nil
}

func isProtocol(err error) bool { return errors.Is(err, ErrProtocol) }
