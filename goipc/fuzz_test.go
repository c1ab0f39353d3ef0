package goipc

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
)

// FuzzFrameReader feeds the consumer arbitrary ring bytes and an arbitrary
// published position: it must return frames (messages, call requests and
// replies) inside the ring and within the maximum size, call frames long
// enough for their id, or a protocol error, and never panic or loop.
func FuzzFrameReader(f *testing.F) {
	frame := func(length, kind uint32) []byte {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, length)
		binary.LittleEndian.PutUint32(b[4:], kind)
		return b
	}
	f.Add(append(frame(5, 0), "hello\x00\x00\x00"...), uint64(16), uint64(0))
	f.Add(frame(0, 0), uint64(8), uint64(4096-8))
	f.Add(frame(4088-8, 1), uint64(4096), uint64(8))
	f.Add(frame(1<<31, 0), uint64(1<<20), uint64(0))
	f.Add(frame(3, 9), uint64(3), uint64(0))
	f.Add(append(frame(12, frameKindRequest), "\x01\x00\x01\x00\x00\x00\x00\x00ping"...), uint64(24), uint64(0))
	f.Add(append(frame(8, frameKindReply), make([]byte, 8)...), uint64(16), uint64(0))
	f.Add(append(frame(7, frameKindReply), make([]byte, 8)...), uint64(16), uint64(0))
	f.Add(append(frame(1024, frameKindRequest), make([]byte, 8)...), uint64(4096), uint64(0))
	f.Fuzz(func(t *testing.T, ring []byte, head, tail uint64) {
		const capacity, maxMsg = 4096, 1024
		seg := anonSegment(t, capacity, maxMsg)
		r := seg.rings[0]
		tail &^= frameAlign - 1
		copy(r.data[tail&r.mask:], ring)
		copy(r.data, ring[min(len(ring), int(capacity-tail&r.mask)):])
		atomic.StoreUint64(r.head, head)
		c := &consumer{r: r, tail: tail, headSeen: tail}
		for i := 0; i < 2*capacity/frameHeaderSize; i++ {
			before := c.tail
			msg, kind, fs, ok, err := c.peek()
			if err != nil || !ok {
				return
			}
			if uint64(len(msg)) > maxMsg || fs < frameHeaderSize || fs%frameAlign != 0 || fs > capacity {
				t.Fatalf("message of %d bytes in a frame of %d", len(msg), fs)
			}
			switch {
			case kind != frameKindMessage && kind != frameKindRequest && kind != frameKindReply:
				t.Fatalf("frame of kind %d returned", kind)
			case kind != frameKindMessage && len(msg) < callIDSize:
				t.Fatalf("call frame (kind %d) of %d bytes: no room for its id", kind, len(msg))
			}
			c.consume(fs, uint64(len(msg)))
			if c.tail-before > capacity || c.tail > head {
				t.Fatalf("consumer moved from %d to %d past head %d", before, c.tail, head)
			}
		}
	})
}
