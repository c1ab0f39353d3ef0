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
// A slot's state word is generation<<3 | phase:
//
//	free      no call
//	waiting   a call whose reply goes straight into the caller's buffer (dst)
//	detached  a call with no buffer attached: the reply is copied into a new slice
//	filling   a receiver is copying the reply in
//	done      the reply is in: in dst (n bytes), or in out
//
// The receiver that routes a reply moves waiting/detached to filling with
// a CAS, copies, stores done and wakes the caller. The caller gives up
// with a CAS from waiting/detached (to free, or from waiting to detached
// to keep the call pending without its buffer); if the CAS fails, the
// reply is being copied or is in, and the caller takes it. So a reply is
// never copied into a buffer whose caller has returned, and never
// delivered to another call.
const (
	phaseFree = iota
	phaseWaiting
	phaseDetached
	phaseFilling
	phaseDone

	phaseBits = 3
	slotBits  = 16 // the index of a call's slot in the low bits of its id
	genMask   = 1<<(64-slotBits) - 1
)

type callSlot struct {
	state atomic.Uint64
	// inUse serialises the goroutines that act on the call (its caller;
	// Wait, Cancel): one at a time.
	inUse atomic.Bool
	wake  chan struct{} // a token once the reply is in (room for one)
	timer *time.Timer   // the caller's deadline; made on first use

	dst   []byte // waiting: where the reply goes
	out   []byte // the reply, when it did not go to dst (inOut)
	inOut bool
	n     int // the reply's length
}

type callTable struct {
	slots []callSlot
	free  chan uint32 // indexes of free slots: taking one is the backpressure
}

