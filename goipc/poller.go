package goipc

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goipc/goipc/goipc/internal/sys"
)

// The ring poller: one goroutine per process that watches the rings of
// every parked call at once, so that a busy server's waits cost neither a
// syscall on the peer's side nor a thread on ours.
//
// With more waiting calls than CPUs, a call cannot spin (spin slots are
// half the Ps) nor sleep on a futex (futex slots are GOMAXPROCS-1): it
// parks on its doorbell, and every message it waits for then costs the
// peer a write(2) on the socket and us a netpoller wakeup, a read(2) and a
// goroutine handoff: about what a Unix socket costs, and the reason a
// server with 64 producers was no faster than one. A busy server does not
// need any of that: some message is almost always on its way. The poller
// keeps the parked calls un-armed (the peer sees no doorbell flag and
// rings nothing) and sweeps their position words, one load each, handing a
// call a token on its doorbell channel when its word moves. When a whole
// pollerIdle passes without a word moving, the machine has gone quiet:
// the poller arms every call's doorbell for it, re-checks each word once
// (the Dekker check a doorbell wait does itself, see eventCount), moves
// them to its armed list and sleeps until the next call parks. From then
// on those calls wait exactly as a doorbell wait does, at no CPU cost,
// until the poller, sweeping again, takes them back (takeBack).
//
// The wakeup protocol between the processes is unchanged: the poller is
// an in-process spinner that watches many rings, its arm-then-check is
// the doorbell waiter's, and its take-back withdraws the call's own
// announcement (docs/PROTOCOL.md, "The ring poller").

// pollerIdle is how long the poller sweeps without seeing a word move
// before it arms the doorbells and sleeps: about a spin budget.
//
// pollerIdleBusy replaces it while words move fast (on average at least
// every pollerBusyGap since the poller started sweeping): on a machine
// with more runnable threads than cores, the peer process is often off
// its CPU for more than 50 µs, and arming every listed call then makes
// each cost the peer a doorbell write(2) and us a read(2) on its next
// message: with 64 producers on 2 cores, 2000 such arms a second held
// goipc pong at the Unix socket's throughput, and 1 ms doubled it. At a
// slower pace a doorbell per message costs less than sweeping through
// the gaps: 64 connections at 100 round trips/s each took 91% of a core
// with 1 ms, 25% with 50 µs (docs/PERFORMANCE.md, section 16).
const (
	pollerIdle     = 50 * time.Microsecond
	pollerIdleBusy = time.Millisecond
	pollerBusyGap  = 10 * time.Microsecond
)

// Taking armed calls back: when the poller sweeps again after it armed
// its calls, it takes armed calls back (disarms them and lists them
// again, un-armed), so that a pause of the peer process costs the
// doorbells of the calls that got a message during it, not one for every
// armed call on its next message. 1000 goipc.aio connections against
// goipc pong (docs/PERFORMANCE.md, section 18) rang a doorbell for almost
// every round trip without it: each connection's next message comes
// milliseconds later, long after the poller has armed it.
//
// Taking a call back costs an atomic AND on a shared line (and an arm
// again if nothing comes), so it is paid for by work: every call
// that parks earns pollerTakeBackPerPark takes, up to pollerTakeBackMax
// saved. A server holding thousands of idle connections that one message
// wakes now and then takes back a few of them each time, not all. A
// sweep takes back at most pollerTakeBackPerSweep, so that no sweep is
// held up behind thousands of atomics: the calls it wakes wait for it,
// and calls returning while armed take its lock.
const (
	pollerTakeBackPerPark  = 8
	pollerTakeBackMax      = 4096
	pollerTakeBackPerSweep = 256
)

// pollEntry is one parked call watched by the poller. Every field but
// index and armed is written before the entry is registered and not
// while it is listed.
type pollEntry struct {
	c    *Conn
	dir  int
	ec   eventCount
	word *uint64 // the position the call waits on: the peer's head or tail
	seen uint64  // its value when the call's ready() last failed
	// armed says the poller armed the doorbell for the call, which
	// disarms it if it returns first. index is the entry's place in
	// ringPoller.entries (un-armed) or ringPoller.armed (armed), -1 while
	// it is in neither. Both guarded by ringPoller.mu.
	index int
	armed bool
	// pendingIndex is the entry's place in ringPoller.pending, -1 while
	// it is not there; guarded by ringPoller.regMu.
	pendingIndex int
	// released says the poller took the entry off its lists without
	// arming it (it saw the word move): the call's remove then needs
	// neither lock. SYNC POINT: stored true by the poller under mu after
	// its last use of the entry's fields, loaded by remove; stored false
	// by add before the entry is registered again.
	released atomic.Bool
}

