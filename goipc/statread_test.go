package goipc

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipc/goipc/internal/layout"
	"github.com/goipc/goipc/internal/statread"
)

// Tests of Conn.Stats and of internal/statread (what `goipc stat` reads)
// against real connections: both must count exactly what was sent and
// received, and statread must decode every header field goipc wrote.

// exchange sends n messages of sizes 0, 1, 2, ... (mod 300) from a to b
// through Send, Reserve/Commit and TrySend in turn, receives them through
// Recv, RecvInto and RecvView in turn, and returns the payload bytes.
func exchange(t *testing.T, a, b *Conn, n int) uint64 {
	t.Helper()
	var total uint64
	buf := make([]byte, 300)
	for i := range n {
		size := i % 300
		total += uint64(size)
		msg := make([]byte, size)
		var err error
		switch i % 3 {
		case 0:
			err = a.Send(msg)
		case 1:
			var p []byte
			if p, err = a.Reserve(size, 10*time.Second); err == nil {
				copy(p, msg)
				err = a.Commit(size)
			}
		case 2:
			err = a.TrySend(msg)
		}
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		var got int
		switch i % 3 {
		case 0:
			var m []byte
			m, err = b.RecvTimeout(10 * time.Second)
			got = len(m)
		case 1:
			got, err = b.RecvInto(buf, 10*time.Second)
		case 2:
			var v []byte
			if v, err = b.RecvView(10 * time.Second); err == nil {
				got = len(v)
				err = b.ReleaseView()
			}
		}
		if err != nil || got != size {
			t.Fatalf("receive %d: %d bytes, %v", i, got, err)
		}
	}
	return total
}

