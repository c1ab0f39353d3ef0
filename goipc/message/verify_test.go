package message

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/goipc/goipc/schema/gen/go/goipc/fb"
)

// Positions in testPong: WritePong with a 13-byte payload, so P = 4 and the
// payload vector is at 76 (see the diagram in layout.go).
const (
	tpLen        = 96
	tpMsgVT      = 8  // Message vtable: length@8 inline@10 type slot@12 body slot@14
	tpMsgTable   = 16 // soffset
	tpType       = 23
	tpBodyOff    = 24
	tpPongVT     = 28 // length@28 inline@30 seq@32 ping_sent@34 received@36 payload@38
	tpPongTable  = 40
	tpPayloadOff = 44
	tpVector     = 76
)

func testPong() []byte { return AppendPong(nil, 42, 1000, 2000, seqPayload(13)) }

func put16(b []byte, at int, v uint16) { binary.LittleEndian.PutUint16(b[at:], v) }
func put32(b []byte, at int, v uint32) { binary.LittleEndian.PutUint32(b[at:], v) }

type malformedCase struct {
	name   string
	mutate func(b []byte) []byte // of a fresh testPong()
	want   error                 // nil: still valid
}

// malformedCases are also written to the fuzz seed corpus
// (TestWriteFuzzSeeds).
var malformedCases = []malformedCase{
	{"nil", func([]byte) []byte { return nil }, ErrTruncated},
	{"empty", func(b []byte) []byte { return b[:0] }, ErrTruncated},
	{"7 bytes", func(b []byte) []byte { return b[:7] }, ErrTruncated},
	{"header only", func(b []byte) []byte { return b[:8] }, ErrOutOfRange},
	{"wrong identifier", func(b []byte) []byte { b[4] = 'X'; return b }, ErrBadIdentifier},
	{"identifier case", func(b []byte) []byte { copy(b[4:], "gipc"); return b }, ErrBadIdentifier},
	{"zeros", func(b []byte) []byte { return make([]byte, 64) }, ErrBadIdentifier},
	{"root offset past end", func(b []byte) []byte { put32(b, 0, 0xFFFFFFF0); return b }, ErrOutOfRange},
	{"root offset at end", func(b []byte) []byte { put32(b, 0, tpLen); return b }, ErrOutOfRange},
	{"root offset misaligned", func(b []byte) []byte { put32(b, 0, 18); return b }, ErrMisaligned},
	{"root table in last 2 bytes", func(b []byte) []byte { put32(b, 0, tpLen-4); return b[:tpLen-2] }, ErrOutOfRange},
	{"soffset before start", func(b []byte) []byte { put32(b, tpMsgTable, 100); return b }, ErrOutOfRange},
	{"soffset past end", func(b []byte) []byte { put32(b, tpMsgTable, 0xFFFFFC18 /* -1000 */); return b }, ErrOutOfRange},
	{"soffset min int32", func(b []byte) []byte { put32(b, tpMsgTable, 0x80000000); return b }, ErrOutOfRange},
	{"vtable misaligned", func(b []byte) []byte { put32(b, tpMsgTable, 7); return b }, ErrMisaligned},
	{"vtable length 0", func(b []byte) []byte { put16(b, tpMsgVT, 0); return b }, ErrBadVTable},
	{"vtable length 2", func(b []byte) []byte { put16(b, tpMsgVT, 2); return b }, ErrBadVTable},
	{"vtable length odd", func(b []byte) []byte { put16(b, tpMsgVT, 7); return b }, ErrBadVTable},
	{"vtable length past end", func(b []byte) []byte { put16(b, tpMsgVT, 0xFFFE); return b }, ErrOutOfRange},
	{"inline size 0", func(b []byte) []byte { put16(b, tpMsgVT+2, 0); return b }, ErrBadVTable},
	{"inline size past end", func(b []byte) []byte { put16(b, tpMsgVT+2, 0xFFF0); return b }, ErrOutOfRange},
	{"field past inline size", func(b []byte) []byte { put16(b, tpMsgVT+2, 8); return b }, ErrOutOfRange},
	{"field inside soffset", func(b []byte) []byte { put16(b, tpMsgVT+4, 2); return b }, ErrOutOfRange},
	{"Pong field inside soffset", func(b []byte) []byte { put16(b, tpPongVT+4, 0); put16(b, tpPongVT+6, 1); return b }, ErrOutOfRange},
	{"Pong seq misaligned", func(b []byte) []byte { put16(b, tpPongVT+4, 20); return b }, ErrMisaligned},
	{"Pong seq past inline size", func(b []byte) []byte { put16(b, tpPongVT+4, 32); return b }, ErrOutOfRange},
	{"Pong vtable length past end", func(b []byte) []byte { put16(b, tpPongVT, 200); return b }, ErrOutOfRange},
	{"Pong inline size past end", func(b []byte) []byte { put16(b, tpPongVT+2, 60); return b }, ErrOutOfRange},
	{"body type 3 (newer peer)", func(b []byte) []byte { b[tpType] = 3; return b }, ErrUnknownBody},
	{"body type 255", func(b []byte) []byte { b[tpType] = 255; return b }, ErrUnknownBody},
	{"body type NONE with body", func(b []byte) []byte { b[tpType] = 0; return b }, ErrBadUnion},
	{"body type without body", func(b []byte) []byte { put16(b, tpMsgVT+6, 0); return b }, ErrBadUnion},
	{"no type, no body", func(b []byte) []byte { put16(b, tpMsgVT+4, 0); put16(b, tpMsgVT+6, 0); return b }, ErrBadUnion},
	{"vtable too short for body", func(b []byte) []byte { put16(b, tpMsgVT, 6); return b }, ErrBadUnion},
	{"vtable too short for anything", func(b []byte) []byte { put16(b, tpMsgVT, 4); return b }, ErrBadUnion},
	{"body offset past end", func(b []byte) []byte { put32(b, tpBodyOff, 0xFFFF); return b }, ErrOutOfRange},
	{"body offset max uint32", func(b []byte) []byte { put32(b, tpBodyOff, 0xFFFFFFFF); return b }, ErrOutOfRange},
	{"body offset misaligned", func(b []byte) []byte { put32(b, tpBodyOff, 18); return b }, ErrMisaligned},
	{"body offset 0: the body table is the offset itself", func(b []byte) []byte { put32(b, tpBodyOff, 0); return b }, ErrBadVTable},
	// Ping's payload slot is Pong's received_ns slot: 2000 is no offset.
	{"body type Ping on a Pong table", func(b []byte) []byte { b[tpType] = 1; return b }, ErrOutOfRange},
	{"payload offset past end", func(b []byte) []byte { put32(b, tpPayloadOff, 1000); return b }, ErrOutOfRange},
	{"payload offset to end", func(b []byte) []byte { put32(b, tpPayloadOff, tpLen-tpPayloadOff); return b }, ErrOutOfRange},
	{"payload offset misaligned", func(b []byte) []byte { put32(b, tpPayloadOff, 30); return b }, ErrMisaligned},
	{"payload length max uint32", func(b []byte) []byte { put32(b, tpVector, 0xFFFFFFFF); return b }, ErrOutOfRange},
	{"payload length 2^31", func(b []byte) []byte { put32(b, tpVector, 1<<31); return b }, ErrOutOfRange},
	{"payload length one too many", func(b []byte) []byte { put32(b, tpVector, tpLen-tpVector-4+1); return b }, ErrOutOfRange},
	{"payload length up to the end", func(b []byte) []byte { put32(b, tpVector, tpLen-tpVector-4); return b }, nil},
	{"payload length in last 2 bytes", func(b []byte) []byte { put32(b, tpPayloadOff, tpLen-4-tpPayloadOff); return b[:tpLen-2] }, ErrOutOfRange},
	{"short Pong vtable: fields absent", func(b []byte) []byte { put16(b, tpPongVT, 8); return b }, nil},
	{"vtable after its table", vtableAfterTable, nil},
	{"trailing bytes", func(b []byte) []byte { return append(b, 1, 2, 3) }, nil},
}