// pendingEntry lists a pollEntry in ringPoller.pending (unlist's index
// is then pendingIndex).
type pendingEntry struct{ *pollEntry }

func (p pendingEntry) listIndex() *int { return &p.pendingIndex }

type ringPoller struct {
	mu      sync.Mutex
	entries []*pollEntry // the listed calls
	// armed holds the calls the poller armed when it last gave up, until
	// they return or it takes them back (takeBack).
	armed []*pollEntry
	// regMu guards pending: the calls registered since the poller last
	// moved them to entries, at the start of each sweep and before it
	// stops. A parking call takes only this short lock, never mu, which a
	// sweep holds for as long as it looks at every listed word: at 1024
	// producers, calls queued on mu behind sweeps of 1024 entries (877
	// waits on it in 25 ms, docs/PERFORMANCE.md section 25). mu is taken
	// before regMu when both are held.
	regMu   sync.Mutex
	pending []pendingEntry
	// takeBacks is how many armed calls the poller may take back: earned
	// by parking calls, spent by takeBack (pollerTakeBackPerPark). Read
	// and written under regMu.
	takeBacks int
	// takenBack counts the calls takeBack listed again (tests read it).
	takenBack uint64
	// active is true while the poller sweeps (it has entries and has not
	// given up on them). Written under regMu, so that a call registering
	// either finds it true (the poller will take its entry before it
	// stops) or sets it and kicks the poller; read without it by calls
	// deciding whether to skip their own spin and futex stages
	// (pollerBusy), where a stale answer only costs a worse choice.
	active atomic.Bool
	kick   chan struct{} // a token wakes the sleeping poller
	idle   time.Duration // pollerIdle; guarded by mu (tests change it)
	// idleBusy is pollerIdleBusy: the idle while words move at least every
	// pollerBusyGap on average; guarded by mu (tests change it).
	idleBusy time.Duration
	// starvedGap is pollerStarved; guarded by mu (tests change it).
	starvedGap time.Duration
	// starvedUntil (Unix ns) keeps calls off the poller after it was
	// starved of CPU: written by the poller goroutine, read by parking
	// calls (usePoller); a stale read only costs a worse choice.
	starvedUntil atomic.Int64
	backoff      time.Duration // the current backoff; the poller goroutine's own
	// sweptHook, set only on pollers that tests build and drive, is
	// called after every sweep with mu held: a call registering from it
	// registers while the poller decides whether to stop.
	sweptHook func()
}

// poller runs from package initialisation on: one goroutine, blocked on
// its kick channel while no call is parked with it.
var poller = ringPoller{kick: make(chan struct{}, 1), idle: pollerIdle, idleBusy: pollerIdleBusy, starvedGap: pollerStarved}

func init() { go poller.run() }

// parkedCalls counts the calls of this process in park (after their
// spin). Only a process with more than pollerMinParked of them hands
// calls to the poller: with a few waiters a sweep finds nothing to batch,
// and a poller spinning next to them takes the CPU the calls it waits for
// need (two goroutines pinging each other in one process went from
// 0.8 µs to 2-5 µs a round trip, and to 4 ms with GOMAXPROCS 1).
var parkedCalls atomic.Int32

// pollerMinParked is twice the Ps at start (more waiters than the
// process can run at once, with room); with one P, where polling only
// competes with the goroutines it waits for, the poller is never used.
// Atomic only so that tests can lower it.
var pollerMinParked atomic.Int64

func init() {
	procs := runtime.GOMAXPROCS(0)
	if procs < 2 {
		pollerMinParked.Store(math.MaxInt64)
		return
	}
	pollerMinParked.Store(int64(2 * procs))
}

// pollerBusy reports whether the poller is sweeping: parking with it then
// beats spinning or a futex sleep, which would each take a P from the
// calls the poller is waking.
func pollerBusy() bool { return poller.active.Load() }

