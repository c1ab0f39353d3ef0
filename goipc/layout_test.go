package goipc

import (
	"encoding/binary"
	"testing"

	"github.com/goipc/goipc/internal/layout"
)

// The offsets themselves are checked against a mirror struct in
// internal/layout; these tests check the bytes a live segment holds.

func TestSegmentHeaderWritten(t *testing.T) {
	seg := anonSegment(t, 8192, 1000)
	le := binary.LittleEndian
	m := seg.mem
	if le.Uint64(m[layout.OffSegmentSize:]) != uint64(len(m)) || le.Uint64(m[layout.OffRing1DataOff:]) != controlSize+8192 ||
		le.Uint32(m[layout.OffMaxMessage:]) != 1000 || le.Uint32(m[layout.OffReady:]) != layout.Ready {
		t.Errorf("header fields wrong: % x", m[:128])
	}
}

// badHeaders corrupt the header of a valid segment with two 8192-byte rings
// and a 1000-byte max message, each in a way a peer must refuse. They are
// shared with the test that checks statread refuses them too.
var badHeaders = map[string]func(m []byte){
	"magic":          func(m []byte) { binary.LittleEndian.PutUint64(m[layout.OffMagic:], 1) },
	"version":        func(m []byte) { binary.LittleEndian.PutUint32(m[layout.OffLayoutVersion:], LayoutVersion-1) },
	"not ready":      func(m []byte) { binary.LittleEndian.PutUint32(m[layout.OffReady:], 0) },
	"control size":   func(m []byte) { binary.LittleEndian.PutUint32(m[layout.OffControlSize:], 64) },
	"size":           func(m []byte) { binary.LittleEndian.PutUint64(m[layout.OffSegmentSize:], 1<<40) },
	"flags":          func(m []byte) { binary.LittleEndian.PutUint32(m[layout.OffFlags:], 1) },
	"cap not pow2":   func(m []byte) { binary.LittleEndian.PutUint64(m[layout.OffRing0Cap:], 5000) },
	"overlap":        func(m []byte) { binary.LittleEndian.PutUint64(m[layout.OffRing1DataOff:], controlSize) },
	"max message":    func(m []byte) { binary.LittleEndian.PutUint32(m[layout.OffMaxMessage:], 1<<20) },
	"frame one over": func(m []byte) { binary.LittleEndian.PutUint32(m[layout.OffMaxMessage:], 8192-layout.FrameHeaderSize+1) },
	// Two 4096-byte rings followed by 8192 bytes nobody owns.
	"rings too short": func(m []byte) {
		le := binary.LittleEndian
		le.PutUint64(m[layout.OffRing0Cap:], 4096)
		le.PutUint64(m[layout.OffRing1DataOff:], controlSize+4096)
		le.PutUint64(m[layout.OffRing1Cap:], 4096)
	},
}

func TestParseSegmentRejects(t *testing.T) {
	for name, corrupt := range badHeaders {
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
