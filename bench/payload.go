package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
)

// Payloads: a fixed byte pattern with the message's sequence number stamped
// over its first (up to) 8 bytes, so that a stale, reordered or torn
// message fails verification.

func patternByte(j int) byte { return byte(j*131 + 7) }

func newPayload(size int) []byte {
	b := make([]byte, size, size+RecvSlack)
	for j := range b {
		b[j] = patternByte(j)
	}
	return b
}

func newRecvBuf(size int) []byte { return make([]byte, size, size+RecvSlack) }

func stamp(b []byte, seq uint64) {
	if len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, seq)
		return
	}
	for j := range b {
		b[j] = byte(seq >> (8 * j))
	}
}

// pattern is the reference pattern, grown (replaced by a longer one,
// under patternMu) when a longer message asks for it. Readers load it
// without the lock: verify runs on every round trip of every producer,
// and a process-wide mutex there serialised them (with 8 goipc producers
// in one client, waiters on it sat in a run queue for 8 ms behind a
// producer that kept its P; docs/PERFORMANCE.md section 24).
var (
	patternMu sync.Mutex
	pattern   atomic.Pointer[[]byte]
)

// patternOf returns the reference pattern of at least n bytes.
func patternOf(n int) []byte {
	if p := pattern.Load(); p != nil && len(*p) >= n {
		return (*p)[:n]
	}
	patternMu.Lock()
	defer patternMu.Unlock()
	if p := pattern.Load(); p != nil && len(*p) >= n {
		return (*p)[:n]
	}
	p := newPayload(n)
	pattern.Store(&p)
	return p
}

// verify checks that b is the payload of message seq.
func verify(b []byte, seq uint64) error {
	n := min(8, len(b))
	for j := 0; j < n; j++ {
		if b[j] != byte(seq>>(8*j)) {
			return fmt.Errorf("bench: payload of message %d: sequence bytes % x", seq, b[:n])
		}
	}
	if bytes.Equal(b[n:], patternOf(len(b))[n:]) {
		return nil
	}
	for j := n; j < len(b); j++ {
		if b[j] != patternByte(j) {
			return fmt.Errorf("bench: payload of message %d (%d B): byte %d is %#x, want %#x", seq, len(b), j, b[j], patternByte(j))
		}
	}
	return fmt.Errorf("bench: payload of message %d differs", seq)
}