// add registers a parked call and wakes the poller if it sleeps.
func (p *ringPoller) add(e *pollEntry) {
	e.released.Store(false)
	p.regMu.Lock()
	p.takeBacks = min(p.takeBacks+pollerTakeBackPerPark, pollerTakeBackMax)
	e.pendingIndex = len(p.pending)
	p.pending = append(p.pending, pendingEntry{e})
	wasActive := p.active.Swap(true)
	p.regMu.Unlock()
	if !wasActive {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// remove takes e off the list if it is still there and reports whether
// the poller had armed the doorbell for it.
func (p *ringPoller) remove(e *pollEntry) (armed bool) {
	p.regMu.Lock()
	wasPending := e.pendingIndex >= 0
	p.pending = unlist(p.pending, pendingEntry{e})
	p.regMu.Unlock()
	// Once out of pending, an entry does not go back there (only add puts
	// it there, and add is its own call's).
	if wasPending || e.released.Load() {
		return false
	}
	p.mu.Lock()
	armed = e.armed
	if armed {
		p.armed = unlist(p.armed, e)
	} else {
		p.unlink(e)
	}
	p.mu.Unlock()
	return armed
}

// unlink removes e from entries if it is listed. p.mu is held.
func (p *ringPoller) unlink(e *pollEntry) { p.entries = unlist(p.entries, e) }

// takeBack lists up to n of the calls the poller armed again, un-armed.
// A call whose flag the peer already cleared has its ring on the way: it
// stays armed and off both lists. p.mu is held.
func (p *ringPoller) takeBack(n int) {
	for taken := 0; taken < n && len(p.armed) > 0; taken++ {
		last := len(p.armed) - 1
		e := p.armed[last]
		p.armed[last] = nil
		p.armed = p.armed[:last]
		e.index = -1
		// SYNC POINT: this RMW pairs with the peer's test-and-clear in
		// notify: exactly one of the two clears the flag, and only the
		// peer's clear rings. Ours is followed by the sweeps' loads of the
		// word (the peer's seq-cst publish before its load of the flag),
		// and by armAll's arm-then-check before the poller sleeps.
		if !e.ec.takeBack() {
			continue
		}
		e.armed = false
		e.index = len(p.entries)
		p.entries = append(p.entries, e)
		p.takenBack++
	}
}

func (e *pollEntry) listIndex() *int { return &e.index }

func (p *ringPoller) run() {
	for {
		<-p.kick
		p.sweepUntilIdle()
	}
}

// sweepUntilIdle sweeps until pollerIdle passes with no word moving, or
// until the poller finds it was starved of CPU, then hands the remaining
// calls to their doorbells.
func (p *ringPoller) sweepUntilIdle() {
	start := time.Now()
	lastMove, lastSweep := start, start
	moves := 0 // words seen moving since start
	lastYield := start
	for {
		p.mu.Lock()
		p.regMu.Lock()
		takeBacks := min(p.takeBacks, pollerTakeBackPerSweep, len(p.armed))
		p.takeBacks -= takeBacks
		p.listPending()
		p.regMu.Unlock()
		p.takeBack(takeBacks)
		if len(p.entries) == 0 {
			// Stop only if no call registered meanwhile: one that does
			// after this finds active false and kicks the poller.
			p.regMu.Lock()
			p.listPending()
			if len(p.entries) == 0 {
				p.active.Store(false)
				p.regMu.Unlock()
				p.mu.Unlock()
				return
			}
			p.regMu.Unlock()
		}
		moved := false
		for i := 0; i < len(p.entries); {
			e := p.entries[i]
			// SYNC POINT: this load pairs with the peer's seq-cst store of
			// its position (publish); a call woken here re-runs ready().
			if atomic.LoadUint64(e.word) != e.seen {
				p.unlink(e) // moves the last entry to i
				e.release()
				moved = true
				moves++
				continue
			}
			i++
		}
		if p.sweptHook != nil {
			p.sweptHook()
		}
		now := time.Now()
		// A long gap after which words moved was spent by the peers we
		// poll for (sched_yield gave them the core): not starved.
		starved := !moved && now.Sub(lastSweep) > p.starvedGap
		if moved {
			lastMove = now
		}
		idle := p.idle
		if p.idleBusy > idle && time.Duration(moves)*pollerBusyGap >= now.Sub(start) {
			idle = p.idleBusy
		}
		if starved || now.Sub(lastMove) >= idle {
			// Calls registered from here on kick the poller again.
			p.regMu.Lock()
			p.listPending()
			p.active.Store(false)
			p.regMu.Unlock()
			p.armAll()
			p.mu.Unlock()
			p.noteStarved(starved, now)
			return
		}
		p.mu.Unlock()
		// Let the calls just woken run, on this P if no other is free,
		// and any other goroutine of the process.
		runtime.Gosched()
		if !moved && now.Sub(lastYield) >= pollerYieldGap {
			// Nothing moved: give the CPU to any other thread of the
			// machine that wants it (sched_yield): with more runnable
			// threads than cores, the peers we poll for are among them.
			sys.Yield()
			lastYield = now
		}
		lastSweep = time.Now()
	}
}

// pollerYieldGap spaces the poller's sched_yields: after a sweep that
// found nothing it yields the CPU only if it has not for this long. A
// yield after every empty sweep (each a few loads with a handful of
// calls listed) handed the core to another thread for most of the time:
// 8 producers against goipc pong made 0.4-0.8 M round trips in 3 s, every
// connection alike, and 1.3-1.5 M with this gap, still alike (a yield every
// 4th empty sweep did as well there, but took CPU from a single-threaded
// Python loop with 1000 connections: a sweep of 1000 calls is long, and a
// gap in time keeps yielding after each of those). docs/PERFORMANCE.md,
// section 18.
const pollerYieldGap = 20 * time.Microsecond

// pollerStarved is a gap between two sweeps that a lost CPU explains: a
// sweep, its yields and the calls it woke take microseconds to tens of
// them, while a busy thread of another process (a CPU hog, a build) given
// the core by sched_yield keeps it for a time slice, a millisecond or
// more. A call left un-armed on the list then waits for the poller to get
// a core back; its doorbell would not: the kernel wakes the watcher as it
// wakes any blocked thread. Measured with goipc bench-server (4 hogs, one
// producer): without this check p99 80 ms against the Unix socket's
// 0.8 ms; with it 0.1-0.7 ms. A 200 µs bound was too tight for 256
// producers, whose woken calls alone can take that long to run.
const pollerStarved = 500 * time.Microsecond

// Starvation backoff: after a starved sweep, calls park on their
// doorbells without the poller for pollerBackoffMin, doubling with each
// starved sweep in a row up to pollerBackoffMax; a session that ends
// idle instead resets it.
const (
	pollerBackoffMin = 10 * time.Millisecond
	pollerBackoffMax = time.Second
)

// noteStarved records how the last sweeping session ended.
func (p *ringPoller) noteStarved(starved bool, now time.Time) {
	if !starved {
		// The backoff had passed (calls only park with the poller after
		// it): clearing it spares parking calls their clock read.
		p.backoff = 0
		p.starvedUntil.Store(0)
		return
	}
	p.backoff = min(pollerBackoffMax, max(pollerBackoffMin, 2*p.backoff))
	p.starvedUntil.Store(now.Add(p.backoff).UnixNano())
}

// starved reports whether calls should keep off the poller for now. It
// reads the clock only while a backoff is recorded: at 1024 producers the
// read in every park was 1.8% of goipc pong's CPU (perf).
func (p *ringPoller) starved() bool {
	until := p.starvedUntil.Load()
	return until != 0 && time.Now().UnixNano() < until
}

// armAll arms every listed call's doorbell, re-checks its word and moves
// it to the armed list: the call's wait on its doorbell channel now ends
// through the peer's ring (or our token, if the word moved), unless the
// poller takes it back first. p.mu is held.
func (p *ringPoller) armAll() {
	for _, e := range p.entries {
		e.ec.arm()
		// SYNC POINT: the RMW of arm precedes this load (Dekker with the
		// peer's publish-then-load in notify), as in doorbellPark.
		if atomic.LoadUint64(e.word) != e.seen {
			e.ec.disarm()
			e.index = -1
			e.release()
		} else {
			e.armed = true
			e.index = len(p.armed)
			p.armed = append(p.armed, e)
		}
	}
	clear(p.entries)
	p.entries = p.entries[:0]
}

// listPending moves the registered calls to entries. p.mu and p.regMu are
// held.
func (p *ringPoller) listPending() {
	for i, pe := range p.pending {
		e := pe.pollEntry
		e.pendingIndex = -1
		e.index, e.armed = len(p.entries), false
		p.entries = append(p.entries, e)
		p.pending[i] = pendingEntry{}
	}
	p.pending = p.pending[:0]
}

// release wakes the call of an entry the poller took off its lists
// without an arm left behind. The poller's mu is held.
func (e *pollEntry) release() {
	c, dir := e.c, e.dir
	// The call may register e again as soon as this is stored: read its
	// fields first.
	e.released.Store(true)
	c.wakeBell(dir)
}
