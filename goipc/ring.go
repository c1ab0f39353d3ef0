package goipc

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// ringView is one ring of a mapped segment: its data area, its control
// words, and its limits, all validated when the segment was opened.
type ringView struct {
	data    []byte // len(data) == capacity
	cap     uint64
	mask    uint64
	maxMsg  uint64
	head    *uint64 // written by the producer only
	tail    *uint64 // written by the consumer only
	dataEC  eventCount
	spaceEC eventCount

	// Statistics words (docs/LAYOUT.md), each written only by its own
	// side with plain stores, from the side's private copy.
	prodMsgs, prodBytes, prodParks, prodWakes *uint64
	consMsgs, consBytes, consParks, consWakes *uint64
}

// sideCounters is one side's private, authoritative copy of its statistics
// for one ring.
type sideCounters struct {
	msgs, bytes, parks, wakes uint64
}

func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// producer is the writing end of a ring. The producer's own head is kept
// in process memory; the shared copy is only ever written, never trusted.
type producer struct {
	r        ringView
	head     uint64 // bytes published so far (authoritative)
	tailSeen uint64 // last validated tail loaded from the consumer

	// A pending reservation: the frame starts at resPos; when resPad is
	// set, a padding frame from head to the end of the ring precedes it.
	reserved bool
	resPos   uint64
	resLen   uint64
	resPad   bool
	// A call frame's reservation (markCall): its kind, and the id bytes
	// that precede the caller's payload (0 for a plain message).
	resKind uint32
	resSkip uint64

	// unpublished: a batch (Conn.SendBatch) staged frames below head that
	// the shared head does not show yet; flush publishes them at once.
	unpublished bool

	n    sideCounters
	ring func() // rings the consumer's doorbell
}

// loadTail refreshes tailSeen from shared memory and validates it.
func (p *producer) loadTail() error {
	// SYNC POINT: pairs with the consumer's StoreUint64(tail) in
	// publishTail: once we see its tail, it has finished reading the bytes
	// below it, and we may overwrite them.
	t := atomic.LoadUint64(p.r.tail)
	if t < p.tailSeen || p.head-t > p.r.cap || t%frameAlign != 0 {
		return protocolErrorf("consumer position %d invalid (producer at %d, last seen %d, capacity %d)", t, p.head, p.tailSeen, p.r.cap)
	}
	p.tailSeen = t
	return nil
}

// publish makes everything below newHead visible to the consumer and wakes
// it if it announced it was going to sleep.
func (p *producer) publish(newHead uint64) {
	p.head = newHead
	p.unpublished = false
	// SYNC POINT: pairs with the consumer's LoadUint64(head) in loadHead
	// (the frame bytes written above become visible with it), and, being
	// sequentially consistent, orders this store before notify's load of
	// the waiter count (Dekker with eventCount.prepare).
	atomic.StoreUint64(p.r.head, newHead)
	if p.r.dataEC.waiting() {
		p.wake()
	}
}

// wake wakes the consumer after publish found it announced.
func (p *producer) wake() {
	if p.r.dataEC.notify(p.ring) {
		p.n.wakes++
		*p.r.prodWakes = p.n.wakes
	}
}

// tryReserve reserves room for an n-byte message. It reports false when
// the ring is too full for now. It may publish a padding frame on its own
// when a frame cannot fit both the padding and the message at once.
func (p *producer) tryReserve(n uint64) (bool, error) {
	need := frameSize(n)
	for {
		off := p.head & p.r.mask
		pos, pad, total := p.head, uint64(0), need
		if off+need > p.r.cap {
			pad = p.r.cap - off
			pos, total = p.head+pad, pad+need
			if total > p.r.cap {
				total = pad // padding alone now, the message after it
			}
		}
		if p.r.cap-(p.head-p.tailSeen) < total {
			if err := p.loadTail(); err != nil {
				return false, err
			}
			if p.r.cap-(p.head-p.tailSeen) < total {
				return false, nil
			}
		}
		if pad != 0 {
			p.writeHeader(off, uint32(pad-frameHeaderSize), frameKindPadding)
			if total == pad {
				p.publish(p.head + pad)
				continue
			}
		}
		p.reserved, p.resPos, p.resLen, p.resPad = true, pos, n, pad != 0
		return true, nil
	}
}

// reservedBytes is the payload area of the pending reservation.
func (p *producer) reservedBytes() []byte {
	start := p.resPos&p.r.mask + frameHeaderSize + p.resSkip
	return p.r.data[start : start+p.resLen : start+p.resLen]
}

