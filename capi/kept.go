package main

import (
	"fmt"
	"time"

	"github.com/goipc/goipc/goipc"
)

// Kept views: see connEntry.kept. A kept view is owned by no thread; the
// next receive takes it. Only one view exists at a time (the core's
// receive side is locked while it does), so at most one is kept.
//
// Close releases a kept view. A receive that keeps a view after Close
// (it took the view before Close ran) sees closed and releases it itself:
// keep stores kept, then loads closed; Close stores closed, then loads
// kept (in takeKept) - one of them sees the other.

// takeKept returns the kept view, if any, and makes the caller its owner.
func (e *connEntry) takeKept() ([]byte, bool) {
	if !e.kept.Load() {
		return nil, false
	}
	e.keptMu.Lock()
	defer e.keptMu.Unlock()
	if !e.kept.Load() {
		return nil, false
	}
	v := e.keptView
	e.keptView = nil
	e.kept.Store(false)
	return v, true
}

// keep puts a view the caller owns back for the next receive.
func (e *connEntry) keep(v []byte) {
	e.keptMu.Lock()
	e.keptView = v
	e.kept.Store(true)
	e.keptMu.Unlock()
	if e.closed.Load() {
		if _, ok := e.takeKept(); ok {
			e.c.ReleaseView()
		}
	}
}

// copyKept copies view v, which the caller owns, into dst and releases
// it; a v larger than dst is kept again (it stays the next message) and
// the error says so. Shared by goipc_recv and goipc_recv_batch.
func (e *connEntry) copyKept(v, dst []byte) error {
	if len(v) > len(dst) {
		e.keep(v)
		return fmt.Errorf("%w: message is %d bytes, buffer %d", goipc.ErrBufferTooSmall, len(v), len(dst))
	}
	copy(dst, v)
	e.c.ReleaseView()
	return nil
}

// nextView returns the kept view if there is one, else waits for the next
// message (goipc.Conn.RecvView). The caller owns the view it returns.
func (e *connEntry) nextView(d time.Duration) ([]byte, error) {
	if v, ok := e.takeKept(); ok {
		return v, nil
	}
	return e.c.RecvView(d)
}

// Kept requests: see connEntry.keptReqs. The core can leave a request
// queued only from inside RecvRequestInto, which copies the whole request;
// goipc_recv_ping_request reads it in place instead (one copy, of the
// payload) and, when the payload does not fit the caller's buffer, keeps a
// copy of the request here. Unlike a kept view it holds nothing in the
// ring, so plain receives and calls go on meanwhile.

// keptRequest is a call request taken off the ring and not yet delivered.
type keptRequest struct {
	id   uint64
	data []byte // the whole request, owned by the entry
}

// takeKeptRequest returns the oldest kept request, if any, and removes it.
func (e *connEntry) takeKeptRequest() (keptRequest, bool) {
	if !e.hasKeptReq.Load() {
		return keptRequest{}, false
	}
	e.keptReqMu.Lock()
	defer e.keptReqMu.Unlock()
	if len(e.keptReqs) == 0 {
		return keptRequest{}, false
	}
	r := e.keptReqs[0]
	e.keptReqs = append(e.keptReqs[:0], e.keptReqs[1:]...)
	e.hasKeptReq.Store(len(e.keptReqs) > 0)
	return r, true
}

// keepRequest puts r back for the next request receive: first when it
// was itself taken from the kept ones (it is the oldest), else last.
func (e *connEntry) keepRequest(r keptRequest, first bool) {
	e.keptReqMu.Lock()
	defer e.keptReqMu.Unlock()
	if first {
		e.keptReqs = append([]keptRequest{r}, e.keptReqs...)
	} else {
		e.keptReqs = append(e.keptReqs, r)
	}
	e.hasKeptReq.Store(true)
}
