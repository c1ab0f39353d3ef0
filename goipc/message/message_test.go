package message

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/goipc/goipc/schema/gen/go/goipc/fb"
)

// The hand-laid writers must produce exactly the official builder's bytes
// (non-zero scalars), for every payload length mod 8 and then some.
func TestWritersMatchBuilder(t *testing.T) {
	b := NewBuilder(0)
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 300; n++ {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(r.Uint32())
		}
		seq, a, c := r.Uint64()|1, int64(r.Uint64()|1), -int64(r.Uint64()>>1|1)

		want := bytes.Clone(b.Ping(seq, a, payload))
		if got := PingSize(n); got != len(want) {
			t.Fatalf("PingSize(%d) = %d, builder wrote %d bytes", n, got, len(want))
		}
		got := AppendPing(nil, seq, a, payload)
		if !bytes.Equal(got, want) {
			t.Fatalf("n=%d: AppendPing\n got %x\nwant %x", n, got, want)
		}
		f := mustRead(t, got)
		if f.kind != fb.BodyPing || f.seq != seq || f.sentNs != a || !bytes.Equal(f.payload, payload) {
			t.Fatalf("n=%d: Ping read back %+v", n, f)
		}

		want = bytes.Clone(b.Pong(seq, a, c, payload))
		if got := PongSize(n); got != len(want) {
			t.Fatalf("PongSize(%d) = %d, builder wrote %d bytes", n, got, len(want))
		}
		got = AppendPong(nil, seq, a, c, payload)
		if !bytes.Equal(got, want) {
			t.Fatalf("n=%d: AppendPong\n got %x\nwant %x", n, got, want)
		}
		f = mustRead(t, got)
		if f.kind != fb.BodyPong || f.seq != seq || f.sentNs != a || f.receivedNs != c || !bytes.Equal(f.payload, payload) {
			t.Fatalf("n=%d: Pong read back %+v", n, f)
		}
	}
}

// The builder leaves out zero scalars; the writers write them. Both read
// back as zero.
func TestZeroValues(t *testing.T) {
	b := NewBuilder(0)
	for _, buf := range [][]byte{
		b.Ping(0, 0, nil),
		AppendPing(nil, 0, 0, nil),
	} {
		v, err := ParsePing(buf)
		if err != nil {
			t.Fatal(err)
		}
		if v.Seq() != 0 || v.SentNs() != 0 || len(v.Payload()) != 0 {
			t.Fatalf("zero Ping read as %d %d %x", v.Seq(), v.SentNs(), v.Payload())
		}
		mustRead(t, buf)
	}
	for _, buf := range [][]byte{
		b.Pong(0, 0, 0, nil),
		AppendPong(nil, 0, 0, 0, nil),
	} {
		v, err := ParsePong(buf)
		if err != nil {
			t.Fatal(err)
		}
		if v.Seq() != 0 || v.PingSentNs() != 0 || v.ReceivedNs() != 0 || len(v.Payload()) != 0 {
			t.Fatalf("zero Pong read as %d %d %d %x", v.Seq(), v.PingSentNs(), v.ReceivedNs(), v.Payload())
		}
		mustRead(t, buf)
	}
	if len(b.Ping(0, 0, nil)) >= PingSize(0) {
		t.Errorf("builder wrote the zero fields")
	}
	var zp PingView
	var zq PongView
	if zp.Seq() != 0 || zp.SentNs() != 0 || zp.Payload() != nil || zq.Seq() != 0 || zq.ReceivedNs() != 0 || zq.PingSentNs() != 0 {
		t.Errorf("zero views do not read as zero")
	}
}

// WritePong into a dirty, larger slot: every byte up to the size is
// written, nothing after it.
func TestWritePongInPlace(t *testing.T) {
	ping := AppendPing(nil, 7, 1000, seqPayload(21))
	pv, err := ParsePing(ping)
	if err != nil {
		t.Fatal(err)
	}
	want := AppendPong(nil, pv.Seq(), pv.SentNs(), 2000, pv.Payload())
	for _, fill := range []byte{0x00, 0xAA, 0xFF} {
		slot := bytes.Repeat([]byte{fill}, PongSize(len(pv.Payload()))+16)
		n, err := WritePong(slot, pv.Seq(), pv.SentNs(), 2000, pv.Payload())
		if err != nil {
			t.Fatal(err)
		}
		if n != len(want) || !bytes.Equal(slot[:n], want) {
			t.Fatalf("fill %#x: WritePong wrote %x, want %x", fill, slot[:n], want)
		}
		for i, c := range slot[n:] {
			if c != fill {
				t.Fatalf("fill %#x: byte %d past the message changed", fill, n+i)
			}
		}
		q, err := ParsePong(slot[:n])
		if err != nil || q.Seq() != 7 || q.PingSentNs() != 1000 || q.ReceivedNs() != 2000 || !bytes.Equal(q.Payload(), seqPayload(21)) {
			t.Fatalf("fill %#x: Pong reads back wrong: %v", fill, err)
		}
		// The dirty fill must not leak: WritePing over the same slot too.
		n, err = WritePing(slot, 1, 2, nil)
		if err != nil || n != PingSize(0) || !bytes.Equal(slot[:n], AppendPing(nil, 1, 2, nil)) {
			t.Fatalf("fill %#x: WritePing over a used slot: %v", fill, err)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	p := seqPayload(10)
	if _, err := WritePong(make([]byte, PongSize(10)-1), 1, 2, 3, p); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("WritePong short: %v", err)
	}
	if _, err := WritePing(make([]byte, PingSize(10)-1), 1, 2, p); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("WritePing short: %v", err)
	}
	if _, err := WritePing(nil, 1, 2, nil); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("WritePing nil: %v", err)
	}
	for _, n := range []int{-1, MaxPayload + 1} {
		if PingSize(n) != -1 || PongSize(n) != -1 {
			t.Errorf("size of payload %d: %d %d, want -1", n, PingSize(n), PongSize(n))
		}
	}
	if s := PongSize(MaxPayload); s <= 0 || s > MaxSize {
		t.Errorf("PongSize(MaxPayload) = %d", s)
	}
	for n := range 64 {
		if PingSize(n)%8 != 0 || PongSize(n)%8 != 0 {
			t.Errorf("sizes for %d not multiples of 8", n)
		}
	}
}

