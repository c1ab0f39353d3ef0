package goipc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// adversaries corrupt the segment from the peer process, each in one way;
// target says which side of the survivor is hit: its receive path (the
// adversary's producer words and frames) or its send path (the
// adversary's consumer words).
var adversaries = map[string]struct {
	target  string
	corrupt func(c *Conn)
}{
	"head-too-far":   {"recv", func(c *Conn) { atomic.StoreUint64(c.prod.r.head, 4*c.prod.r.cap) }},
	"head-unaligned": {"recv", func(c *Conn) { atomic.StoreUint64(c.prod.r.head, 3) }},
	"head-backwards": {"recv", func(c *Conn) { atomic.StoreUint64(c.prod.r.head, c.prod.head-8) }},
	"length-too-large": {"recv", func(c *Conn) {
		writeFrame(c, uint32(c.prod.r.maxMsg+1), frameKindMessage, 16)
	}},
	"length-beyond-published": {"recv", func(c *Conn) { writeFrame(c, 100, frameKindMessage, 16) }},
	"length-past-ring-end": {"recv", func(c *Conn) {
		// Move to 16 bytes before the ring end with valid padding-free
		// frames the survivor consumes, then claim a frame running past it.
		for c.prod.head&c.prod.r.mask != c.prod.r.cap-16 {
			room := c.prod.r.cap - 16 - c.prod.head&c.prod.r.mask
			c.Send(make([]byte, min(room-8, 2000)))
		}
		writeFrame(c, 200, frameKindMessage, 16)
	}},
	"unknown-kind": {"recv", func(c *Conn) { writeFrame(c, 0, 7, 8) }},
	// A call frame too short for its 8-byte id, and one too long.
	"call-without-id": {"recv", func(c *Conn) { writeFrame(c, 4, frameKindReply, 16) }},
	"call-too-large": {"recv", func(c *Conn) {
		writeFrame(c, uint32(c.prod.r.maxMsg+1), frameKindRequest, 16)
	}},
	"bad-padding":    {"recv", func(c *Conn) { writeFrame(c, 8, frameKindPadding, 16) }},
	"tail-ahead":     {"send", func(c *Conn) { atomic.StoreUint64(c.cons.r.tail, 1<<40) }},
	"tail-unaligned": {"send", func(c *Conn) { atomic.StoreUint64(c.cons.r.tail, 5) }},
	"garbage": {"recv", func(c *Conn) {
		r := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
		for i := range c.prod.r.data {
			c.prod.r.data[i] = byte(r.Uint32())
		}
		atomic.StoreUint64(c.prod.r.head, c.prod.head+8*r.Uint64N(c.prod.r.cap/8))
	}},
}

// writeFrame writes a frame header at the producer's position and
// publishes `publish` bytes past it, bypassing every check.
func writeFrame(c *Conn, length, kind uint32, publish uint64) {
	off := c.prod.head & c.prod.r.mask
	binary.LittleEndian.PutUint32(c.prod.r.data[off:], length)
	binary.LittleEndian.PutUint32(c.prod.r.data[off+4:], kind)
	atomic.StoreUint64(c.prod.r.head, c.prod.head+publish)
	c.prod.r.dataEC.wakeAll()
}

// runAdversary dials, sends a few good messages, waits for the survivor to
// ask for the attack, corrupts the segment, and stays alive until the
// survivor hangs up (so that the survivor sees ErrProtocol, not a death).
func runAdversary(path, scenario string) int {
	c, err := Dial(path, &Options{RingSize: 1 << 16, MaxMessageSize: streamMaxMsg})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 0; i < 10; i++ {
		c.Send([]byte("good message"))
	}
	if _, err := c.Recv(); err != nil { // the survivor's "go"
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	adversaries[scenario].corrupt(c)
	fmt.Println("corrupted")
	// Stay alive, touching nothing (a receive would repair our tail),
	// until the survivor hangs up.
	for !c.peerGone.Load() {
		time.Sleep(time.Millisecond)
	}
	return 0
}

func TestAdversarialPeer(t *testing.T) {
	for name, adv := range adversaries {
		t.Run(name, func(t *testing.T) {
			p := startPeer(t, "adversary", name)
			c := p.accept(t, nil)
			for i := 0; i < 10; i++ {
				if m, err := c.RecvTimeout(10 * time.Second); err != nil || string(m) != "good message" {
					t.Fatalf("good message %d: %q %v", i, m, err)
				}
			}
			c.Send([]byte("go"))
			if line := p.readLine(t); line != "corrupted" {
				t.Fatalf("adversary: %q", line)
			}
			var err error
			deadline := time.Now().Add(10 * time.Second)
			for err == nil && time.Now().Before(deadline) {
				if adv.target == "recv" {
					_, err = c.RecvTimeout(time.Second)
				} else {
					err = c.SendTimeout(make([]byte, 1000), time.Second)
				}
			}
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("survivor got %v, want a protocol error", err)
			}
			// The connection stays failed, in both directions, and says why.
			if err2 := c.Send(nil); !errors.Is(err2, ErrProtocol) {
				t.Errorf("send after protocol error: %v", err2)
			}
			t.Logf("%s: %v", name, err)
			c.Close()
			p.wait(t, 0)
		})
	}
	// And the process is fine: a fresh connection works.
	client, server := pair(t, nil, nil)
	client.Send([]byte("after"))
	if m, err := server.Recv(); err != nil || string(m) != "after" {
		t.Fatalf("fresh pair: %q %v", m, err)
	}
}

// TestCorruptEventCountsNeverHang: garbage in the waiter/epoch words can
// cost wakeups but never a hang past a deadline, and never data.
func TestCorruptEventCountsNeverHang(t *testing.T) {
	client, server := pair(t, &Options{Spin: SpinNever}, &Options{Spin: SpinNever})
	for _, ec := range []eventCount{server.cons.r.dataEC, server.prod.r.spaceEC} {
		atomic.StoreUint64(ec.word, 0xdeadbeef_ffffffff)
	}
	start := time.Now()
	if _, err := server.RecvTimeout(100 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("recv: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("deadline overrun")
	}
	go func() { client.Send([]byte("late")) }()
	if m, err := server.RecvTimeout(10 * time.Second); err != nil || string(m) != "late" {
		t.Fatalf("recv after corruption: %q %v", m, err)
	}
}
