package v2test

import (
	"bytes"
	"errors"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/goipc/goipc/goipc/message"
	v1 "github.com/goipc/goipc/schema/gen/go/goipc/fb"
	v2 "github.com/goipc/goipc/schema/v2_test/gen/go/goipc/fb"
)

func payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i * 7)
	}
	return p
}

// v2Ping builds a Message/Ping with the v2 code, trace_id included.
func v2Ping(seq uint64, sentNs int64, p []byte, traceID uint64) []byte {
	b := flatbuffers.NewBuilder(0)
	vec := b.CreateByteVector(p)
	v2.PingStart(b)
	v2.PingAddSeq(b, seq)
	v2.PingAddSentNs(b, sentNs)
	v2.PingAddPayload(b, vec)
	v2.PingAddTraceId(b, traceID)
	body := v2.PingEnd(b)
	return v2Finish(b, v2.BodyPing, body)
}

// v2Shutdown builds a Message whose body is the v2-only Shutdown.
func v2Shutdown(reason string) []byte {
	b := flatbuffers.NewBuilder(0)
	s := b.CreateString(reason)
	v2.ShutdownStart(b)
	v2.ShutdownAddReason(b, s)
	body := v2.ShutdownEnd(b)
	return v2Finish(b, v2.BodyShutdown, body)
}

func v2Finish(b *flatbuffers.Builder, t v2.Body, body flatbuffers.UOffsetT) []byte {
	v2.MessageStart(b)
	v2.MessageAddBody(b, body)
	v2.MessageAddBodyType(b, t)
	b.FinishWithFileIdentifier(v2.MessageEnd(b), []byte(message.Identifier))
	return b.FinishedBytes()
}

// v1 code (generated accessors and package message) reads a v2 Ping: the
// new field is ignored, the old ones read unchanged.
func TestV1ReadsV2Ping(t *testing.T) {
	for _, n := range []int{0, 1, 13, 64} {
		for _, trace := range []uint64{0, 0xDEADBEEFCAFEF00D} {
			buf := v2Ping(42, -7, payload(n), trace)

			m := v1.GetRootAsMessage(buf, 0)
			if m.BodyType() != v1.BodyPing {
				t.Fatalf("v1 body type %v", m.BodyType())
			}
			var tab flatbuffers.Table
			if !m.Body(&tab) {
				t.Fatal("no body")
			}
			var p v1.Ping
			p.Init(tab.Bytes, tab.Pos)
			if p.Seq() != 42 || p.SentNs() != -7 || !bytes.Equal(p.PayloadBytes(), payload(n)) {
				t.Fatalf("v1 generated read %d %d %x", p.Seq(), p.SentNs(), p.PayloadBytes())
			}

			v, err := message.ParsePing(buf)
			if err != nil {
				t.Fatalf("message.ParsePing(v2 Ping): %v", err)
			}
			if v.Seq() != 42 || v.SentNs() != -7 || !bytes.Equal(v.Payload(), payload(n)) {
				t.Fatalf("message read %d %d %x", v.Seq(), v.SentNs(), v.Payload())
			}
		}
	}
}

// v1 code meets a body type it does not know: the generated code reports
// the raw type, package message says ErrUnknownBody, so that a v1 consumer
// can skip the message rather than drop the connection.
func TestV1ReadsV2UnknownBody(t *testing.T) {
	buf := v2Shutdown("bye")
	m := v1.GetRootAsMessage(buf, 0)
	if _, known := v1.EnumNamesBody[m.BodyType()]; known {
		t.Fatalf("v1 knows body type %v", m.BodyType())
	}
	if err := message.Verify(buf); !errors.Is(err, message.ErrUnknownBody) {
		t.Fatalf("Verify(v2 Shutdown) = %v, want ErrUnknownBody", err)
	}
	if message.IsPing(buf) || message.IsPong(buf) {
		t.Fatal("v2 Shutdown taken for a Ping or Pong")
	}
	// And v2 reads it.
	var tab flatbuffers.Table
	m2 := v2.GetRootAsMessage(buf, 0)
	if m2.BodyType() != v2.BodyShutdown || !m2.Body(&tab) {
		t.Fatal("v2 cannot read its own Shutdown")
	}
	var s v2.Shutdown
	s.Init(tab.Bytes, tab.Pos)
	if string(s.Reason()) != "bye" {
		t.Fatalf("reason %q", s.Reason())
	}
}

// v2 code reads v1 messages: the new field reads as its default, the rest
// unchanged. The v1 messages come from package message's writers and from
// its Builder.
func TestV2ReadsV1(t *testing.T) {
	b := message.NewBuilder(0)
	for _, n := range []int{0, 5, 13} {
		for _, buf := range [][]byte{
			message.AppendPing(nil, 9, 1000, payload(n)),
			bytes.Clone(b.Ping(9, 1000, payload(n))),
		} {
			m := v2.GetRootAsMessage(buf, 0)
			var tab flatbuffers.Table
			if m.BodyType() != v2.BodyPing || !m.Body(&tab) {
				t.Fatalf("v2 body type %v", m.BodyType())
			}
			var p v2.Ping
			p.Init(tab.Bytes, tab.Pos)
			if p.Seq() != 9 || p.SentNs() != 1000 || p.TraceId() != 0 || !bytes.Equal(p.PayloadBytes(), payload(n)) {
				t.Fatalf("v2 read v1 Ping as %d %d %d %x", p.Seq(), p.SentNs(), p.TraceId(), p.PayloadBytes())
			}
		}
		for _, buf := range [][]byte{
			message.AppendPong(nil, 9, 1000, 2000, payload(n)),
			bytes.Clone(b.Pong(9, 1000, 2000, payload(n))),
		} {
			m := v2.GetRootAsMessage(buf, 0)
			var tab flatbuffers.Table
			if m.BodyType() != v2.BodyPong || !m.Body(&tab) {
				t.Fatalf("v2 body type %v", m.BodyType())
			}
			var p v2.Pong
			p.Init(tab.Bytes, tab.Pos)
			if p.Seq() != 9 || p.PingSentNs() != 1000 || p.ReceivedNs() != 2000 || !bytes.Equal(p.PayloadBytes(), payload(n)) {
				t.Fatalf("v2 read v1 Pong as %d %d %d %x", p.Seq(), p.PingSentNs(), p.ReceivedNs(), p.PayloadBytes())
			}
		}
	}
}

// The union values and field slots the rules freeze: v2 keeps v1's.
func TestV2KeepsV1Numbers(t *testing.T) {
	if byte(v2.BodyPing) != byte(v1.BodyPing) || byte(v2.BodyPong) != byte(v1.BodyPong) {
		t.Fatal("union values changed")
	}
	if byte(v2.BodyShutdown) <= byte(v1.BodyPong) {
		t.Fatal("new union member does not take the next value")
	}
}
