//go:build linux

package sys

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// golang.org/x/sys/unix has SYS_FUTEX but no FUTEX_* operation constants.
// These are the shared (non-private) operations: the futex word lives in a
// MAP_SHARED mapping used by two processes, so FUTEX_PRIVATE_FLAG (128)
// must never be set.
const (
	futexWait = 0
	futexWake = 1
)

// FutexWait sleeps while *addr == val, for at most timeout (timeout <= 0
// means a 1 ns wait, never an unbounded one: callers always bound it).
// Spurious returns are normal; the caller re-checks its condition. The
// returned error is nil on a wake, or EAGAIN, EINTR or ETIMEDOUT — none of
// which the caller needs to distinguish.
func FutexWait(addr *uint32, val uint32, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 1
	}
	ts := unix.NsecToTimespec(int64(timeout))
	// Syscall6, not RawSyscall: this call blocks, and the Go scheduler must
	// be told so that it can hand the P to another thread.
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)),
		futexWait, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// FutexWake wakes every waiter sleeping on addr, in any process.
func FutexWake(addr *uint32) {
	const all = 1<<31 - 1
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWake, all, 0, 0, 0)
}

// Yield gives the CPU to another runnable thread of the machine, if one
// waits for it (sched_yield(2)), keeping the calling goroutine's P: the
// ring poller yields after a sweep that found nothing, so that its
// polling takes only CPU that nothing else wants.
func Yield() {
	unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
}
