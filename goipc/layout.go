package goipc

// Layout version 1 of a goipc segment. This file is the single definition
// of the bytes; docs/LAYOUT.md describes them for other languages and
// layout_test.go asserts every offset. All integers are little-endian.
//
// A segment is one sealed memfd, created by the dialer and mapped by both
// peers. Ring 0 carries dialer->listener messages, ring 1 the reverse.
//
//	offset  size  field                      written by
//	------  ----  -------------------------  --------------------------------
//	0x000   8     magic "GOIPCSHM"           creator, before ready
//	0x008   4     layout version (1)         creator, before ready
//	0x00C   4     control size (0x1000)      creator, before ready
//	0x010   8     segment size               creator, before ready
//	0x018   4     max message size           creator, before ready
//	0x01C   4     flags (0)                  creator, before ready
//	0x020   4     creator pid                creator, before ready
//	0x024   4     reserved (0)
//	0x028   8     ring 0 data offset         creator, before ready
//	0x030   8     ring 0 capacity            creator, before ready
//	0x038   8     ring 1 data offset         creator, before ready
//	0x040   8     ring 1 capacity            creator, before ready
//	0x048   52    reserved (0)
//	0x07C   4     ready ("REDY")             creator, LAST
//	0x080   256   ring 0 control block       (see below)
//	0x180   256   ring 1 control block       (see below)
//	0x280   ...   reserved up to control size
//	0x1000  cap0  ring 0 data
//	...     cap1  ring 1 data (at ring 0 data offset + cap0)
//
// Ring control block (256 bytes; the producer's and the consumer's words sit
// on separate 128-byte blocks, because adjacent-line prefetch makes 64-byte
// separation too little):
//
//	+0x00   8     head: bytes ever published     producer stores, consumer loads
//	+0x08   8     data eventcount                consumer (waiters), producer (epoch)
//	+0x80   8     tail: bytes ever consumed      consumer stores, producer loads
//	+0x88   8     space eventcount               producer (waiters), consumer (epoch)
//
// An eventcount is one 64-bit word: waiters in the low 32 bits, an epoch in
// the high 32 bits. The futex word is the epoch, the 32-bit half at +4.
//
// Ring data holds frames. A frame is an 8-byte header [u32 length][u32 kind]
// followed by length payload bytes, padded so that the next frame starts
// 8-byte aligned. Frames never wrap: when a frame does not fit before the
// end of the ring, a padding frame (kind 1) fills the rest of the ring and
// the frame starts at offset 0, so every payload is contiguous.
const (
	LayoutVersion   = 1
	ProtocolVersion = 1

	segMagic = 0x4d48534350494f47 // "GOIPCSHM" read as a little-endian u64
	segReady = 0x59444552         // "REDY"

	offMagic         = 0x000
	offLayoutVersion = 0x008
	offControlSize   = 0x00C
	offSegmentSize   = 0x010
	offMaxMessage    = 0x018
	offFlags         = 0x01C
	offCreatorPID    = 0x020
	offRing0DataOff  = 0x028
	offRing0Cap      = 0x030
	offRing1DataOff  = 0x038
	offRing1Cap      = 0x040
	offReady         = 0x07C
	offRing0Control  = 0x080
	offRing1Control  = 0x180

	controlSize      = 0x1000
	ringControlSize  = 0x100
	cacheBlock       = 128
	offCtlHead       = 0x00
	offCtlDataEC     = 0x08
	offCtlTail       = 0x80
	offCtlSpaceEC    = 0x88
	ecEpochHalf      = 4 // byte offset of the epoch (futex word) in an eventcount
	frameHeaderSize  = 8
	frameAlign       = 8
	offFrameLength   = 0
	offFrameKind     = 4
	frameKindMessage = 0
	frameKindPadding = 1

	// MinRingSize and MaxRingSize bound a ring's capacity (a power of two).
	MinRingSize = 4096
	MaxRingSize = 1 << 30
	// DefaultRingSize holds several maximum-size messages per direction.
	DefaultRingSize = 4 << 20
	// DefaultMaxMessageSize is the largest message a default connection carries.
	DefaultMaxMessageSize = 1 << 20
)

// frameSize is the ring space a message of n payload bytes takes.
func frameSize(n uint64) uint64 {
	return (frameHeaderSize + n + frameAlign - 1) &^ (frameAlign - 1)
}
