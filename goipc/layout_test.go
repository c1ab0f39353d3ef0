package goipc

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
	Path          [maxPathBytes]byte
}

type ringControl struct {
	Head      uint64
	DataEC    uint64
	ProdMsgs  uint64
	ProdBytes uint64
	ProdParks uint64
	ProdWakes uint64
	_         [cacheBlock - 48]byte
	Tail      uint64
	SpaceEC   uint64
	ConsMsgs  uint64
	ConsBytes uint64
	ConsParks uint64
	ConsWakes uint64
	_         [cacheBlock - 48]byte
}

func TestLayoutOffsets(t *testing.T) {
	var h segmentHeader
	var r ringControl
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"magic", unsafe.Offsetof(h.Magic), offMagic},
		{"layout version", unsafe.Offsetof(h.LayoutVersion), offLayoutVersion},
		{"control size", unsafe.Offsetof(h.ControlSize), offControlSize},
		{"segment size", unsafe.Offsetof(h.SegmentSize), offSegmentSize},
		{"max message", unsafe.Offsetof(h.MaxMessage), offMaxMessage},
		{"flags", unsafe.Offsetof(h.Flags), offFlags},
		{"creator pid", unsafe.Offsetof(h.CreatorPID), offCreatorPID},
		{"acceptor pid", unsafe.Offsetof(h.AcceptorPID), offAcceptorPID},
		{"created ns", unsafe.Offsetof(h.CreatedNs), offCreatedNs},
		{"protocol version", unsafe.Offsetof(h.ProtoVersion), offProtoVersion},
		{"path length", unsafe.Offsetof(h.PathLen), offPathLen},
		{"path", unsafe.Offsetof(h.Path), offPath},
		{"ring 0 data offset", unsafe.Offsetof(h.Ring0DataOff), offRing0DataOff},
		{"ring 0 capacity", unsafe.Offsetof(h.Ring0Cap), offRing0Cap},
		{"ring 1 data offset", unsafe.Offsetof(h.Ring1DataOff), offRing1DataOff},
		{"ring 1 capacity", unsafe.Offsetof(h.Ring1Cap), offRing1Cap},
		{"ready", unsafe.Offsetof(h.Ready), offReady},
		{"ring 0 control", unsafe.Offsetof(h.Ring0Control), offRing0Control},
		{"ring 1 control", unsafe.Offsetof(h.Ring1Control), offRing1Control},
		{"head", unsafe.Offsetof(r.Head), offCtlHead},
		{"data eventcount", unsafe.Offsetof(r.DataEC), offCtlDataEC},
		{"producer messages", unsafe.Offsetof(r.ProdMsgs), offCtlProdMsgs},
		{"producer bytes", unsafe.Offsetof(r.ProdBytes), offCtlProdBytes},
		{"producer parks", unsafe.Offsetof(r.ProdParks), offCtlProdParks},
		{"producer wakes", unsafe.Offsetof(r.ProdWakes), offCtlProdWakes},
		{"tail", unsafe.Offsetof(r.Tail), offCtlTail},
		{"space eventcount", unsafe.Offsetof(r.SpaceEC), offCtlSpaceEC},
		{"consumer messages", unsafe.Offsetof(r.ConsMsgs), offCtlConsMsgs},
		{"consumer bytes", unsafe.Offsetof(r.ConsBytes), offCtlConsBytes},
		{"consumer parks", unsafe.Offsetof(r.ConsParks), offCtlConsParks},
		{"consumer wakes", unsafe.Offsetof(r.ConsWakes), offCtlConsWakes},
		{"ring control size", unsafe.Sizeof(r), ringControlSize},
		{"header+controls+path fit the control area", unsafe.Sizeof(h), offPath + maxPathBytes},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: offset %#x, layout says %#x", c.name, c.got, c.want)
		}
	}
	if unsafe.Sizeof(h) > controlSize {
		t.Errorf("header is %d bytes, control area %d", unsafe.Sizeof(h), controlSize)
	}
	// Producer and consumer words must sit on different 128-byte blocks.
	if offCtlHead/cacheBlock == offCtlTail/cacheBlock {
		t.Error("head and tail share a cache block")
	}
	if offRing0Control%cacheBlock != 0 || offRing1Control%cacheBlock != 0 {
		t.Error("ring control blocks are not 128-byte aligned")
	}
}

func TestLayoutMagicBytes(t *testing.T) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], segMagic)
	if string(b[:]) != "GOIPCSHM" {
		t.Errorf("magic bytes %q", b)
	}
	binary.LittleEndian.PutUint32(b[:], segReady)
	if string(b[:4]) != "REDY" {
		t.Errorf("ready bytes %q", b[:4])
	}
}

func TestFrameSize(t *testing.T) {
	for n, want := range map[uint64]uint64{0: 8, 1: 16, 7: 16, 8: 16, 9: 24, 64: 72, 4088: 4096} {
		if got := frameSize(n); got != want {
			t.Errorf("frameSize(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestSegmentHeaderWritten(t *testing.T) {
	seg := anonSegment(t, 8192, 1000)
	le := binary.LittleEndian
	m := seg.mem
	if le.Uint64(m[offSegmentSize:]) != uint64(len(m)) || le.Uint64(m[offRing1DataOff:]) != controlSize+8192 ||
		le.Uint32(m[offMaxMessage:]) != 1000 || le.Uint32(m[offReady:]) != segReady {
		t.Errorf("header fields wrong: % x", m[:128])
	}
}

func TestParseSegmentRejects(t *testing.T) {
	le := binary.LittleEndian
	cases := map[string]func(m []byte){
		"magic":        func(m []byte) { le.PutUint64(m[offMagic:], 1) },
		"version":      func(m []byte) { le.PutUint32(m[offLayoutVersion:], LayoutVersion-1) },
		"not ready":    func(m []byte) { le.PutUint32(m[offReady:], 0) },
		"control size": func(m []byte) { le.PutUint32(m[offControlSize:], 64) },
		"size":         func(m []byte) { le.PutUint64(m[offSegmentSize:], 1<<40) },
		"flags":        func(m []byte) { le.PutUint32(m[offFlags:], 1) },
		"cap not pow2": func(m []byte) { le.PutUint64(m[offRing0Cap:], 5000) },
		"overlap":      func(m []byte) { le.PutUint64(m[offRing1DataOff:], controlSize) },
		"max message":  func(m []byte) { le.PutUint32(m[offMaxMessage:], 1<<20) },
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			seg := anonSegment(t, 8192, 1000)
			corrupt(seg.mem)
			_, err := parseSegment(seg.mem, 1<<30)
			if !isProtocol(err) {
				t.Fatalf("parseSegment: %v, want a protocol error", err)
			}
		})
	}
	seg := anonSegment(t, 8192, 1000)
	if _, err := parseSegment(seg.mem, 999); err == nil {
		t.Error("accepted a max message above the caller's limit")
	}
}
