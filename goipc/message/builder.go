package message

import (
	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/goipc/goipc/schema/gen/go/goipc/fb"
)

// Builder builds messages with the official flatbuffers.Builder and the
// generated code (schema/gen/go), reusing the builder's memory: once its
// buffer has grown to the largest message built, building does not
// allocate. It is the reference the hand-laid writers are tested against
// and the way to build messages this package has no writer for.
//
// A Builder is not safe for concurrent use. The slice a build method
// returns aliases the builder's memory and is valid until the next call.
type Builder struct {
	b *flatbuffers.Builder
}

// NewBuilder returns a Builder whose buffer starts at initialSize bytes
// (it grows as needed; 0 picks the runtime's default).
func NewBuilder(initialSize int) *Builder {
	return &Builder{b: flatbuffers.NewBuilder(initialSize)}
}

// Ping builds a Message whose body is a Ping. Fields equal to their
// default (0) are left out, as FlatBuffers builders do; otherwise the bytes
// equal WritePing's.
func (b *Builder) Ping(seq uint64, sentNs int64, payload []byte) []byte {
	fbb := b.b
	fbb.Reset()
	v := fbb.CreateByteVector(payload)
	fb.PingStart(fbb)
	fb.PingAddSeq(fbb, seq)
	fb.PingAddSentNs(fbb, sentNs)
	fb.PingAddPayload(fbb, v)
	body := fb.PingEnd(fbb)
	return b.finish(fb.BodyPing, body)
}

// Pong builds a Message whose body is a Pong; see Ping.
func (b *Builder) Pong(seq uint64, pingSentNs, receivedNs int64, payload []byte) []byte {
	fbb := b.b
	fbb.Reset()
	v := fbb.CreateByteVector(payload)
	fb.PongStart(fbb)
	fb.PongAddSeq(fbb, seq)
	fb.PongAddPingSentNs(fbb, pingSentNs)
	fb.PongAddReceivedNs(fbb, receivedNs)
	fb.PongAddPayload(fbb, v)
	body := fb.PongEnd(fbb)
	return b.finish(fb.BodyPong, body)
}

func (b *Builder) finish(t fb.Body, body flatbuffers.UOffsetT) []byte {
	fbb := b.b
	fb.MessageStart(fbb)
	fb.MessageAddBody(fbb, body)
	fb.MessageAddBodyType(fbb, t)
	fbb.FinishWithFileIdentifier(fb.MessageEnd(fbb), identifier[:])
	return fbb.FinishedBytes()
}
