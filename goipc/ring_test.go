package goipc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"unsafe"
)

func testRing(t testing.TB, ringSize, maxMessage uint64) (*producer, *consumer) {
	seg := anonSegment(t, ringSize, maxMessage)
	return &producer{r: seg.rings[0]}, &consumer{r: seg.rings[0]}
}

func put(t testing.TB, p *producer, msg []byte) bool {
	t.Helper()
	ok, err := p.tryReserve(uint64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		copy(p.reservedBytes(), msg)
		p.commit(uint64(len(msg)))
	}
	return ok
}

func get(t testing.TB, c *consumer) ([]byte, bool) {
	t.Helper()
	msg, _, frame, ok, err := c.peek()
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return nil, false
	}
	out := bytes.Clone(msg)
	c.consume(frame, uint64(len(msg)))
	return out, true
}

func TestRingEmpty(t *testing.T) {
	_, c := testRing(t, 4096, 1024)
	if _, ok := get(t, c); ok {
		t.Fatal("empty ring returned a message")
	}
}

func TestRingZeroLength(t *testing.T) {
	p, c := testRing(t, 4096, 1024)
	for i := 0; i < 1000; i++ { // many, so zero-length frames wrap too
		if !put(t, p, nil) {
			t.Fatalf("put %d: ring full", i)
		}
		msg, ok := get(t, c)
		if !ok || len(msg) != 0 {
			t.Fatalf("get %d: %v %q", i, ok, msg)
		}
	}
	if p.head != 8000 || c.tail != 8000 {
		t.Errorf("positions %d/%d, want 8000", p.head, c.tail)
	}
}

func TestRingMaxSizeFrameFillsRing(t *testing.T) {
	const capacity = 4096
	p, c := testRing(t, capacity, capacity-frameHeaderSize)
	big := bytes.Repeat([]byte{0xab}, capacity-frameHeaderSize)
	if !put(t, p, big) {
		t.Fatal("max-size frame did not fit an empty ring")
	}
	if put(t, p, nil) {
		t.Fatal("a full ring took another frame")
	}
	if msg, ok := get(t, c); !ok || !bytes.Equal(msg, big) {
		t.Fatal("max-size frame corrupted")
	}
	// Off the ring start, a max-size frame needs a padding frame first and
	// then the whole ring: the producer publishes the padding alone.
	put(t, p, []byte("x"))
	get(t, c)
	if ok := put(t, p, big); ok {
		t.Fatal("max-size frame fitted while padding was unconsumed")
	}
	if _, ok := get(t, c); ok {
		t.Fatal("padding frame surfaced as a message")
	}
	if !put(t, p, big) {
		t.Fatal("max-size frame did not fit after the padding was consumed")
	}
	if msg, ok := get(t, c); !ok || !bytes.Equal(msg, big) {
		t.Fatal("max-size frame after padding corrupted")
	}
}

func TestRingWrapWritesPadding(t *testing.T) {
	p, c := testRing(t, 4096, 2048)
	msg := bytes.Repeat([]byte{1}, 1000) // frame 1008: four leave 64 bytes at the end
	for i := 0; i < 4; i++ {
		if !put(t, p, msg) {
			t.Fatal("ring full too early")
		}
	}
	get(t, c)
	get(t, c)
	if !put(t, p, msg) { // needs padding of 64 + 1008 at offset 0
		t.Fatal("wrapping frame did not fit")
	}
	le := binary.LittleEndian
	if kind, length := le.Uint32(p.r.data[4032+4:]), le.Uint32(p.r.data[4032:]); kind != frameKindPadding || length != 64-8 {
		t.Fatalf("padding frame kind %d length %d", kind, length)
	}
	if p.head != 4096+1008 {
		t.Fatalf("head %d, want %d", p.head, 4096+1008)
	}
	for i := 0; i < 3; i++ {
		got, ok := get(t, c)
		if !ok || !bytes.Equal(got, msg) {
			t.Fatalf("message %d after wrap: %v", i, ok)
		}
	}
	if _, ok := get(t, c); ok || c.tail != p.head {
		t.Fatalf("ring not drained: tail %d head %d", c.tail, p.head)
	}
}

