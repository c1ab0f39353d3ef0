package message

import (
	"encoding/binary"
	"math"

	"github.com/goipc/goipc/schema/gen/go/goipc/fb"
)

// The FlatBuffers wire format, as far as goipc's messages use it. All
// integers are little-endian; positions are byte offsets from the start of
// the buffer, and FlatBuffers requires every value to be aligned to its
// size relative to that start.
//
//	uoffset (u32): forward offset, target = position of the uoffset + value
//	soffset (i32): at the start of a table, vtable = table position - value
//	voffset (u16): vtable entries
//	vtable:        [u16 vtable size][u16 table inline size][u16 per field]
//	               a field's entry is its offset from the table start,
//	               0 when the field is absent (reads as its default)
//	vector:        [u32 element count][elements]
//	union field:   two fields, the type (u8, id N-1) and a uoffset (id N)
const (
	sizeUOffset = 4
	sizeVOffset = 2
	sizeU64     = 8

	// headerSize is the root uoffset plus the file identifier.
	headerSize = 8

	// MaxSize is the largest buffer Verify accepts: FlatBuffers offsets are
	// 32 bits and buffers must stay below 2 GiB.
	MaxSize = math.MaxInt32

	// MaxPayload is the largest payload PingSize, PongSize and the writers
	// accept, so that a whole message stays below MaxSize.
	MaxPayload = MaxSize - 96
)

// Identifier is the file identifier at bytes 4..8 of every goipc message.
const Identifier = "GIPC"

var identifier = [4]byte{'G', 'I', 'P', 'C'}

// Field slots: a field with id N has its vtable entry at 4 + 2*N.
const (
	// Message
	fieldBodyType = 0 // u8 (union type)
	fieldBody     = 1 // uoffset to the body table

	// Ping
	fieldPingSeq     = 0 // u64
	fieldPingSentNs  = 1 // i64
	fieldPingPayload = 2 // uoffset to [ubyte]

	// Pong
	fieldPongSeq        = 0 // u64
	fieldPongPingSentNs = 1 // i64
	fieldPongReceivedNs = 2 // i64
	fieldPongPayload    = 3 // uoffset to [ubyte]
)

// The hand-laid messages below are byte for byte what Builder (the Go
// flatbuffers.Builder driven by the generated code, fields added in schema
// order) writes when every scalar is non-zero (the builder omits fields
// equal to their default 0; the writers here always write them). Tests
// assert the equality for payload lengths 0..300, so any drift of the
// runtime shows up there. The layout of a Pong with an n-byte payload,
// V = roundUp(4+n, 8), P = V - roundUp(4+n, 4) (0 or 4):
//
//	off   size content
//	  0   4    root uoffset = 16                 -> Message table at 16
//	  4   4    "GIPC"                            file identifier
//	  8   8    Message vtable: 8, 12, 7, 8       size, inline size, body_type@+7, body@+8
//	 16   4    soffset = 8                       -> Message vtable at 8
//	 20   3    0                                 padding
//	 23   1    body_type = 2 (Pong)
//	 24   4    body uoffset = 16                 -> Pong table at 40
//	 28  12    Pong vtable: 12, 32+P, 24, 16, 8, 4
//	                                             seq@+24 ping_sent_ns@+16 received_ns@+8 payload@+4
//	 40   4    soffset = 12                      -> Pong vtable at 28
//	 44   4    payload uoffset = 28+P            -> vector at 72+P
//	 48   8    received_ns
//	 56   8    ping_sent_ns
//	 64   8    seq
//	 72   P    0                                 padding (the builder counts it in the inline size)
//	72+P  4    n                                 vector length
//	76+P  n    payload
//	 ...       0 up to 72+V                      padding
//
// A Ping is the same with one field fewer and a two-byte pad, so that its
// 10-byte vtable ends at the 8-aligned table:
//
//	off   size content
//	  0   4    root uoffset = 16
//	  4   4    "GIPC"
//	  8   8    Message vtable: 8, 14, 7, 8       (inline size covers the pad at 28)
//	 16   4    soffset = 8
//	 20   3    0
//	 23   1    body_type = 1 (Ping)
//	 24   4    body uoffset = 16                 -> Ping table at 40
//	 28   2    0                                 padding
//	 30  10    Ping vtable: 10, 24+P, 16, 8, 4   seq@+16 sent_ns@+8 payload@+4
//	 40   4    soffset = 10                      -> Ping vtable at 30
//	 44   4    payload uoffset = 20+P            -> vector at 64+P
//	 48   8    sent_ns
//	 56   8    seq
//	 64   P    0
//	64+P  4    n
//	68+P  n    payload
//	 ...       0 up to 64+V
const (
	rootTablePos    = 16 // Message table
	msgVTablePos    = 8
	bodyTypePos     = 23
	bodyOffsetPos   = 24
	bodyTablePos    = 40 // Ping or Pong table
	payloadOffPos   = 44 // the body table's payload uoffset
	pongVTablePos   = 28
	pingVTablePos   = 30
	pongFixedSize   = 72 // everything before the payload vector's padding
	pingFixedSize   = 64
	pongInlineBase  = 32 // Pong table inline size without P
	pingInlineBase  = 24
	pongMsgInline   = 12 // Message table inline size (Pong)
	pingMsgInline   = 14 // Message table inline size (Ping; covers the 2-byte pad)
	pingSeqPos      = 56
	pingSentNsPos   = 48
	pongSeqPos      = 64
	pongPingSentPos = 56
	pongRecvPos     = 48
)

