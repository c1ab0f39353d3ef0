package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
)

// The layout v1 constants this peer depends on, copied from
// docs/LAYOUT.md and docs/MESSAGES.md (not from the Go package: the point
// is that every language states them itself and checks them against the
// bytes of a live connection). Every peer has the same table.
const (
	lHelloMagic      = 0x53482d4350494f47 // "GOIPC-HS"
	lHelloSize       = 32
	lProtocolVersion = 1
	lLayoutVersion   = 1
	lSegMagic        = 0x4d48534350494f47 // "GOIPCSHM"
	lSegReady        = 0x59444552         // "REDY"
	lOffLayout       = 0x008
	lOffControlSize  = 0x00C
	lOffSegSize      = 0x010
	lOffMaxMessage   = 0x018
	lOffFlags        = 0x01C
	lOffCreatorPID   = 0x020
	lOffReserved24   = 0x024
	lOffRing0Off     = 0x028
	lOffRing0Cap     = 0x030
	lOffRing1Off     = 0x038
	lOffRing1Cap     = 0x040
	lOffReserved48   = 0x048 // 52 zero bytes up to ready
	lOffReady        = 0x07C
	lOffRing0Ctl     = 0x080
	lOffRing1Ctl     = 0x180
	lCtlHead         = 0x00
	lCtlTail         = 0x80
	lControlSize     = 0x1000
	lFrameHeader     = 8
	lFrameAlign      = 8
	lKindMessage     = 0
	// FlatBuffers Ping (docs/MESSAGES.md): size 64 + V, V = roundUp(4+n, 8)
	lBodyTypeOff = 23
	lBodyPing    = 1
	lPingSeqOff  = 56
	lPingVecBase = 64 // the payload vector's length is at 64 + P
	// The Ping of the layout scenario.
	lSeq = 42
)

var lPayload = []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

func lPingSize(n int) int  { return 64 + ((n + 11) &^ 7) }
func lPongSize(n int) int  { return 72 + ((n + 11) &^ 7) }
func lFrameSize(n int) int { return (lFrameHeader + n + lFrameAlign - 1) &^ (lFrameAlign - 1) }

// checkSnapshot compares a capture snapshot (hello || segment prefix) with
// the constants above and returns every disagreement.
func checkSnapshot(b []byte, pid, ringSize, maxMsg int) []string {
	var bad []string
	le := binary.LittleEndian
	expect := func(what string, got, want uint64) {
		if got != want {
			bad = append(bad, fmt.Sprintf("%s: got %#x, want %#x", what, got, want))
		}
	}
	if len(b) < lHelloSize+lControlSize+lFrameHeader {
		return []string{fmt.Sprintf("snapshot is %d bytes, too short", len(b))}
	}
	hello, seg := b[:lHelloSize], b[lHelloSize:]
	u32 := func(buf []byte, off int) uint64 { return uint64(le.Uint32(buf[off:])) }
	u64 := func(buf []byte, off int) uint64 { return le.Uint64(buf[off:]) }

	expect("hello magic", u64(hello, 0), lHelloMagic)
	expect("hello protocol version", u32(hello, 8), lProtocolVersion)
	expect("hello layout version", u32(hello, 12), lLayoutVersion)
	expect("hello segment size = header segment size", u64(hello, 16), u64(seg, lOffSegSize))
	expect("hello reserved", u64(hello, 24), 0)

	expect("segment magic", u64(seg, 0), lSegMagic)
	expect("layout version", u32(seg, lOffLayout), lLayoutVersion)
	expect("control size", u32(seg, lOffControlSize), lControlSize)
	expect("max message size", u32(seg, lOffMaxMessage), uint64(maxMsg))
	expect("flags", u32(seg, lOffFlags), 0)
	expect("creator pid", u32(seg, lOffCreatorPID), uint64(pid))
	expect("reserved at 0x24", u32(seg, lOffReserved24), 0)
	cap0, cap1 := u64(seg, lOffRing0Cap), u64(seg, lOffRing1Cap)
	expect("ring 0 data offset", u64(seg, lOffRing0Off), lControlSize)
	expect("ring 0 capacity", cap0, uint64(ringSize))
	expect("ring 1 data offset", u64(seg, lOffRing1Off), lControlSize+cap0)
	expect("ring 1 capacity", cap1, uint64(ringSize))
	expect("segment size", u64(seg, lOffSegSize), lControlSize+cap0+cap1)
	for off := lOffReserved48; off < lOffReady; off++ {
		expect(fmt.Sprintf("reserved byte %#x", off), uint64(seg[off]), 0)
	}
	expect("ready", u32(seg, lOffReady), lSegReady)

	frame := uint64(lFrameSize(lPingSize(len(lPayload))))
	expect("ring 0 head (one Ping frame published)", u64(seg, lOffRing0Ctl+lCtlHead), frame)
	expect("ring 0 tail", u64(seg, lOffRing0Ctl+lCtlTail), 0)
	expect("ring 1 head", u64(seg, lOffRing1Ctl+lCtlHead), 0)
	expect("ring 1 tail", u64(seg, lOffRing1Ctl+lCtlTail), 0)
	if uint64(len(seg)) != lControlSize+frame {
		return append(bad, fmt.Sprintf("snapshot holds %d ring bytes, want one frame of %d", len(seg)-lControlSize, frame))
	}
	expect("frame length = Ping size", u32(seg, lControlSize), uint64(lPingSize(len(lPayload))))
	expect("frame kind", u32(seg, lControlSize+4), lKindMessage)
	msg := seg[lControlSize+lFrameHeader:]
	if string(msg[4:8]) != message.Identifier || message.Identifier != "GIPC" {
		bad = append(bad, fmt.Sprintf("file identifier %q, want \"GIPC\"", msg[4:8]))
	}
	expect("body type (Ping)", uint64(msg[lBodyTypeOff]), lBodyPing)
	expect("Ping seq", u64(msg, lPingSeqOff), lSeq)
	v := (4 + len(lPayload) + 7) &^ 7
	pad := v - ((4 + len(lPayload) + 3) &^ 3)
	expect("payload length", u32(msg, lPingVecBase+pad), uint64(len(lPayload)))
	if got := msg[lPingVecBase+pad+4 : lPingVecBase+pad+4+len(lPayload)]; string(got) != string(lPayload) {
		bad = append(bad, fmt.Sprintf("payload %v, want %v", got, lPayload))
	}
	// The reader of this language agrees with the bytes.
	if ping, err := message.ParsePing(msg); err != nil {
		bad = append(bad, "message.ParsePing: "+err.Error())
	} else if ping.Seq() != lSeq || string(ping.Payload()) != string(lPayload) {
		bad = append(bad, "message.ParsePing reads other values")
	}
	return bad
}