func TestVerifyMalformed(t *testing.T) {
	if b := testPong(); len(b) != tpLen || binary.LittleEndian.Uint32(b[tpPayloadOff:])+tpPayloadOff != tpVector {
		t.Fatalf("testPong layout changed: %x", b)
	}
	for _, c := range malformedCases {
		t.Run(c.name, func(t *testing.T) {
			b := c.mutate(testPong())
			// Exact capacity: a read past len would panic, not pass.
			b = b[:len(b):len(b)]
			err := Verify(b)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v, want nil", err)
				}
				mustRead(t, b)
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify: %v, want %v", err, c.want)
			}
			if !isSentinel(err) {
				t.Fatalf("%v does not wrap exactly one sentinel", err)
			}
			if _, perr := ParsePong(b); !errors.Is(perr, c.want) {
				t.Fatalf("ParsePong: %v, want %v", perr, c.want)
			}
			if _, perr := ParsePing(b); !errors.Is(perr, c.want) {
				t.Fatalf("ParsePing: %v, want %v", perr, c.want)
			}
			if IsPing(b) || IsPong(b) {
				t.Fatal("IsPing/IsPong true for a bad buffer")
			}
		})
	}
}

// vtableAfterTable moves the Pong vtable behind the buffer's end, so that
// the table's soffset is negative: legal FlatBuffers (the C++ builder can
// do it when it shares vtables), and Verify must accept it.
func vtableAfterTable(b []byte) []byte {
	vt := bytes.Clone(b[tpPongVT : tpPongVT+12])
	pos := len(b)
	b = append(b, vt...)
	put32(b, tpPongTable, uint32(int32(tpPongTable-pos)))
	clear(b[tpPongVT : tpPongVT+12])
	return b
}

