package goipc

import (
	"runtime"
	"sync/atomic"
)

// slots is a process-wide, non-blocking counting semaphore.
type slots struct {
	used atomic.Int32
	max  atomic.Int32
}

// acquire takes a slot if one is free; it never waits.
func (s *slots) acquire() bool {
	if s.used.Add(1) <= s.max.Load() {
		return true
	}
	s.used.Add(-1)
	return false
}

func (s *slots) release() { s.used.Add(-1) }

var (
	// spinners bounds the calls spinning at once in this process: with
	// more spinners than CPUs, spinning only steals the CPU that the
	// peers (and this process's other goroutines) need. Half the Ps, at
	// least one: the rest park. A call takes a slot only after its first
	// spinPollsPerLook polls, so short waits never touch it.
	spinners slots
	// futexSleepers bounds the calls sleeping on a futex at once: each
	// holds an OS thread, and its P too until sysmon retakes it (20 µs to
	// 10 ms later: a blocking syscall does not hand the P off at once).
	// With every P stuck in a futex wait, goroutines the netpoller wakes
	// wait for sysmon: GOMAXPROCS-1 (at least one) keeps a P free. The
	// others sleep on their doorbell, which holds neither.
	futexSleepers slots
)

func init() {
	procs := int32(runtime.GOMAXPROCS(0))
	spinners.max.Store(max(1, procs/2))
	futexSleepers.max.Store(max(1, procs-1))
}
