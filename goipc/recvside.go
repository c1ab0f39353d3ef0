package goipc

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// The receive side of a connection is shared by three kinds of receivers:
// plain receivers (Recv, RecvView, RecvInto) take messages, request
// receivers (RecvRequest, RecvNext, Serve) take call requests, and callers
// (Call, CallInto, PendingCall.Wait) wait for the reply to their own call.
// They all read the one ring, in order, under one lock:
//
//   - Whoever holds the lock reads the frames at the head of the ring. A
//     reply is routed at once, by its id, to the call waiting for it (its
//     bytes copied into that call's buffer, which wakes it) and consumed;
//     a reply that no call waits for (its caller gave up, or the id was
//     never issued) is dropped and counted (DroppedReplies).
//   - A frame of the holder's own kind ends its wait; a caller's wait also
//     ends when its reply has been routed.
//   - A frame of another kind at the head (a message, or a request, that
//     this holder does not take) stays there: the holder "stalls". It lets
//     the lock go and sleeps until the tail moves, that is until a
//     receiver of that kind has taken the frame. This is the head-of-line
//     rule: on a connection whose peer sends both plain messages and
//     requests (or calls), someone must be receiving each kind, or the
//     frames behind an unread one wait (until their callers' deadlines).
//
// So a caller that holds the lock spins and parks on the ring exactly as
// a receiver does (the wakeup protocol of docs/PROTOCOL.md is unchanged:
// this is all in-process), while the other callers sleep on their own
// channel until their reply is routed to them or the lock is free.
//
// The lock is one word, so that a waiter's registration and a release
// are ordered on a single memory location (no Dekker pair needed):
//
//	bit 0       held
//	bit 1       a zero-timeout receive found it held: signal NotifyFD on release
//	bit 2       a zero-timeout receive stalled: signal NotifyFD once the tail moves
//	bits 3-31   waiters: goroutines that want the lock and sleep on the baton
//	bits 32-63  stalled receivers, sleeping until the tail moves
//
// A release that sees waiters posts the baton (a channel with room for
// one token); whoever takes it tries the lock and, if it lost the race to
// another goroutine, waits again: that goroutine's release posts it again.
const (
	rxHeld        = 1
	rxNotify      = 1 << 1
	rxNotifyStall = 1 << 2
	rxWaiter      = 1 << 3
	rxWaiterMask  = (1<<29 - 1) << 3
	rxStalled     = 1 << 32
	rxStalledMask = ^uint64(1<<32 - 1)
)

// Frame kinds a receiver takes (bit 1<<kind).
const (
	takeMessage = 1 << frameKindMessage
	takeRequest = 1 << frameKindRequest
	// takeReply takes replies as frames instead of routing them to this
	// end's calls: only a transport's raw receive (RecvFrameView) does.
	takeReply = 1 << frameKindReply
)

type recvSide struct {
	word  atomic.Uint64
	baton chan struct{} // a token: the lock was released while goroutines waited

	// stallTail is where the ring's tail was when the last receiver
	// stalled; guarded by the lock. A release with stalled receivers and
	// another tail wakes them (closes moved), and signals NotifyFD for a
	// zero-timeout receiver that stalled (rxNotifyStall).
	stallTail uint64
	// signalled says this holder of the lock routed a reply to a call
	// that may wait on NotifyFD, and signalled it; guarded by the lock,
	// cleared on release. A zero-timeout wait of the holder that then
	// fails signals again after it resets the descriptor, or its reset
	// would read that call's wakeup away (tryFailed).
	signalled bool
	movedMu   sync.Mutex
	moved     chan struct{} // nil until a receiver stalls; guarded by movedMu

	maxCalls int
	callsMu  sync.Mutex // serialises the creation of calls
	calls    atomic.Pointer[callTable]
	dropped  atomic.Uint64 // replies that no call was waiting for
}

func (r *recvSide) init(maxCalls int) {
	r.baton = make(chan struct{}, 1)
	r.maxCalls = maxCalls
}

// tryLock takes the receive side if it is free.
func (r *recvSide) tryLock() bool {
	for {
		w := r.word.Load()
		if w&rxHeld != 0 {
			return false
		}
		if r.word.CompareAndSwap(w, w|rxHeld) {
			return true
		}
	}
}

// tryLockAsWaiter takes the receive side for a goroutine counted among
// the waiters, removing it from them in the same step.
func (r *recvSide) tryLockAsWaiter() bool {
	for {
		w := r.word.Load()
		if w&rxHeld != 0 {
			return false
		}
		if r.word.CompareAndSwap(w, (w-rxWaiter)|rxHeld) {
			return true
		}
	}
}

// leaveWaiters removes a waiter that gives up. If it had taken the baton
// (took), it passes the baton on to the others.
func (r *recvSide) leaveWaiters(took bool) {
	w := r.word.Add(^uint64(rxWaiter - 1))
	if took && w&rxWaiterMask != 0 {
		r.postBaton()
	}
}

func (r *recvSide) postBaton() {
	select {
	case r.baton <- struct{}{}:
	default: // a token is already there: it wakes a waiter just as well
	}
}

