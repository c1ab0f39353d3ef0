package statread

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/goipc/goipc/internal/layout"
)

// validControl builds the control area of a well-formed segment with two
// rings of ringSize bytes, the way goipc's initSegment writes one, and
// returns it with the segment's size.
func validControl(ringSize uint64) ([]byte, int64) {
	le := binary.LittleEndian
	c := make([]byte, ControlSize)
	size := ControlSize + 2*ringSize
	le.PutUint64(c[layout.OffMagic:], layout.Magic)
	le.PutUint32(c[layout.OffLayoutVersion:], LayoutVersion)
	le.PutUint32(c[layout.OffControlSize:], ControlSize)
	le.PutUint64(c[layout.OffSegmentSize:], size)
	le.PutUint32(c[layout.OffMaxMessage:], 1024)
	le.PutUint32(c[layout.OffCreatorPID:], 100)
	le.PutUint32(c[layout.OffAcceptorPID:], 200)
	le.PutUint64(c[layout.OffRing0DataOff:], ControlSize)
	le.PutUint64(c[layout.OffRing0Cap:], ringSize)
	le.PutUint64(c[layout.OffRing1DataOff:], ControlSize+ringSize)
	le.PutUint64(c[layout.OffRing1Cap:], ringSize)
	le.PutUint64(c[layout.OffCreatedNs:], uint64(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()))
	le.PutUint32(c[layout.OffProtoVersion:], 2)
	le.PutUint32(c[layout.OffPathLen:], 9)
	copy(c[layout.OffPath:], "/tmp/sock")
	// Ring 0: 3 messages of 10 bytes published, 2 consumed; its consumer
	// parked on the doorbell. Ring 1: its producer parked on the futex.
	r0, r1 := c[layout.OffRing0Control:], c[layout.OffRing1Control:]
	le.PutUint64(r0[layout.OffCtlHead:], 72)
	le.PutUint64(r0[layout.OffCtlTail:], 48)
	le.PutUint64(r0[layout.OffCtlDataEC:], 7<<32|1<<31)
	le.PutUint64(r0[layout.OffCtlProdMsgs:], 3)
	le.PutUint64(r0[layout.OffCtlProdBytes:], 30)
	le.PutUint64(r0[layout.OffCtlProdParks:], 4)
	le.PutUint64(r0[layout.OffCtlProdWakes:], 5)
	le.PutUint64(r0[layout.OffCtlConsMsgs:], 2)
	le.PutUint64(r0[layout.OffCtlConsBytes:], 20)
	le.PutUint64(r0[layout.OffCtlConsParks:], 6)
	le.PutUint64(r0[layout.OffCtlConsWakes:], 7)
	le.PutUint64(r1[layout.OffCtlSpaceEC:], 9<<32|1)
	le.PutUint32(c[layout.OffReady:], layout.Ready)
	return c, int64(size)
}

func TestParseControlDecodesEveryField(t *testing.T) {
	c, size := validControl(4096)
	h, err := ParseControl(c, size)
	if err != nil {
		t.Fatal(err)
	}
	if h.LayoutVersion != 2 || h.ProtocolVersion != 2 || h.SegmentSize != uint64(size) || h.MaxMessageSize != 1024 ||
		h.CreatorPID != 100 || h.AcceptorPID != 200 || h.Path != "/tmp/sock" ||
		!h.Created.Equal(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)) {
		t.Fatalf("header %+v", h)
	}
	r0 := h.Rings[0]
	want := Ring{Capacity: 4096, Head: 72, Tail: 48, DataEC: 7<<32 | 1<<31,
		ProducerMessages: 3, ProducerBytes: 30, ProducerParks: 4, ProducerWakeups: 5,
		ConsumerMessages: 2, ConsumerBytes: 20, ConsumerParks: 6, ConsumerWakeups: 7}
	if r0 != want {
		t.Fatalf("ring 0 %+v\nwant   %+v", r0, want)
	}
	if r0.InUse() != 24 || !r0.ConsumerParked() || r0.ProducerParked() {
		t.Fatalf("ring 0 in use %d, consumer parked %v, producer parked %v", r0.InUse(), r0.ConsumerParked(), r0.ProducerParked())
	}
	if r1 := h.Rings[1]; r1.Capacity != 4096 || !r1.ProducerParked() || r1.ConsumerParked() || r1.InUse() != 0 {
		t.Fatalf("ring 1 %+v", r1)
	}

	// The dialer sends on ring 0 and receives on ring 1; the listener the
	// reverse, and each names the other's pid.
	d, l := newEnd(100, "d", 1, h, true), newEnd(200, "l", 1, h, false)
	if d.PeerPID != 200 || l.PeerPID != 100 || !d.Dialer || l.Dialer {
		t.Fatalf("peers: dialer %+v listener %+v", d, l)
	}
	if d.Sent.Messages != 3 || d.Sent.Bytes != 30 || d.Sent.Parks != 4 || d.Sent.Wakeups != 5 || d.Sent.InUse != 24 ||
		!d.Sent.ReceiverParked || d.Sent.SenderParked || d.Received.Messages != 0 || !d.Received.SenderParked {
		t.Fatalf("dialer %+v", d)
	}
	if l.Received.Messages != 2 || l.Received.Bytes != 20 || l.Received.Parks != 6 || l.Received.Wakeups != 7 ||
		!l.Received.ReceiverParked || l.Sent.Messages != 0 || !l.Sent.SenderParked || l.Sent.Capacity != 4096 {
		t.Fatalf("listener %+v", l)
	}
}

