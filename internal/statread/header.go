package statread

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Layout version 2 (goipc/layout.go is the definition).
const (
	LayoutVersion = 2
	// ControlSize is the part of a segment this package reads: the header
	// and both rings' control blocks.
	ControlSize = 0x1000

	segMagic = 0x4d48534350494f47 // "GOIPCSHM", little-endian
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

	offCtlHead      = 0x00
	offCtlDataEC    = 0x08
	offCtlProdMsgs  = 0x10
	offCtlProdBytes = 0x18
	offCtlProdParks = 0x20
	offCtlProdWakes = 0x28
	offCtlTail      = 0x80
	offCtlSpaceEC   = 0x88
	offCtlConsMsgs  = 0x90
	offCtlConsBytes = 0x98
	offCtlConsParks = 0xA0
	offCtlConsWakes = 0xA8

	// An eventcount's low 32 bits are its futex waiters (bits 0-30) and
	// its doorbell flag (bit 31): non-zero means a side is parked on it.
	ecParkedMask = 0xffffffff

	minRingSize = 4096
	maxRingSize = 1 << 30
	frameHeader = 8
	frameAlign  = 8
)

// Reasons a control area is not read. Each error ParseControl returns
// wraps exactly one of them.
var (
	ErrNotSegment   = errors.New("not a goipc segment")
	ErrVersion      = errors.New("unsupported segment layout version")
	ErrNotReady     = errors.New("segment not initialised yet")
	ErrTruncated    = errors.New("segment truncated")
	ErrInconsistent = errors.New("segment header inconsistent")
)

// Header is a decoded, validated segment control area.
type Header struct {
	LayoutVersion   uint32
	ProtocolVersion uint32
	SegmentSize     uint64
	MaxMessageSize  uint32
	CreatorPID      uint32 // the dialer, in its own pid namespace
	AcceptorPID     uint32 // the listener; 0 until it accepted
	Created         time.Time
	Path            string // raw bytes from the segment: may be anything
	// Rings[0] carries dialer->listener messages, Rings[1] the reverse.
	Rings [2]Ring
}

// Ring is one ring's capacity and control words as read.
type Ring struct {
	Capacity uint64
	Head     uint64 // bytes ever published
	Tail     uint64 // bytes ever consumed
	DataEC   uint64 // the consumer parks here, waiting for data
	SpaceEC  uint64 // the producer parks here, waiting for space

	ProducerMessages, ProducerBytes, ProducerParks, ProducerWakeups uint64
	ConsumerMessages, ConsumerBytes, ConsumerParks, ConsumerWakeups uint64
}

// InUse is the number of ring bytes published and not yet consumed,
// clamped to the capacity (either side's word may be anything).
func (r Ring) InUse() uint64 {
	if r.Head < r.Tail {
		return 0
	}
	return min(r.Head-r.Tail, r.Capacity)
}

// ConsumerParked reports whether the ring's consumer is parked now,
// waiting for a message.
func (r Ring) ConsumerParked() bool { return r.DataEC&ecParkedMask != 0 }

// ProducerParked reports whether the ring's producer is parked now,
// waiting for space.
func (r Ring) ProducerParked() bool { return r.SpaceEC&ecParkedMask != 0 }

