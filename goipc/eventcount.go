package goipc

import (
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/goipc/goipc/goipc/internal/sys"
)

// eventCount is a waiter count, a doorbell flag and an epoch in one 64-bit
// word of shared memory (bits 0-30: futex waiters, bit 31: doorbell, bits
// 32-63: epoch), after folly's EventCount. It turns "sleep until the ring
// changes" into a wait that cannot miss a wakeup:
//
//	waiter                              notifier
//	e := prepare()  // waiters++ (RMW)  publish(position)  // seq-cst store
//	if condition() { cancel(); done }   w := load()         // seq-cst load
//	wait(e)  // futex: sleep if epoch==e    if w has waiters { epoch++; futex_wake }
//	cancel() // waiters--                   if w has doorbell { clear it; ring the peer's socket }
//
// A waiter that sleeps off the futex (through the Go netpoller, holding no
// thread) announces itself with arm() instead of prepare(): it sets the
// doorbell flag and waits for the peer to write a byte to the connection's
// socket. The notifier clears the flag with an atomic AND and rings only if
// it was the one to clear it, so one arm yields at most one ring.
//
// Both sides do a sequentially consistent write and then a read of the
// other side's word (store->load, Dekker). Go's sync/atomic operations are
// sequentially consistent, so at least one side sees the other: either the
// waiter's condition() sees the published position, or the notifier sees
// the announcement and wakes (a futex waiter that read the old epoch gets
// EAGAIN from FUTEX_WAIT instead of sleeping; a doorbell waiter finds a
// byte on its socket). No wakeup can be lost. docs/PROTOCOL.md argues it in
// full and docs/model/ring.pml checks it.
type eventCount struct {
	word *uint64
}

func (e eventCount) epochAddr() *uint32 {
	return (*uint32)(unsafe.Add(unsafe.Pointer(e.word), ecEpochHalf))
}

// prepare announces a futex waiter and returns the epoch to wait on.
func (e eventCount) prepare() uint32 {
	// SYNC POINT (waiter): this RMW pairs with the notifier's load in
	// notify(); it happens before the waiter's re-check of the ring.
	return uint32(atomic.AddUint64(e.word, 1) >> 32)
}

// cancel withdraws a futex waiter announced by prepare.
func (e eventCount) cancel() {
	atomic.AddUint64(e.word, ^uint64(0))
}

// arm announces a doorbell waiter.
func (e eventCount) arm() {
	// SYNC POINT (waiter): this RMW pairs with the notifier's load in
	// notify(), like prepare's; the re-check of the ring comes after it.
	atomic.OrUint64(e.word, ecDoorbell)
}

// disarm withdraws a doorbell announcement that is no longer needed, so
// that the peer does not ring for nothing.
func (e eventCount) disarm() {
	atomic.AndUint64(e.word, ^uint64(ecDoorbell))
}

// takeBack withdraws a doorbell announcement and reports whether it was
// still there: false means the peer cleared it and its ring is on the way.
func (e eventCount) takeBack() bool {
	return atomic.AndUint64(e.word, ^uint64(ecDoorbell))&ecDoorbell != 0
}

// waiting reports whether a waiter is announced. After a seq-cst store of
// a position it is the notifier's sync load (see notify); a false answer
// there means no wakeup is owed.
func (e eventCount) waiting() bool {
	return atomic.LoadUint64(e.word)&(ecWaitersMask|ecDoorbell) != 0
}

// wait sleeps until the epoch moves past epoch, for at most timeout.
func (e eventCount) wait(epoch uint32, timeout time.Duration) {
	_ = sys.FutexWait(e.epochAddr(), epoch, timeout)
}

// notify wakes the waiters announced on e, if any, and reports whether it
// woke any. Callers have just published with a seq-cst store. ring rings
// the peer's doorbell.
func (e eventCount) notify(ring func()) bool {
	// SYNC POINT (notifier): this load pairs with prepare()'s and arm()'s
	// RMW; it comes after the seq-cst store that published the position.
	w := atomic.LoadUint64(e.word)
	if w&(ecWaitersMask|ecDoorbell) == 0 {
		return false
	}
	if w&ecWaitersMask != 0 {
		e.wakeAll()
	}
	if w&ecDoorbell != 0 && atomic.AndUint64(e.word, ^uint64(ecDoorbell))&ecDoorbell != 0 && ring != nil {
		ring()
	}
	return true
}

// wakeAll bumps the epoch, so that a futex waiter between prepare and wait
// does not sleep, and wakes every futex sleeper. Used by notify, and by
// Close and the peer watcher to interrupt local waiters.
func (e eventCount) wakeAll() {
	atomic.AddUint64(e.word, 1<<32)
	sys.FutexWake(e.epochAddr())
}
