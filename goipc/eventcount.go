package goipc

import (
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/goipc/goipc/goipc/internal/sys"
)

// eventCount is a waiter count and an epoch in one 64-bit word of shared
// memory (low 32 bits: waiters, high 32 bits: epoch), after folly's
// EventCount. It turns "sleep until the ring changes" into a futex wait that
// cannot miss a wakeup:
//
//	waiter                              notifier
//	e := prepare()  // waiters++ (RMW)  publish(position)  // seq-cst store
//	if condition() { cancel(); done }   if waiters() != 0 { // seq-cst load
//	wait(e)  // futex: sleep if epoch==e    epoch++; futex_wake }
//	cancel() // waiters--
//
// Both sides do a sequentially consistent write and then a read of the
// other side's word (store->load, Dekker). Go's sync/atomic operations are
// sequentially consistent, so at least one side sees the other: either the
// waiter's condition() sees the published position, or the notifier sees
// waiters != 0 and bumps the epoch; a waiter that read the old epoch then
// gets EAGAIN from FUTEX_WAIT instead of sleeping. No wakeup can be lost.
type eventCount struct {
	word *uint64
}

func (e eventCount) epochAddr() *uint32 {
	return (*uint32)(unsafe.Add(unsafe.Pointer(e.word), ecEpochHalf))
}

// prepare announces a waiter and returns the epoch to wait on.
func (e eventCount) prepare() uint32 {
	// SYNC POINT (waiter): this RMW pairs with the notifier's load in
	// notify(); it happens before the waiter's re-check of the ring.
	return uint32(atomic.AddUint64(e.word, 1) >> 32)
}

// cancel withdraws a waiter announced by prepare.
func (e eventCount) cancel() {
	atomic.AddUint64(e.word, ^uint64(0))
}

// wait sleeps until the epoch moves past epoch, for at most timeout.
func (e eventCount) wait(epoch uint32, timeout time.Duration) {
	_ = sys.FutexWait(e.epochAddr(), epoch, timeout)
}

// notify wakes all waiters if any are announced. Callers have just
// published with a seq-cst store.
func (e eventCount) notify() {
	// SYNC POINT (notifier): this load pairs with prepare()'s RMW; it comes
	// after the seq-cst store that published the ring position.
	if atomic.LoadUint64(e.word)&0xffffffff != 0 {
		e.wakeAll()
	}
}

// wakeAll bumps the epoch, so that a waiter between prepare and wait does
// not sleep, and wakes every sleeper. Used by notify, and by Close and the
// peer watcher to interrupt local waiters.
func (e eventCount) wakeAll() {
	atomic.AddUint64(e.word, 1<<32)
	sys.FutexWake(e.epochAddr())
}