func TestParseControlRejects(t *testing.T) {
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		change func(c []byte) ([]byte, int64)
		want   error
	}{
		{"empty", func(c []byte) ([]byte, int64) { return nil, 0 }, ErrNotSegment},
		{"garbage", func(c []byte) ([]byte, int64) { return []byte("not a segment at all"), 20 }, ErrNotSegment},
		{"short read", func(c []byte) ([]byte, int64) { return c[:100], 100 }, ErrTruncated},
		{"version 1", func(c []byte) ([]byte, int64) { le.PutUint32(c[layout.OffLayoutVersion:], 1); return c, 12288 }, ErrVersion},
		{"not ready", func(c []byte) ([]byte, int64) { le.PutUint32(c[layout.OffReady:], 0); return c, 12288 }, ErrNotReady},
		{"file shrunk", func(c []byte) ([]byte, int64) { return c, 8192 }, ErrTruncated},
		{"file grown", func(c []byte) ([]byte, int64) { return c, 1 << 40 }, ErrInconsistent},
		{"control size", func(c []byte) ([]byte, int64) { le.PutUint32(c[layout.OffControlSize:], 64); return c, 12288 }, ErrInconsistent},
		{"flags", func(c []byte) ([]byte, int64) { le.PutUint32(c[layout.OffFlags:], 1); return c, 12288 }, ErrInconsistent},
		{"capacity", func(c []byte) ([]byte, int64) { le.PutUint64(c[layout.OffRing1Cap:], 4095); return c, 12288 }, ErrInconsistent},
		{"offsets", func(c []byte) ([]byte, int64) { le.PutUint64(c[layout.OffRing1DataOff:], 0); return c, 12288 }, ErrInconsistent},
		{"max message", func(c []byte) ([]byte, int64) { le.PutUint32(c[layout.OffMaxMessage:], 4096); return c, 12288 }, ErrInconsistent},
		{"path length", func(c []byte) ([]byte, int64) { le.PutUint32(c[layout.OffPathLen:], 0xffffffff); return c, 12288 }, ErrInconsistent},
		{"negative size", func(c []byte) ([]byte, int64) { return c, -1 }, ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := validControl(4096)
			ctl, size := tc.change(c)
			_, err := ParseControl(ctl, size)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

func TestInUseClampsHostileWords(t *testing.T) {
	for _, r := range []Ring{{Capacity: 4096, Head: 10, Tail: 20}, {Capacity: 4096, Head: 1 << 62, Tail: 0}} {
		if n := r.InUse(); n > r.Capacity {
			t.Fatalf("%+v: in use %d", r, n)
		}
	}
}

// FuzzParseControl: whatever a segment holds, ParseControl returns an
// error wrapping one of its reasons or a header whose geometry is valid,
// and never panics. Random bytes rarely get past the magic, so the input
// is a patch over a valid control area (at: where it lands; cut: a
// truncation, 0 for none) or, with at = 0xffff, the raw control area
// itself; small inputs also keep the fuzzer's minimization quick.
func FuzzParseControl(f *testing.F) {
	_, size := validControl(4096)
	_, bigSize := validControl(1 << 20)
	le := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	f.Add([]byte{}, uint16(0), uint16(0), size)                                // valid
	f.Add([]byte{}, uint16(0), uint16(0), bigSize)                             // a header of another size
	f.Add([]byte{}, uint16(0), uint16(ControlSize-1), size)                    // short read
	f.Add([]byte{}, uint16(0), uint16(8), size)                                // magic only
	f.Add([]byte{1}, uint16(layout.OffLayoutVersion), uint16(0), size)         // version 1
	f.Add(le(0), uint16(layout.OffReady), uint16(0), size)                     // not ready
	f.Add(le(1<<62), uint16(layout.OffRing0Control), uint16(0), size)          // head far ahead
	f.Add(le(layout.MaxPathBytes), uint16(layout.OffPathLen), uint16(0), size) // longest path
	f.Add([]byte("\x1b[2J\n"), uint16(layout.OffPath), uint16(0), size)        // escapes in the path
	f.Add(le(12288), uint16(layout.OffRing1DataOff), uint16(0), int64(12288))  // overlapping rings
	f.Add([]byte("not a segment"), uint16(0xffff), uint16(0), int64(13))       // raw garbage
	f.Fuzz(func(t *testing.T, patch []byte, at, cut uint16, fileSize int64) {
		var ctl []byte
		if at == 0xffff {
			ctl = patch
		} else {
			ctl, _ = validControl(4096)
			copy(ctl[int(at)%ControlSize:], patch)
			if cut != 0 && int(cut) < len(ctl) {
				ctl = ctl[:cut]
			}
		}
		h, err := ParseControl(ctl, fileSize)
		if err != nil {
			for _, known := range []error{ErrNotSegment, ErrVersion, ErrNotReady, ErrTruncated, ErrInconsistent} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("error %v wraps no known reason", err)
		}
		if uint64(fileSize) != h.SegmentSize || len(h.Path) > layout.MaxPathBytes {
			t.Fatalf("accepted size %d for a %d-byte file, path of %d bytes", h.SegmentSize, fileSize, len(h.Path))
		}
		for i, r := range h.Rings {
			if !layout.ValidRingSize(r.Capacity) || r.InUse() > r.Capacity {
				t.Fatalf("ring %d: capacity %d, in use %d", i, r.Capacity, r.InUse())
			}
		}
		for _, dialer := range []bool{true, false} {
			e := newEnd(1, "x", 1, h, dialer)
			if e.Sent.InUse > e.Sent.Capacity || e.Received.InUse > e.Received.Capacity {
				t.Fatalf("end %+v", e)
			}
		}
	})
}