// markCall makes the pending reservation a call frame of the given kind
// (request or reply) whose payload starts with the call's id; the
// caller's part of the reservation shrinks by the id's 8 bytes.
func (p *producer) markCall(kind uint32, id uint64) {
	binary.LittleEndian.PutUint64(p.r.data[p.resPos&p.r.mask+frameHeaderSize:], id)
	p.resKind, p.resSkip, p.resLen = kind, callIDSize, p.resLen-callIDSize
}

// commit publishes the first n bytes of the pending reservation.
func (p *producer) commit(n uint64) { p.publish(p.seal(n)) }

// stage completes the pending reservation's frame (its first n bytes)
// without publishing it: the consumer learns of it with the next flush,
// or the next publish. Until then tryReserve counts it as used.
func (p *producer) stage(n uint64) {
	p.head, p.unpublished = p.seal(n), true
}

// seal writes the header of the pending reservation's frame (its first n
// bytes) and the producer's statistics, ends the reservation and returns
// the frame's end.
func (p *producer) seal(n uint64) uint64 {
	off := p.resPos & p.r.mask
	n += p.resSkip
	p.writeHeader(off, uint32(n), p.resKind)
	p.reserved, p.resKind, p.resSkip = false, frameKindMessage, 0
	p.n.msgs++
	p.n.bytes += n
	// Plain stores on the producer's own block (the line head is on):
	// statistics for readers of the segment, never read back.
	*p.r.prodMsgs, *p.r.prodBytes = p.n.msgs, p.n.bytes
	return p.resPos + frameSize(n)
}

// flush publishes the frames a batch committed without publishing.
func (p *producer) flush() {
	if p.unpublished {
		p.publish(p.head)
	}
}

func (p *producer) abort() { p.reserved, p.resKind, p.resSkip = false, frameKindMessage, 0 }

// writeHeader writes a frame header in one store.
func (p *producer) writeHeader(off uint64, length uint32, kind uint32) {
	binary.LittleEndian.PutUint64(p.r.data[off:], uint64(length)<<(8*offFrameLength)|uint64(kind)<<(8*offFrameKind))
}

// consumer is the reading end of a ring. Its own tail is authoritative;
// every value read from the ring is validated before use.
type consumer struct {
	r        ringView
	tail     uint64 // bytes consumed so far (authoritative)
	headSeen uint64 // last validated head loaded from the producer

	viewHeld  bool
	viewFrame uint64 // frame size of the message under the view
	viewLen   uint64 // its payload length

	// published is the tail as last stored in shared memory. holdBack is
	// set while the producer waits for space: consume then publishes
	// freed space a quarter ring at a time (or once it has read all it
	// has seen), so that a producer the ring keeps full is woken once per
	// quarter ring, not once per message (docs/PROTOCOL.md, "Freed space
	// in quarters"). piece, when not 0 (Options.FreeSpaceInPieces), does
	// the same at any time with pieces of that many bytes ("Freed space in
	// pieces (opt-in)").
	published uint64
	holdBack  bool
	piece     uint64

	// lastFrame is the size of the last frame read (expectsSmallFrame).
	lastFrame uint64

	n    sideCounters
	ring func() // rings the producer's doorbell
}

// loadHead refreshes headSeen from shared memory and validates it.
func (c *consumer) loadHead() error {
	// SYNC POINT: pairs with the producer's StoreUint64(head) in publish:
	// every frame below the head we see is completely written.
	h := atomic.LoadUint64(c.r.head)
	if h < c.headSeen || h-c.tail > c.r.cap || h%frameAlign != 0 {
		return protocolErrorf("producer position %d invalid (consumer at %d, last seen %d, capacity %d)", h, c.tail, c.headSeen, c.r.cap)
	}
	c.headSeen = h
	return nil
}

// publishTail returns consumed space to the producer and wakes it if it
// announced it was going to sleep.
func (c *consumer) publishTail() {
	// SYNC POINT: pairs with the producer's LoadUint64(tail) in loadTail;
	// sequentially consistent, so it is ordered before notify's load of
	// the waiter count (Dekker with eventCount.prepare).
	atomic.StoreUint64(c.r.tail, c.tail)
	c.published = c.tail
	c.holdBack = c.r.spaceEC.waiting()
	if c.holdBack {
		c.wake()
	}
}

// wake wakes the producer after publishTail found it announced.
func (c *consumer) wake() {
	if c.r.spaceEC.notify(c.ring) {
		c.n.wakes++
		*c.r.consWakes = c.n.wakes
	}
}

