package goipc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
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

// FuzzCallReplies: a peer answers four pending calls with a script of
// frames (replies to their ids, repeated or not; replies to ids never
// issued; plain messages in between). Every call must get exactly the
// first reply sent to its id, plain messages must come through in order,
// and every other reply must be dropped and counted, never delivered.
func FuzzCallReplies(f *testing.F) {
	f.Add([]byte{0, 1, 1, 2, 2, 3, 3, 4})
	f.Add([]byte{5, 9, 0, 1, 0, 2, 4, 7, 3, 0, 5, 1, 2, 2})
	f.Add([]byte{4, 0, 4, 1, 5, 5, 1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, script []byte) {
		if len(script) > 512 {
			script = script[:512]
		}
		client, server, err := Pipe(&Options{RingSize: 1 << 16, MaxMessageSize: 4096, MaxInflightCalls: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		defer server.Close()
		var calls [4]PendingCall
		for i := range calls {
			if calls[i], err = client.StartCall([]byte{byte(i)}, -1); err != nil {
				t.Fatal(err)
			}
			if _, _, err := server.RecvRequest(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		want := map[uint64][]byte{}
		var plain [][]byte
		drops := uint64(0)
		for i := 0; i+1 < len(script); i += 2 {
			target, payload := script[i]%6, bytes.Repeat([]byte{script[i+1]}, int(script[i+1]%32))
			switch {
			case target < 4:
				id := calls[target].ID()
				if _, dup := want[id]; dup {
					drops++
				} else {
					want[id] = payload
				}
				err = server.Reply(id, payload)
			case target == 4: // an id whose slot index this end never had
				drops++
				err = server.Reply(uint64(script[i+1])<<slotBits|uint64(100+script[i+1]), payload)
			default:
				plain = append(plain, payload)
				err = server.Send(payload)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		got := map[int][]byte{}
		buf := make([]byte, 64)
		for progress := true; progress; {
			progress = false
			for i, p := range calls {
				if _, done := got[i]; done {
					continue
				}
				if n, err := p.WaitInto(buf, 0); err == nil {
					got[i], progress = bytes.Clone(buf[:n]), true
				} else if !errors.Is(err, ErrTimeout) {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			if len(plain) > 0 {
				if m, err := client.RecvTimeout(0); err == nil {
					if !bytes.Equal(m, plain[0]) {
						t.Fatalf("plain message %q, want %q", m, plain[0])
					}
					plain, progress = plain[1:], true
				}
			}
		}
		if len(plain) != 0 {
			t.Fatalf("%d plain messages not received", len(plain))
		}
		// Replies behind the last one a caller waited for are still in
		// the ring: a receive routes (drops) them on its way.
		if m, err := client.RecvTimeout(0); !errors.Is(err, ErrTimeout) {
			t.Fatalf("after the script: %q, %v", m, err)
		}
		for i, p := range calls {
			w, replied := want[p.ID()]
			switch g, ok := got[i]; {
			case replied != ok:
				t.Fatalf("call %d: replied %v, got a reply %v", i, replied, ok)
			case ok && !bytes.Equal(g, w):
				t.Fatalf("call %d: got %q, want its first reply %q", i, g, w)
			}
		}
		if d := client.DroppedReplies(); d != drops {
			t.Fatalf("%d replies dropped, want %d", d, drops)
		}
	})
}
