package main

/*
#include <stdint.h>
#include <stddef.h>
#include "goipc.h"
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/goipc/goipc/goipc"
)

// The loop sweeper (goipc.Sweeper): goipc_sweeper_* and
// goipc_conn_set_sweeper.

const kindSweeper = 0x5E

type sweeperEntry struct {
	s     *goipc.Sweeper
	freed atomic.Bool // set once by goipc_sweeper_free
}

var sweepers = &table[sweeperEntry]{kind: kindSweeper}

func lookupSweeper(h C.uint64_t, t *C.goipc_tls) (*sweeperEntry, C.int32_t) {
	e, r := sweepers.get(uint64(h))
	switch {
	case r == stale || (r == found && e.freed.Load()):
		return nil, fail(t, fmt.Errorf("%w: goipc_sweeper %#x was freed", goipc.ErrClosed, uint64(h)))
	case r == unknown && h == 0:
		return nil, invalid(t, "goipc_sweeper 0 is never a valid handle")
	case r == unknown:
		return nil, invalid(t, "%#x is not a live goipc_sweeper handle", uint64(h))
	}
	return e, C.GOIPC_OK
}

//export capi_sweeper_new
func capi_sweeper_new(out *C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	if out == nil {
		return invalid(t, "goipc_sweeper_new: out must not be NULL")
	}
	h, ok := sweepers.put(&sweeperEntry{s: goipc.NewSweeper()})
	if !ok {
		return fail(t, fmt.Errorf("%w: too many live goipc_sweeper handles", goipc.ErrLimit))
	}
	*out = C.uint64_t(h)
	return C.GOIPC_OK
}

//export capi_sweeper_free
func capi_sweeper_free(h C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupSweeper(h, t)
	if e == nil {
		return st
	}
	if !e.freed.CompareAndSwap(false, true) {
		return fail(t, fmt.Errorf("%w: goipc_sweeper %#x was freed", goipc.ErrClosed, uint64(h)))
	}
	e.s.Free(nil) // waits that could succeed make their descriptors readable
	sweepers.del(uint64(h))
	return C.GOIPC_OK
}

//export capi_conn_set_sweeper
func capi_conn_set_sweeper(h C.uint64_t, sh C.uint64_t, token C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	var s *goipc.Sweeper
	if sh != 0 {
		se, st := lookupSweeper(sh, t)
		if se == nil {
			return st
		}
		s = se.s
	}
	if err := e.c.SetSweeper(s, uint64(token)); err != nil {
		return fail(t, err)
	}
	return C.GOIPC_OK
}

//export capi_sweeper_sweep
func capi_sweeper_sweep(h C.uint64_t, tokens *C.uint64_t, capacity C.size_t, n *C.size_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	return sweeperReport("goipc_sweeper_sweep", (*goipc.Sweeper).Sweep, h, tokens, capacity, n, t)
}

//export capi_sweeper_arm
func capi_sweeper_arm(h C.uint64_t, tokens *C.uint64_t, capacity C.size_t, n *C.size_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	return sweeperReport("goipc_sweeper_arm", (*goipc.Sweeper).Arm, h, tokens, capacity, n, t)
}

// sweeperReport runs Sweep or Arm (op) into the caller's token array.
// *n is 0 already (the shim).
func sweeperReport(fn string, op func(*goipc.Sweeper, []uint64) int, h C.uint64_t, tokens *C.uint64_t, capacity C.size_t, n *C.size_t, t *C.goipc_tls) C.int32_t {
	maybePanic()
	e, st := lookupSweeper(h, t)
	if e == nil {
		return st
	}
	switch {
	case n == nil:
		return invalid(t, "%s: n must not be NULL", fn)
	case tokens == nil && capacity != 0:
		return invalid(t, "%s: tokens is NULL and cap is %d", fn, uint64(capacity))
	case uint64(capacity) > 1<<40:
		return invalid(t, "%s: cap %d is too large", fn, uint64(capacity))
	}
	var out []uint64
	if capacity != 0 {
		out = unsafe.Slice((*uint64)(unsafe.Pointer(tokens)), int(capacity))
	}
	*n = C.size_t(op(e.s, out))
	return C.GOIPC_OK
}
