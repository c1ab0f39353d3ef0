package main

/*
#include "goipc.h"
#include "shim.h"
*/
import "C"

import (
	"bytes"
	"fmt"
	"time"
	"unsafe"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
)

// The server side of typed calls (issue 14): a C server takes a call
// request parsed as a Ping (goipc_recv_ping_request) and answers it with a
// Pong built in place in the ring (goipc_reply_pong), one call into Go
// each, without a FlatBuffers library of its own.

//export capi_recv_ping_request
func capi_recv_ping_request(h C.uint64_t, call, seq *C.uint64_t, sentNs *C.int64_t, buf unsafe.Pointer, capacity C.size_t,
	n *C.size_t, timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	if st := checkOut(t, "goipc_recv_ping_request", buf, capacity, n); st != C.GOIPC_OK {
		return st
	}
	switch {
	case call == nil || seq == nil:
		return invalid(t, "goipc_recv_ping_request: call and seq must not be NULL")
	case e.viewOwner.Load() == tid(t):
		return invalid(t, "goipc_recv_ping_request: this thread holds a view on the connection (release it first)")
	}
	out := pingRequestOut{call: call, seq: seq, sentNs: sentNs, buf: outBuf(e, buf, capacity), n: n}
	if r, ok := e.takeKeptRequest(); ok {
		return out.deliver(e, t, r.id, r.data, true)
	}
	id, req, err := e.c.RecvRequestView(duration(timeoutMs))
	if err != nil {
		return fail(t, err)
	}
	st = out.deliver(e, t, id, req, false)
	e.c.ReleaseView()
	return st
}

// pingRequestOut is where goipc_recv_ping_request puts what it received.
type pingRequestOut struct {
	call, seq *C.uint64_t
	sentNs    *C.int64_t // may be nil
	buf       []byte
	n         *C.size_t
}

// deliver parses req (the request id, in the ring or kept) as a Ping and
// copies its payload out. A request that does not fit out.buf is kept
// (kept says req is a kept copy already, and the oldest). A request that
// is not a Ping leaves the queue: its id and bytes go to the caller, who
// may still answer it (its caller waits for a reply).
func (o pingRequestOut) deliver(e *connEntry, t *C.goipc_tls, id uint64, req []byte, kept bool) C.int32_t {
	ping, err := message.ParsePing(req)
	if err != nil {
		*o.call = C.uint64_t(id)
		*o.n = C.size_t(len(req))
		copy(o.buf, req)
		return fail(t, fmt.Errorf("%w: goipc_recv_ping_request: the request of call %#x (%d bytes) is not a valid Ping; "+
			"it is dropped from the queue, its id and bytes handed over to be answered (the connection is still usable): %w",
			goipc.ErrProtocol, id, len(req), err))
	}
	payload := ping.Payload()
	if len(payload) > len(o.buf) {
		if !kept {
			req = bytes.Clone(req) // the ring's bytes go back to the peer
		}
		e.keepRequest(keptRequest{id: id, data: req}, kept)
		*o.n = C.size_t(len(payload))
		return fail(t, fmt.Errorf("%w: goipc_recv_ping_request: the Ping's payload is %d bytes, buffer %d (the request stays queued)",
			goipc.ErrBufferTooSmall, len(payload), len(o.buf)))
	}
	*o.n = C.size_t(copy(o.buf, payload))
	*o.call = C.uint64_t(id)
	*o.seq = C.uint64_t(ping.Seq())
	if o.sentNs != nil {
		*o.sentNs = C.int64_t(ping.SentNs())
	}
	return C.GOIPC_OK
}

// deliverKeptRequest is goipc_recv_request of a request that
// goipc_recv_ping_request kept: it stays kept if it does not fit buf.
func deliverKeptRequest(e *connEntry, t *C.goipc_tls, r keptRequest, id *C.uint64_t, buf []byte, n *C.size_t) C.int32_t {
	if len(r.data) > len(buf) {
		e.keepRequest(r, true)
		return withLen(t, n, len(r.data), fmt.Errorf("%w: request is %d bytes, buffer %d", goipc.ErrBufferTooSmall, len(r.data), len(buf)))
	}
	*id = C.uint64_t(r.id)
	return withLen(t, n, copy(buf, r.data), nil)
}

//export capi_reply_pong
func capi_reply_pong(h C.uint64_t, id C.uint64_t, seq C.uint64_t, pingSentNs, receivedNs C.int64_t, payload unsafe.Pointer, n C.size_t,
	timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	if id == 0 {
		return invalid(t, "goipc_reply_pong: call id 0 is never issued (take the id from goipc_recv_ping_request or goipc_recv_request)")
	}
	reserve := func(size int, d time.Duration) ([]byte, error) { return e.c.ReserveReply(uint64(id), size, d) }
	return buildTyped(e, t, "goipc_reply_pong", payload, n, timeoutMs, e.c.MaxCallSize(), reserve, message.PongSize,
		func(dst, p []byte) (int, error) {
			return message.WritePong(dst, uint64(seq), int64(pingSentNs), int64(receivedNs), p)
		})
}
