package main

/*
// goipc.h here is a symlink to include/goipc.h: inside the package
// directory, the go command hashes it, so editing the header rebuilds the
// shim (a header reached through -I elsewhere would not invalidate the
// build cache, and header/shim drift could go unnoticed).
#cgo CFLAGS: -std=gnu11 -Wall -Wextra -Werror
#include <stdint.h>
#include <stdlib.h>
#include "goipc.h"
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/goipc/goipc/goipc"
)

// The internal exports. goipc_shim.c defines the public goipc_* functions
// of include/goipc.h and forwards each to one capi_* function here, passing
// a pointer to its thread-local goipc_tls: the error state that a failing
// call fills, and whose address identifies the calling thread.
//
// Every export starts with `defer recoverPanic(&st, t)`.

type connEntry struct {
	c      *goipc.Conn
	h      uint64
	maxMsg uint64
	closed atomic.Bool // set once by goipc_conn_close

	// The thread (its goipc_tls address) holding the reservation or view,
	// 0 if none. Used to refuse a same-thread re-entry (which would
	// deadlock in the core) and to let close end the caller's own
	// reservation or view. The slot is freed once the entry is closed and
	// neither is held: whoever sees that last frees it (Dekker on closed
	// vs the owner words: both sides store, then load the other).
	resOwner  atomic.Uintptr
	resLen    atomic.Uint64
	viewOwner atomic.Uintptr
	freeOnce  sync.Once

	// A view that a typed receive (goipc_recv_pong/ping) took but could
	// not deliver because the caller's buffer was too small. The message
	// must stay queued, and the core can only put a view back from inside
	// RecvInto, so capi keeps the view (the core's receive side stays
	// locked) and the next receive on this connection, of any kind, takes
	// it first. See kept.go.
	kept     atomic.Bool // fast-path check; keptView is guarded by keptMu
	keptMu   sync.Mutex
	keptView []byte

	// Ping requests that goipc_recv_ping_request took off the ring but
	// could not deliver because the caller's buffer was too small, oldest
	// first. Copies, holding nothing in the ring; the next
	// goipc_recv_ping_request or goipc_recv_request takes them first. See
	// kept.go.
	hasKeptReq atomic.Bool // fast-path check; keptReqs is guarded by keptReqMu
	keptReqMu  sync.Mutex
	keptReqs   []keptRequest
}

type listenerEntry struct {
	l      *goipc.Listener
	closed atomic.Bool
}

var (
	conns     = &table[connEntry]{kind: kindConn}
	listeners = &table[listenerEntry]{kind: kindListener}
)

func (e *connEntry) maybeFree() {
	if e.closed.Load() && e.resOwner.Load() == 0 && e.viewOwner.Load() == 0 {
		e.freeOnce.Do(func() { conns.del(e.h) })
	}
}

// panicEveryCall makes every export panic after its recover is armed. For
// tests only (GOIPC_CAPI_TEST_PANIC=1 in the environment at load): it
// proves that a panic becomes GOIPC_ERR_SYSTEM and never aborts the host.
var panicEveryCall = os.Getenv("GOIPC_CAPI_TEST_PANIC") == "1"

func maybePanic() {
	if panicEveryCall {
		panic("GOIPC_CAPI_TEST_PANIC is set")
	}
}

func recoverPanic(st *C.int32_t, t *C.goipc_tls) {
	if r := recover(); r != nil {
		*st = fail(t, fmt.Errorf("%w: %v", errInternal, r))
	}
}

// fail records err in the caller's thread-local state and returns its code.
func fail(t *C.goipc_tls, err error) C.int32_t {
	code, errno := statusOf(err)
	if t != nil {
		t.err_no = C.int32_t(errno)
		setMessage(t, err.Error())
	}
	return C.int32_t(code)
}

func setMessage(t *C.goipc_tls, s string) {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&t.msg[0])), len(t.msg))
	n := copy(b[:len(b)-1], s)
	b[n] = 0
}

func invalid(t *C.goipc_tls, format string, args ...any) C.int32_t {
	return fail(t, fmt.Errorf("%w: "+format, append([]any{goipc.ErrInvalidArgument}, args...)...))
}

func tid(t *C.goipc_tls) uintptr { return uintptr(unsafe.Pointer(t)) }

// foreverMs: a timeout this long (about 35 years) is treated as no timeout,
// which also keeps deadline arithmetic far from overflow.
const foreverMs = 1 << 40

// duration converts a C timeout in ms: < 0 forever, 0 never wait.
func duration(ms C.int64_t) time.Duration {
	switch {
	case ms < 0 || ms >= foreverMs:
		return -1
	default:
		return time.Duration(ms) * time.Millisecond
	}
}

func lookupConn(h C.uint64_t, t *C.goipc_tls, allowClosed bool) (*connEntry, C.int32_t) {
	e, r := conns.get(uint64(h))
	switch {
	case r == stale || (r == found && !allowClosed && e.closed.Load()):
		return nil, fail(t, fmt.Errorf("%w: goipc_conn %#x was closed", goipc.ErrClosed, uint64(h)))
	case r == unknown && h == 0:
		return nil, invalid(t, "goipc_conn 0 is never a valid handle")
	case r == unknown:
		return nil, invalid(t, "%#x is not an open goipc_conn handle", uint64(h))
	}
	return e, C.GOIPC_OK
}

func lookupListener(h C.uint64_t, t *C.goipc_tls) (*listenerEntry, C.int32_t) {
	e, r := listeners.get(uint64(h))
	switch {
	case r == stale || (r == found && e.closed.Load()):
		return nil, fail(t, fmt.Errorf("%w: goipc_listener %#x was closed", goipc.ErrClosed, uint64(h)))
	case r == unknown && h == 0:
		return nil, invalid(t, "goipc_listener 0 is never a valid handle")
	case r == unknown:
		return nil, invalid(t, "%#x is not an open goipc_listener handle", uint64(h))
	}
	return e, C.GOIPC_OK
}

// options converts the caller's options (already size-checked and copied
// by the shim); nil means defaults.
//
// Every call through the C ABI runs on a goroutine locked to the caller's
// thread (a cgo callback): ThreadLocked, with or without options.
func options(o *C.goipc_options) (*goipc.Options, error) {
	opts := goipc.Options{ThreadLocked: true}
	if o == nil {
		return &opts, nil
	}
	bad := func(format string, args ...any) (*goipc.Options, error) {
		return nil, fmt.Errorf("%w: goipc_options."+format, append([]any{goipc.ErrInvalidArgument}, args...)...)
	}
	if o.reserved0 != 0 {
		return bad("reserved0 must be 0")
	}
	if uint64(o.ring_size) > math.MaxInt32*2 {
		return bad("ring_size %d is too large", uint64(o.ring_size))
	}
	opts.RingSize = int(o.ring_size)
	if uint64(o.max_message_size) > math.MaxInt32*2 {
		return bad("max_message_size %d is too large", uint64(o.max_message_size))
	}
	opts.MaxMessageSize = int(o.max_message_size)
	switch spin := int64(o.spin_ns); {
	case spin == 0:
		opts.Spin = goipc.SpinDefault
	case spin < 0:
		opts.Spin = goipc.SpinNever
	case spin == math.MaxInt64:
		opts.Spin = goipc.SpinForever
	default:
		opts.Spin = time.Duration(spin)
	}
	switch hs := o.handshake_timeout_ms; {
	case hs < 0:
		return bad("handshake_timeout_ms %d is negative", int64(hs))
	case hs > 0:
		opts.HandshakeTimeout = time.Duration(min(int64(hs), foreverMs)) * time.Millisecond
	}
	opts.AllowAnyUID = o.allow_any_uid != 0
	opts.ProtocolVersionOverride = uint32(o.protocol_version_override)
	if int64(o.max_conns) > math.MaxInt32 || int64(o.max_pending_handshakes) > math.MaxInt32 {
		return bad("max_conns %d or max_pending_handshakes %d is too large", int64(o.max_conns), int64(o.max_pending_handshakes))
	}
	opts.MaxConns = int(o.max_conns)
	opts.MaxSegmentSize = int64(o.max_segment_size)
	opts.MaxMappedBytes = int64(o.max_mapped_bytes)
	opts.MaxPendingHandshakes = int(o.max_pending_handshakes)
	// Checked here rather than by goipc.Options so that the message names
	// the C field and says what 0 means.
	if n := int64(o.max_inflight_calls); n < 0 || n > goipc.MaxInflightCallsLimit {
		return bad("max_inflight_calls %d is outside [0, %d] (0: the default, %d)", n, goipc.MaxInflightCallsLimit, goipc.DefaultMaxInflightCalls)
	}
	opts.MaxInflightCalls = int(o.max_inflight_calls)
	if o.reserved1 != 0 {
		return bad("reserved1 must be 0")
	}
	opts.FreeSpaceInPieces = o.free_space_in_pieces != 0
	return &opts, nil
}

// ---- listener ----

//export capi_listen
func capi_listen(path *C.char, copts *C.goipc_options, out *C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	if path == nil || out == nil {
		return invalid(t, "goipc_listen: path and out must not be NULL")
	}
	opts, err := options(copts)
	if err != nil {
		return fail(t, err)
	}
	l, err := goipc.Listen(C.GoString(path), opts)
	if err != nil {
		return fail(t, err)
	}
	h, ok := listeners.put(&listenerEntry{l: l})
	if !ok {
		l.Close()
		return fail(t, fmt.Errorf("goipc: too many open listeners: %w", syscall.EMFILE))
	}
	*out = C.uint64_t(h)
	return C.GOIPC_OK
}

//export capi_accept
func capi_accept(lh C.uint64_t, timeoutMs C.int64_t, out *C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupListener(lh, t)
	if e == nil {
		return st
	}
	if out == nil {
		return invalid(t, "goipc_accept: out must not be NULL")
	}
	c, err := e.l.AcceptTimeout(duration(timeoutMs))
	if err != nil {
		return fail(t, err)
	}
	return putConn(c, out, t)
}

func putConn(c *goipc.Conn, out *C.uint64_t, t *C.goipc_tls) C.int32_t {
	e := &connEntry{c: c, maxMsg: uint64(c.MaxMessageSize())}
	h, ok := conns.put(e)
	if !ok {
		c.Close()
		return fail(t, fmt.Errorf("goipc: too many open connections: %w", syscall.EMFILE))
	}
	e.h = h // before the handle reaches C: nobody can close it earlier
	*out = C.uint64_t(h)
	return C.GOIPC_OK
}

//export capi_listener_close
func capi_listener_close(lh C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupListener(lh, t)
	if e == nil {
		return st
	}
	if !e.closed.CompareAndSwap(false, true) {
		return fail(t, fmt.Errorf("%w: goipc_listener %#x was closed", goipc.ErrClosed, uint64(lh)))
	}
	err := e.l.Close()
	listeners.del(uint64(lh))
	if err != nil && !errors.Is(err, goipc.ErrClosed) {
		return fail(t, err)
	}
	return C.GOIPC_OK
}

// ---- connection ----

//export capi_dial
func capi_dial(path *C.char, copts *C.goipc_options, timeoutMs C.int64_t, out *C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	if path == nil || out == nil {
		return invalid(t, "goipc_dial: path and out must not be NULL")
	}
	opts, err := options(copts)
	if err != nil {
		return fail(t, err)
	}
	c, err := goipc.DialTimeout(C.GoString(path), duration(timeoutMs), opts)
	if err != nil {
		return fail(t, err)
	}
	return putConn(c, out, t)
}

//export capi_conn_max_message_size
func capi_conn_max_message_size(h C.uint64_t, out *C.size_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	if out == nil {
		return invalid(t, "goipc_conn_max_message_size: out must not be NULL")
	}
	*out = C.size_t(e.maxMsg)
	return C.GOIPC_OK
}

//export capi_conn_fd
func capi_conn_fd(h C.uint64_t, out *C.int, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	if out == nil {
		return invalid(t, "goipc_conn_fd: fd must not be NULL")
	}
	fd, err := e.c.NotifyFD()
	if err != nil {
		return fail(t, err)
	}
	*out = C.int(fd)
	return C.GOIPC_OK
}

//export capi_send
func capi_send(h C.uint64_t, data unsafe.Pointer, n C.size_t, timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	switch {
	case data == nil && n != 0:
		return invalid(t, "goipc_send: data is NULL and len is %d", uint64(n))
	case uint64(n) > e.maxMsg:
		return fail(t, fmt.Errorf("%w: %d bytes, maximum is %d", goipc.ErrMessageTooLarge, uint64(n), e.maxMsg))
	case e.resOwner.Load() == tid(t):
		return invalid(t, "goipc_send: this thread holds a reservation on the connection (commit or abort it first)")
	}
	if err := e.c.SendTimeout(unsafe.Slice((*byte)(data), int(n)), duration(timeoutMs)); err != nil {
		return fail(t, err)
	}
	return C.GOIPC_OK
}

//export capi_recv
func capi_recv(h C.uint64_t, buf unsafe.Pointer, capacity C.size_t, n *C.size_t, timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	switch {
	case n == nil:
		return invalid(t, "goipc_recv: len must not be NULL")
	case buf == nil && capacity != 0:
		return invalid(t, "goipc_recv: buf is NULL and cap is %d", uint64(capacity))
	case e.viewOwner.Load() == tid(t):
		return invalid(t, "goipc_recv: this thread holds a view on the connection (release it first)")
	}
	// No message is larger than maxMsg: a larger cap need not be sliced.
	dst := unsafe.Slice((*byte)(buf), int(min(uint64(capacity), e.maxMsg)))
	if e.kept.Load() {
		if v, ok := e.takeKept(); ok {
			*n = C.size_t(len(v))
			if err := e.copyKept(v, dst); err != nil {
				return fail(t, err)
			}
			return C.GOIPC_OK
		}
	}
	got, err := e.c.RecvInto(dst, duration(timeoutMs))
	if err != nil {
		if errors.Is(err, goipc.ErrBufferTooSmall) {
			*n = C.size_t(got)
		}
		return fail(t, err)
	}
	*n = C.size_t(got)
	return C.GOIPC_OK
}

//export capi_conn_close
func capi_conn_close(h C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	if !e.closed.CompareAndSwap(false, true) {
		return fail(t, fmt.Errorf("%w: goipc_conn %#x was closed", goipc.ErrClosed, uint64(h)))
	}
	// SYNC POINT: closed is stored before the owner words are loaded (in
	// maybeFree); reserve/recv_view store their owner word before loading
	// closed. Either they see closed and end their own reservation/view,
	// or we see their owner and leave the slot to them.
	e.c.Close() // an error here is the socket's; the handle is closed all the same
	me := tid(t)
	if e.resOwner.CompareAndSwap(me, 0) {
		e.c.AbortReserve()
	}
	if e.viewOwner.CompareAndSwap(me, 0) {
		e.c.ReleaseView()
	}
	if _, ok := e.takeKept(); ok {
		e.c.ReleaseView()
	}
	e.maybeFree()
	return C.GOIPC_OK
}

// ---- zero copy ----

//export capi_reserve
func capi_reserve(h C.uint64_t, n C.size_t, timeoutMs C.int64_t, out *C.uintptr_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	me := tid(t)
	switch {
	case out == nil:
		return invalid(t, "goipc_reserve: out_ptr must not be NULL")
	case e.resOwner.Load() == me:
		return invalid(t, "goipc_reserve: this thread already holds a reservation on the connection")
	case uint64(n) > e.maxMsg:
		return fail(t, fmt.Errorf("%w: %d bytes, maximum is %d", goipc.ErrMessageTooLarge, uint64(n), e.maxMsg))
	}
	buf, err := e.c.Reserve(int(n), duration(timeoutMs))
	if err != nil {
		return fail(t, err)
	}
	e.resLen.Store(uint64(n))
	e.resOwner.Store(me)
	if e.closed.Load() { // closed while we waited: end it ourselves
		e.resOwner.Store(0)
		e.c.AbortReserve()
		e.maybeFree()
		return fail(t, fmt.Errorf("%w: goipc_conn %#x was closed", goipc.ErrClosed, uint64(h)))
	}
	*out = C.uintptr_t(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
	return C.GOIPC_OK
}

//export capi_commit
func capi_commit(h C.uint64_t, n C.size_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, true)
	if e == nil {
		return st
	}
	owner := e.resOwner.Load()
	switch {
	case owner == 0:
		return invalid(t, "goipc_commit: no reservation is open")
	case uint64(n) > e.resLen.Load():
		return invalid(t, "goipc_commit: %d bytes, %d reserved (the reservation stays open)", uint64(n), e.resLen.Load())
	case !e.resOwner.CompareAndSwap(owner, 0):
		return invalid(t, "goipc_commit: the reservation was ended by another call")
	}
	err := e.c.Commit(int(n))
	e.maybeFree()
	if err != nil {
		return fail(t, err)
	}
	return C.GOIPC_OK
}

//export capi_abort_reserve
func capi_abort_reserve(h C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, true)
	if e == nil {
		return st
	}
	owner := e.resOwner.Load()
	if owner == 0 || !e.resOwner.CompareAndSwap(owner, 0) {
		return invalid(t, "goipc_abort_reserve: no reservation is open")
	}
	err := e.c.AbortReserve()
	e.maybeFree()
	if err == nil && e.closed.Load() {
		err = fmt.Errorf("%w: goipc_conn %#x was closed (the reservation is ended)", goipc.ErrClosed, uint64(h))
	}
	if err != nil {
		return fail(t, err)
	}
	return C.GOIPC_OK
}

//export capi_recv_view
func capi_recv_view(h C.uint64_t, out *C.uintptr_t, outLen *C.size_t, timeoutMs C.int64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, false)
	if e == nil {
		return st
	}
	me := tid(t)
	switch {
	case out == nil || outLen == nil:
		return invalid(t, "goipc_recv_view: out_ptr and out_len must not be NULL")
	case e.viewOwner.Load() == me:
		return invalid(t, "goipc_recv_view: this thread already holds a view on the connection")
	}
	v, err := e.nextView(duration(timeoutMs))
	if err != nil {
		return fail(t, err)
	}
	e.viewOwner.Store(me)
	if e.closed.Load() { // closed while we waited: end it ourselves
		e.viewOwner.Store(0)
		e.c.ReleaseView()
		e.maybeFree()
		return fail(t, fmt.Errorf("%w: goipc_conn %#x was closed", goipc.ErrClosed, uint64(h)))
	}
	*out = C.uintptr_t(uintptr(unsafe.Pointer(unsafe.SliceData(v))))
	*outLen = C.size_t(len(v))
	return C.GOIPC_OK
}

//export capi_release
func capi_release(h C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupConn(h, t, true)
	if e == nil {
		return st
	}
	owner := e.viewOwner.Load()
	if owner == 0 || !e.viewOwner.CompareAndSwap(owner, 0) {
		return invalid(t, "goipc_release: no view is open")
	}
	err := e.c.ReleaseView()
	e.maybeFree()
	if err == nil && e.closed.Load() {
		err = fmt.Errorf("%w: goipc_conn %#x was closed (the view is ended)", goipc.ErrClosed, uint64(h))
	}
	if err != nil {
		return fail(t, err)
	}
	return C.GOIPC_OK
}