func roundUp(n, to int) int { return (n + to - 1) &^ (to - 1) }

// vectorBytes returns V and P of the diagrams above for an n-byte payload.
func vectorBytes(n int) (v, p int) {
	v = roundUp(sizeUOffset+n, 8)
	return v, v - roundUp(sizeUOffset+n, 4)
}

// PingSize returns the size in bytes of the Ping message WritePing and
// AppendPing write for a payload of payloadLen bytes: a multiple of 8.
// It returns -1 when payloadLen is negative or larger than MaxPayload.
func PingSize(payloadLen int) int {
	if payloadLen < 0 || payloadLen > MaxPayload {
		return -1
	}
	v, _ := vectorBytes(payloadLen)
	return pingFixedSize + v
}

// PongSize returns the size in bytes of the Pong message WritePong and
// AppendPong write for a payload of payloadLen bytes: a multiple of 8.
// It returns -1 when payloadLen is negative or larger than MaxPayload.
func PongSize(payloadLen int) int {
	if payloadLen < 0 || payloadLen > MaxPayload {
		return -1
	}
	v, _ := vectorBytes(payloadLen)
	return pongFixedSize + v
}

var le = binary.LittleEndian

// writeHeader writes bytes 0..28 (root offset, identifier, Message vtable
// and table) for a body of type t whose Message inline size is inline.
func writeHeader(dst []byte, t fb.Body, inline uint16) {
	_ = dst[bodyTablePos-1] // one bounds check for the fixed part
	le.PutUint32(dst[0:], rootTablePos)
	copy(dst[4:8], identifier[:])
	le.PutUint16(dst[msgVTablePos:], 8) // vtable size: 2 fields
	le.PutUint16(dst[msgVTablePos+2:], inline)
	le.PutUint16(dst[msgVTablePos+4:], bodyTypePos-rootTablePos)
	le.PutUint16(dst[msgVTablePos+6:], bodyOffsetPos-rootTablePos)
	le.PutUint32(dst[rootTablePos:], rootTablePos-msgVTablePos) // soffset
	dst[20], dst[21], dst[22] = 0, 0, 0
	dst[bodyTypePos] = byte(t)
	le.PutUint32(dst[bodyOffsetPos:], bodyTablePos-bodyOffsetPos)
}

// writeVector writes the payload vector at fixed (the end of the body
// table) and zeroes the padding around it; total is the message size.
func writeVector(dst []byte, fixed, p int, payload []byte, total int) {
	clear(dst[fixed : fixed+p])
	le.PutUint32(dst[fixed+p:], uint32(len(payload)))
	end := fixed + p + sizeUOffset + copy(dst[fixed+p+sizeUOffset:], payload)
	clear(dst[end:total])
}

