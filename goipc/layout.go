package goipc

import "github.com/goipc/goipc/internal/layout"

// The bytes of a segment are defined once, in internal/layout (the diagram
// is there; docs/LAYOUT.md describes them for other languages). This file
// exports the part of it that is API and gives the hot-path files short
// names for the constants they use; it defines no value of its own but the
// defaults.
const (
	LayoutVersion   = layout.Version
	ProtocolVersion = layout.ProtocolVersion

	// MinRingSize and MaxRingSize bound a ring's capacity (a power of two).
	MinRingSize = layout.MinRingSize
	MaxRingSize = layout.MaxRingSize
	// DefaultRingSize holds several maximum-size messages per direction.
	DefaultRingSize = 4 << 20
	// DefaultMaxMessageSize is the largest message a default connection carries.
	DefaultMaxMessageSize = 1 << 20

	controlSize      = layout.ControlSize
	cacheBlock       = layout.CacheBlock
	ecEpochHalf      = layout.ECEpochHalf
	ecWaitersMask    = layout.ECWaitersMask
	ecDoorbell       = layout.ECDoorbell
	frameHeaderSize  = layout.FrameHeaderSize
	frameAlign       = layout.FrameAlign
	offFrameLength   = layout.OffFrameLength
	offFrameKind     = layout.OffFrameKind
	frameKindMessage = layout.FrameKindMessage
	frameKindPadding = layout.FrameKindPadding
	frameKindRequest = layout.FrameKindRequest
	frameKindReply   = layout.FrameKindReply
	callIDSize       = layout.CallIDSize
)

// frameSize is the ring space a message of n payload bytes takes.
func frameSize(n uint64) uint64 { return layout.FrameSize(n) }
