package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
)

// The layout v2 constants this peer depends on, copied from the layout's
// definition (the diagram in internal/layout/layout.go, docs/LAYOUT.md) and
// docs/MESSAGES.md (not from the Go package: the point is that every
// language states them itself and checks them against the bytes of a live
// connection). Every peer has the same table.
const (
	lHelloMagic      = 0x53482d4350494f47 // "GOIPC-HS"
	lHelloSize       = 32
	lProtocolVersion = 2
	lLayoutVersion   = 2
	lSegMagic        = 0x4d48534350494f47 // "GOIPCSHM"
	lSegReady        = 0x59444552         // "REDY"
	lOffLayout       = 0x008
	lOffControlSize  = 0x00C
	lOffSegSize      = 0x010
	lOffMaxMessage   = 0x018
	lOffFlags        = 0x01C
	lOffCreatorPID   = 0x020
	lOffAcceptorPID  = 0x024
	lOffRing0Off     = 0x028
	lOffRing0Cap     = 0x030
	lOffRing1Off     = 0x038
	lOffRing1Cap     = 0x040
	lOffCreatedNs    = 0x048
	lOffProtocol     = 0x050
	lOffReserved54   = 0x054 // 40 zero bytes up to ready
	lOffReady        = 0x07C
	lOffRing0Ctl     = 0x080
	lOffRing1Ctl     = 0x180
	lRingCtlSize     = 0x100
	lOffPathLen      = 0x280
	lOffPath         = 0x284
	lMaxPath         = 108
	lOffReserved2F0  = 0x2F0 // zero up to the control size
	lControlSize     = 0x1000
	// Ring control block: the producer's block, then the consumer's.
	lCtlHead      = 0x00
	lCtlDataEC    = 0x08
	lCtlProdMsgs  = 0x10
	lCtlProdBytes = 0x18
	lCtlProdParks = 0x20
	lCtlProdWakes = 0x28
	lCtlProdEnd   = 0x30 // reserved up to the consumer's block
	lCtlTail      = 0x80
	lCtlSpaceEC   = 0x88
	lCtlConsMsgs  = 0x90
	lCtlConsBytes = 0x98
	lCtlConsParks = 0xA0
	lCtlConsWakes = 0xA8
	lCtlConsEnd   = 0xB0 // reserved up to the block's end
	lCacheBlock   = 128
	// An eventcount word: futex waiters, doorbell flag, epoch (the futex
	// word, the 32-bit half at +4).
	lECWaitersMask = 0x7fffffff
	lECDoorbell    = 1 << 31
	lECEpochShift  = 32
	lECEpochHalf   = 4
	lFrameHeader   = 8
	lFrameAlign    = 8
	lKindMessage   = 0
	// FlatBuffers Ping (docs/MESSAGES.md): size 64 + V, V = roundUp(4+n, 8)
	lBodyTypeOff = 23
	lBodyPing    = 1
	lPingSeqOff  = 56
	lPingVecBase = 64 // the payload vector's length is at 64 + P
	// The Ping of the layout scenario.
	lSeq = 42
)

// Compile-time checks of the table's structure (the index must be 0, or
// the build fails), as the C and Rust peers assert theirs.
var (
	_ = [1]struct{}{}[lOffProtocol+4-lOffReserved54]                    // the reserved bytes follow the protocol version
	_ = [1]struct{}{}[lOffReserved54+40-lOffReady]                      // and run up to ready
	_ = [1]struct{}{}[lOffReady+4-lOffRing0Ctl]                         // ready is the last header word
	_ = [1]struct{}{}[lOffRing1Ctl-lOffRing0Ctl-lRingCtlSize]           // ring control blocks are 256 bytes
	_ = [1]struct{}{}[lOffRing1Ctl+lRingCtlSize-lOffPathLen]            // the path length follows them
	_ = [1]struct{}{}[lOffPathLen+4+lMaxPath-lOffReserved2F0]           // the path fills up to 0x2F0
	_ = [1]struct{}{}[lOffCreatedNs%8+lCtlProdMsgs%8+lCtlConsMsgs%8]    // 64-bit words are 8-byte aligned
	_ = [1]struct{}{}[lCtlHead/lCacheBlock+(lCtlProdEnd-1)/lCacheBlock] // the producer's words on block 0
	_ = [1]struct{}{}[lCtlTail/lCacheBlock-1]                           // the consumer's words on block 1
	_ = [1]struct{}{}[(lCtlConsEnd-1)/lCacheBlock-1]                    // up to its last counter
	_ = [1]struct{}{}[lECWaitersMask&lECDoorbell]                       // waiters and doorbell do not overlap
	_ = [1]struct{}{}[(lECWaitersMask|lECDoorbell)-0xffffffff]          // and fill the low half
	_ = [1]struct{}{}[lECEpochShift-8*lECEpochHalf]                     // the epoch is the high half (futex word at +4)
)