func TestVectorAbsentOrEmpty(t *testing.T) {
	b := testPong()
	put16(b, tpPongVT+10, 0) // payload absent
	v, err := ParsePong(b)
	if err != nil || v.Payload() != nil || v.Seq() != 42 {
		t.Fatalf("absent payload: %v %v", err, v.Payload())
	}
	mustRead(t, b)
}

// Cutting a valid message anywhere before the end of its payload bytes is
// ErrTruncated (under 8 bytes) or ErrOutOfRange; cutting only trailing
// padding leaves a valid message, as it does for every FlatBuffers reader.
func TestVerifyTruncatedEverywhere(t *testing.T) {
	b := NewBuilder(0)
	for _, n := range []int{0, 1, 3, 4, 5, 8, 13, 64} {
		p := seqPayload(n)
		_, pad := vectorBytes(n)
		msgs := []struct {
			name    string
			buf     []byte
			dataEnd int
		}{
			{"WritePing", AppendPing(nil, 1, 2, p), pingFixedSize + pad + 4 + n},
			{"WritePong", AppendPong(nil, 1, 2, 3, p), pongFixedSize + pad + 4 + n},
			{"Builder.Ping", bytes.Clone(b.Ping(1, 2, p)), pingFixedSize + pad + 4 + n},
			{"Builder.Pong", bytes.Clone(b.Pong(1, 2, 3, p)), pongFixedSize + pad + 4 + n},
		}
		for _, m := range msgs {
			t.Run(fmt.Sprintf("%s/%d", m.name, n), func(t *testing.T) {
				for cut := 0; cut < len(m.buf); cut++ {
					short := bytes.Clone(m.buf[:cut])
					short = short[:cut:cut]
					err := Verify(short)
					switch {
					case cut < headerSize:
						if !errors.Is(err, ErrTruncated) {
							t.Fatalf("cut %d: %v, want ErrTruncated", cut, err)
						}
					case cut >= m.dataEnd:
						if err != nil {
							t.Fatalf("cut %d (only padding): %v", cut, err)
						}
						mustRead(t, short)
					default:
						if !errors.Is(err, ErrOutOfRange) {
							t.Fatalf("cut %d: %v, want ErrOutOfRange", cut, err)
						}
					}
				}
			})
		}
	}
}

// Every single-byte change of a valid message either still verifies (and
// reads without panicking, both ways, with the same values) or fails with
// exactly one sentinel.
func TestVerifyEveryByteFlip(t *testing.T) {
	for _, base := range [][]byte{testPong(), AppendPing(nil, 9, 8, seqPayload(5))} {
		for i := range base {
			for _, v := range []byte{0x00, 0x01, 0x02, 0x04, 0x80, 0xFF, base[i] ^ 0xFF, base[i] + 1} {
				b := bytes.Clone(base)
				b[i] = v
				err := Verify(b)
				if err != nil {
					if !isSentinel(err) {
						t.Fatalf("byte %d = %#x: %v is not one sentinel", i, v, err)
					}
					continue
				}
				mustRead(t, b)
			}
		}
	}
}

func TestSentinelsDistinct(t *testing.T) {
	for i, a := range sentinels {
		for j, b := range sentinels {
			if i != j && errors.Is(a, b) {
				t.Errorf("%v is %v", a, b)
			}
		}
	}
	if s := fb.Body(3).String(); s == "" {
		t.Fatal("Body.String")
	}
}