// nextFrameLines are words in the two cache lines that hold the next
// frame's header and its first 56 bytes of payload (a frame of up to 64
// bytes of payload spans exactly these two at any 8-byte alignment). A
// receive that spins loads them along with the head, so that the lines
// come to its core while the producer writes them instead of after the
// head moved: one cache-line transfer less on the critical path of a
// round trip (docs/PERFORMANCE.md section 29). Their values are never
// used: peek reads the frame again once the head says it is there.
func (c *consumer) nextFrameLines() (first, second *uint64) {
	off := c.tail & c.r.mask
	return (*uint64)(unsafe.Pointer(&c.r.data[off])), (*uint64)(unsafe.Pointer(&c.r.data[(off+64)&c.r.mask]))
}

// warmFrameMax is the longest last frame after which a spinning receive
// warms nextFrameLines. Warming lines that the producer writes into and
// then writes its header into again, last, costs the producer a transfer
// more; it pays while the frame is a few lines: 64 B round trips 20%
// faster, 120 B 35%, 248 B 14%, 512 B the same, 1 KiB 5-10% slower
// (docs/PERFORMANCE.md section 29).
const warmFrameMax = 256

// expectsSmallFrame reports whether the last frame read was at most
// warmFrameMax bytes (or none was read yet): a request/response peer's
// next frame is likely the size of its last one.
func (c *consumer) expectsSmallFrame() bool { return c.lastFrame <= warmFrameMax }

// peek returns the next frame's payload in place, and its kind (a
// message, a call request or a call reply), skipping padding frames. ok
// is false when the ring is empty. The frame stays in the ring until
// consume(frame).
func (c *consumer) peek() (msg []byte, kind uint32, frame uint64, ok bool, err error) {
	for {
		if c.headSeen == c.tail {
			if err := c.loadHead(); err != nil {
				return nil, 0, 0, false, err
			}
			if c.headSeen == c.tail {
				return nil, 0, 0, false, nil
			}
		}
		off := c.tail & c.r.mask
		avail := c.headSeen - c.tail
		// Read the header once, in one load: the peer may change the
		// bytes under us, so only these local copies are validated and
		// used.
		hdr := binary.LittleEndian.Uint64(c.r.data[off:])
		length := uint64(uint32(hdr >> (8 * offFrameLength)))
		kind = uint32(hdr >> (8 * offFrameKind))
		switch kind {
		case frameKindPadding:
			rest := c.r.cap - off
			if length+frameHeaderSize != rest || rest > avail {
				return nil, 0, 0, false, protocolErrorf("padding frame at %d has length %d, expected %d (%d bytes published)", c.tail, length, rest-frameHeaderSize, avail)
			}
			c.tail += rest
			c.publishTail()
		case frameKindMessage, frameKindRequest, frameKindReply:
			fs := frameSize(length)
			if length > c.r.maxMsg || off+fs > c.r.cap || fs > avail {
				return nil, 0, 0, false, protocolErrorf("frame at %d has length %d (max %d, %d bytes published, %d before the ring end)", c.tail, length, c.r.maxMsg, avail, c.r.cap-off)
			}
			if kind != frameKindMessage && length < callIDSize {
				return nil, 0, 0, false, protocolErrorf("call frame at %d (kind %d) has length %d, shorter than its %d-byte id", c.tail, kind, length, callIDSize)
			}
			start := off + frameHeaderSize
			return c.r.data[start : start+length : start+length], kind, fs, true, nil
		default:
			return nil, 0, 0, false, protocolErrorf("frame at %d has unknown kind %d", c.tail, kind)
		}
	}
}

// consume releases a message returned by peek: its frame size and
// payload length.
func (c *consumer) consume(frame, length uint64) {
	c.take(frame, length)
	c.settle()
}

// take releases a message returned by peek without returning its space
// to the producer yet: settle does, once for a batch (Conn.RecvBatch).
func (c *consumer) take(frame, length uint64) {
	c.tail += frame
	c.lastFrame = frame
	c.n.msgs++
	c.n.bytes += length
	*c.r.consMsgs, *c.r.consBytes = c.n.msgs, c.n.bytes
}

// freedPieces: with Options.FreeSpaceInPieces, a consumer that has more
// to read returns freed space once 1/freedPieces of the ring is free.
// Storing tail after every message of a stream whose ring stays full
// pulls tail's line across the cores twice per message: 4-6 M messages/s
// of 64 B against 10-14 M in pieces (docs/PERFORMANCE.md section 28).
const freedPieces = 16

// settle publishes the space taken since the last publication, unless
// more messages are there to read and the space is less than a quarter
// ring while the producer waits for space, or less than a piece: then
// the space is returned later, in one piece (or once the consumer has read
// everything it has seen, which it always has before it waits for data).
func (c *consumer) settle() {
	if c.tail != c.headSeen {
		if c.holdBack && c.tail-c.published < c.r.cap/4 {
			return
		}
		if c.tail-c.published < c.piece {
			return
		}
	}
	c.publishTail()
}