// layoutChecked is what the result line says was checked.
const layoutChecked = "constants, hello, header (pids, creation time, protocol version, socket path), " +
	"ring control blocks (positions, counters, eventcounts), frame, Ping bytes"

var lPayload = []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

func lPingSize(n int) int  { return 64 + ((n + 11) &^ 7) }
func lPongSize(n int) int  { return 72 + ((n + 11) &^ 7) }
func lFrameSize(n int) int { return (lFrameHeader + n + lFrameAlign - 1) &^ (lFrameAlign - 1) }

// snapshotWant is what the dialer knows about its own connection.
type snapshotWant struct {
	pid              int
	path             string // the path it dialed
	ringSize, maxMsg int
	nowNs            int64 // wall clock, to judge the creation time
}

// lDay bounds how far the segment's creation time may be from now.
const lDay = int64(24 * 60 * 60 * 1e9)

// checkSnapshot compares a capture snapshot (hello || segment prefix) with
// the constants above and returns every disagreement.
func checkSnapshot(b []byte, w snapshotWant) []string {
	var bad []string
	le := binary.LittleEndian
	expect := func(what string, got, want uint64) {
		if got != want {
			bad = append(bad, fmt.Sprintf("%s: got %#x, want %#x", what, got, want))
		}
	}
	expectZero := func(what string, buf []byte, from, to int) {
		for off := from; off < to; off++ {
			if buf[off] != 0 {
				bad = append(bad, fmt.Sprintf("%s: byte %#x is %#x, want 0", what, off, buf[off]))
				return
			}
		}
	}
	frame := lFrameSize(lPingSize(len(lPayload)))
	if len(b) != lHelloSize+lControlSize+frame {
		return []string{fmt.Sprintf("snapshot is %d bytes, want %d (hello, control area, one Ping frame)", len(b), lHelloSize+lControlSize+frame)}
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
	expect("max message size", u32(seg, lOffMaxMessage), uint64(w.maxMsg))
	expect("flags", u32(seg, lOffFlags), 0)
	expect("creator pid", u32(seg, lOffCreatorPID), uint64(w.pid))
	// A goipc listener writes its pid here when it accepts; the capture is
	// not one and writes nothing into the segment.
	expect("acceptor pid (the capture writes nothing)", u32(seg, lOffAcceptorPID), 0)
	cap0, cap1 := u64(seg, lOffRing0Cap), u64(seg, lOffRing1Cap)
	expect("ring 0 data offset", u64(seg, lOffRing0Off), lControlSize)
	expect("ring 0 capacity", cap0, uint64(w.ringSize))
	expect("ring 1 data offset", u64(seg, lOffRing1Off), lControlSize+cap0)
	expect("ring 1 capacity", cap1, uint64(w.ringSize))
	expect("segment size", u64(seg, lOffSegSize), lControlSize+cap0+cap1)
	if created := int64(u64(seg, lOffCreatedNs)); created <= 0 || created < w.nowNs-lDay || created > w.nowNs+lDay {
		bad = append(bad, fmt.Sprintf("created %d ns is not within a day of now (%d ns)", created, w.nowNs))
	}
	expect("protocol version", u32(seg, lOffProtocol), lProtocolVersion)
	expectZero("reserved before ready", seg, lOffReserved54, lOffReady)
	expect("ready", u32(seg, lOffReady), lSegReady)
	expect("socket path length", u32(seg, lOffPathLen), uint64(len(w.path)))
	if n := min(int(u32(seg, lOffPathLen)), lMaxPath); string(seg[lOffPath:lOffPath+n]) != w.path {
		bad = append(bad, fmt.Sprintf("socket path %q, want the dialed %q", seg[lOffPath:lOffPath+n], w.path))
	}
	expectZero("socket path after its length", seg, lOffPath+min(len(w.path), lMaxPath), lOffPath+lMaxPath)
	expectZero("reserved after the path", seg, lOffReserved2F0, lControlSize)

	// One Ping published on ring 0, nothing consumed, ring 1 untouched;
	// nobody waited (the capture never does, the dialer polled its
	// receive without waiting), so every eventcount is still 0.
	rings := []struct {
		name                string
		ctl                 int
		head, msgs, payload uint64
	}{
		{"ring 0", lOffRing0Ctl, uint64(frame), 1, uint64(lPingSize(len(lPayload)))},
		{"ring 1", lOffRing1Ctl, 0, 0, 0},
	}
	for _, r := range rings {
		ctl := seg[r.ctl : r.ctl+lRingCtlSize]
		expect(r.name+" head", u64(ctl, lCtlHead), r.head)
		expect(r.name+" messages published", u64(ctl, lCtlProdMsgs), r.msgs)
		expect(r.name+" payload bytes published", u64(ctl, lCtlProdBytes), r.payload)
		expect(r.name+" producer parks", u64(ctl, lCtlProdParks), 0)
		expect(r.name+" producer wakeups", u64(ctl, lCtlProdWakes), 0)
		expect(r.name+" tail", u64(ctl, lCtlTail), 0)
		expect(r.name+" messages consumed", u64(ctl, lCtlConsMsgs), 0)
		expect(r.name+" bytes consumed", u64(ctl, lCtlConsBytes), 0)
		expect(r.name+" consumer parks", u64(ctl, lCtlConsParks), 0)
		expect(r.name+" consumer wakeups", u64(ctl, lCtlConsWakes), 0)
		for _, ec := range []struct {
			name string
			off  int
		}{{"data eventcount", lCtlDataEC}, {"space eventcount", lCtlSpaceEC}} {
			word := u64(ctl, ec.off)
			expect(r.name+" "+ec.name+" waiters", word&lECWaitersMask, 0)
			expect(r.name+" "+ec.name+" doorbell flag", (word&lECDoorbell)>>31, 0)
			expect(r.name+" "+ec.name+" epoch", word>>lECEpochShift, 0)
			expect(r.name+" "+ec.name+" futex word (epoch)", u32(ctl, ec.off+lECEpochHalf), 0)
		}
		expectZero(r.name+" producer block reserved", ctl, lCtlProdEnd, lCtlTail)
		expectZero(r.name+" consumer block reserved", ctl, lCtlConsEnd, lRingCtlSize)
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
	if ping, err := message.ParsePing(msg[:lPingSize(len(lPayload))]); err != nil {
		bad = append(bad, "message.ParsePing: "+err.Error())
	} else if ping.Seq() != lSeq || string(ping.Payload()) != string(lPayload) {
		bad = append(bad, "message.ParsePing reads other values")
	}
	return bad
}

// awaitCaptureClose waits until the capture has hung up (it does once the
// snapshot is written), with receives that never wait: a blocking receive
// would park, and parking writes ring 1's consumer counters and data
// eventcount, which the capture may be copying at that moment.
func awaitCaptureClose(c *goipc.Conn) error {
	deadline := time.Now().Add(callTimeout)
	for {
		_, err := c.RecvTimeout(0)
		switch {
		case errors.Is(err, goipc.ErrPeerClosed):
			return nil
		case err == nil:
			return errors.New("got a message")
		case !errors.Is(err, goipc.ErrTimeout):
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("the capture did not hang up within %v", callTimeout)
		}
		time.Sleep(100 * time.Microsecond) // polling with a deadline, as the capture polls ring 0's head
	}
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
	err = awaitCaptureClose(c)
	c.Close()
	if err != nil {
		return fail("after the snapshot: want peer closed: %v", err)
	}
	snap, err := os.ReadFile(p.snapshot)
	if err != nil {
		return fail("read snapshot: %v", err)
	}
	want := snapshotWant{pid: os.Getpid(), path: p.path, ringSize: p.ringSize, maxMsg: maxMsg, nowNs: time.Now().UnixNano()}
	bad = append(bad, checkSnapshot(snap, want)...)
	if len(bad) > 0 {
		return fail("layout disagreements: %s", strings.Join(bad, "; "))
	}
	return result{"checked": layoutChecked, "snapshot_bytes": len(snap)}
}
