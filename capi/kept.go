package main

import "time"

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

// nextView returns the kept view if there is one, else waits for the next
// message (goipc.Conn.RecvView). The caller owns the view it returns.
func (e *connEntry) nextView(d time.Duration) ([]byte, error) {
	if v, ok := e.takeKept(); ok {
		return v, nil
	}
	return e.c.RecvView(d)
}
