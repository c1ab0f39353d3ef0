package main

/*
#include <stdint.h>
#include "goipc.h"
#include "shim.h"
*/
import "C"

import (
	"unsafe"

	"github.com/goipc/goipc/goipc"
)

// goipc_stats sizes: version 1 is the smallest struct a caller may pass;
// the upper bound catches an uninitialised struct_size.
const (
	statsV1Size  = 136
	statsMaxSize = 4096
)

//export capi_conn_stats
func capi_conn_stats(h C.uint64_t, out *C.goipc_stats, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	if out == nil {
		return invalid(t, "goipc_conn_stats: out must not be NULL")
	}
	size := uint32(out.struct_size)
	if size < statsV1Size || size > statsMaxSize {
		return invalid(t, "goipc_conn_stats: struct_size %d (set it to sizeof(goipc_stats), at least %d)", size, statsV1Size)
	}
	s, err := e.c.Stats()
	if err != nil {
		return fail(t, err)
	}
	var v C.goipc_stats
	v.dialer = boolU32(s.Dialer)
	v.peer_pid = C.int64_t(s.PeerPID)
	v.opened_unix_ns = C.int64_t(s.Opened.UnixNano())
	v.sent = directionStats(s.Sent)
	v.received = directionStats(s.Received)
	n := min(size, uint32(unsafe.Sizeof(v)))
	v.struct_size = C.uint32_t(n)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(out)), n), unsafe.Slice((*byte)(unsafe.Pointer(&v)), n))
	return C.GOIPC_OK
}

func directionStats(d goipc.DirectionStats) C.goipc_direction_stats {
	return C.goipc_direction_stats{
		messages:        C.uint64_t(d.Messages),
		bytes:           C.uint64_t(d.Bytes),
		parks:           C.uint64_t(d.Parks),
		wakeups:         C.uint64_t(d.Wakeups),
		capacity:        C.uint64_t(d.Capacity),
		in_use:          C.uint64_t(d.InUse),
		sender_parked:   boolU32(d.SenderParked),
		receiver_parked: boolU32(d.ReceiverParked),
	}
}

func boolU32(b bool) C.uint32_t {
	if b {
		return 1
	}
	return 0
}
