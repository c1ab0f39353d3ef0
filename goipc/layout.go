package goipc

// Layout version 2 of a goipc segment. This file is the single definition
// of the bytes; docs/LAYOUT.md describes them for other languages and
// layout_test.go asserts every offset. All integers are little-endian.
//
// A segment is one sealed memfd, created by the dialer and mapped by both
// peers. Ring 0 carries dialer->listener messages, ring 1 the reverse.
//
//	offset  size  field                      written by
//	------  ----  -------------------------  --------------------------------
//	0x000   8     magic "GOIPCSHM"           creator, before ready
//	0x008   4     layout version (2)         creator, before ready
//	0x00C   4     control size (0x1000)      creator, before ready
//	0x010   8     segment size               creator, before ready
//	0x018   4     max message size           creator, before ready
//	0x01C   4     flags (0)                  creator, before ready
//	0x020   4     creator (dialer) pid       creator, before ready
//	0x024   4     acceptor (listener) pid    listener, when it accepts
//	0x028   8     ring 0 data offset         creator, before ready
//	0x030   8     ring 0 capacity            creator, before ready
//	0x038   8     ring 1 data offset         creator, before ready
//	0x040   8     ring 1 capacity            creator, before ready
//	0x048   8     created, unix nanoseconds  creator, before ready
//	0x050   4     protocol version           creator, before ready
//	0x054   40    reserved (0)
//	0x07C   4     ready ("REDY")             creator, LAST
//	0x080   256   ring 0 control block       (see below)
//	0x180   256   ring 1 control block       (see below)
//	0x280   4     socket path length         creator, before ready
//	0x284   108   socket path (no NUL)       creator, before ready
//	0x2F0   ...   reserved up to control size
//	0x1000  cap0  ring 0 data
//	...     cap1  ring 1 data (at ring 0 data offset + cap0)
//
// The pids, the time and the path are informational (goipc stat shows
// them); nothing in the protocol depends on them.
//
// Ring control block (256 bytes; the producer's and the consumer's words sit
// on separate 128-byte blocks, because adjacent-line prefetch makes 64-byte
// separation too little):
//
//	+0x00   8     head: bytes ever published     producer stores, consumer loads
//	+0x08   8     data eventcount                consumer (waiters), producer (epoch)
//	+0x10   8     messages published             producer (plain store; stat reads)
//	+0x18   8     payload bytes published        producer
//	+0x20   8     times the producer waited for space (parked)   producer
//	+0x28   8     wakeups the producer sent (futex or doorbell)  producer
//	+0x80   8     tail: bytes ever consumed      consumer stores, producer loads
//	+0x88   8     space eventcount               producer (waiters), consumer (epoch)
//	+0x90   8     messages consumed              consumer
//	+0x98   8     payload bytes consumed         consumer
//	+0xA0   8     times the consumer parked (waited for data)    consumer
//	+0xA8   8     wakeups the consumer sent                      consumer
//
// The counters sit on their writer's own block, next to the position it
// stores anyway, so they move no extra cache line between the two sides.
// They are statistics: each side keeps its own authoritative copy in
// process memory and never reads the peer's.
//
// An eventcount is one 64-bit word: futex waiters in bits 0-30, the
// doorbell flag in bit 31 (a waiter that sleeps off the futex asks to be
// rung through the socket), an epoch in bits 32-63. The futex word is the
// epoch, the 32-bit half at +4.
//
// Ring data holds frames. A frame is an 8-byte header [u32 length][u32 kind]
// followed by length payload bytes, padded so that the next frame starts
// 8-byte aligned. Frames never wrap: when a frame does not fit before the
// end of the ring, a padding frame (kind 1) fills the rest of the ring and
// the frame starts at offset 0, so every payload is contiguous. Kinds 2
// and 3 (call request and reply, see docs/PROTOCOL.md) carry a u64 call id
// in their first 8 payload bytes.
const (
	LayoutVersion   = 2
	ProtocolVersion = 2

	segMagic = 0x4d48534350494f47 // "GOIPCSHM" read as a little-endian u64
	segReady = 0x59444552         // "REDY"

	offMagic         = 0x000
	offLayoutVersion = 0x008
	offControlSize   = 0x00C
	offSegmentSize   = 0x010
	offMaxMessage    = 0x018
	offFlags         = 0x01C
	offCreatorPID    = 0x020
	offAcceptorPID   = 0x024
	offRing0DataOff  = 0x028
	offRing0Cap      = 0x030
	offRing1DataOff  = 0x038
	offRing1Cap      = 0x040
	offCreatedNs     = 0x048
	offProtoVersion  = 0x050
	offReady         = 0x07C
	offRing0Control  = 0x080
	offRing1Control  = 0x180
	offPathLen       = 0x280
	offPath          = 0x284
	maxPathBytes     = 108

	controlSize      = 0x1000
	ringControlSize  = 0x100
	cacheBlock       = 128
	offCtlHead       = 0x00
	offCtlDataEC     = 0x08
	offCtlProdMsgs   = 0x10
	offCtlProdBytes  = 0x18
	offCtlProdParks  = 0x20
	offCtlProdWakes  = 0x28
	offCtlTail       = 0x80
	offCtlSpaceEC    = 0x88
	offCtlConsMsgs   = 0x90
	offCtlConsBytes  = 0x98
	offCtlConsParks  = 0xA0
	offCtlConsWakes  = 0xA8
	ecEpochHalf      = 4 // byte offset of the epoch (futex word) in an eventcount
	ecWaitersMask    = 0x7fffffff
	ecDoorbell       = 1 << 31
	frameHeaderSize  = 8
	frameAlign       = 8
	offFrameLength   = 0
	offFrameKind     = 4
	frameKindMessage = 0
	frameKindPadding = 1
	frameKindRequest = 2
	frameKindReply   = 3
	callIDSize       = 8 // the u64 call id that starts a call frame's payload

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