func mustStats(t *testing.T, c *Conn) Stats {
	t.Helper()
	s, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// segmentInode identifies a connection's segment the way statread does.
func segmentInode(t *testing.T, c *Conn) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(c.seg.fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// scanEnds returns the ends statread finds in this process on c's segment:
// dialer first.
func scanEnds(t *testing.T, c *Conn) (dialer, listener statread.End) {
	t.Helper()
	snap, err := statread.Scan(statread.Options{PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	ino := segmentInode(t, c)
	var found []statread.End
	for _, e := range snap.Ends {
		if e.Segment == ino {
			found = append(found, e)
		}
	}
	if len(found) != 2 || found[0].Dialer == found[1].Dialer {
		t.Fatalf("statread found %+v on segment %d, want a dialer and a listener (unreadable: %+v)", found, ino, snap.Unreadable)
	}
	if found[0].Dialer {
		return found[0], found[1]
	}
	return found[1], found[0]
}

// sameCounters compares what statread read with what Stats returned.
func sameCounters(t *testing.T, who string, e statread.End, s Stats) {
	t.Helper()
	dir := func(d DirectionStats) statread.Direction {
		return statread.Direction{Capacity: d.Capacity, InUse: d.InUse, Messages: d.Messages, Bytes: d.Bytes,
			Parks: d.Parks, Wakeups: d.Wakeups, SenderParked: d.SenderParked, ReceiverParked: d.ReceiverParked}
	}
	if e.Sent != dir(s.Sent) || e.Received != dir(s.Received) || e.PeerPID != s.PeerPID || e.Dialer != s.Dialer || e.Header.Path != s.Path {
		t.Fatalf("%s: statread read %+v\nStats returned %+v", who, e, s)
	}
}

func TestStatsCountExactlyWhatWasSentAndReceived(t *testing.T) {
	const ring = 1 << 16
	client, server := pair(t, &Options{RingSize: ring, MaxMessageSize: 1000}, nil)
	if s := mustStats(t, client); s.Sent.Messages != 0 || s.Received.Messages != 0 || s.Sent.Capacity != ring || !s.Dialer {
		t.Fatalf("fresh connection: %+v", s)
	}
	// More bytes than the ring holds, so both rings wrap (padding frames
	// must not count as messages or bytes).
	up := exchange(t, client, server, 1000)
	down := exchange(t, server, client, 777)
	if up <= 2*ring {
		t.Fatalf("test moved only %d bytes: the ring did not wrap", up)
	}
	cs, ss := mustStats(t, client), mustStats(t, server)
	for _, c := range []struct {
		name string
		got  DirectionStats
		msgs uint64
		b    uint64
	}{
		{"client sent", cs.Sent, 1000, up}, {"server received", ss.Received, 1000, up},
		{"server sent", ss.Sent, 777, down}, {"client received", cs.Received, 777, down},
	} {
		if c.got.Messages != c.msgs || c.got.Bytes != c.b || c.got.InUse != 0 || c.got.Capacity != ring ||
			c.got.SenderParked || c.got.ReceiverParked {
			t.Errorf("%s: %+v, want %d messages, %d bytes, empty ring, nobody parked", c.name, c.got, c.msgs, c.b)
		}
	}
	if !cs.Dialer || ss.Dialer || cs.PeerPID != os.Getpid() || ss.PeerPID != os.Getpid() || cs.Path != ss.Path || cs.Path == "" {
		t.Errorf("identity: client %+v server %+v", cs, ss)
	}

	d, l := scanEnds(t, client)
	sameCounters(t, "dialer", d, cs)
	sameCounters(t, "listener", l, ss)

	// An unreceived message is "in use" on both sides of its ring: its
	// frame, 8 header bytes and the payload padded to 8.
	if err := client.Send(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if cs, ss := mustStats(t, client), mustStats(t, server); cs.Sent.InUse != 112 || ss.Received.InUse != 112 ||
		cs.Sent.Messages != 1001 || ss.Received.Messages != 1000 {
		t.Fatalf("one message in flight: client %+v, server %+v", cs.Sent, ss.Received)
	}
	client.Close()
	if _, err := client.Stats(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stats after Close: %v", err)
	}
}

// TestStatreadDecodesTheHeaderGoipcWrote: statread and the core take their
// offsets from internal/layout; this checks that statread reads each
// field where the core wrote it (a field read from the wrong constant).
func TestStatreadDecodesTheHeaderGoipcWrote(t *testing.T) {
	before := time.Now()
	client, server := pair(t, &Options{RingSize: 1 << 14, MaxMessageSize: 5000}, nil)
	exchange(t, client, server, 50)
	exchange(t, server, client, 30)
	mem := client.seg.mem
	h, err := statread.ParseControl(mem[:controlSize], int64(len(mem)))
	if err != nil {
		t.Fatal(err)
	}
	pid := uint32(os.Getpid())
	if h.CreatorPID != pid || h.AcceptorPID != pid || h.Path != client.path || h.ProtocolVersion != ProtocolVersion ||
		h.MaxMessageSize != 5000 || h.SegmentSize != uint64(len(mem)) ||
		h.Created.Before(before.Add(-time.Second)) || h.Created.After(time.Now()) {
		t.Fatalf("header %+v (path %q)", h, client.path)
	}
	for i, r := range h.Rings {
		v := client.seg.rings[i]
		want := statread.Ring{Capacity: v.cap, Head: *v.head, Tail: *v.tail, DataEC: *v.dataEC.word, SpaceEC: *v.spaceEC.word,
			ProducerMessages: *v.prodMsgs, ProducerBytes: *v.prodBytes, ProducerParks: *v.prodParks, ProducerWakeups: *v.prodWakes,
			ConsumerMessages: *v.consMsgs, ConsumerBytes: *v.consBytes, ConsumerParks: *v.consParks, ConsumerWakeups: *v.consWakes}
		if r != want {
			t.Errorf("ring %d: statread %+v\ngoipc       %+v", i, r, want)
		}
	}
	if h.Rings[0].ProducerMessages != 50 || h.Rings[1].ProducerMessages != 30 {
		t.Fatalf("ring 0 carried %d messages, ring 1 %d: ring 0 must be dialer->listener", h.Rings[0].ProducerMessages, h.Rings[1].ProducerMessages)
	}
}

// TestStatreadAndTheCoreValidateAlike: statread checks a header with its
// own code (it reads through pread and reports reasons, where the core
// maps and refuses), so the two checks could drift apart. A header the
// core accepts must be readable by goipc stat, and each header the core
// refuses must be refused by statread too. (statread is stricter in one
// place on purpose: it also refuses a path length over the maximum, which
// the core never reads.)
func TestStatreadAndTheCoreValidateAlike(t *testing.T) {
	check := func(name string, corrupt func([]byte), wantValid bool) {
		t.Helper()
		seg := anonSegment(t, 8192, 1000)
		if corrupt != nil {
			corrupt(seg.mem)
		}
		_, coreErr := parseSegment(seg.mem, 1<<30)
		_, statErr := statread.ParseControl(seg.mem[:statread.ControlSize], int64(len(seg.mem)))
		if (coreErr == nil) != wantValid || (statErr == nil) != wantValid {
			t.Errorf("%s: the core says %v, statread says %v; want both to %s", name, coreErr, statErr,
				map[bool]string{true: "accept", false: "refuse"}[wantValid])
		}
	}
	check("as written", nil, true)
	check("largest message", func(m []byte) {
		binary.LittleEndian.PutUint32(m[layout.OffMaxMessage:], 8192-layout.FrameHeaderSize)
	}, true)
	check("accepted", func(m []byte) { binary.LittleEndian.PutUint32(m[layout.OffAcceptorPID:], 12345) }, true)
	for name, corrupt := range badHeaders {
		check(name, corrupt, false)
	}
}

// TestStatsShowParkedSides: a receiver waiting for a message and a sender
// waiting for space are counted, and seen parked while they wait, by
// Stats and by statread alike.
func TestStatsShowParkedSides(t *testing.T) {
	client, server := pair(t, &Options{RingSize: MinRingSize, MaxMessageSize: 1000, Spin: SpinNever}, &Options{Spin: SpinNever})

	// The server parks in Recv; the client sees its receiver parked.
	got := make(chan error, 1)
	go func() { _, err := server.RecvTimeout(10 * time.Second); got <- err }()
	waitUntil(t, "the client sees the server parked in Recv", func() bool { return mustStats(t, client).Sent.ReceiverParked })
	if d, l := scanEnds(t, client); !d.Sent.ReceiverParked || !l.Received.ReceiverParked {
		t.Fatalf("statread does not show the parked receiver: dialer %+v listener %+v", d.Sent, l.Received)
	}
	if err := client.Send([]byte("wake up")); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if cs, ss := mustStats(t, client), mustStats(t, server); ss.Received.Parks < 1 || cs.Sent.Wakeups < 1 || ss.Received.ReceiverParked {
		t.Fatalf("after the wakeup: client sent %+v, server received %+v", cs.Sent, ss.Received)
	}

	// The client fills the ring and parks in Send; the server sees it.
	queued := 0
	for ; client.TrySend(make([]byte, 1000)) == nil; queued++ {
	}
	sent := make(chan error, 1)
	go func() { sent <- client.SendTimeout(make([]byte, 1000), 10*time.Second) }()
	waitUntil(t, "the server sees the client parked in Send", func() bool { return mustStats(t, server).Received.SenderParked })
	if d, _ := scanEnds(t, client); !d.Sent.SenderParked || d.Sent.InUse == 0 {
		t.Fatalf("statread does not show the parked sender: %+v", d.Sent)
	}
	for i := 0; i <= queued; i++ { // the queued messages and the parked one
		if _, err := server.RecvTimeout(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if cs := mustStats(t, client); cs.Sent.Parks < 1 || cs.Sent.SenderParked || cs.Sent.Messages != uint64(queued+2) {
		t.Fatalf("after the space came: %+v (%d queued)", cs.Sent, queued)
	}
}

// BenchmarkSendRecvOneGoroutine: one goroutine sends a 64 B message and
// receives it on the other end of an in-process pair, so nothing ever
// waits and no cache line moves between cores: the per-message
// instruction cost, which the statistics stores add to (docs/STAT.md
// compares builds with and without them).
func BenchmarkSendRecvOneGoroutine(b *testing.B) {
	ln, err := Listen(socketPath(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *Conn, 1)
	go func() { c, _ := ln.Accept(); accepted <- c }()
	client, err := Dial(ln.Addr(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	server := <-accepted
	if server == nil {
		b.Fatal("accept failed")
	}
	defer server.Close()
	msg, buf := make([]byte, 64), make([]byte, 64)
	b.SetBytes(64)
	b.ResetTimer()
	for range b.N {
		if err := client.Send(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := server.RecvInto(buf, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStatreadSeesBothEndsOfAPipe: Pipe's ends hold two descriptors on one
// segment in one process, like a dialed pair: both are listed.
func TestStatreadSeesBothEndsOfAPipe(t *testing.T) {
	checkLeaks(t)
	a, b, err := Pipe(&Options{RingSize: MinRingSize, MaxMessageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	exchange(t, a, b, 10)
	d, l := scanEnds(t, a)
	sameCounters(t, "pipe dialer", d, mustStats(t, a))
	sameCounters(t, "pipe listener", l, mustStats(t, b))
	if d.Sent.Messages != 10 || l.Received.Messages != 10 || d.Header.Path != "" {
		t.Fatalf("pipe ends: %+v\n%+v", d, l)
	}
}

// TestStatreadFindsAcceptedEndsThroughTheirDialers: an accepted end holds
// no descriptor on its segment; statread still lists it, with the counters
// its own side keeps, both when asked about this process only (the
// dialers, in a child process, are searched for the segments) and in a
// scan of every process (each connection listed once per side).
func TestStatreadFindsAcceptedEndsThroughTheirDialers(t *testing.T) {
	checkLeaks(t)
	const k = 8
	conns, path, childPID, _ := acceptFromChild(t, k)
	// Connection i sends i+1 messages: statread's ends tell which is which.
	for i, c := range conns {
		for range i + 1 {
			if err := c.Send([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	self := os.Getpid()
	mine, err := statread.Scan(statread.Options{PID: self})
	if err != nil {
		t.Fatal(err)
	}
	segments := map[uint64]bool{}
	for _, e := range mine.Ends {
		if e.PID != self || e.Dialer || e.PeerPID != childPID || e.Header.Path != path || e.Sent.Messages < 1 || e.Sent.Messages > k {
			t.Fatalf("scan of pid %d: %+v", self, e)
		}
		sameCounters(t, "accepted end", e, mustStats(t, conns[e.Sent.Messages-1]))
		segments[e.Segment] = true
	}
	if len(mine.Ends) != k || len(segments) != k {
		t.Fatalf("scan of pid %d found %d ends on %d segments, want %d accepted ends (unreadable: %+v)", self, len(mine.Ends), len(segments), k, mine.Unreadable)
	}
	all, err := statread.Scan(statread.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sides := map[uint64]map[int]int{} // segment -> pid -> ends
	for _, e := range all.Ends {
		if segments[e.Segment] {
			if sides[e.Segment] == nil {
				sides[e.Segment] = map[int]int{}
			}
			sides[e.Segment][e.PID]++
			if (e.PID == childPID) != e.Dialer {
				t.Errorf("pid %d listed as dialer=%v: %+v", e.PID, e.Dialer, e)
			}
		}
	}
	for seg := range segments {
		if s := sides[seg]; len(s) != 2 || s[self] != 1 || s[childPID] != 1 {
			t.Errorf("segment %d: ends by pid %v, want one in %d (accepted) and one in %d (dialed)", seg, s, self, childPID)
		}
	}
}
