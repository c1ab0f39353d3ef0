package message

import (
	"fmt"

	"github.com/goipc/goipc/schema/gen/go/goipc/fb"
)

// PingView reads a verified Ping in place. Its accessors read the buffer
// at positions checked by ParsePing, so they never go out of bounds, even
// if the buffer is rewritten afterwards. The zero PingView reads as an
// empty Ping. Valid only while the buffer is (see the package doc).
type PingView struct {
	buf     []byte
	seq     int // checked positions; 0 = absent (default 0)
	sentNs  int
	payload []byte
}

// ParsePing verifies buf (see Verify) and returns a view of its Ping. It
// fails with ErrWrongBody, wrapped, when the message is valid but its body
// is not a Ping. It does not allocate on success.
func ParsePing(buf []byte) (PingView, error) {
	var m parsed
	if err := parse(buf, &m); err != nil {
		return PingView{}, err
	}
	if m.kind != fb.BodyPing {
		return PingView{}, fmt.Errorf("%w: want Ping, got %s", ErrWrongBody, m.kind)
	}
	return PingView{buf: buf, seq: m.seq, sentNs: m.sentNs, payload: m.payload}, nil
}

// Seq returns Ping.seq.
func (v PingView) Seq() uint64 { return u64At(v.buf, v.seq) }

// SentNs returns Ping.sent_ns.
func (v PingView) SentNs() int64 { return int64(u64At(v.buf, v.sentNs)) }

// Payload returns Ping.payload, aliasing the buffer (nil when absent).
// Clone it to keep it past the buffer's lifetime.
func (v PingView) Payload() []byte { return v.payload }

// Bytes returns the whole message buffer the view reads.
func (v PingView) Bytes() []byte { return v.buf }

// PongView reads a verified Pong in place; see PingView.
type PongView struct {
	buf        []byte
	seq        int
	pingSentNs int
	receivedNs int
	payload    []byte
}

// ParsePong verifies buf (see Verify) and returns a view of its Pong. It
// fails with ErrWrongBody, wrapped, when the message is valid but its body
// is not a Pong. It does not allocate on success.
func ParsePong(buf []byte) (PongView, error) {
	var m parsed
	if err := parse(buf, &m); err != nil {
		return PongView{}, err
	}
	if m.kind != fb.BodyPong {
		return PongView{}, fmt.Errorf("%w: want Pong, got %s", ErrWrongBody, m.kind)
	}
	return PongView{buf: buf, seq: m.seq, pingSentNs: m.sentNs, receivedNs: m.recvNs, payload: m.payload}, nil
}

// Seq returns Pong.seq.
func (v PongView) Seq() uint64 { return u64At(v.buf, v.seq) }

// PingSentNs returns Pong.ping_sent_ns.
func (v PongView) PingSentNs() int64 { return int64(u64At(v.buf, v.pingSentNs)) }

// ReceivedNs returns Pong.received_ns.
func (v PongView) ReceivedNs() int64 { return int64(u64At(v.buf, v.receivedNs)) }

// Payload returns Pong.payload, aliasing the buffer (nil when absent).
func (v PongView) Payload() []byte { return v.payload }

// Bytes returns the whole message buffer the view reads.
func (v PongView) Bytes() []byte { return v.buf }

// u64At reads the little-endian u64 at a checked position, 0 for an absent
// field (pos 0).
func u64At(buf []byte, pos int) uint64 {
	if pos == 0 {
		return 0
	}
	return le.Uint64(buf[pos:])
}
