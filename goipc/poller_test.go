package goipc

import (
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// More parked calls than futex slots: the ring poller wakes them, every
// message arrives in order, and once the traffic stops the poller arms
// the doorbells it holds and goes idle.
func TestPollerCarriesManyConnections(t *testing.T) {
	checkLeaks(t)
	pingEchoes(t, 48, 1000)
	waitUntil(t, "the poller going idle", func() bool { return !pollerBusy() })
	poller.mu.Lock()
	poller.regMu.Lock()
	left := len(poller.entries) + len(poller.pending)
	poller.regMu.Unlock()
	poller.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d calls still on the idle poller's list", left)
	}
	checkPollerLists(t)
}

// pingEchoes runs conns connection pairs, each an echo server and a
// client making rounds round trips, and fails the test unless every
// reply is the client's own request, in order.
func pingEchoes(t *testing.T, conns, rounds int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 2*conns)
	for i := 0; i < conns; i++ {
		client, server := pair(t, nil, nil)
		wg.Add(2)
		go func() { // echo
			defer wg.Done()
			buf := make([]byte, 64)
			for {
				n, err := server.RecvInto(buf, -1)
				if errors.Is(err, ErrPeerClosed) {
					return
				}
				if err == nil {
					err = server.Send(buf[:n])
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
		go func(id uint64) {
			defer wg.Done()
			defer client.Close()
			msg, reply := make([]byte, 16), make([]byte, 64)
			for r := uint64(0); r < uint64(rounds); r++ {
				binary.LittleEndian.PutUint64(msg, id)
				binary.LittleEndian.PutUint64(msg[8:], r)
				if err := client.Send(msg); err != nil {
					errs <- err
					return
				}
				n, err := client.RecvInto(reply, -1)
				if err != nil {
					errs <- err
					return
				}
				if n != 16 || binary.LittleEndian.Uint64(reply) != id || binary.LittleEndian.Uint64(reply[8:]) != r {
					errs <- errors.New("a reply out of order or for another connection")
					return
				}
			}
		}(uint64(i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// With an idle of a microsecond, the poller arms its calls between
// nearly every two messages and takes them back when it sweeps again:
// every message still arrives, in order, and the lists stay consistent.
func TestPollerTakesBackUnderChurn(t *testing.T) {
	checkLeaks(t)
	takeFutexSlots(t)
	setPollerLimits(time.Microsecond, pollerStarved)
	defer restorePollerLimits()
	poller.mu.Lock()
	before := poller.takenBack
	poller.mu.Unlock()
	pingEchoes(t, 16, 2000)
	poller.mu.Lock()
	taken := poller.takenBack - before
	poller.mu.Unlock()
	if taken == 0 {
		t.Fatal("the poller took no armed call back in 32000 round trips with a 1 µs idle")
	}
	waitUntil(t, "the poller going idle", func() bool { return !pollerBusy() })
	checkPollerLists(t)
}

// checkPollerLists checks the poller's three lists against their
// entries: listed calls un-armed and not released, armed ones armed, each
// index its place, registered ones on no other list.
func checkPollerLists(t *testing.T) {
	t.Helper()
	poller.mu.Lock()
	defer poller.mu.Unlock()
	for i, e := range poller.entries {
		if e.armed || e.index != i || e.pendingIndex != -1 || e.released.Load() {
			t.Errorf("listed call %d: armed %v, index %d, pending index %d, released %v", i, e.armed, e.index, e.pendingIndex, e.released.Load())
		}
	}
	for i, e := range poller.armed {
		if !e.armed || e.index != i || e.pendingIndex != -1 || e.released.Load() {
			t.Errorf("armed call %d: armed %v, index %d, pending index %d, released %v", i, e.armed, e.index, e.pendingIndex, e.released.Load())
		}
	}
	poller.regMu.Lock()
	defer poller.regMu.Unlock()
	for i, pe := range poller.pending {
		if pe.index != -1 || pe.pendingIndex != i {
			t.Errorf("registered call %d: index %d, pending index %d", i, pe.index, pe.pendingIndex)
		}
	}
}

// A call the poller gave up on waits on its doorbell: armed in the shared
// word, woken by the peer's ring, with the message.
func TestPollerHandsQuietCallsToTheirDoorbell(t *testing.T) {
	checkLeaks(t)
	takeFutexSlots(t) // straight from the spin to the poller
	client, server := pair(t, nil, nil)
	got := recvInBackground(t, server)
	ec := server.cons.r.dataEC
	waitUntil(t, "the poller arming the receive's doorbell", func() bool {
		poller.mu.Lock()
		defer poller.mu.Unlock()
		return server.polls[dirRecv].armed
	})
	if atomic.LoadUint64(ec.word)&ecDoorbell == 0 {
		t.Fatal("the poller says it armed the doorbell, the shared word says not")
	}
	waitUntil(t, "the poller going idle", func() bool { return !pollerBusy() })
	if err := client.Send([]byte("rung")); err != nil {
		t.Fatal(err)
	}
	if m := <-got; string(m) != "rung" {
		t.Fatalf("received %q, want %q", m, "rung")
	}
	if atomic.LoadUint64(ec.word)&ecDoorbell != 0 {
		t.Fatal("the doorbell is still armed after the call returned")
	}
}

// A call the poller armed when it went idle is taken back, un-armed, when
// it sweeps again: the peer's next message reaches it without a ring.
func TestPollerTakesArmedCallsBack(t *testing.T) {
	checkLeaks(t)
	takeFutexSlots(t)
	quiet, quietServer := pair(t, nil, nil)
	busy, busyServer := pair(t, nil, nil)
	armed := func() bool {
		poller.mu.Lock()
		defer poller.mu.Unlock()
		return quietServer.polls[dirRecv].armed
	}
	gotQuiet := recvInBackground(t, quietServer)
	waitUntil(t, "the poller arming the quiet receive", armed)
	waitUntil(t, "the poller going idle", func() bool { return !pollerBusy() })

	// From here the poller never gives up by itself: what it takes back
	// stays un-armed until the test ends.
	setPollerLimits(time.Hour, time.Hour)
	defer restorePollerLimits()
	gotBusy := recvInBackground(t, busyServer) // a call parks: the poller sweeps again
	waitUntil(t, "the quiet receive taken back", func() bool {
		poller.mu.Lock()
		defer poller.mu.Unlock()
		return !quietServer.polls[dirRecv].armed && quietServer.polls[dirRecv].index >= 0
	})
	if atomic.LoadUint64(quietServer.cons.r.dataEC.word)&ecDoorbell != 0 {
		t.Fatal("the poller took the call back, the shared word still has its doorbell flag")
	}
	before := mustStats(t, quiet).Sent.Wakeups
	if err := quiet.Send([]byte("swept")); err != nil {
		t.Fatal(err)
	}
	if m := <-gotQuiet; string(m) != "swept" {
		t.Fatalf("received %q, want %q", m, "swept")
	}
	if after := mustStats(t, quiet).Sent.Wakeups; after != before {
		t.Fatalf("the sender rang %d times for a call the poller had taken back, want 0", after-before)
	}
	checkPollerLists(t)
	if err := busy.Send([]byte("done")); err != nil {
		t.Fatal(err)
	}
	if m := <-gotBusy; string(m) != "done" {
		t.Fatalf("received %q, want %q", m, "done")
	}
	restorePollerLimits()
	waitUntil(t, "the poller going idle", func() bool { return !pollerBusy() })
}

// recvInBackground receives one message on c in a goroutine and hands it
// over on the channel returned.
func recvInBackground(t *testing.T, c *Conn) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		m, err := c.Recv()
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	return got
}

// A call parked with the poller ends on Close, off the poller's list.
func TestPollerForgetsClosedCalls(t *testing.T) {
	checkLeaks(t)
	takeFutexSlots(t)
	setPollerLimits(time.Hour, pollerStarved) // the poller never gives up here
	defer restorePollerLimits()
	_, server := pair(t, nil, nil)
	done := make(chan error, 1)
	go func() {
		_, err := server.Recv()
		done <- err
	}()
	waitUntil(t, "the receive on the poller's list", func() bool {
		poller.mu.Lock()
		defer poller.mu.Unlock()
		return server.polls[dirRecv].index >= 0
	})
	server.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv on a closed Conn = %v, want ErrClosed", err)
	}
	poller.mu.Lock()
	idx := server.polls[dirRecv].index
	poller.mu.Unlock()
	if idx != -1 {
		t.Fatal("the closed call is still on the poller's list")
	}
	restorePollerLimits()
	waitUntil(t, "the poller going idle", func() bool { return !pollerBusy() })
}

// setPollerLimits sets how long the poller sweeps without a word moving
// (at any pace), and the gap between sweeps it takes for a lost CPU,
// before it arms its calls and sleeps.
func setPollerLimits(idle, starvedGap time.Duration) {
	poller.mu.Lock()
	poller.idle, poller.idleBusy, poller.starvedGap = idle, idle, starvedGap
	poller.mu.Unlock()
}

// restorePollerLimits puts the poller's own limits back.
func restorePollerLimits() {
	poller.mu.Lock()
	poller.idle, poller.idleBusy, poller.starvedGap = pollerIdle, pollerIdleBusy, pollerStarved
	poller.mu.Unlock()
}

// takeFutexSlots holds every futex slot until the test ends, as parked
// calls of a busy server would: the next call to park goes to the poller.
func takeFutexSlots(t *testing.T) {
	poller.starvedUntil.Store(0)     // no backoff left by an earlier test
	saved := pollerMinParked.Swap(0) // a lone call counts as many
	t.Cleanup(func() { pollerMinParked.Store(saved) })
	holdFutexSlots(t)
}

// holdFutexSlots holds every futex slot until the test ends: a call that
// parks skips its futex stage.
func holdFutexSlots(t *testing.T) {
	n := 0
	for futexSleepers.acquire() {
		n++
	}
	t.Cleanup(func() {
		for ; n > 0; n-- {
			futexSleepers.release()
		}
	})
}

// A starved session keeps calls off the poller for a backoff that doubles
// while sessions keep starving; a session that ends idle clears it.
func TestPollerStarvationBackoff(t *testing.T) {
	var p ringPoller
	if p.starved() {
		t.Fatal("a new poller reports a backoff")
	}
	later := time.Now().Add(time.Hour) // no clock in this test catches up with it
	p.noteStarved(true, later)
	p.noteStarved(true, later)
	if p.backoff != 2*pollerBackoffMin {
		t.Fatalf("backoff after two starved sessions = %v, want %v", p.backoff, 2*pollerBackoffMin)
	}
	if !p.starved() {
		t.Fatal("calls are not kept off a poller that was just starved")
	}
	p.noteStarved(false, time.Now())
	if p.starved() || p.backoff != 0 || p.starvedUntil.Load() != 0 {
		t.Fatalf("after an idle session: starved %v, backoff %v, until %d; want none", p.starved(), p.backoff, p.starvedUntil.Load())
	}
}

// While calls of the process are yielding their P to each other, the
// runtime polls the network only every 10 ms (its run queues are never
// empty), so a park that found no futex slot goes to the ring poller,
// which wakes it without the netpoller, however few calls are parked.
func TestParksGoToThePollerWhileCallsYield(t *testing.T) {
	// The default spin: the poller takes only calls that spin (a call
	// with SpinNever parks on its own).
	client, server := pair(t, nil, nil)
	poller.starvedUntil.Store(0) // no backoff left by an earlier test
	holdFutexSlots(t)
	entry := &client.polls[dirRecv]
	onPoller := func() bool {
		poller.mu.Lock()
		defer poller.mu.Unlock()
		poller.regMu.Lock()
		defer poller.regMu.Unlock()
		return entry.pendingIndex >= 0 || slices.Contains(poller.entries, entry) || slices.Contains(poller.armed, entry)
	}
	// parkedWhere parks a receive, waits until it is parked (on the
	// poller's lists, or with its doorbell armed), ends it with a message
	// and reports whether it was on the poller.
	parkedWhere := func() bool {
		t.Helper()
		var listed bool
		receiveParked(t, client, server, "the receive parks", func(w uint64) bool {
			listed = onPoller()
			return listed || w&ecDoorbell != 0
		})
		return listed
	}
	if parkedWhere() {
		t.Fatal("a lone park went to the poller")
	}
	yielders.Add(1)
	listed := parkedWhere()
	yielders.Add(-1)
	if !listed {
		t.Fatal("a park while another call yields armed its own doorbell")
	}
}

// A call that registers while the poller sweeps for the last time is on
// the poller's list when it stops, armed like the others: the poller
// lists the registered calls before it arms its list and stops (a call
// registering later finds it stopped and kicks it).
func TestPollerArmsCallsRegisteredDuringItsLastSweep(t *testing.T) {
	checkLeaks(t)
	_, first := pair(t, nil, nil)
	_, late := pair(t, nil, nil)
	p := &ringPoller{kick: make(chan struct{}, 1), starvedGap: time.Hour}
	firstEntry := registerReceive(p, first, 0)
	var lateEntry *pollEntry
	p.sweptHook = func() {
		if lateEntry == nil {
			lateEntry = registerReceive(p, late, 0)
		}
	}
	p.sweepUntilIdle() // idle 0: it gives up after its first sweep
	if p.active.Load() {
		t.Fatal("the poller is still active after it stopped")
	}
	if len(p.pending) != 0 || len(p.entries) != 0 {
		t.Fatalf("the stopped poller holds %d registered and %d listed calls", len(p.pending), len(p.entries))
	}
	for name, e := range map[string]*pollEntry{"first": firstEntry, "late": lateEntry} {
		if !e.armed || !e.ec.waiting() {
			t.Errorf("the %s call: armed %v, doorbell flag %v; want both", name, e.armed, e.ec.waiting())
		}
		if !p.remove(e) {
			t.Errorf("remove of the %s call reported it not armed", name)
		}
		e.ec.disarm()
	}
	if len(p.armed) != 0 {
		t.Fatalf("%d calls left armed after both were removed", len(p.armed))
	}
}

// registerReceive puts c's receive on p's list as a parking call does,
// as if its last look had seen the head at its value plus ahead.
func registerReceive(p *ringPoller, c *Conn, ahead uint64) *pollEntry {
	e := &c.polls[dirRecv]
	e.c, e.dir, e.ec, e.word = c, dirRecv, c.cons.r.dataEC, c.positionWord(dirRecv)
	e.seen = atomic.LoadUint64(e.word) + ahead
	p.add(e)
	return e
}

// A call the poller woke because its word moved is off every list: its
// return takes neither of the poller's locks (a sweep holds mu for as
// long as it looks at every listed word).
func TestPollerReleasedCallReturnsWithoutTheSweepLock(t *testing.T) {
	checkLeaks(t)
	_, server := pair(t, nil, nil)
	p := &ringPoller{kick: make(chan struct{}, 1), starvedGap: time.Hour}
	e := registerReceive(p, server, 1) // the word has "moved"
	p.sweepUntilIdle()
	select {
	case <-server.bells[dirRecv]:
	default:
		t.Fatal("the poller did not wake the call whose word moved")
	}
	if !e.released.Load() || e.index != -1 || e.pendingIndex != -1 {
		t.Fatalf("the woken call: released %v, index %d, pending index %d", e.released.Load(), e.index, e.pendingIndex)
	}
	p.mu.Lock() // as a long sweep does
	defer p.mu.Unlock()
	armed := make(chan bool, 1)
	go func() { armed <- p.remove(e) }()
	select {
	case a := <-armed:
		if a {
			t.Fatal("remove reported the released call armed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("remove of a released call waited for the sweep lock")
	}
}