// lockRecv takes the receive side, waiting while another receiver holds
// it, within w's deadline or context. A zero-timeout wait that finds it
// held fails at once (ErrTimeout), and asks the holder's release to make
// NotifyFD readable.
func (c *Conn) lockRecv(w *waitFor) error {
	r := &c.rx
	if r.tryLock() {
		return nil
	}
	if w.try {
		if c.notify.open() {
			// The caller is about to wait on NotifyFD: reset it, then ask
			// the holder's release to make it readable, then look again
			// (the holder may have let go before it saw the request).
			c.resetNotify(dirRecv)
			r.word.Or(rxNotify)
			if r.tryLock() {
				return nil
			}
		}
		return ErrTimeout
	}
	r.word.Add(rxWaiter)
	// Only a receive that finds the receive side busy gets here: the
	// timer is no cost of the fast path.
	timer, timeout, cancelled := w.sleepChans()
	ended := c.ended
	for {
		if r.tryLockAsWaiter() {
			if timer != nil {
				timer.Stop()
			}
			return nil
		}
		// A baton taken and then lost to another goroutine (it took the
		// side first) is not passed on: that goroutine's release posts
		// one, since we are still counted.
		select {
		case <-r.baton:
			continue
		case <-ended:
			// A dead peer's messages are still delivered: keep waiting
			// for the holder, whose wait ends now, to let go.
			ended = nil
			if !c.closed.Load() {
				continue
			}
		case <-timeout:
		case <-cancelled:
		}
		if timer != nil {
			timer.Stop()
		}
		r.leaveWaiters(false)
		if err := c.state(w); err != nil {
			return err
		}
		return ErrTimeout
	}
}

// sleepChans are what a wait off the ring (for the receive side, a call
// slot, a stalled head) selects on for w's deadline and context: a new
// timer (stop it when done) and its channel, nil without a deadline, and
// the context's Done channel.
func (w *waitFor) sleepChans() (*time.Timer, <-chan time.Time, <-chan struct{}) {
	w.fixDeadline()
	var cancelled <-chan struct{}
	if w.ctx != nil {
		cancelled = w.ctx.Done()
	}
	if w.deadline.IsZero() {
		return nil, nil, cancelled
	}
	timer := time.NewTimer(time.Until(w.deadline))
	return timer, timer.C, cancelled
}

// unlockRecv releases the receive side: it wakes stalled receivers if the
// tail moved, a waiter if there is one, and NotifyFD if a zero-timeout
// receive found the side held.
func (c *Conn) unlockRecv() {
	r := &c.rx
	// Guarded by the lock: read them before letting it go.
	tail, stallTail := c.cons.tail, r.stallTail
	r.signalled = false
	w := r.word.Add(^uint64(0)) // clears rxHeld
	if w == 0 {
		return
	}
	if w&rxStalledMask != 0 && tail != stallTail {
		r.wakeStalled()
	}
	if w&rxNotifyStall != 0 && tail != stallTail && r.word.And(^uint64(rxNotifyStall))&rxNotifyStall != 0 {
		c.notify.signal(dirRecv)
	}
	if w&rxWaiterMask != 0 {
		r.postBaton()
	}
	if w&rxNotify != 0 && r.word.And(^uint64(rxNotify))&rxNotify != 0 {
		c.notify.signal(dirRecv)
	}
}

// stallUnlock registers the holder as stalled behind the frame at the
// head, releases the receive side, and returns the channel that is closed
// when the tail moves (then unstall). If the wait is over already (w may
// not wait, or has expired; the connection ended), it releases the side
// and returns why instead.
func (c *Conn) stallUnlock(w *waitFor) (<-chan struct{}, error) {
	if err := c.state(w); err != nil || w.try {
		if err == nil && c.notify.open() {
			// The caller waits on NotifyFD: quiet it now, and have the
			// release that follows the frame's taking signal it (the
			// tail then differs from stallTail). Both under the lock, so
			// that release cannot come between them.
			r := &c.rx
			r.stallTail = c.cons.tail
			c.resetNotify(dirRecv)
			r.word.Or(rxNotifyStall)
		}
		c.unlockRecv()
		if err == nil {
			err = ErrTimeout
		}
		return nil, err
	}
	r := &c.rx
	r.stallTail = c.cons.tail
	r.word.Add(rxStalled)
	r.movedMu.Lock()
	if r.moved == nil {
		r.moved = make(chan struct{})
	}
	moved := r.moved
	r.movedMu.Unlock()
	c.unlockRecv()
	return moved, nil
}

func (r *recvSide) unstall() { r.word.Add(^uint64(rxStalled - 1)) }

func (r *recvSide) wakeStalled() {
	r.movedMu.Lock()
	if r.moved != nil {
		close(r.moved)
		r.moved = nil
	}
	r.movedMu.Unlock()
}

// frameView is a frame taken by a receiver, in place in the ring.
type frameView struct {
	payload []byte // after the id for a call frame
	kind    uint32
	id      uint64
}

