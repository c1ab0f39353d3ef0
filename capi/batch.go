package main

/*
#include <stdint.h>
#include "goipc.h"
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/goipc/goipc/goipc"
)

// Batches (goipc_send_batch, goipc_recv_batch): one call into Go for many
// messages, and one publication of the ring position per batch
// (goipc.Conn.SendBatch, RecvBatch).

// goipc_recv_batch hands the caller's size_t array to the core as its
// []int: the two types have the same size on every platform Go's cgo
// supports (both are pointer-sized), checked here at compile time, so the
// sizes land in the caller's array without a copy. Sizes are never
// negative, so the bits mean the same under either type.
var (
	_ [unsafe.Sizeof(C.size_t(0)) - unsafe.Sizeof(int(0))]struct{}
	_ [unsafe.Sizeof(int(0)) - unsafe.Sizeof(C.size_t(0))]struct{}
)

// Bounds for slicing caller memory: unsafe.Slice needs an int length and
// panics on one that overflows the address space. No batch comes near
// them (a batch is at most what the ring holds), so a larger cap or
// max_count is simply not used beyond them.
const (
	maxBatchBuf   = 1 << 40
	maxBatchCount = 1 << 30
)

// batchSlices holds the [][]byte that goipc_send_batch builds over the
// caller's iovecs, reused across calls so that a batch costs no
// allocation once the pool holds one large enough. A batch larger than
// keptBatchSlices messages allocates its own (its cost is spread over that
// many messages), which is not kept.
var batchSlices = sync.Pool{New: func() any { s := make([][]byte, 0, 64); return &s }}

const keptBatchSlices = 4096

//export capi_send_batch
func capi_send_batch(h C.uint64_t, msgs *C.goipc_iovec, count C.size_t, sent *C.size_t, timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic() // *sent is 0 already (the shim)
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	switch {
	case msgs == nil && count != 0:
		return invalid(t, "goipc_send_batch: msgs is NULL and count is %d", uint64(count))
	case uint64(count) > maxBatchCount:
		return invalid(t, "goipc_send_batch: count %d is implausibly large", uint64(count))
	case e.resOwner.Load() == tid(t):
		return invalid(t, "goipc_send_batch: this thread holds a reservation on the connection (commit or abort it first)")
	case count == 0:
		return C.GOIPC_OK
	}
	iov := unsafe.Slice(msgs, int(count))
	// Every message is checked before the first is sent, so that a bad one
	// anywhere in the batch sends nothing.
	for i := range iov {
		n := uint64(iov[i].len)
		switch {
		case iov[i].data == nil && n != 0:
			return invalid(t, "goipc_send_batch: msgs[%d].data is NULL and its len is %d", i, n)
		case n > e.maxMsg:
			return fail(t, fmt.Errorf("%w: message %d of the batch is %d bytes, maximum is %d", goipc.ErrMessageTooLarge, i, n, e.maxMsg))
		}
	}
	sp := batchSlices.Get().(*[][]byte)
	batch := (*sp)[:0]
	if cap(batch) < len(iov) {
		batch = make([][]byte, 0, len(iov))
	}
	for i := range iov {
		batch = append(batch, unsafe.Slice((*byte)(iov[i].data), int(iov[i].len)))
	}
	n, err := e.c.SendBatchTimeout(batch, duration(timeoutMs))
	clear(batch) // drop the caller's pointers before the slice is reused
	if cap(batch) <= keptBatchSlices {
		*sp = batch[:0]
	}
	batchSlices.Put(sp)
	if sent != nil {
		*sent = C.size_t(n)
	}
	if err != nil {
		return fail(t, err)
	}
	return C.GOIPC_OK
}

//export capi_recv_batch
func capi_recv_batch(h C.uint64_t, buf unsafe.Pointer, capacity C.size_t, sizes *C.size_t, maxCount C.size_t, count *C.size_t,
	timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic() // *count is 0 already (the shim)
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	switch {
	case count == nil || sizes == nil:
		return invalid(t, "goipc_recv_batch: sizes and count must not be NULL")
	case maxCount == 0:
		return invalid(t, "goipc_recv_batch: max_count is 0 (room for at least one message is needed)")
	case buf == nil && capacity != 0:
		return invalid(t, "goipc_recv_batch: buf is NULL and cap is %d", uint64(capacity))
	case e.viewOwner.Load() == tid(t):
		return invalid(t, "goipc_recv_batch: this thread holds a view on the connection (release it first)")
	}
	dst := unsafe.Slice((*byte)(buf), int(min(uint64(capacity), maxBatchBuf)))
	out := unsafe.Slice((*int)(unsafe.Pointer(sizes)), int(min(uint64(maxCount), maxBatchCount)))
	// A message a typed receive kept (kept.go) is the next one (the
	// core's receive side stays locked while it is kept).
	if v, ok := e.takeKept(); ok {
		return e.batchFromView(v, dst, out, count, t)
	}
	n, err := e.c.RecvBatch(dst, out, duration(timeoutMs))
	if err != nil {
		return fail(t, err)
	}
	*count = C.size_t(n)
	return C.GOIPC_OK
}

// batchFromView delivers view v, which the caller owns, as the first
// message of a batch, followed by those already published behind it; a v
// larger than dst stays the next message (a kept view).
func (e *connEntry) batchFromView(v, dst []byte, sizes []int, count *C.size_t, t *C.goipc_tls) C.int32_t {
	sizes[0] = len(v)
	if err := e.copyKept(v, dst); err != nil {
		return fail(t, err)
	}
	n := 0
	if len(sizes) > 1 {
		// Without waiting. An error ends the batch here and is the next
		// call's to report (a message that does not fit stays queued).
		n, _ = e.c.RecvBatch(dst[len(v):], sizes[1:], 0)
	}
	*count = C.size_t(1 + n)
	return C.GOIPC_OK
}
