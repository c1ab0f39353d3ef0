package layout

import (
	"encoding/binary"
	"testing"
	"unsafe"
)

// segmentHeader mirrors the documented v2 header, so that the compiler
// computes the offsets the constants claim.
type segmentHeader struct {
	Magic         uint64
	LayoutVersion uint32
	ControlSize   uint32
	SegmentSize   uint64
	MaxMessage    uint32
	Flags         uint32
	CreatorPID    uint32
	AcceptorPID   uint32
	Ring0DataOff  uint64
	Ring0Cap      uint64
	Ring1DataOff  uint64
	Ring1Cap      uint64
	CreatedNs     uint64
	ProtoVersion  uint32
	_             [40]byte
	Ready         uint32
	Ring0Control  ringControl
	Ring1Control  ringControl
	PathLen       uint32
	Path          [MaxPathBytes]byte
}

type ringControl struct {
	Head      uint64
	DataEC    uint64
	ProdMsgs  uint64
	ProdBytes uint64
	ProdParks uint64
	ProdWakes uint64
	_         [CacheBlock - 48]byte
	Tail      uint64
	SpaceEC   uint64
	ConsMsgs  uint64
	ConsBytes uint64
	ConsParks uint64
	ConsWakes uint64
	_         [CacheBlock - 48]byte
}

func TestLayoutOffsets(t *testing.T) {
	var h segmentHeader
	var r ringControl
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"magic", unsafe.Offsetof(h.Magic), OffMagic},
		{"layout version", unsafe.Offsetof(h.LayoutVersion), OffLayoutVersion},
		{"control size", unsafe.Offsetof(h.ControlSize), OffControlSize},
		{"segment size", unsafe.Offsetof(h.SegmentSize), OffSegmentSize},
		{"max message", unsafe.Offsetof(h.MaxMessage), OffMaxMessage},
		{"flags", unsafe.Offsetof(h.Flags), OffFlags},
		{"creator pid", unsafe.Offsetof(h.CreatorPID), OffCreatorPID},
		{"acceptor pid", unsafe.Offsetof(h.AcceptorPID), OffAcceptorPID},
		{"created ns", unsafe.Offsetof(h.CreatedNs), OffCreatedNs},
		{"protocol version", unsafe.Offsetof(h.ProtoVersion), OffProtoVersion},
		{"path length", unsafe.Offsetof(h.PathLen), OffPathLen},
		{"path", unsafe.Offsetof(h.Path), OffPath},
		{"ring 0 data offset", unsafe.Offsetof(h.Ring0DataOff), OffRing0DataOff},
		{"ring 0 capacity", unsafe.Offsetof(h.Ring0Cap), OffRing0Cap},
		{"ring 1 data offset", unsafe.Offsetof(h.Ring1DataOff), OffRing1DataOff},
		{"ring 1 capacity", unsafe.Offsetof(h.Ring1Cap), OffRing1Cap},
		{"ready", unsafe.Offsetof(h.Ready), OffReady},
		{"ring 0 control", unsafe.Offsetof(h.Ring0Control), OffRing0Control},
		{"ring 1 control", unsafe.Offsetof(h.Ring1Control), OffRing1Control},
		{"head", unsafe.Offsetof(r.Head), OffCtlHead},
		{"data eventcount", unsafe.Offsetof(r.DataEC), OffCtlDataEC},
		{"producer messages", unsafe.Offsetof(r.ProdMsgs), OffCtlProdMsgs},
		{"producer bytes", unsafe.Offsetof(r.ProdBytes), OffCtlProdBytes},
		{"producer parks", unsafe.Offsetof(r.ProdParks), OffCtlProdParks},
		{"producer wakes", unsafe.Offsetof(r.ProdWakes), OffCtlProdWakes},
		{"tail", unsafe.Offsetof(r.Tail), OffCtlTail},
		{"space eventcount", unsafe.Offsetof(r.SpaceEC), OffCtlSpaceEC},
		{"consumer messages", unsafe.Offsetof(r.ConsMsgs), OffCtlConsMsgs},
		{"consumer bytes", unsafe.Offsetof(r.ConsBytes), OffCtlConsBytes},
		{"consumer parks", unsafe.Offsetof(r.ConsParks), OffCtlConsParks},
		{"consumer wakes", unsafe.Offsetof(r.ConsWakes), OffCtlConsWakes},
		{"ring control size", unsafe.Sizeof(r), RingControlSize},
		{"header+controls+path fit the control area", unsafe.Sizeof(h), OffPath + MaxPathBytes},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: offset %#x, layout says %#x", c.name, c.got, c.want)
		}
	}
	if unsafe.Sizeof(h) > ControlSize {
		t.Errorf("header is %d bytes, control area %d", unsafe.Sizeof(h), ControlSize)
	}
	// Producer and consumer words must sit on different 128-byte blocks.
	if OffCtlHead/CacheBlock == OffCtlTail/CacheBlock {
		t.Error("head and tail share a cache block")
	}
	if OffRing0Control%CacheBlock != 0 || OffRing1Control%CacheBlock != 0 {
		t.Error("ring control blocks are not 128-byte aligned")
	}
}

func TestLayoutMagicBytes(t *testing.T) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], Magic)
	if string(b[:]) != "GOIPCSHM" {
		t.Errorf("magic bytes %q", b)
	}
	binary.LittleEndian.PutUint32(b[:], Ready)
	if string(b[:4]) != "REDY" {
		t.Errorf("ready bytes %q", b[:4])
	}
}

func TestFrameSize(t *testing.T) {
	for n, want := range map[uint64]uint64{0: 8, 1: 16, 7: 16, 8: 16, 9: 24, 64: 72, 4088: 4096} {
		if got := FrameSize(n); got != want {
			t.Errorf("FrameSize(%d) = %d, want %d", n, got, want)
		}
	}
}