// TestNextFrameLinesHoldTheNextFrame: the two lines a spinning receive
// loads (nextFrameLines) are the lines the next 64 B message is written
// to, at every 8-byte alignment and around the ring's end; when the
// message does not fit before the end, the first is the padding frame's
// header, and the second the start of the ring.
func TestNextFrameLinesHoldTheNextFrame(t *testing.T) {
	const ringSize = 4096
	p, c := testRing(t, ringSize, 64)
	msg := bytes.Repeat([]byte{7}, 64) // frames of 72 bytes: each starts 8 bytes later in its line
	line := func(a unsafe.Pointer) uintptr { return uintptr(a) &^ 63 }
	var alignments [8]int // frames read in place, by (offset % 64) / 8
	padded := 0
	for i := 0; i < 24*ringSize/72; i++ { // 24 laps
		tailOff := c.tail & c.r.mask
		first, second := c.nextFrameLines()
		if first != (*uint64)(unsafe.Pointer(&c.r.data[tailOff])) || second != (*uint64)(unsafe.Pointer(&c.r.data[(tailOff+64)%ringSize])) {
			t.Fatalf("step %d: lines at tail %d are not the tail's and 64 bytes on", i, tailOff)
		}
		if !put(t, p, msg) {
			t.Fatalf("step %d: ring full", i)
		}
		got, _, frame, ok, err := c.peek()
		if err != nil || !ok || !bytes.Equal(got, msg) {
			t.Fatalf("step %d: message not read back (%v)", i, err)
		}
		c.consume(frame, uint64(len(got)))
		frameStart := unsafe.Add(unsafe.Pointer(unsafe.SliceData(got)), -frameHeaderSize)
		frameEnd := unsafe.Add(frameStart, frameHeaderSize+len(msg)-1)
		if uintptr(frameStart) == uintptr(unsafe.Pointer(&c.r.data[0])) && tailOff != 0 {
			// Padding from tailOff to the end, the frame at offset 0.
			padded++
			if line(unsafe.Pointer(second)) != line(frameStart) {
				t.Fatalf("step %d: padding at %d: second line is not the ring's start", i, tailOff)
			}
			continue
		}
		alignments[tailOff%64/8]++
		if line(frameStart) != line(unsafe.Pointer(first)) || line(frameEnd) != line(unsafe.Pointer(second)) {
			t.Fatalf("step %d: frame at %d spans lines %#x-%#x, warmed %#x and %#x", i, tailOff,
				line(frameStart), line(frameEnd), line(unsafe.Pointer(first)), line(unsafe.Pointer(second)))
		}
	}
	if slices.Contains(alignments[:], 0) || padded == 0 {
		t.Fatalf("frames in place by alignment %v, %d after padding: the walk did not cover every case", alignments, padded)
	}
}

// TestExpectsSmallFrameFollowsTheLastFrame: a receive warms the next
// frame's lines only after a frame of at most warmFrameMax bytes (or
// before any), so that a stream of large messages is not slowed by it.
func TestExpectsSmallFrameFollowsTheLastFrame(t *testing.T) {
	p, c := testRing(t, 1<<16, 4096)
	if !c.expectsSmallFrame() {
		t.Fatal("a receive before any frame does not warm")
	}
	for _, step := range []struct {
		payload int
		small   bool
	}{
		{64, true},
		{warmFrameMax - frameHeaderSize, true},
		{warmFrameMax - frameHeaderSize + 1, false},
		{4096, false},
		{0, true},
	} {
		if !put(t, p, make([]byte, step.payload)) {
			t.Fatal("ring full")
		}
		if _, ok := get(t, c); !ok {
			t.Fatal("message not read back")
		}
		if got := c.expectsSmallFrame(); got != step.small {
			t.Fatalf("after a %d-byte message: expectsSmallFrame %v, want %v", step.payload, got, step.small)
		}
	}
}

func TestRingFullThenSpace(t *testing.T) {
	p, c := testRing(t, 4096, 1024)
	msg := make([]byte, 504) // 512-byte frames: exactly 8 fit
	n := 0
	for put(t, p, msg) {
		n++
	}
	if n != 8 {
		t.Fatalf("%d frames fit, want 8", n)
	}
	get(t, c)
	if !put(t, p, msg) {
		t.Fatal("no room after one frame was consumed")
	}
}

// By default every receive returns its message's space at once: a sender
// whose send found the ring full is told after one receive.
func TestConsumerReturnsSpaceAtOnceByDefault(t *testing.T) {
	p, c := testRing(t, 16384, 1024)
	msg := make([]byte, 56)
	sent := 0
	for put(t, p, msg) {
		sent++
	}
	for i := 1; i <= sent; i++ {
		if _, ok := get(t, c); !ok {
			t.Fatalf("message %d missing", i)
		}
		if got := atomic.LoadUint64(c.r.tail); got != c.tail {
			t.Fatalf("message %d: tail published at %d, the consumer is at %d", i, got, c.tail)
		}
	}
}