// layout: the Go constants agree with the documented ones, and a live
// connection's bytes agree with both.
func (p *producer) layout() result {
	var bad []string
	expect := func(what string, got, want int) {
		if got != want {
			bad = append(bad, fmt.Sprintf("%s: %d, documented %d", what, got, want))
		}
	}
	expect("goipc.LayoutVersion", goipc.LayoutVersion, lLayoutVersion)
	expect("goipc.ProtocolVersion", goipc.ProtocolVersion, lProtocolVersion)
	expect("goipc.MinRingSize", goipc.MinRingSize, 4096)
	expect("goipc.MaxRingSize", goipc.MaxRingSize, 1<<30)
	expect("goipc.DefaultMaxMessageSize", goipc.DefaultMaxMessageSize, 1<<20)
	for _, n := range []int{0, 1, 13, 63, 64, 4095, 4096, 65536} {
		expect(fmt.Sprintf("message.PingSize(%d)", n), message.PingSize(n), lPingSize(n))
		expect(fmt.Sprintf("message.PongSize(%d)", n), message.PongSize(n), lPongSize(n))
	}
	if p.ringSize == 0 {
		return fail("layout needs --ring-size")
	}
	c, err := p.dial()
	if err != nil {
		return failErr("dial the capture listener", err)
	}
	maxMsg := c.MaxMessageSize()
	if _, err := sendPing(c, lSeq, lPayload, callTimeout); err != nil {
		c.Close()
		return failErr("send the Ping", err)
	}
	// The capture closes the socket once the snapshot is written.
	_, err = c.RecvView(callTimeout)
	c.Close()
	if !errors.Is(err, goipc.ErrPeerClosed) {
		return fail("after the snapshot: want peer closed, got %v", err)
	}
	snap, err := os.ReadFile(p.snapshot)
	if err != nil {
		return fail("read snapshot: %v", err)
	}
	bad = append(bad, checkSnapshot(snap, os.Getpid(), p.ringSize, maxMsg)...)
	if len(bad) > 0 {
		return fail("layout disagreements: %s", strings.Join(bad, "; "))
	}
	return result{"checked": "constants, hello, header, ring control blocks, frame, Ping bytes", "snapshot_bytes": len(snap)}
}
