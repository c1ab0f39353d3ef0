// Package layout is the single definition of the bytes of a goipc segment,
// layout version 2: the offsets, sizes and magic words that the core
// (goipc/), `goipc stat` (internal/statread) and the CLI's tests all read
// and write. docs/LAYOUT.md describes the same bytes for other languages;
// layout_test.go here checks every offset against a mirror struct, and
// goipc/layout_test.go checks them against a live segment. All integers
// are little-endian.
//
// It is internal, and at the module root so that every package of the
// module may import it; other languages restate these values from
// docs/LAYOUT.md and check them against live connections (interop_tests/).
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
package layout

const (
	// Version is the layout version this package describes, written at
	// OffLayoutVersion; a segment with another one is not read.
	Version = 2
	// ProtocolVersion is the protocol (handshake, frame kinds, calls: see
	// docs/PROTOCOL.md) a creator records at OffProtoVersion.
	ProtocolVersion = 2

	Magic = 0x4d48534350494f47 // "GOIPCSHM" read as a little-endian u64
	Ready = 0x59444552         // "REDY" read as a little-endian u32

	// The header.
	OffMagic         = 0x000
	OffLayoutVersion = 0x008
	OffControlSize   = 0x00C
	OffSegmentSize   = 0x010
	OffMaxMessage    = 0x018
	OffFlags         = 0x01C
	OffCreatorPID    = 0x020
	OffAcceptorPID   = 0x024
	OffRing0DataOff  = 0x028
	OffRing0Cap      = 0x030
	OffRing1DataOff  = 0x038
	OffRing1Cap      = 0x040
	OffCreatedNs     = 0x048
	OffProtoVersion  = 0x050
	OffReady         = 0x07C
	OffRing0Control  = 0x080
	OffRing1Control  = 0x180
	OffPathLen       = 0x280
	OffPath          = 0x284
	MaxPathBytes     = 108

	// ControlSize is the header and both control blocks, padded: ring 0's
	// data starts here.
	ControlSize     = 0x1000
	RingControlSize = 0x100
	CacheBlock      = 128

	// A ring control block, relative to its start.
	OffCtlHead      = 0x00
	OffCtlDataEC    = 0x08
	OffCtlProdMsgs  = 0x10
	OffCtlProdBytes = 0x18
	OffCtlProdParks = 0x20
	OffCtlProdWakes = 0x28
	OffCtlTail      = 0x80
	OffCtlSpaceEC   = 0x88
	OffCtlConsMsgs  = 0x90
	OffCtlConsBytes = 0x98
	OffCtlConsParks = 0xA0
	OffCtlConsWakes = 0xA8

	// An eventcount word.
	ECEpochHalf   = 4 // byte offset of the epoch (futex word) in an eventcount
	ECWaitersMask = 0x7fffffff
	ECDoorbell    = 1 << 31

	// A frame in ring data.
	FrameHeaderSize  = 8
	FrameAlign       = 8
	OffFrameLength   = 0
	OffFrameKind     = 4
	FrameKindMessage = 0
	FrameKindPadding = 1
	FrameKindRequest = 2
	FrameKindReply   = 3
	CallIDSize       = 8 // the u64 call id that starts a call frame's payload

	// MinRingSize and MaxRingSize bound a ring's capacity (a power of two).
	MinRingSize = 4096
	MaxRingSize = 1 << 30
)

// FrameSize is the ring space a message of n payload bytes takes.
func FrameSize(n uint64) uint64 {
	return (FrameHeaderSize + n + FrameAlign - 1) &^ (FrameAlign - 1)
}

// ValidRingSize reports whether c is a ring capacity a segment may have.
func ValidRingSize(c uint64) bool {
	return c >= MinRingSize && c <= MaxRingSize && c&(c-1) == 0
}