// AppendPing at an unaligned length still produces a message that reads
// back (Go does not care about alignment; the message itself is aligned
// relative to its own start).
func TestAppendAfterData(t *testing.T) {
	dst := []byte("xyz")
	dst = AppendPing(dst, 5, 6, []byte("hi"))
	dst = AppendPong(dst, 7, 8, 9, []byte("there"))
	if string(dst[:3]) != "xyz" {
		t.Fatal("prefix clobbered")
	}
	ping := dst[3 : 3+PingSize(2)]
	pong := dst[3+PingSize(2):]
	if f := mustRead(t, ping); f.seq != 5 || string(f.payload) != "hi" {
		t.Fatalf("ping %+v", f)
	}
	if f := mustRead(t, pong); f.seq != 7 || f.receivedNs != 9 || string(f.payload) != "there" {
		t.Fatalf("pong %+v", f)
	}
}

func TestIdentify(t *testing.T) {
	ping, pong := AppendPing(nil, 1, 2, nil), AppendPong(nil, 1, 2, 3, nil)
	if !IsPing(ping) || IsPong(ping) || IsPing(pong) || !IsPong(pong) || IsPing(nil) || IsPong([]byte("GIPC")) {
		t.Fatal("IsPing/IsPong wrong")
	}
	if k, err := Identify(ping); k != fb.BodyPing || err != nil {
		t.Fatalf("Identify(ping) = %v, %v", k, err)
	}
	if _, err := ParsePong(ping); !errors.Is(err, ErrWrongBody) {
		t.Fatalf("ParsePong(ping): %v", err)
	}
	if _, err := ParsePing(pong); !errors.Is(err, ErrWrongBody) {
		t.Fatalf("ParsePing(pong): %v", err)
	}
	if !fb.MessageBufferHasIdentifier(ping) || Identifier != string(ping[4:8]) {
		t.Fatal("identifier")
	}
}

// A payload is a view into the buffer, capped so that append cannot
// write into the rest of the message.
func TestPayloadAliases(t *testing.T) {
	buf := AppendPing(nil, 1, 2, []byte("abc"))
	v, err := ParsePing(buf)
	if err != nil {
		t.Fatal(err)
	}
	p := v.Payload()
	if cap(p) != len(p) {
		t.Fatalf("payload cap %d > len %d", cap(p), len(p))
	}
	p[0] = 'X'
	if v2, _ := ParsePing(buf); string(v2.Payload()) != "Xbc" {
		t.Fatal("payload is not read in place")
	}
	if &v.Bytes()[0] != &buf[0] {
		t.Fatal("Bytes is not the buffer")
	}
}

func TestNoAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("instrumented build")
	}
	payload := seqPayload(64)
	slot := make([]byte, PongSize(len(payload)))
	ping := AppendPing(nil, 1, 2, payload)
	pong := AppendPong(nil, 1, 2, 3, payload)
	b := NewBuilder(0)
	b.Pong(1, 2, 3, payload) // warm up: grow the builder once
	dst := make([]byte, 0, 512)
	var sink uint64
	cases := map[string]func(){
		"WritePong":    func() { _, _ = WritePong(slot, 1, 2, 3, payload) },
		"WritePing":    func() { _, _ = WritePing(slot, 1, 2, payload) },
		"AppendPing":   func() { dst = AppendPing(dst[:0], 1, 2, payload) },
		"Builder.Ping": func() { b.Ping(1, 2, payload) },
		"Builder.Pong": func() { b.Pong(1, 2, 3, payload) },
		"Verify":       func() { _ = Verify(pong) },
		"ParsePing":    func() { v, _ := ParsePing(ping); sink += v.Seq() + uint64(len(v.Payload())) },
		"ParsePong":    func() { v, _ := ParsePong(pong); sink += v.Seq() + uint64(v.ReceivedNs()) },
		"IsPing":       func() { _ = IsPing(ping) },
		"Pong from Ping": func() {
			v, _ := ParsePing(ping)
			_, _ = WritePong(slot, v.Seq(), v.SentNs(), 9, v.Payload())
		},
	}
	for name, fn := range cases {
		if a := testing.AllocsPerRun(100, fn); a != 0 {
			t.Errorf("%s: %.1f allocs per run, want 0", name, a)
		}
	}
	_ = sink
}
