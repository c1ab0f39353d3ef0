package message

import (
	"bytes"
	"errors"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/goipc/goipc/schema/gen/go/goipc/fb"
)

// fields is every field of a Ping or Pong message, read one way or another.
type fields struct {
	kind       fb.Body
	seq        uint64
	sentNs     int64 // Ping.sent_ns or Pong.ping_sent_ns
	receivedNs int64 // Pong only
	payload    []byte
}

// readGenerated reads every field through the official generated
// accessors (schema/gen/go). Call it only on a buffer Verify accepted.
func readGenerated(buf []byte) fields {
	m := fb.GetRootAsMessage(buf, 0)
	f := fields{kind: m.BodyType()}
	var tab flatbuffers.Table
	if !m.Body(&tab) {
		return f
	}
	switch f.kind {
	case fb.BodyPing:
		var p fb.Ping
		p.Init(tab.Bytes, tab.Pos)
		f.seq, f.sentNs = p.Seq(), p.SentNs()
		f.payload = p.PayloadBytes()
		// The element accessor must agree with the byte slice accessor.
		for j := range p.PayloadLength() {
			if p.Payload(j) != f.payload[j] {
				panic("Ping.Payload(j) disagrees with PayloadBytes")
			}
		}
	case fb.BodyPong:
		var p fb.Pong
		p.Init(tab.Bytes, tab.Pos)
		f.seq, f.sentNs, f.receivedNs = p.Seq(), p.PingSentNs(), p.ReceivedNs()
		f.payload = p.PayloadBytes()
		for j := range p.PayloadLength() {
			if p.Payload(j) != f.payload[j] {
				panic("Pong.Payload(j) disagrees with PayloadBytes")
			}
		}
	}
	return f
}

// readViews reads every field through ParsePing/ParsePong.
func readViews(buf []byte) (fields, error) {
	kind, err := Identify(buf)
	if err != nil {
		return fields{}, err
	}
	switch kind {
	case fb.BodyPing:
		v, err := ParsePing(buf)
		if err != nil {
			return fields{}, err
		}
		return fields{kind: kind, seq: v.Seq(), sentNs: v.SentNs(), payload: v.Payload()}, nil
	default:
		v, err := ParsePong(buf)
		if err != nil {
			return fields{}, err
		}
		return fields{kind: kind, seq: v.Seq(), sentNs: v.PingSentNs(), receivedNs: v.ReceivedNs(), payload: v.Payload()}, nil
	}
}

func (f fields) equal(g fields) bool {
	return f.kind == g.kind && f.seq == g.seq && f.sentNs == g.sentNs &&
		f.receivedNs == g.receivedNs && bytes.Equal(f.payload, g.payload)
}

// mustRead verifies buf, reads it both ways, checks that both agree, and
// returns the fields.
func mustRead(t testing.TB, buf []byte) fields {
	t.Helper()
	v, err := readViews(buf)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	g := readGenerated(buf)
	if !v.equal(g) {
		t.Fatalf("views read %+v, generated accessors read %+v", v, g)
	}
	return v
}

var sentinels = []error{
	ErrTruncated, ErrTooLarge, ErrBadIdentifier, ErrOutOfRange, ErrMisaligned,
	ErrBadVTable, ErrUnknownBody, ErrBadUnion, ErrWrongBody, ErrShortBuffer,
	ErrPayloadTooLarge,
}

// isSentinel reports whether err wraps exactly one of the package's errors.
func isSentinel(err error) bool {
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	return n == 1
}

func seqPayload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i)
	}
	return p
}