// WritePing writes a Message whose body is a Ping into dst[:PingSize(len(payload))]
// and returns that size. It does not allocate, writes nothing past the
// size, and overwrites every byte before it (padding is zeroed), so dst may
// hold garbage, e.g. a reused ring slot. Readers must be given the message
// from its start (dst[:n]): offsets and alignment are relative to it.
// It fails with ErrShortBuffer when dst is too short and with
// ErrPayloadTooLarge when the payload is longer than MaxPayload.
func WritePing(dst []byte, seq uint64, sentNs int64, payload []byte) (int, error) {
	total := PingSize(len(payload))
	if total < 0 {
		return 0, ErrPayloadTooLarge
	}
	if len(dst) < total {
		return 0, ErrShortBuffer
	}
	_, p := vectorBytes(len(payload))
	writeHeader(dst, fb.BodyPing, pingMsgInline)
	dst[28], dst[29] = 0, 0
	vt := dst[pingVTablePos:bodyTablePos]
	le.PutUint16(vt[0:], 10) // vtable size: 3 fields
	le.PutUint16(vt[2:], uint16(pingInlineBase+p))
	le.PutUint16(vt[4:], pingSeqPos-bodyTablePos)
	le.PutUint16(vt[6:], pingSentNsPos-bodyTablePos)
	le.PutUint16(vt[8:], payloadOffPos-bodyTablePos)
	le.PutUint32(dst[bodyTablePos:], bodyTablePos-pingVTablePos) // soffset
	le.PutUint32(dst[payloadOffPos:], uint32(pingFixedSize+p-payloadOffPos))
	le.PutUint64(dst[pingSentNsPos:], uint64(sentNs))
	le.PutUint64(dst[pingSeqPos:], seq)
	writeVector(dst, pingFixedSize, p, payload, total)
	return total, nil
}

// WritePong writes a Message whose body is a Pong into dst[:PongSize(len(payload))]
// and returns that size, with the same guarantees as WritePing: no
// allocation, no write past the size, padding zeroed. To answer a Ping in
// place: reserve PongSize(len(ping.Payload())) bytes and call
// WritePong(slot, ping.Seq(), ping.SentNs(), now, ping.Payload()).
// payload must not overlap dst[:PongSize(len(payload))] (the Ping being
// answered is in the other direction's ring, so it does not).
func WritePong(dst []byte, seq uint64, pingSentNs, receivedNs int64, payload []byte) (int, error) {
	total := PongSize(len(payload))
	if total < 0 {
		return 0, ErrPayloadTooLarge
	}
	if len(dst) < total {
		return 0, ErrShortBuffer
	}
	_, p := vectorBytes(len(payload))
	writeHeader(dst, fb.BodyPong, pongMsgInline)
	vt := dst[pongVTablePos:bodyTablePos]
	le.PutUint16(vt[0:], 12) // vtable size: 4 fields
	le.PutUint16(vt[2:], uint16(pongInlineBase+p))
	le.PutUint16(vt[4:], pongSeqPos-bodyTablePos)
	le.PutUint16(vt[6:], pongPingSentPos-bodyTablePos)
	le.PutUint16(vt[8:], pongRecvPos-bodyTablePos)
	le.PutUint16(vt[10:], payloadOffPos-bodyTablePos)
	le.PutUint32(dst[bodyTablePos:], bodyTablePos-pongVTablePos) // soffset
	le.PutUint32(dst[payloadOffPos:], uint32(pongFixedSize+p-payloadOffPos))
	le.PutUint64(dst[pongRecvPos:], uint64(receivedNs))
	le.PutUint64(dst[pongPingSentPos:], uint64(pingSentNs))
	le.PutUint64(dst[pongSeqPos:], seq)
	writeVector(dst, pongFixedSize, p, payload, total)
	return total, nil
}

// grow returns dst extended by n bytes, reallocating only when cap is short.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst[:len(dst)+n]
	}
	out := make([]byte, len(dst)+n, 2*cap(dst)+n)
	copy(out, dst)
	return out
}

// AppendPing appends a Message whose body is a Ping to dst (as WritePing)
// and returns the extended slice; it allocates only when dst's capacity is
// short. Offsets in the message are relative to its own start: readers
// must be given the appended part, dst[len(dst before):], not dst.
// It panics if the payload is longer than MaxPayload.
func AppendPing(dst []byte, seq uint64, sentNs int64, payload []byte) []byte {
	n := PingSize(len(payload))
	if n < 0 {
		panic(ErrPayloadTooLarge)
	}
	start := len(dst)
	dst = grow(dst, n)
	_, _ = WritePing(dst[start:], seq, sentNs, payload)
	return dst
}

// AppendPong appends a Message whose body is a Pong to dst (as WritePong);
// see AppendPing.
func AppendPong(dst []byte, seq uint64, pingSentNs, receivedNs int64, payload []byte) []byte {
	n := PongSize(len(payload))
	if n < 0 {
		panic(ErrPayloadTooLarge)
	}
	start := len(dst)
	dst = grow(dst, n)
	_, _ = WritePong(dst[start:], seq, pingSentNs, receivedNs, payload)
	return dst
}