// ParseControl decodes the control area ctl (the first bytes of a segment,
// up to ControlSize) of a segment file of fileSize bytes. It checks magic,
// layout version, ready word, sizes and ring geometry the way a peer does
// before mapping, and returns an error wrapping one of the Err values
// above for anything else. It never panics, whatever ctl holds.
func ParseControl(ctl []byte, fileSize int64) (Header, error) {
	le := binary.LittleEndian
	if len(ctl) < offMagic+8 {
		return Header{}, fmt.Errorf("%w: %d bytes, too short for a magic", ErrNotSegment, len(ctl))
	}
	if m := le.Uint64(ctl[offMagic:]); m != segMagic {
		return Header{}, fmt.Errorf("%w: magic %#x", ErrNotSegment, m)
	}
	if len(ctl) < ControlSize {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than its %d-byte control area", ErrTruncated, len(ctl), ControlSize)
	}
	if v := le.Uint32(ctl[offLayoutVersion:]); v != LayoutVersion {
		return Header{}, fmt.Errorf("%w: version %d, this goipc reads version %d", ErrVersion, v, LayoutVersion)
	}
	if r := le.Uint32(ctl[offReady:]); r != segReady {
		return Header{}, fmt.Errorf("%w: ready word %#x", ErrNotReady, r)
	}
	h := Header{
		LayoutVersion:   LayoutVersion,
		ProtocolVersion: le.Uint32(ctl[offProtoVersion:]),
		SegmentSize:     le.Uint64(ctl[offSegmentSize:]),
		MaxMessageSize:  le.Uint32(ctl[offMaxMessage:]),
		CreatorPID:      le.Uint32(ctl[offCreatorPID:]),
		AcceptorPID:     le.Uint32(ctl[offAcceptorPID:]),
	}
	if ns := int64(le.Uint64(ctl[offCreatedNs:])); ns > 0 {
		h.Created = time.Unix(0, ns)
	}
	ctlSize := le.Uint32(ctl[offControlSize:])
	flags := le.Uint32(ctl[offFlags:])
	off0, cap0 := le.Uint64(ctl[offRing0DataOff:]), le.Uint64(ctl[offRing0Cap:])
	off1, cap1 := le.Uint64(ctl[offRing1DataOff:]), le.Uint64(ctl[offRing1Cap:])
	pathLen := le.Uint32(ctl[offPathLen:])
	switch {
	case fileSize < 0 || uint64(fileSize) < h.SegmentSize:
		return Header{}, fmt.Errorf("%w: the file is %d bytes, its header says %d", ErrTruncated, fileSize, h.SegmentSize)
	case uint64(fileSize) != h.SegmentSize:
		return Header{}, fmt.Errorf("%w: the file is %d bytes, its header says %d", ErrInconsistent, fileSize, h.SegmentSize)
	case ctlSize != ControlSize:
		return Header{}, fmt.Errorf("%w: control size %d, expected %d", ErrInconsistent, ctlSize, ControlSize)
	case flags != 0:
		return Header{}, fmt.Errorf("%w: unknown flags %#x", ErrInconsistent, flags)
	case !validRingSize(cap0) || !validRingSize(cap1):
		return Header{}, fmt.Errorf("%w: ring capacities %d and %d", ErrInconsistent, cap0, cap1)
	case off0 != ControlSize || off1 != off0+cap0 || off1+cap1 != h.SegmentSize:
		return Header{}, fmt.Errorf("%w: rings %d+%d and %d+%d do not tile %d bytes", ErrInconsistent, off0, cap0, off1, cap1, h.SegmentSize)
	case uint64(h.MaxMessageSize)+frameHeader > min(cap0, cap1):
		return Header{}, fmt.Errorf("%w: max message size %d does not fit rings of %d and %d bytes", ErrInconsistent, h.MaxMessageSize, cap0, cap1)
	case pathLen > maxPathBytes:
		return Header{}, fmt.Errorf("%w: socket path length %d > %d", ErrInconsistent, pathLen, maxPathBytes)
	}
	h.Path = string(ctl[offPath : offPath+pathLen])
	h.Rings[0] = parseRing(ctl[offRing0Control:], cap0)
	h.Rings[1] = parseRing(ctl[offRing1Control:], cap1)
	return h, nil
}

func parseRing(c []byte, capacity uint64) Ring {
	le := binary.LittleEndian
	u := func(off int) uint64 { return le.Uint64(c[off:]) }
	return Ring{
		Capacity:         capacity,
		Head:             u(offCtlHead),
		Tail:             u(offCtlTail),
		DataEC:           u(offCtlDataEC),
		SpaceEC:          u(offCtlSpaceEC),
		ProducerMessages: u(offCtlProdMsgs),
		ProducerBytes:    u(offCtlProdBytes),
		ProducerParks:    u(offCtlProdParks),
		ProducerWakeups:  u(offCtlProdWakes),
		ConsumerMessages: u(offCtlConsMsgs),
		ConsumerBytes:    u(offCtlConsBytes),
		ConsumerParks:    u(offCtlConsParks),
		ConsumerWakeups:  u(offCtlConsWakes),
	}
}

func validRingSize(c uint64) bool {
	return c >= minRingSize && c <= maxRingSize && c&(c-1) == 0
}