// With Options.FreeSpaceInPieces the consumer, while it has more to read,
// returns freed space in pieces of a sixteenth of the ring, and all of it
// once it has read everything it has seen (docs/PROTOCOL.md, "Freed space
// in pieces (opt-in)").
func TestConsumerReturnsSpaceInPieces(t *testing.T) {
	const ring = 16384
	p, c := testRing(t, ring, 1024)
	c.piece = ring / freedPieces
	msg := make([]byte, 56) // 64-byte frames: 16 to a piece, 256 fill the ring
	sent := 0
	for put(t, p, msg) {
		sent++
	}
	published := func() uint64 { return atomic.LoadUint64(c.r.tail) }
	last, stores := published(), 0
	for i := 1; i <= sent; i++ {
		if _, ok := get(t, c); !ok {
			t.Fatalf("message %d of %d missing", i, sent)
		}
		now := published()
		switch {
		case now == last:
			if c.tail == c.headSeen {
				t.Fatalf("message %d: everything seen was read, yet %d of %d bytes stay held back", i, c.tail-now, c.tail)
			}
			if c.tail-now >= c.piece {
				t.Fatalf("message %d: %d bytes held back, a piece is %d", i, c.tail-now, c.piece)
			}
			if stores == 0 && put(t, p, msg) {
				t.Fatalf("message %d: the producer found room in the full ring before any was returned", i)
			}
		case now != c.tail:
			t.Fatalf("message %d: tail published at %d, the consumer is at %d", i, now, c.tail)
		case c.tail != c.headSeen && now-last < c.piece:
			t.Fatalf("message %d: %d bytes returned while more was there to read, want pieces of %d", i, now-last, c.piece)
		default:
			stores++
		}
		last = now
	}
	// 256 frames of 64 bytes: 16 pieces of 1024 bytes, the last one when
	// the consumer has read all it saw.
	if sent != 256 || stores != 16 {
		t.Fatalf("tail stored %d times for %d messages, want 16 for 256", stores, sent)
	}
	// Request/response: a consumer that read all it saw returns it at once.
	if !put(t, p, msg) {
		t.Fatal("no room in an empty ring")
	}
	get(t, c)
	if published() != c.tail {
		t.Fatalf("one message read from an otherwise empty ring: tail published at %d, consumer at %d", published(), c.tail)
	}
}

func TestRingCommitShorterThanReserved(t *testing.T) {
	p, c := testRing(t, 4096, 1024)
	ok, _ := p.tryReserve(1000)
	if !ok {
		t.Fatal("reserve failed")
	}
	copy(p.reservedBytes(), "hello")
	p.commit(5)
	if p.head != 16 {
		t.Fatalf("head %d after a 5-byte commit", p.head)
	}
	if msg, ok := get(t, c); !ok || string(msg) != "hello" {
		t.Fatalf("got %q", msg)
	}
}

// fill writes a payload determined by seq, so the reader can check it.
func fill(b []byte, seq uint64) {
	x := seq*0x9e3779b97f4a7c15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	if len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, seq)
	}
}

func checkPayload(b []byte, seq uint64, scratch []byte) error {
	want := scratch[:len(b)]
	fill(want, seq)
	if !bytes.Equal(b, want) {
		return errors.New("payload differs")
	}
	return nil
}

// sizeFor picks a message size from seq: mostly small, sometimes up to max.
func sizeFor(seq uint64, max int) int {
	r := rand.New(rand.NewPCG(seq, 7))
	if r.IntN(64) == 0 {
		return r.IntN(max + 1)
	}
	return r.IntN(min(max, 300) + 1)
}

// TestRingConcurrent runs a producer and a consumer goroutine over one ring
// (run with -race): every message arrives once, in order, intact.
func TestRingConcurrent(t *testing.T) {
	const maxMsg = 3000
	p, c := testRing(t, 8192, maxMsg)
	n := uint64(200000)
	if testing.Short() {
		n = 20000
	}
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, maxMsg)
		for seq := uint64(0); seq < n; seq++ {
			m := buf[:sizeFor(seq, maxMsg)]
			fill(m, seq)
			for {
				ok, err := p.tryReserve(uint64(len(m)))
				if err != nil {
					done <- err
					return
				}
				if ok {
					break
				}
				runtime.Gosched()
			}
			copy(p.reservedBytes(), m)
			p.commit(uint64(len(m)))
		}
		done <- nil
	}()
	scratch := make([]byte, maxMsg)
	for seq := uint64(0); seq < n; {
		msg, _, frame, ok, err := c.peek()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			runtime.Gosched()
			continue
		}
		if len(msg) != sizeFor(seq, maxMsg) {
			t.Fatalf("message %d: %d bytes, want %d", seq, len(msg), sizeFor(seq, maxMsg))
		}
		if err := checkPayload(msg, seq, scratch); err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		c.consume(frame, uint64(len(msg)))
		seq++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
