package main

import (
	"sync"
	"sync/atomic"
)

// A handle is a uint64 that C code holds for a listener or a connection.
// It is never a pointer and never a cgo.Handle: a value from C is decoded
// and checked against the table below before anything is dereferenced, so a
// garbage, stale or wrong-kind handle is an error code, never a crash.
//
//	bits 63..56  kind tag (kindConn or kindListener)
//	bits 55..32  generation of the slot when the handle was issued (24 bits)
//	bits 31..0   slot index + 1 (so 0 is never a valid handle)
//
// Freeing a slot advances its generation, so a closed handle no longer
// matches its slot; it is told apart from a never-issued one by its older
// generation (until the 24-bit counter wraps, after 16M reuses of a slot,
// when it reads as "unknown" instead of "closed": still an error).
const (
	kindConn     = 0xC0
	kindListener = 0x1E

	genBits   = 24
	genMask   = 1<<genBits - 1
	chunkBits = 10
	chunkSize = 1 << chunkBits
	maxChunks = 1 << 12 // 4M live handles per kind
)

// lookupResult says why a lookup failed.
type lookupResult int

const (
	found lookupResult = iota
	unknown
	stale // issued once, since closed
)

type node[T any] struct {
	h uint64
	v *T
}

type slot[T any] struct {
	p   atomic.Pointer[node[T]] // the live entry, nil when free
	gen atomic.Uint32           // current generation; advanced on free
}

// table maps handles of one kind to entries. get is lock-free (two atomic
// loads); put and del take a mutex.
type table[T any] struct {
	kind   uint64
	chunks [maxChunks]atomic.Pointer[[chunkSize]slot[T]]

	mu   sync.Mutex
	next uint32   // next never-used index
	free []uint32 // freed indexes, reused oldest first once there are many
	live int
}

// minFree is how many freed slots wait before one is reused, so that a
// stale handle keeps reading as stale for a while even without the
// generation check.
const minFree = 64

func decode(h uint64) (kind uint64, gen uint32, idx uint32) {
	return h >> 56, uint32(h>>32) & genMask, uint32(h)
}

// get returns the entry for h, or why there is none.
func (t *table[T]) get(h uint64) (*T, lookupResult) {
	kind, gen, idx := decode(h)
	if kind != t.kind || idx == 0 {
		return nil, unknown
	}
	i := idx - 1
	if i>>chunkBits >= maxChunks {
		return nil, unknown
	}
	chunk := t.chunks[i>>chunkBits].Load()
	if chunk == nil {
		return nil, unknown
	}
	s := &chunk[i&(chunkSize-1)]
	if n := s.p.Load(); n != nil && n.h == h {
		return n.v, found
	}
	if gen < s.gen.Load() {
		return nil, stale
	}
	return nil, unknown
}

// put stores v and returns its new handle, or false if the table is full.
func (t *table[T]) put(v *T) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var i uint32
	if len(t.free) > minFree || (len(t.free) > 0 && t.next >= maxChunks*chunkSize) {
		i = t.free[0]
		t.free = t.free[1:]
	} else {
		if t.next >= maxChunks*chunkSize {
			return 0, false
		}
		i = t.next
		t.next++
		if t.chunks[i>>chunkBits].Load() == nil {
			t.chunks[i>>chunkBits].Store(new([chunkSize]slot[T]))
		}
	}
	s := &t.chunks[i>>chunkBits].Load()[i&(chunkSize-1)]
	h := t.kind<<56 | uint64(s.gen.Load())<<32 | uint64(i+1)
	s.p.Store(&node[T]{h: h, v: v})
	t.live++
	return h, true
}

// del frees the slot of h, which must be live.
func (t *table[T]) del(h uint64) {
	_, _, idx := decode(h)
	i := idx - 1
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &t.chunks[i>>chunkBits].Load()[i&(chunkSize-1)]
	if n := s.p.Load(); n == nil || n.h != h {
		return
	}
	s.p.Store(nil)
	// A generation that wraps to 0 would make old handles look newer
	// than the slot; skip nothing, just wrap: they read as unknown then.
	s.gen.Store((s.gen.Load() + 1) & genMask)
	t.free = append(t.free, i)
	t.live--
}

// count is the number of live entries (for tests).
func (t *table[T]) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.live
}