// table returns the connection's call table, made on the first call.
func (r *recvSide) table() *callTable {
	if t := r.calls.Load(); t != nil {
		return t
	}
	r.callsMu.Lock()
	defer r.callsMu.Unlock()
	if t := r.calls.Load(); t != nil {
		return t
	}
	t := &callTable{slots: make([]callSlot, r.maxCalls), free: make(chan uint32, r.maxCalls)}
	for i := range t.slots {
		t.slots[i].wake = make(chan struct{}, 1)
		t.free <- uint32(i)
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

// begin starts a new call in the slot (taken from the free list) and
// returns its generation.
func (s *callSlot) begin(dst []byte, attach bool) uint64 {
	gen := (s.state.Load()>>phaseBits + 1) & genMask
	if gen == 0 {
		gen = 1 // ids are never 0
	}
	select {
	case <-s.wake: // a token of the slot's previous call that nobody took
	default:
	}
	s.dst, s.out, s.inOut, s.n = dst, nil, false, 0
	phase := uint64(phaseDetached)
	if attach {
		phase = phaseWaiting
	}
	s.inUse.Store(true)
	s.state.Store(gen<<phaseBits | phase)
	return gen
}

// fill delivers a reply to the slot's call of generation gen, if it is
// still waiting for it, and wakes its caller unless the caller is the one
// routing it (own). Run by the receiver that routes the reply.
func (s *callSlot) fill(gen uint64, reply []byte, own bool) bool {
	base := gen << phaseBits
	switch {
	case s.state.CompareAndSwap(base|phaseWaiting, base|phaseFilling):
		if len(reply) <= len(s.dst) {
			s.n = copy(s.dst, reply)
			break
		}
		// Larger than the caller's buffer: keep a copy, the caller
		// decides (ErrBufferTooSmall).
		fallthrough
	case s.state.CompareAndSwap(base|phaseDetached, base|phaseFilling):
		s.out = append(make([]byte, 0, len(reply)), reply...)
		s.inOut, s.n = true, len(reply)
	default:
		return false // its caller gave up, or the id is not ours
	}
	s.state.Store(base | phaseDone)
	if !own {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// untilDone waits out a receiver that is copying the reply in.
func (s *callSlot) untilDone(gen uint64) {
	for s.state.Load() == gen<<phaseBits|phaseFilling {
		runtime.Gosched() // a copy of at most the maximum message size
	}
}

// detach keeps a waiting call pending without its buffer, so that the
// caller may return. It reports false when the reply came in meanwhile.
func (s *callSlot) detach(gen uint64) bool {
	base := gen << phaseBits
	if s.state.CompareAndSwap(base|phaseWaiting, base|phaseDetached) || s.state.Load() == base|phaseDetached {
		return true
	}
	s.untilDone(gen)
	return false
}

// attach gives a detached call a buffer for its reply.
func (s *callSlot) attach(gen uint64, buf []byte) {
	base := gen << phaseBits
	if s.state.Load() != base|phaseDetached {
		return
	}
	s.dst = buf // a detached slot's dst is read by nobody
	s.state.CompareAndSwap(base|phaseDetached, base|phaseWaiting)
}

// abandon ends the call idx/gen if its reply has not come in, and
// reports whether it did; if the reply is in (or being copied in), it
// leaves the call alone, done, and reports false.
func (t *callTable) abandon(idx uint32, gen uint64) bool {
	s := &t.slots[idx]
	base := gen << phaseBits
	for _, from := range [...]uint64{base | phaseWaiting, base | phaseDetached} {
		if s.state.CompareAndSwap(from, base|phaseFree) {
			t.release(idx)
			return true
		}
	}
	s.untilDone(gen)
	return false
}

func (t *callTable) release(idx uint32) {
	s := &t.slots[idx]
	s.dst, s.out, s.inOut = nil, nil, false
	s.inUse.Store(false)
	t.free <- idx
}

// end frees the slot of the call idx/gen: a reply that comes later is
// dropped. It reports whether the reply had come in.
func (t *callTable) end(idx uint32, gen uint64) bool {
	s := &t.slots[idx]
	base := gen << phaseBits
	for {
		st := s.state.Load()
		switch st {
		case base | phaseWaiting, base | phaseDetached, base | phaseDone:
			if !s.state.CompareAndSwap(st, base|phaseFree) {
				continue
			}
			t.release(idx)
			return st == base|phaseDone
		case base | phaseFilling:
			s.untilDone(gen)
		default:
			return false
		}
	}
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

// acquireSlot takes a free slot, waiting within w while all are in use
// (backpressure).
func (c *Conn) acquireSlot(t *callTable, w *waitFor) (uint32, error) {
	select {
	case i := <-t.free:
		return i, nil
	default:
	}
	if w.try {
		return 0, fmt.Errorf("%w: all %d call slots are in use", ErrTimeout, len(t.slots))
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

func (c *Conn) checkCallSize(n int, what string) error {
	if n < 0 {
		return fmt.Errorf("%w: negative %s size %d", ErrInvalidArgument, what, n)
	}
	if n > c.maxCallPayload() {
		return fmt.Errorf("%w: %s of %d bytes, maximum is %d (the maximum message size less the 8-byte call id)",
			ErrMessageTooLarge, what, n, c.MaxCallSize())
	}
	return nil
}

// sendCall writes a call frame: kind, id, then size bytes, from req or
// written in place by fill.
func (c *Conn) sendCall(kind uint32, id uint64, req []byte, size int, fill func([]byte) error, w *waitFor) error {
	if _, err := c.reserve(size+callIDSize, *w); err != nil {
		return err
	}
	c.prod.markCall(kind, id)
	dst := c.prod.reservedBytes()
	if fill == nil {
		copy(dst, req)
	} else if err := fill(dst); err != nil {
		c.AbortReserve()
		return err
	}
	return c.Commit(size)
}

// startCall takes a slot and sends the request. With attach, the reply
// goes straight into dst; else it is copied into a new slice. The slot is
// returned in use (inUse): the caller goes on with it.
func (c *Conn) startCall(w *waitFor, req []byte, size int, fill func([]byte) error, dst []byte, attach bool) (idx uint32, gen uint64, err error) {
	if err := c.checkCallSize(size, "call request"); err != nil {
		return 0, 0, err
	}
	t := c.rx.table()
	idx, err = c.acquireSlot(t, w)
	if err != nil {
		return 0, 0, err
	}
	gen = t.slots[idx].begin(dst, attach)
	if err := c.sendCall(frameKindRequest, gen<<slotBits|uint64(idx), req, size, fill, w); err != nil {
		t.end(idx, gen)
		return 0, 0, err
	}
	return idx, gen, nil
}

// awaitReply waits until the call's reply is in (nil) or fails; the call
// is then still in flight and the caller decides what becomes of it.
// Whoever holds the receive side reads the ring for everyone: this caller
// takes it when it is free (and reads until its own reply is in), else
// sleeps until its reply is routed to it or the side is free.
func (c *Conn) awaitReply(s *callSlot, gen uint64, w *waitFor) error {
	done := gen<<phaseBits | phaseDone
	if s.state.Load() == done {
		return nil
	}
	if err := c.enter(dirRecv); err != nil {
		return err
	}
	defer c.leave(dirRecv)
	r := &c.rx
	var timeout <-chan time.Time
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
			return nil
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
			stalled := false
			err := c.await(dirRecv, c.cons.r.dataEC, func() (bool, error) {
				return c.pump(0, s, done, nil, nil, &stalled)
			}, w, true)
			if err != nil || !stalled {
				if err != nil && isProtocol(err) {
					c.fail(err)
				}
				c.unlockRecv()
				return err
			}
			// A message or a request is at the head: wait for its
			// receiver to take it.
			moved, err := c.stallUnlock(w)
			if err != nil {
				return err
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
				return nil
			}
			select {
			case <-moved:
				continue
			default:
			}
			if err := c.state(w); err != nil {
				return err
			}
			continue
		}
		if w.try {
			// The holder routes our reply, and makes NotifyFD readable
			// when it does: reset the descriptor first, then look again.
			if c.notify.open() {
				c.notify.reset(dirRecv)
				if s.state.Load() == done {
					return nil
				}
			}
			return ErrTimeout
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
				return ErrClosed
			}
			// The peer is gone: take the side in turn, to read what it
			// sent before it went.
			ended = nil
		case <-timeout:
			return ErrTimeout
		case <-cancelled:
			return w.ctx.Err()
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
				s.inUse.Store(false)
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
				s.inUse.Store(false)
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
	_, out, _, err := c.conclude(idx, gen, c.awaitReply(&c.rx.calls.Load().slots[idx], gen, &w), nil, false, false)
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
	n, _, _, err := c.conclude(idx, gen, c.awaitReply(&c.rx.calls.Load().slots[idx], gen, w), buf, true, false)
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
	n, _, pending, err := c.conclude(idx, gen, c.awaitReply(&c.rx.calls.Load().slots[idx], gen, &w), buf, true, true)
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
	c.rx.calls.Load().slots[idx].inUse.Store(false)
	return PendingCall{c: c, id: gen<<slotBits | uint64(idx)}, nil
}

// claim checks that p is still in flight and makes the calling goroutine
// the one acting on it.
func (p PendingCall) claim() (uint32, uint64, error) {
	if p.c == nil {
		return 0, 0, fmt.Errorf("%w: zero PendingCall", ErrInvalidArgument)
	}
	s, gen := p.c.rx.slotOf(p.id)
	if s == nil || s.state.Load()>>phaseBits != gen || s.state.Load()&(1<<phaseBits-1) == phaseFree {
		return 0, 0, fmt.Errorf("%w: call %#x has ended (its reply was taken, or it was cancelled)", ErrInvalidArgument, p.id)
	}
	if !s.inUse.CompareAndSwap(false, true) {
		return 0, 0, fmt.Errorf("%w: call %#x is in use by another goroutine", ErrInvalidArgument, p.id)
	}
	if s.state.Load()>>phaseBits != gen { // ended before we claimed it
		s.inUse.Store(false)
		return 0, 0, fmt.Errorf("%w: call %#x has ended", ErrInvalidArgument, p.id)
	}
	return uint32(p.id & (1<<slotBits - 1)), gen, nil
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
	_, out, _, err := p.c.conclude(idx, gen, p.c.awaitReply(&p.c.rx.calls.Load().slots[idx], gen, &w), nil, false, true)
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
	s := &p.c.rx.calls.Load().slots[idx]
	s.attach(gen, buf)
	n, _, _, err := p.c.conclude(idx, gen, p.c.awaitReply(s, gen, &w), buf, true, true)
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
