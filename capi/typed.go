package main

/*
#include "goipc.h"
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
)

// Typed messages (issue 4): C peers send and receive the kit's FlatBuffers
// Ping and Pong (schema/goipc.fbs) through package message, without a
// FlatBuffers library of their own. Sends build the message in place in
// reserved ring space; receives verify it in place and copy out only the
// payload. One call into Go each. The C shim reads CLOCK_MONOTONIC (vDSO)
// and passes the time in.

func sendTyped(e *connEntry, t *C.goipc_tls, what string, payload unsafe.Pointer, n C.size_t, timeoutMs C.int64_t,
	size func(int) int, write func(dst, payload []byte) (int, error)) C.int32_t {
	return buildTyped(e, t, what, payload, n, timeoutMs, int(e.maxMsg), e.c.Reserve, size, write)
}

// buildTyped is sendTyped into space from reserve (a plain message, or a
// call's reply), of at most limit bytes.
func buildTyped(e *connEntry, t *C.goipc_tls, what string, payload unsafe.Pointer, n C.size_t, timeoutMs C.int64_t,
	limit int, reserve func(int, time.Duration) ([]byte, error), size func(int) int, write func(dst, payload []byte) (int, error)) C.int32_t {
	switch {
	case payload == nil && n != 0:
		return invalid(t, "%s: payload is NULL and len is %d", what, uint64(n))
	case e.resOwner.Load() == tid(t):
		return invalid(t, "%s: this thread holds a reservation on the connection (commit or abort it first)", what)
	case uint64(n) > uint64(message.MaxPayload) || size(int(n)) > limit:
		return fail(t, fmt.Errorf("%w: %s: a %d-byte payload makes a message larger than the maximum, %d bytes",
			goipc.ErrMessageTooLarge, what, uint64(n), limit))
	}
	total := size(int(n))
	dst, err := reserve(total, duration(timeoutMs))
	if err != nil {
		return fail(t, err)
	}
	if _, err := write(dst, unsafe.Slice((*byte)(payload), int(n))); err != nil {
		e.c.AbortReserve()
		return fail(t, fmt.Errorf("%w: %s: %w", goipc.ErrInvalidArgument, what, err))
	}
	if err := e.c.Commit(total); err != nil {
		return fail(t, err)
	}
	return C.GOIPC_OK
}

// recvTyped takes views until one parses (messages with a body type this
// version does not know, from a newer peer, are skipped), copies its
// payload into buf and releases it. A malformed message, or one of the
// other type, is dropped and reported as ErrProtocol: that message only,
// the connection stays usable. A payload larger than buf keeps the message
// queued (kept view) and reports its size in *n.
func recvTyped(e *connEntry, t *C.goipc_tls, what string, seq *C.uint64_t, sentNs *C.int64_t, buf unsafe.Pointer,
	capacity C.size_t, n *C.size_t, timeoutMs C.int64_t, parse func(v []byte) (payload []byte, seq uint64, sentNs int64, err error)) C.int32_t {
	switch {
	case n == nil || seq == nil:
		return invalid(t, "%s: seq and len must not be NULL", what)
	case buf == nil && capacity != 0:
		return invalid(t, "%s: buf is NULL and cap is %d", what, uint64(capacity))
	case e.viewOwner.Load() == tid(t):
		return invalid(t, "%s: this thread holds a view on the connection (release it first)", what)
	}
	dst := unsafe.Slice((*byte)(buf), int(min(uint64(capacity), e.maxMsg)))
	d := duration(timeoutMs)
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	for {
		v, err := e.nextView(d)
		if err != nil {
			return fail(t, err)
		}
		payload, sq, sent, perr := parse(v)
		if perr != nil {
			e.c.ReleaseView() // drop it
			if errors.Is(perr, message.ErrUnknownBody) {
				if !deadline.IsZero() {
					d = max(time.Until(deadline), 0)
				}
				continue
			}
			return fail(t, fmt.Errorf("%w: %s: dropped a malformed or unexpected message, the connection is still usable: %w",
				goipc.ErrProtocol, what, perr))
		}
		*n = C.size_t(len(payload))
		if len(payload) > len(dst) {
			e.keep(v)
			return fail(t, fmt.Errorf("%w: %s: payload is %d bytes, buffer %d", goipc.ErrBufferTooSmall, what, len(payload), len(dst)))
		}
		copy(dst, payload)
		*seq = C.uint64_t(sq)
		if sentNs != nil {
			*sentNs = C.int64_t(sent)
		}
		e.c.ReleaseView()
		return C.GOIPC_OK
	}
}

//export capi_send_ping
func capi_send_ping(h C.uint64_t, seq C.uint64_t, payload unsafe.Pointer, n C.size_t, sentNs C.int64_t, timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	return sendTyped(e, t, "goipc_send_ping", payload, n, timeoutMs, message.PingSize, func(dst, p []byte) (int, error) {
		return message.WritePing(dst, uint64(seq), int64(sentNs), p)
	})
}

//export capi_send_pong
func capi_send_pong(h C.uint64_t, seq C.uint64_t, pingSentNs, receivedNs C.int64_t, payload unsafe.Pointer, n C.size_t, timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	return sendTyped(e, t, "goipc_send_pong", payload, n, timeoutMs, message.PongSize, func(dst, p []byte) (int, error) {
		return message.WritePong(dst, uint64(seq), int64(pingSentNs), int64(receivedNs), p)
	})
}

//export capi_recv_pong
func capi_recv_pong(h C.uint64_t, seq *C.uint64_t, buf unsafe.Pointer, capacity C.size_t, n *C.size_t, timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	return recvTyped(e, t, "goipc_recv_pong", seq, nil, buf, capacity, n, timeoutMs, parsePong)
}

func parsePong(v []byte) ([]byte, uint64, int64, error) {
	pv, err := message.ParsePong(v)
	return pv.Payload(), pv.Seq(), pv.PingSentNs(), err
}

func parsePing(v []byte) ([]byte, uint64, int64, error) {
	pv, err := message.ParsePing(v)
	return pv.Payload(), pv.Seq(), pv.SentNs(), err
}

//export capi_recv_ping
func capi_recv_ping(h C.uint64_t, seq *C.uint64_t, sentNs *C.int64_t, buf unsafe.Pointer, capacity C.size_t, n *C.size_t, timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	return recvTyped(e, t, "goipc_recv_ping", seq, sentNs, buf, capacity, n, timeoutMs, parsePing)
}
