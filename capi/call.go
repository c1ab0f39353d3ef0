package main

/*
#include "goipc.h"
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
)

// Calls (issue 14): goipc_call and friends, one call into Go each. The
// reply of goipc_call goes straight from the ring into the caller's
// buffer (the Go side copies it there, under a guard that never writes
// after the call returned); pending calls are named by their call id.

// callsAllowed refuses a call from a thread that holds the connection's
// reservation (its request could never be sent) or view (its reply could
// never be read): each would wait on the thread itself.
func callsAllowed(e *connEntry, t *C.goipc_tls, what string) C.int32_t {
	switch me := tid(t); {
	case e.resOwner.Load() == me:
		return invalid(t, "%s: this thread holds a reservation on the connection (commit or abort it first)", what)
	case e.viewOwner.Load() == me:
		return invalid(t, "%s: this thread holds a view on the connection (release it first)", what)
	}
	return C.GOIPC_OK
}

// outBuf is the caller's buffer as a slice; a buffer larger than any
// reply can be is not sliced further.
func outBuf(e *connEntry, buf unsafe.Pointer, capacity C.size_t) []byte {
	return unsafe.Slice((*byte)(buf), int(min(uint64(capacity), e.maxMsg)))
}

// checkOut validates a (buffer, capacity, length out-parameter) triple.
func checkOut(t *C.goipc_tls, what string, buf unsafe.Pointer, capacity C.size_t, n *C.size_t) C.int32_t {
	switch {
	case n == nil:
		return invalid(t, "%s: the length out-parameter must not be NULL", what)
	case buf == nil && capacity != 0:
		return invalid(t, "%s: the buffer is NULL and its capacity is %d", what, uint64(capacity))
	}
	return C.GOIPC_OK
}

// withLen ends a call that yields a length: *n is written on success and,
// with the size needed, on GOIPC_ERR_BUFFER_TOO_SMALL.
func withLen(t *C.goipc_tls, n *C.size_t, got int, err error) C.int32_t {
	if err == nil || errors.Is(err, goipc.ErrBufferTooSmall) {
		*n = C.size_t(got)
	}
	if err != nil {
		return fail(t, err)
	}
	return C.GOIPC_OK
}

//export capi_call
func capi_call(h C.uint64_t, req unsafe.Pointer, reqLen C.size_t, resp unsafe.Pointer, respCap C.size_t, respLen *C.size_t,
	timeoutMs C.int64_t, pending *C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	if st := checkOut(t, "goipc_call", resp, respCap, respLen); st != C.GOIPC_OK {
		return st
	}
	if st := checkRequest(e, t, "goipc_call", req, reqLen); st != C.GOIPC_OK {
		return st
	}
	in := unsafe.Slice((*byte)(req), int(reqLen))
	out := outBuf(e, resp, respCap)
	var n int
	var err error
	if pending == nil {
		n, err = e.c.CallTimeout(in, out, duration(timeoutMs))
	} else {
		var p goipc.PendingCall
		n, p, err = e.c.CallIntoPending(in, out, duration(timeoutMs))
		*pending = C.uint64_t(p.ID()) // 0 when the call is over (or never started)
	}
	return withLen(t, respLen, n, err)
}

// checkRequest validates a call's request (its pointer, its size) and
// that this thread may call on e (callsAllowed).
func checkRequest(e *connEntry, t *C.goipc_tls, what string, req unsafe.Pointer, reqLen C.size_t) C.int32_t {
	switch {
	case req == nil && reqLen != 0:
		return invalid(t, "%s: req is NULL and req_len is %d", what, uint64(reqLen))
	case uint64(reqLen) > e.maxMsg:
		return fail(t, fmt.Errorf("%w: %s: request of %d bytes, maximum is %d", goipc.ErrMessageTooLarge, what, uint64(reqLen), e.c.MaxCallSize()))
	}
	return callsAllowed(e, t, what)
}

//export capi_call_start
func capi_call_start(h C.uint64_t, req unsafe.Pointer, reqLen C.size_t, timeoutMs C.int64_t, pending *C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	if pending == nil {
		return invalid(t, "goipc_call_start: pending must not be NULL")
	}
	*pending = 0
	if st := checkRequest(e, t, "goipc_call_start", req, reqLen); st != C.GOIPC_OK {
		return st
	}
	p, err := e.c.StartCall(unsafe.Slice((*byte)(req), int(reqLen)), duration(timeoutMs))
	if err != nil {
		return fail(t, err)
	}
	*pending = C.uint64_t(p.ID())
	return C.GOIPC_OK
}

//export capi_call_end
func capi_call_end(h C.uint64_t, id C.uint64_t, resp unsafe.Pointer, respCap C.size_t, respLen *C.size_t, timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	if st := checkOut(t, "goipc_call_end", resp, respCap, respLen); st != C.GOIPC_OK {
		return st
	}
	if st := callsAllowed(e, t, "goipc_call_end"); st != C.GOIPC_OK {
		return st
	}
	n, err := e.c.PendingCallOf(uint64(id)).WaitInto(outBuf(e, resp, respCap), duration(timeoutMs))
	return withLen(t, respLen, n, err)
}

//export capi_call_cancel
func capi_call_cancel(h C.uint64_t, id C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	if err := e.c.PendingCallOf(uint64(id)).Cancel(); err != nil {
		return fail(t, err)
	}
	return C.GOIPC_OK
}

//export capi_conn_dropped_replies
func capi_conn_dropped_replies(h C.uint64_t, out *C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	if out == nil {
		return invalid(t, "goipc_conn_dropped_replies: out must not be NULL")
	}
	*out = C.uint64_t(e.c.DroppedReplies())
	return C.GOIPC_OK
}

//export capi_recv_request
func capi_recv_request(h C.uint64_t, id *C.uint64_t, buf unsafe.Pointer, capacity C.size_t, n *C.size_t, timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	if st := checkOut(t, "goipc_recv_request", buf, capacity, n); st != C.GOIPC_OK {
		return st
	}
	switch {
	case id == nil:
		return invalid(t, "goipc_recv_request: call must not be NULL")
	case e.viewOwner.Load() == tid(t):
		return invalid(t, "goipc_recv_request: this thread holds a view on the connection (release it first)")
	}
	if r, ok := e.takeKeptRequest(); ok {
		return deliverKeptRequest(e, t, r, id, outBuf(e, buf, capacity), n)
	}
	callID, got, err := e.c.RecvRequestInto(outBuf(e, buf, capacity), duration(timeoutMs))
	if err == nil {
		*id = C.uint64_t(callID)
	}
	return withLen(t, n, got, err)
}

//export capi_reply
func capi_reply(h C.uint64_t, id C.uint64_t, data unsafe.Pointer, n C.size_t, timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	switch {
	case data == nil && n != 0:
		return invalid(t, "goipc_reply: data is NULL and len is %d", uint64(n))
	case uint64(n) > e.maxMsg:
		return fail(t, fmt.Errorf("%w: goipc_reply: reply of %d bytes, maximum is %d", goipc.ErrMessageTooLarge, uint64(n), e.c.MaxCallSize()))
	case e.resOwner.Load() == tid(t):
		return invalid(t, "goipc_reply: this thread holds a reservation on the connection (commit or abort it first)")
	}
	if err := e.c.ReplyTimeout(uint64(id), unsafe.Slice((*byte)(data), int(n)), duration(timeoutMs)); err != nil {
		return fail(t, err)
	}
	return C.GOIPC_OK
}

// replyScratch holds the whole Pong of a typed call while it is verified
// (its payload alone is copied to the caller).
var replyScratch = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

//export capi_call_ping
func capi_call_ping(h C.uint64_t, seq C.uint64_t, payload unsafe.Pointer, n C.size_t, sentNs C.int64_t, pongSeq *C.uint64_t,
	buf unsafe.Pointer, capacity C.size_t, outLen *C.size_t, timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	switch {
	case pongSeq == nil || outLen == nil:
		return invalid(t, "goipc_call_ping: pong_seq and len must not be NULL")
	case payload == nil && n != 0:
		return invalid(t, "goipc_call_ping: payload is NULL and len is %d", uint64(n))
	case buf == nil && capacity != 0:
		return invalid(t, "goipc_call_ping: buf is NULL and cap is %d", uint64(capacity))
	case uint64(n) > uint64(message.MaxPayload) || message.PingSize(int(n)) > e.c.MaxCallSize():
		return fail(t, fmt.Errorf("%w: goipc_call_ping: a %d-byte payload makes a request larger than the maximum, %d bytes",
			goipc.ErrMessageTooLarge, uint64(n), e.c.MaxCallSize()))
	}
	if st := callsAllowed(e, t, "goipc_call_ping"); st != C.GOIPC_OK {
		return st
	}
	d := duration(timeoutMs)
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	in := unsafe.Slice((*byte)(payload), int(n))
	p, err := e.c.StartCallFunc(message.PingSize(int(n)), func(dst []byte) error {
		_, err := message.WritePing(dst, uint64(seq), int64(sentNs), in)
		return err
	}, d)
	if err != nil {
		return fail(t, err)
	}
	scratch := replyScratch.Get().(*[]byte)
	defer replyScratch.Put(scratch)
	for {
		if !deadline.IsZero() {
			d = max(time.Until(deadline), 0)
		}
		got, err := p.WaitInto(*scratch, d)
		if errors.Is(err, goipc.ErrBufferTooSmall) {
			*scratch = make([]byte, got) // the call stays pending: take it with a larger buffer
			continue
		}
		if err != nil {
			if errors.Is(err, goipc.ErrTimeout) {
				p.Cancel()
			}
			return fail(t, err)
		}
		pong, perr := message.ParsePong((*scratch)[:got])
		if perr != nil {
			return fail(t, fmt.Errorf("%w: goipc_call_ping: the reply is not a valid Pong (the connection is still usable): %w", goipc.ErrProtocol, perr))
		}
		pl := pong.Payload()
		*outLen = C.size_t(len(pl))
		if len(pl) > int(capacity) {
			return fail(t, fmt.Errorf("%w: goipc_call_ping: the Pong's payload is %d bytes, buffer %d (the reply is dropped)",
				goipc.ErrBufferTooSmall, len(pl), uint64(capacity)))
		}
		copy(unsafe.Slice((*byte)(buf), len(pl)), pl)
		*pongSeq = C.uint64_t(pong.Seq())
		return C.GOIPC_OK
	}
}
