package goipc

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// Calls: a request frame (kind 2) carrying an id chosen by the caller,
// answered by exactly one reply frame (kind 3) carrying the same id
// (docs/PROTOCOL.md, "Calls"). This file is the caller's side; the
// routing of replies to their callers is in recvside.go, the server's
// side in serve.go.
//
// Each call in flight owns a slot of the connection's call table
// (Options.MaxInflightCalls of them, allocated on the first call). The
// id is the slot's index in its low 16 bits and the slot's generation,
// advanced on every use, above: an id is never reused while its call is
// in flight, and a reply for an earlier use of a slot (its caller gave
// up) does not match the slot's generation and is dropped.
//
// A slot's state word is generation<<4 | claimed<<3 | phase:
//
//	free      no call
//	waiting   a call whose reply goes straight into the caller's buffer (dst)
//	detached  a call with no buffer attached: the reply is copied into a new slice
//	filling   a receiver is copying the reply in
//	done      the reply is in: in dst (n bytes), or in out
//
// claimed is set while a goroutine acts on the call (its caller, or Wait
// or Cancel of a PendingCall): one at a time. The receiver that routes a
// reply moves waiting/detached to filling with a CAS, copies, moves on to
// done and wakes the caller (a caller that routes its own reply, holding
// the claim, does it with one store). The caller gives up with a CAS from
// waiting/detached (to free, or from waiting to detached to keep the call
// pending without its buffer); if the CAS fails, the reply is being copied
// or is in, and the caller takes it. So a reply is never copied into a
// buffer whose caller has returned, and never delivered to another call.
const (
	phaseFree = iota
	phaseWaiting
	phaseDetached
	phaseFilling
	phaseDone

	phaseMask  = 1<<3 - 1
	claimedBit = 1 << 3
	genShift   = 4
	slotBits   = 16 // the index of a call's slot in the low bits of its id
	genMask    = 1<<(64-slotBits) - 1
)

type callSlot struct {
	state atomic.Uint64
	wake  chan struct{} // a token once another goroutine routed the reply (room for one)
	// woken says a token was sent (written by the router before the reply
	// is marked done, read by the slot's next caller): begin drains it.
	woken bool
	timer *time.Timer // the caller's deadline; made on first use

	dst   []byte // waiting: where the reply goes
	out   []byte // the reply, when it did not go to dst (inOut)
	inOut bool
	n     int    // the reply's length
	id    uint64 // the call's id (index and generation), set by begin
	// delivered: the caller's own goroutine copied the reply into dst
	// while it held the receive side, and left the state waiting; it ends
	// the call before it lets the side go (endOwn). Read and written by
	// that goroutine only.
	delivered bool
}

// stateOf is a slot's state word for generation gen, claimed, in phase.
func stateOf(gen uint64, phase uint64) uint64 { return gen<<genShift | claimedBit | phase }

type callTable struct {
	slots []callSlot
	// The free slots. Slot 0 is taken straight from its state word (a
	// CAS from free), so a goroutine calling over and over never touches
	// the channel; the channel holds the other free slots, and slot 0
	// too when a caller waits there (all slots busy: the backpressure).
	waiters atomic.Int32 // goroutines blocked on free
	free    chan uint32
}

// table returns the connection's call table, made on the first call.
func (r *recvSide) table() *callTable {
	if t := r.calls.Load(); t != nil {
		return t
	}
	return r.makeTable()
}

func (r *recvSide) makeTable() *callTable {
	r.callsMu.Lock()
	defer r.callsMu.Unlock()
	if t := r.calls.Load(); t != nil {
		return t
	}
	t := &callTable{slots: make([]callSlot, r.maxCalls), free: make(chan uint32, r.maxCalls)}
	for i := range t.slots {
		t.slots[i].wake = make(chan struct{}, 1)
		if i > 0 {
			t.free <- uint32(i)
		}
	}
	r.calls.Store(t)
	return t
}

// slotOf returns the slot and generation an id names, or nil if this end
// never issued it.
func (r *recvSide) slotOf(id uint64) (*callSlot, uint64) {
	t := r.calls.Load()
	idx := id & (1<<slotBits - 1)
	if t == nil || idx >= uint64(len(t.slots)) {
		return nil, 0
	}
	return &t.slots[idx], id >> slotBits
}

