package statread

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/goipc/goipc/internal/layout"
)

// The layout this package reads is internal/layout's.
const (
	LayoutVersion = layout.Version
	// ControlSize is the part of a segment this package reads: the header
	// and both rings' control blocks.
	ControlSize = layout.ControlSize

	// An eventcount's low 32 bits are its futex waiters and its doorbell
	// flag: non-zero means a side is parked on it.
	ecParkedMask = layout.ECWaitersMask | layout.ECDoorbell
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
	if len(ctl) < layout.OffMagic+8 {
		return Header{}, fmt.Errorf("%w: %d bytes, too short for a magic", ErrNotSegment, len(ctl))
	}
	if m := le.Uint64(ctl[layout.OffMagic:]); m != layout.Magic {
		return Header{}, fmt.Errorf("%w: magic %#x", ErrNotSegment, m)
	}
	if len(ctl) < ControlSize {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than its %d-byte control area", ErrTruncated, len(ctl), ControlSize)
	}
	if v := le.Uint32(ctl[layout.OffLayoutVersion:]); v != LayoutVersion {
		return Header{}, fmt.Errorf("%w: version %d, this goipc reads version %d", ErrVersion, v, LayoutVersion)
	}
	if r := le.Uint32(ctl[layout.OffReady:]); r != layout.Ready {
		return Header{}, fmt.Errorf("%w: ready word %#x", ErrNotReady, r)
	}
	h := Header{
		LayoutVersion:   LayoutVersion,
		ProtocolVersion: le.Uint32(ctl[layout.OffProtoVersion:]),
		SegmentSize:     le.Uint64(ctl[layout.OffSegmentSize:]),
		MaxMessageSize:  le.Uint32(ctl[layout.OffMaxMessage:]),
		CreatorPID:      le.Uint32(ctl[layout.OffCreatorPID:]),
		AcceptorPID:     le.Uint32(ctl[layout.OffAcceptorPID:]),
	}
	if ns := int64(le.Uint64(ctl[layout.OffCreatedNs:])); ns > 0 {
		h.Created = time.Unix(0, ns)
	}
	ctlSize := le.Uint32(ctl[layout.OffControlSize:])
	flags := le.Uint32(ctl[layout.OffFlags:])
	off0, cap0 := le.Uint64(ctl[layout.OffRing0DataOff:]), le.Uint64(ctl[layout.OffRing0Cap:])
	off1, cap1 := le.Uint64(ctl[layout.OffRing1DataOff:]), le.Uint64(ctl[layout.OffRing1Cap:])
	pathLen := le.Uint32(ctl[layout.OffPathLen:])
	switch {
	case fileSize < 0 || uint64(fileSize) < h.SegmentSize:
		return Header{}, fmt.Errorf("%w: the file is %d bytes, its header says %d", ErrTruncated, fileSize, h.SegmentSize)
	case uint64(fileSize) != h.SegmentSize:
		return Header{}, fmt.Errorf("%w: the file is %d bytes, its header says %d", ErrInconsistent, fileSize, h.SegmentSize)
	case ctlSize != ControlSize:
		return Header{}, fmt.Errorf("%w: control size %d, expected %d", ErrInconsistent, ctlSize, ControlSize)
	case flags != 0:
		return Header{}, fmt.Errorf("%w: unknown flags %#x", ErrInconsistent, flags)
	case !layout.ValidRingSize(cap0) || !layout.ValidRingSize(cap1):
		return Header{}, fmt.Errorf("%w: ring capacities %d and %d", ErrInconsistent, cap0, cap1)
	case off0 != ControlSize || off1 != off0+cap0 || off1+cap1 != h.SegmentSize:
		return Header{}, fmt.Errorf("%w: rings %d+%d and %d+%d do not tile %d bytes", ErrInconsistent, off0, cap0, off1, cap1, h.SegmentSize)
	case layout.FrameSize(uint64(h.MaxMessageSize)) > min(cap0, cap1):
		return Header{}, fmt.Errorf("%w: max message size %d does not fit rings of %d and %d bytes", ErrInconsistent, h.MaxMessageSize, cap0, cap1)
	case pathLen > layout.MaxPathBytes:
		return Header{}, fmt.Errorf("%w: socket path length %d > %d", ErrInconsistent, pathLen, layout.MaxPathBytes)
	}
	h.Path = string(ctl[layout.OffPath : layout.OffPath+pathLen])
	h.Rings[0] = parseRing(ctl[layout.OffRing0Control:], cap0)
	h.Rings[1] = parseRing(ctl[layout.OffRing1Control:], cap1)
	return h, nil
}

func parseRing(c []byte, capacity uint64) Ring {
	le := binary.LittleEndian
	u := func(off int) uint64 { return le.Uint64(c[off:]) }
	return Ring{
		Capacity:         capacity,
		Head:             u(layout.OffCtlHead),
		Tail:             u(layout.OffCtlTail),
		DataEC:           u(layout.OffCtlDataEC),
		SpaceEC:          u(layout.OffCtlSpaceEC),
		ProducerMessages: u(layout.OffCtlProdMsgs),
		ProducerBytes:    u(layout.OffCtlProdBytes),
		ProducerParks:    u(layout.OffCtlProdParks),
		ProducerWakeups:  u(layout.OffCtlProdWakes),
		ConsumerMessages: u(layout.OffCtlConsMsgs),
		ConsumerBytes:    u(layout.OffCtlConsBytes),
		ConsumerParks:    u(layout.OffCtlConsParks),
		ConsumerWakeups:  u(layout.OffCtlConsWakes),
	}
}