// pump reads the frames at the head of the ring; the caller holds the
// receive side. It routes replies (consuming them; unless take has
// takeReply: then they are taken like the other kinds) and stops, reporting
// true, at the first frame whose kind is in take (in *f, left in the
// ring), at a frame of another kind (*stalled), or once own's reply is in
// (own's state is ownDone, or own.delivered: it routed the reply into
// own's buffer itself). It reports false when the ring is empty.
func (c *Conn) pump(take uint32, own *callSlot, ownDone uint64, f *frameView, frame *uint64, stalled *bool) (bool, error) {
	for {
		if own != nil && (own.delivered || own.state.Load() == ownDone) {
			return true, nil
		}
		payload, kind, fs, ok, err := c.cons.peek()
		if !ok || err != nil {
			return false, err
		}
		if kind == frameKindReply && take&takeReply == 0 {
			c.route(payload, own)
			c.cons.consume(fs, uint64(len(payload)))
			continue
		}
		if take&(1<<kind) == 0 {
			*stalled = true
			return true, nil
		}
		f.kind = kind
		f.payload = payload
		if kind != frameKindMessage {
			f.id = binary.LittleEndian.Uint64(payload)
			f.payload = payload[callIDSize:]
		}
		*frame = fs
		return true, nil
	}
}

// recvFrame takes the next frame whose kind is in take, in place: the
// receive side stays held (as a view) until unview. Replies met on the
// way are routed; a frame of another kind at the head makes it wait
// until another receiver has taken that frame.
func (c *Conn) recvFrame(take uint32, w *waitFor) (frameView, error) {
	if err := c.enter(dirRecv); err != nil {
		return frameView{}, err
	}
	if err := c.lockRecv(w); err != nil {
		c.leave(dirRecv)
		return frameView{}, err
	}
	c.notify.begin(dirRecv)
	if c.fastPath(w) {
		// The frame may be there already: take it without await.
		var f frameView
		var fs uint64
		stalled := false
		if ok, err := c.pump(take, nil, 0, &f, &fs, &stalled); ok && err == nil && !stalled {
			c.cons.viewHeld, c.cons.viewFrame, c.cons.viewLen = true, fs, uint64(len(f.payload))
			if f.kind != frameKindMessage {
				c.cons.viewLen += callIDSize
			}
			return f, nil
		}
	}
	for {
		var f frameView
		var fs uint64
		stalled := false
		err := c.await(dirRecv, c.cons.r.dataEC, func() (bool, error) {
			return c.pump(take, nil, 0, &f, &fs, &stalled)
		}, w, true)
		if err == nil && !stalled {
			c.cons.viewHeld, c.cons.viewFrame, c.cons.viewLen = true, fs, uint64(len(f.payload))
			if f.kind != frameKindMessage {
				c.cons.viewLen += callIDSize
			}
			return f, nil
		}
		if err == nil {
			err = c.waitStalled(w)
			if err == nil {
				continue
			}
			c.leave(dirRecv)
			return frameView{}, err
		}
		if isProtocol(err) {
			c.fail(err)
		}
		c.unlockRecv()
		c.leave(dirRecv)
		return frameView{}, err
	}
}

// waitStalled runs when the holder met a frame it does not take at the
// head: it lets the receive side go, sleeps until that frame has been
// taken, and takes the side again (it returns holding it, or an error
// without it). A stall after the peer is gone ends the wait: nothing
// else may ever take that frame.
func (c *Conn) waitStalled(w *waitFor) error {
	moved, err := c.stallUnlock(w)
	if err != nil {
		return err
	}
	timer, timeout, cancelled := w.sleepChans()
	if timer != nil {
		defer timer.Stop()
	}
	select {
	case <-moved:
	case <-c.ended:
	case <-timeout:
	case <-cancelled:
	}
	c.rx.unstall()
	select {
	case <-moved: // the frame was taken: look at the next one, even after the peer's death
		return c.lockRecv(w)
	default:
	}
	if err := c.state(w); err != nil {
		return err
	}
	return c.lockRecv(w)
}

// route delivers a reply (its frame's payload: the id, then the reply) to
// the call waiting for it, or drops it. own is the call of the goroutine
// that reads (nil for another receiver): its own reply needs no wakeup.
func (c *Conn) route(frame []byte, own *callSlot) {
	id := binary.LittleEndian.Uint64(frame)
	reply := frame[callIDSize:]
	if own != nil && id == own.id {
		// The reader's own reply, the common case of a lone caller: no
		// lookup, no wakeup.
		if !own.fill(id>>slotBits, reply, true) {
			c.rx.dropped.Add(1)
		}
		return
	}
	s, gen := c.rx.slotOf(id)
	if s == nil || !s.fill(gen, reply, s == own) {
		c.rx.dropped.Add(1)
		return
	}
	if s != own && c.notify.open() {
		// An event loop may wait on NotifyFD for this pending call.
		c.notify.signal(dirRecv)
		c.rx.signalled = true
	}
}

// DroppedReplies is the number of replies this end received that no call
// was waiting for: replies that came after their caller gave up (timeout,
// cancelled context, Cancel), and replies with ids it never issued. They
// are dropped, never delivered to another call.
func (c *Conn) DroppedReplies() uint64 { return c.rx.dropped.Load() }