// nextGen is the generation after the one in state word st.
func nextGen(st uint64) uint64 {
	gen := (st>>genShift + 1) & genMask
	if gen == 0 {
		gen = 1 // ids are never 0
	}
	return gen
}

// begin starts a new call of generation gen in the slot, which the
// caller took (from the free list, or by claiming slot 0). release left
// out and inOut cleared, and n is written with every reply.
func (s *callSlot) begin(idx uint32, gen uint64, dst []byte, attach bool) {
	if s.woken {
		s.woken = false
		select {
		case <-s.wake: // a token of the slot's previous call that nobody took
		default:
		}
	}
	s.dst, s.delivered, s.id = dst, false, gen<<slotBits|uint64(idx)
	phase := uint64(phaseDetached)
	if attach {
		phase = phaseWaiting
	}
	s.state.Store(stateOf(gen, phase))
}

// fill delivers a reply to the slot's call of generation gen, if it is
// still waiting for it, and wakes its caller unless the caller is the one
// routing it (own: it holds the claim, so nobody else changes the state).
// Run by the receiver that routes the reply.
func (s *callSlot) fill(gen uint64, reply []byte, own bool) bool {
	st := s.state.Load()
	for {
		phase := st & phaseMask
		if st>>genShift != gen || phase != phaseWaiting && phase != phaseDetached {
			return false // its caller gave up, or the id is not ours
		}
		if own || s.state.CompareAndSwap(st, st&^phaseMask|phaseFilling) {
			break
		}
		st = s.state.Load() // the claim changed hands: look again
	}
	if st&phaseMask == phaseWaiting && len(reply) <= len(s.dst) {
		s.n = copy(s.dst, reply)
		if own {
			// No store: the caller ends the call before it lets the
			// receive side go (endOwn), and until then no other goroutine
			// acts on the slot (it holds the claim, and routers need the
			// side). That saves a sequentially consistent store per call.
			s.delivered = true
			return true
		}
	} else {
		// No buffer, or one too small: keep a copy, the caller decides
		// (ErrBufferTooSmall).
		s.out = append(make([]byte, 0, len(reply)), reply...)
		s.inOut, s.n = true, len(reply)
	}
	if own {
		s.state.Store(st&^phaseMask | phaseDone)
		return true
	}
	// An Add moves the phase on without disturbing the claim bit, which
	// a PendingCall may take or drop meanwhile.
	s.woken = true
	s.state.Add(phaseDone - phaseFilling)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

// isDone reports whether the call gen's reply is in.
func (s *callSlot) isDone(gen uint64) bool {
	st := s.state.Load()
	return st>>genShift == gen && st&phaseMask == phaseDone
}

// untilDone waits out a receiver that is copying the reply in.
func (s *callSlot) untilDone(gen uint64) {
	for st := s.state.Load(); st>>genShift == gen && st&phaseMask == phaseFilling; st = s.state.Load() {
		runtime.Gosched() // a copy of at most the maximum message size
	}
}

// detach keeps a waiting call pending without its buffer, so that the
// caller may return. It reports false when the reply came in meanwhile.
func (s *callSlot) detach(gen uint64) bool {
	if s.state.CompareAndSwap(stateOf(gen, phaseWaiting), stateOf(gen, phaseDetached)) ||
		s.state.Load() == stateOf(gen, phaseDetached) {
		return true
	}
	s.untilDone(gen)
	return false
}

// attach gives a detached call a buffer for its reply.
func (s *callSlot) attach(gen uint64, buf []byte) {
	if s.state.Load() != stateOf(gen, phaseDetached) {
		return
	}
	s.dst = buf // a detached slot's dst is read by nobody
	s.state.CompareAndSwap(stateOf(gen, phaseDetached), stateOf(gen, phaseWaiting))
}

// unclaim lets other goroutines act on the pending call.
func (s *callSlot) unclaim() { s.state.Add(^uint64(claimedBit - 1)) }

// abandon ends the call idx/gen if its reply has not come in, and
// reports whether it did; if the reply is in (or being copied in), it
// leaves the call alone, done, and reports false.
func (t *callTable) abandon(idx uint32, gen uint64) bool {
	s := &t.slots[idx]
	for _, phase := range [...]uint64{phaseWaiting, phaseDetached} {
		if s.state.CompareAndSwap(stateOf(gen, phase), stateOf(gen, phaseFree)) {
			t.release(idx, gen)
			return true
		}
	}
	s.untilDone(gen)
	return false
}

// end frees the slot of the call idx/gen, claimed by the caller: a reply
// that comes later is dropped.
func (t *callTable) end(idx uint32, gen uint64) {
	s := &t.slots[idx]
	if idx == 0 && s.state.Load() == stateOf(gen, phaseDone) {
		// The common end of a call in slot 0: nobody else changes a done
		// slot we hold, so one store frees it (release, without a CAS).
		t.release(0, gen)
		return
	}
	for {
		switch st := s.state.Load(); st {
		case stateOf(gen, phaseWaiting), stateOf(gen, phaseDetached), stateOf(gen, phaseDone):
			if s.state.CompareAndSwap(st, stateOf(gen, phaseFree)) {
				t.release(idx, gen)
				return
			}
		case stateOf(gen, phaseFilling):
			s.untilDone(gen)
		default:
			return
		}
	}
}

// release returns a slot whose call ended (its state free, still
// claimed: nobody takes it before its fields are cleared) to the channel,
// or, for slot 0, to its state word, unclaimed, unless a caller waits on
// the channel: then slot 0 goes there, claimed for it.
func (t *callTable) release(idx uint32, gen uint64) {
	s := &t.slots[idx]
	s.dst, s.out, s.inOut = nil, nil, false
	if idx != 0 {
		t.free <- idx
		return
	}
	s.state.Store(gen<<genShift | phaseFree)
	// SYNC POINT: this load comes after the store that freed slot 0; a
	// waiter adds itself to waiters before it tries to claim slot 0
	// (takeFree): either it claims the slot, or we see it and hand the
	// slot over.
	if t.waiters.Load() != 0 {
		if _, ok := t.claimFast(); ok {
			t.free <- 0
		}
	}
}

// claimFast takes slot 0 if it is free, returning its next generation.
func (t *callTable) claimFast() (uint64, bool) {
	s := &t.slots[0]
	st := s.state.Load()
	if st&(claimedBit|phaseMask) != phaseFree || !s.state.CompareAndSwap(st, st|claimedBit) {
		return 0, false
	}
	return nextGen(st), true
}

// arm starts the slot's timer for deadline.
func (s *callSlot) arm(deadline time.Time) <-chan time.Time {
	d := time.Until(deadline)
	if s.timer == nil {
		s.timer = time.NewTimer(d)
	} else {
		s.timer.Reset(d)
	}
	return s.timer.C
}

// acquireSlot takes a free slot and starts a call in it (begin), waiting
// within w while all slots are in use (backpressure).
// (startCall claims slot 0 itself when it is free.)
func (c *Conn) acquireSlot(t *callTable, w *waitFor, dst []byte, attach bool) (uint32, uint64, error) {
	if gen, ok := t.claimFast(); ok {
		t.slots[0].begin(0, gen, dst, attach)
		return 0, gen, nil
	}
	idx, err := c.takeFree(t, w)
	if err != nil {
		return 0, 0, err
	}
	s := &t.slots[idx]
	gen := nextGen(s.state.Load())
	s.begin(idx, gen, dst, attach)
	return idx, gen, nil
}

// takeFree takes a slot from the free channel, or slot 0 if it frees
// first, waiting within w.
func (c *Conn) takeFree(t *callTable, w *waitFor) (uint32, error) {
	select {
	case i := <-t.free:
		return i, nil
	default:
	}
	if w.try {
		return 0, fmt.Errorf("%w: all %d call slots are in use", ErrTimeout, len(t.slots))
	}
	t.waiters.Add(1)
	defer t.waiters.Add(-1)
	if _, ok := t.claimFast(); ok { // pairs with release's load of waiters
		return 0, nil
	}
	timer, timeout, cancelled := w.sleepChans()
	if timer != nil {
		defer timer.Stop()
	}
	select {
	case i := <-t.free:
		return i, nil
	case <-c.ended:
	case <-timeout:
	case <-cancelled:
	}
	if err := c.state(w); err != nil {
		return 0, err
	}
	return 0, ErrTimeout
}

// maxCallPayload is the largest request or reply payload: the frame holds
// the 8-byte id too.
func (c *Conn) maxCallPayload() int {
	return int(c.prod.r.maxMsg) - callIDSize
}

// MaxCallSize is the largest request or reply payload of a call on this
// connection: MaxMessageSize less the 8-byte call id.
func (c *Conn) MaxCallSize() int { return max(c.maxCallPayload(), 0) }

// checkCallSize fails for a payload size a call frame cannot carry. The
// check is inlined; the error is built out of line.
func (c *Conn) checkCallSize(n int, what string) error {
	if uint(n) <= uint(c.maxCallPayload()) {
		return nil
	}
	return c.callSizeError(n, what)
}

func (c *Conn) callSizeError(n int, what string) error {
	if n < 0 {
		return fmt.Errorf("%w: negative %s size %d", ErrInvalidArgument, what, n)
	}
	if n > c.maxCallPayload() {
		return fmt.Errorf("%w: %s of %d bytes, maximum is %d (the maximum message size less the 8-byte call id)",
			ErrMessageTooLarge, what, n, c.MaxCallSize())
	}
	return nil
}

// sendCall writes a call frame: size bytes from req or written in place
// by fill, then the id before them, and the kind.
// The size was checked (checkCallSize): the frame is committed without
// Commit's checks.
func (c *Conn) sendCall(kind uint32, id uint64, req []byte, size int, fill func([]byte) error, w *waitFor) error {
	buf, err := c.reserve(size+callIDSize, *w)
	if err != nil {
		return err
	}
	dst := buf[callIDSize:]
	if fill == nil {
		copy(dst, req)
	} else if err := fill(dst); err != nil {
		c.AbortReserve()
		return err
	}
	// The id after the payload, not before it: an 8-byte store to the
	// frame's first line ahead of the payload's copy made every call
	// round trip 55-60 ns slower between two cores (docs/PERFORMANCE.md
	// section 14).
	c.prod.markCall(kind, id)
	return c.commit(uint64(size))
}

// startCall takes a slot and sends the request. With attach, the reply
// goes straight into dst; else it is copied into a new slice. The slot is
// returned in use (inUse): the caller goes on with it.
func (c *Conn) startCall(w *waitFor, req []byte, size int, fill func([]byte) error, dst []byte, attach bool) (idx uint32, gen uint64, err error) {
	if err := c.checkCallSize(size, "call request"); err != nil {
		return 0, 0, err
	}
	t := c.rx.table()
	if g, ok := t.claimFast(); ok { // the common case, without a call
		idx, gen = 0, g
		t.slots[0].begin(0, gen, dst, attach)
	} else if idx, gen, err = c.acquireSlot(t, w, dst, attach); err != nil {
		return 0, 0, err
	}
	if err := c.sendCall(frameKindRequest, gen<<slotBits|uint64(idx), req, size, fill, w); err != nil {
		t.end(idx, gen)
		return 0, 0, err
	}
	return idx, gen, nil
}

// awaitReply waits until the call's reply is in (nil) or fails; the call
// is then still in flight and the caller decides what becomes of it
// (conclude). Whoever holds the receive side reads the ring for everyone:
// this caller takes it when it is free (and reads until its own reply is
// in), else sleeps until its reply is routed to it or the side is free.
// When this caller routes its own reply into its buffer, it also ends
// the call (endOwn) and reports ended with the reply's length.
func (c *Conn) awaitReply(s *callSlot, idx uint32, gen uint64, w *waitFor) (n int, ended bool, err error) {
	done := stateOf(gen, phaseDone) // the caller holds the claim
	if s.state.Load() == done {
		return 0, false, nil
	}
	if err := c.enter(dirRecv); err != nil {
		return 0, false, err
	}
	// The common case, without defers: the receive side is free, and the
	// reply is the next frame or comes after replies to route.
	if c.rx.tryLock() {
		stalled, err := c.readReplies(s, done, w)
		if s.delivered {
			n = c.endOwn(s, idx, gen)
			c.unlockRecv()
			c.leave(dirRecv)
			return n, true, nil
		}
		if err != nil || !stalled {
			c.unlockRecv()
			c.leave(dirRecv)
			return 0, false, err
		}
		c.unlockRecv() // the slow path looks at the stall again
	}
	n, ended, err = c.awaitReplySlow(s, idx, gen, done, w)
	c.leave(dirRecv)
	return n, ended, err
}

// endOwn ends the call idx/gen whose reply this goroutine has just copied
// into its buffer (delivered), while it still holds the receive side: a
// duplicate of the reply, routed later, finds the slot free or reused
// under another generation, and is dropped. It returns the reply's
// length.
func (c *Conn) endOwn(s *callSlot, idx uint32, gen uint64) int {
	n := s.n
	s.delivered = false
	if idx != 0 {
		// As end leaves a slot for release; for slot 0, release's store
		// frees it.
		s.state.Store(stateOf(gen, phaseFree))
	}
	c.rx.calls.Load().release(idx, gen)
	return n
}

// finishCall waits for the reply of the call idx/gen and concludes it
// (see conclude for buf, into and keep).
func (c *Conn) finishCall(idx uint32, gen uint64, w *waitFor, buf []byte, into, keep bool) (n int, out []byte, pending bool, err error) {
	n, ended, err := c.awaitReply(&c.rx.calls.Load().slots[idx], idx, gen, w)
	if ended {
		return n, nil, false, nil
	}
	return c.conclude(idx, gen, err, buf, into, keep)
}

// readReplies reads the ring, the receive side held, until s's reply is
// in (done) or the head holds a frame callers do not take (stalled).
func (c *Conn) readReplies(s *callSlot, done uint64, w *waitFor) (stalled bool, err error) {
	err = c.await(dirRecv, c.cons.r.dataEC, func() (bool, error) {
		return c.pump(0, s, done, nil, nil, &stalled)
	}, w, true)
	if err != nil && isProtocol(err) {
		c.fail(err)
	}
	return stalled, err
}

// awaitReplySlow is awaitReply when the receive side is busy or the head
// is stalled: sleep until the reply is routed to us or the side is free.
func (c *Conn) awaitReplySlow(s *callSlot, idx uint32, gen, done uint64, w *waitFor) (int, bool, error) {
	r := &c.rx
	var timeout <-chan time.Time
	w.fixDeadline()
	if !w.deadline.IsZero() && !w.try {
		timeout = s.arm(w.deadline)
		defer s.timer.Stop()
	}
	var cancelled <-chan struct{}
	if w.ctx != nil {
		cancelled = w.ctx.Done()
	}
	ended := c.ended
	waiting, took := false, false // counted among the side's waiters; holding a baton
	defer func() {
		if waiting {
			r.leaveWaiters(took)
		}
	}()
	for {
		if s.state.Load() == done {
			return 0, false, nil
		}
		locked := false
		if waiting {
			locked = r.tryLockAsWaiter()
			waiting = !locked
		} else {
			locked = r.tryLock()
		}
		took = false
		if locked {
			stalled, err := c.readReplies(s, done, w)
			if s.delivered {
				n := c.endOwn(s, idx, gen)
				c.unlockRecv()
				return n, true, nil
			}
			if err != nil || !stalled {
				c.unlockRecv()
				return 0, false, err
			}
			// A message or a request is at the head: wait for its
			// receiver to take it.
			moved, err := c.stallUnlock(w)
			if err != nil {
				return 0, false, err
			}
			select {
			case <-s.wake: // another receiver routed our reply
			case <-moved:
			case <-c.ended:
			case <-timeout:
			case <-cancelled:
			}
			r.unstall()
			if s.state.Load() == done {
				return 0, false, nil
			}
			select {
			case <-moved:
				continue
			default:
			}
			if err := c.state(w); err != nil {
				return 0, false, err
			}
			continue
		}
		if w.try {
			// The holder routes our reply, and makes NotifyFD readable
			// when it does: reset the descriptor first, then look again.
			if c.notify.open() {
				c.resetNotify(dirRecv)
				if s.state.Load() == done {
					return 0, false, nil
				}
			}
			return 0, false, ErrTimeout
		}
		if !waiting {
			r.word.Add(rxWaiter)
			waiting = true
			continue // look again now that a release will see us
		}
		select {
		case <-s.wake:
		case <-r.baton:
			took = true
		case <-ended:
			if c.closed.Load() {
				return 0, false, ErrClosed
			}
			// The peer is gone: take the side in turn, to read what it
			// sent before it went.
			ended = nil
		case <-timeout:
			return 0, false, ErrTimeout
		case <-cancelled:
			return 0, false, w.ctx.Err()
		}
	}
}

// conclude ends a wait for the call idx/gen that returned waitErr. With
// keep, a timeout (or a context error, or a reply larger than buf) leaves
// the call pending, detached from buf; otherwise the call ends, and a
// reply that comes later is dropped. The reply goes to buf (into mode,
// ErrBufferTooSmall if it does not fit) or is returned (out).
func (c *Conn) conclude(idx uint32, gen uint64, waitErr error, buf []byte, into, keep bool) (n int, out []byte, pending bool, err error) {
	t := c.rx.calls.Load()
	s := &t.slots[idx]
	if waitErr != nil {
		if keep && (errors.Is(waitErr, ErrTimeout) || isContextErr(waitErr)) {
			if s.detach(gen) {
				s.unclaim()
				return 0, nil, true, waitErr
			}
		} else if t.abandon(idx, gen) {
			return 0, nil, false, waitErr
		}
		// The reply came in as we gave up: deliver it.
	}
	n = s.n
	if s.inOut {
		if !into {
			out = s.out
		} else if n > len(buf) {
			err = fmt.Errorf("%w: the reply is %d bytes, buffer %d", ErrBufferTooSmall, n, len(buf))
			if keep {
				s.unclaim()
				return n, nil, true, err
			}
		} else {
			copy(buf, s.out)
		}
	}
	t.end(idx, gen)
	return n, out, false, err
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Call sends req as a call request and returns its reply. It is safe from
// many goroutines at once on one connection: each reply reaches its own
// caller. At most Options.MaxInflightCalls calls are in flight at once;
// more wait for a slot. When ctx is done first, Call returns ctx.Err()
// and the reply, if it comes later, is dropped (DroppedReplies).
//
// req may be up to MaxCallSize bytes. The peer answers with RecvRequest
// and Reply (or Serve). A call waits behind a plain message or a request
// at the head of the receive ring until someone receives it (see
// docs/PROTOCOL.md, "Calls": the head-of-line rule).
func (c *Conn) Call(ctx context.Context, req []byte) ([]byte, error) {
	w := waitFor{ctx: ctx}
	idx, gen, err := c.startCall(&w, req, len(req), nil, nil, false)
	if err != nil {
		return nil, err
	}
	_, out, _, err := c.finishCall(idx, gen, &w, nil, false, false)
	return out, err
}

// CallInto is Call with the reply read straight into buf, without an
// allocation: it returns the reply's length. A reply larger than buf
// gives its length and an error wrapping ErrBufferTooSmall; the call is
// over then and the reply dropped (use a buffer of MaxCallSize bytes to
// never see this).
func (c *Conn) CallInto(ctx context.Context, req, buf []byte) (int, error) {
	w := waitFor{ctx: ctx}
	return c.callInto(&w, req, buf)
}

// CallTimeout is CallInto with a timeout instead of a context: < 0 waits
// as long as it takes; 0 fails with ErrTimeout unless the reply comes
// without waiting (which it practically never does).
func (c *Conn) CallTimeout(req, buf []byte, timeout time.Duration) (int, error) {
	w := timeoutWait(timeout)
	return c.callInto(&w, req, buf)
}

func (c *Conn) callInto(w *waitFor, req, buf []byte) (int, error) {
	idx, gen, err := c.startCall(w, req, len(req), nil, buf, true)
	if err != nil {
		return 0, err
	}
	n, _, _, err := c.finishCall(idx, gen, w, buf, true, false)
	return n, err
}

// CallIntoPending is CallTimeout for callers that wait in slices: when
// the timeout expires after the request was sent, or the reply is larger
// than buf, the call stays in flight and is returned (pending, with
// ErrTimeout or ErrBufferTooSmall and the reply's length) for WaitInto or
// Cancel. Otherwise the call is over and the PendingCall is zero.
func (c *Conn) CallIntoPending(req, buf []byte, timeout time.Duration) (int, PendingCall, error) {
	w := timeoutWait(timeout)
	idx, gen, err := c.startCall(&w, req, len(req), nil, buf, true)
	if err != nil {
		return 0, PendingCall{}, err
	}
	n, _, pending, err := c.finishCall(idx, gen, &w, buf, true, true)
	if pending {
		return n, PendingCall{c: c, id: gen<<slotBits | uint64(idx)}, err
	}
	return n, PendingCall{}, err
}

// PendingCall is a call whose request is sent and whose reply has not
// been taken yet: from StartCall, for callers that do something else
// while the call is in flight, or wait in slices. Wait for its reply
// with Wait or WaitInto, or end it with Cancel. One goroutine at a time
// may act on a PendingCall (a second one gets ErrInvalidArgument).
type PendingCall struct {
	c  *Conn
	id uint64
}

// ID is the call's id, as the peer's RecvRequest sees it.
func (p PendingCall) ID() uint64 { return p.id }

// PendingCallOf returns the PendingCall with the given id (from ID), for
// callers that keep ids rather than values (the C API). An id that does
// not name a call in flight makes its methods fail with
// ErrInvalidArgument.
func (c *Conn) PendingCallOf(id uint64) PendingCall { return PendingCall{c: c, id: id} }

// StartCall sends req as a call request and returns at once, without
// waiting for the reply. timeout bounds the wait for a call slot and for
// ring space (as SendTimeout's).
func (c *Conn) StartCall(req []byte, timeout time.Duration) (PendingCall, error) {
	return c.startPending(req, len(req), nil, timeout)
}

// StartCallFunc is StartCall with the request written in place: fill
// gets the size bytes of the request in the ring and writes them all
// (message.WritePing, for instance). If fill fails, nothing is sent and
// its error is returned.
func (c *Conn) StartCallFunc(size int, fill func(req []byte) error, timeout time.Duration) (PendingCall, error) {
	if fill == nil {
		return PendingCall{}, fmt.Errorf("%w: StartCallFunc needs a fill function", ErrInvalidArgument)
	}
	return c.startPending(nil, size, fill, timeout)
}

func (c *Conn) startPending(req []byte, size int, fill func([]byte) error, timeout time.Duration) (PendingCall, error) {
	w := timeoutWait(timeout)
	idx, gen, err := c.startCall(&w, req, size, fill, nil, false)
	if err != nil {
		return PendingCall{}, err
	}
	c.rx.calls.Load().slots[idx].unclaim()
	return PendingCall{c: c, id: gen<<slotBits | uint64(idx)}, nil
}

// claim checks that p is still in flight and makes the calling goroutine
// the one acting on it.
func (p PendingCall) claim() (uint32, uint64, error) {
	if p.c == nil {
		return 0, 0, fmt.Errorf("%w: zero PendingCall", ErrInvalidArgument)
	}
	s, gen := p.c.rx.slotOf(p.id)
	for s != nil {
		st := s.state.Load()
		switch {
		case st>>genShift != gen || st&phaseMask == phaseFree:
			s = nil
		case st&claimedBit != 0:
			return 0, 0, fmt.Errorf("%w: call %#x is in use by another goroutine", ErrInvalidArgument, p.id)
		case s.state.CompareAndSwap(st, st|claimedBit):
			return uint32(p.id & (1<<slotBits - 1)), gen, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: call %#x has ended (its reply was taken, or it was cancelled)", ErrInvalidArgument, p.id)
}

// Wait waits for the reply and returns it. If ctx is done first, it
// returns ctx.Err() and the call stays pending (Wait again, or Cancel).
// Any other error ends the call.
func (p PendingCall) Wait(ctx context.Context) ([]byte, error) {
	idx, gen, err := p.claim()
	if err != nil {
		return nil, err
	}
	w := waitFor{ctx: ctx}
	_, out, _, err := p.c.finishCall(idx, gen, &w, nil, false, true)
	return out, err
}

// WaitInto waits up to timeout for the reply and copies it into buf,
// returning its length (timeout as for RecvTimeout). ErrTimeout leaves
// the call pending; so does a reply larger than buf (ErrBufferTooSmall,
// with its length: call again with a larger buffer). Any other result
// ends the call.
func (p PendingCall) WaitInto(buf []byte, timeout time.Duration) (int, error) {
	idx, gen, err := p.claim()
	if err != nil {
		return 0, err
	}
	w := timeoutWait(timeout)
	p.c.rx.calls.Load().slots[idx].attach(gen, buf)
	n, _, _, err := p.c.finishCall(idx, gen, &w, buf, true, true)
	return n, err
}

// Cancel ends the call: its reply, if it comes, is dropped.
func (p PendingCall) Cancel() error {
	idx, gen, err := p.claim()
	if err != nil {
		return err
	}
	p.c.rx.calls.Load().end(idx, gen)
	return nil
}
