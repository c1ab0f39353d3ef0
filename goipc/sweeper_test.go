package goipc

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// sweptPipes returns n pipes whose first ends are attached to a new
// sweeper under tokens 0..n-1, closed at cleanup.
func sweptPipes(t *testing.T, n int) (s *Sweeper, a, b []*Conn) {
	t.Helper()
	checkLeaks(t)
	s = NewSweeper()
	for i := 0; i < n; i++ {
		x, y, err := Pipe(&Options{RingSize: MinRingSize, MaxMessageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close(); y.Close() })
		if err := x.SetSweeper(s, uint64(i)); err != nil {
			t.Fatal(err)
		}
		a, b = append(a, x), append(b, y)
	}
	return s, a, b
}

// sweepAll sweeps once with room for every entry and returns the sorted
// tokens.
func sweepAll(s *Sweeper) []uint64 {
	tokens := make([]uint64, 4096)
	got := tokens[:s.Sweep(tokens)]
	slices.Sort(got)
	return got
}

func doorbellArmed(ec eventCount) bool { return atomic.LoadUint64(ec.word)&ecDoorbell != 0 }

func mustTimeout(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
}

// Failed receives list their connection, un-armed; a Sweep reports
// exactly the connections whose peer sent, and their descriptors stay
// quiet.
func TestSweeperReportsMessages(t *testing.T) {
	const n = 64
	s, a, b := sweptPipes(t, n)
	for i := range a {
		_, err := a[i].RecvTimeout(0)
		mustTimeout(t, err)
	}
	if got := s.Len(); got != n {
		t.Fatalf("%d entries listed, want %d", got, n)
	}
	if got := sweepAll(s); len(got) != 0 {
		t.Fatalf("nothing was sent, Sweep reported %v", got)
	}
	var want []uint64
	for i := 0; i < n; i += 3 {
		if err := b[i].Send([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		want = append(want, uint64(i)<<1|SweepRecv)
	}
	if got := sweepAll(s); !slices.Equal(got, want) {
		t.Fatalf("Sweep reported %v, want %v", got, want)
	}
	if got := sweepAll(s); len(got) != 0 {
		t.Fatalf("a second Sweep reported %v again", got)
	}
	for i := range a {
		fd, _ := a[i].NotifyFD()
		if doorbellArmed(a[i].cons.r.dataEC) || readable(t, fd, 0) {
			t.Fatalf("conn %d: armed %v, descriptor readable %v: a swept wait must not arm", i, doorbellArmed(a[i].cons.r.dataEC), readable(t, fd, 0))
		}
		m, err := a[i].RecvTimeout(0)
		if i%3 == 0 && (err != nil || len(m) != 1 || m[0] != byte(i)) {
			t.Fatalf("conn %d: %v %v", i, m, err)
		}
		if i%3 != 0 {
			mustTimeout(t, err)
		}
	}
	if got, want := s.Len(), n-len(want); got != want {
		t.Fatalf("%d entries listed, want %d (one per waiting connection)", got, want)
	}
}

// A failed send lists its direction; the peer freeing space reports it.
func TestSweeperReportsSpace(t *testing.T) {
	s, a, b := sweptPipes(t, 2)
	msg := make([]byte, 1000)
	for a[1].TrySend(msg) == nil {
	}
	if _, err := a[1].RecvTimeout(0); !errors.Is(err, ErrTimeout) {
		t.Fatal(err)
	}
	if got := sweepAll(s); len(got) != 0 {
		t.Fatalf("Sweep reported %v before the peer read", got)
	}
	if _, err := b[1].RecvTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := sweepAll(s), []uint64{1<<1 | SweepSend}; !slices.Equal(got, want) {
		t.Fatalf("Sweep reported %v, want %v", got, want)
	}
	if err := a[1].TrySend(msg); err != nil {
		t.Fatalf("space was reported, TrySend: %v", err)
	}
	if s.Len() != 1 { // the receive still waits
		t.Fatalf("%d entries, want the receive's", s.Len())
	}
}

// Arm hands the waits to their descriptors: a message then makes the
// descriptor readable, and a wait that could already succeed is
// reported (or, with no room for its token, made readable).
func TestSweeperArm(t *testing.T) {
	s, a, b := sweptPipes(t, 3)
	for i := range a {
		_, err := a[i].RecvTimeout(0)
		mustTimeout(t, err)
	}
	if err := b[1].Send([]byte("early")); err != nil {
		t.Fatal(err)
	}
	if err := b[2].Send([]byte("early")); err != nil {
		t.Fatal(err)
	}
	tokens := make([]uint64, 1)
	n := s.Arm(tokens)
	if n != 1 || (tokens[0] != 1<<1|SweepRecv && tokens[0] != 2<<1|SweepRecv) {
		t.Fatalf("Arm reported %v, want one of the two connections with a message", tokens[:n])
	}
	if s.Len() != 0 {
		t.Fatalf("%d entries after Arm", s.Len())
	}
	other := 3 - int(tokens[0]>>1) // the one that did not fit
	fd, _ := a[other].NotifyFD()
	if !readable(t, fd, 0) {
		t.Fatal("a ready wait whose token did not fit left its descriptor quiet")
	}
	fd0, _ := a[0].NotifyFD()
	if !doorbellArmed(a[0].cons.r.dataEC) || readable(t, fd0, 0) {
		t.Fatal("Arm did not arm the idle connection, or left its descriptor readable")
	}
	if err := b[0].Send([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if !readable(t, fd0, 10*time.Second) {
		t.Fatal("a message after Arm left the descriptor quiet")
	}
	if m, err := a[0].RecvTimeout(0); err != nil || string(m) != "late" {
		t.Fatalf("%q %v", m, err)
	}
}

// A connection closed while listed (from another goroutine) is reported
// and leaves the list; its sweeper never looks at the released mapping.
func TestSweeperClosedConn(t *testing.T) {
	s, a, _ := sweptPipes(t, 2)
	for i := range a {
		_, err := a[i].RecvTimeout(0)
		mustTimeout(t, err)
	}
	done := make(chan error)
	go func() { done <- a[0].Close() }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := sweepAll(s), []uint64{0<<1 | SweepRecv}; !slices.Equal(got, want) {
		t.Fatalf("Sweep reported %v, want %v", got, want)
	}
	if s.Len() != 1 {
		t.Fatalf("%d entries, want the open connection's", s.Len())
	}
	if _, err := a[0].RecvTimeout(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("the reported call: %v", err)
	}
}

// A peer that closes, or is killed, is reported.
func TestSweeperPeerGone(t *testing.T) {
	s, a, b := sweptPipes(t, 1)
	_, err := a[0].RecvTimeout(0)
	mustTimeout(t, err)
	b[0].Close()
	waitUntil(t, "peer close reported", func() bool { return len(sweepAll(s)) == 1 })
	if _, err := a[0].RecvTimeout(0); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("want ErrPeerClosed, got %v", err)
	}

	p := startPeer(t, "victim", "idle")
	c := p.accept(t, nil)
	defer c.Close()
	if line := p.readLine(t); line != "ready" {
		t.Fatalf("child: %q", line)
	}
	if err := c.SetSweeper(s, 7); err != nil {
		t.Fatal(err)
	}
	_, err = c.RecvTimeout(0)
	mustTimeout(t, err)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	var got []uint64
	waitUntil(t, "peer death reported", func() bool { got = sweepAll(s); return len(got) > 0 })
	if want := []uint64{7<<1 | SweepRecv}; !slices.Equal(got, want) {
		t.Fatalf("Sweep reported %v, want %v", got, want)
	}
}

// Only attached connections list their waits; SetSweeper(nil) and Free
// take them off, and their failed calls arm the doorbell again.
func TestSweeperAttachment(t *testing.T) {
	s, a, _ := sweptPipes(t, 1)
	x, _, fd := notifyPipe(t)
	_, err := x.RecvTimeout(0)
	mustTimeout(t, err)
	if s.Len() != 0 || !doorbellArmed(x.cons.r.dataEC) || readable(t, fd, 0) {
		t.Fatalf("an unattached connection: %d entries, armed %v", s.Len(), doorbellArmed(x.cons.r.dataEC))
	}
	if err := x.SetSweeper(s, MaxSweepToken+1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a token too large: %v", err)
	}

	_, err = a[0].RecvTimeout(0)
	mustTimeout(t, err)
	if s.Len() != 1 {
		t.Fatalf("%d entries, want 1", s.Len())
	}
	if err := a[0].SetSweeper(nil, 0); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 0 {
		t.Fatal("SetSweeper(nil) left the entry listed")
	}
	_, err = a[0].RecvTimeout(0)
	mustTimeout(t, err)
	if s.Len() != 0 || !doorbellArmed(a[0].cons.r.dataEC) {
		t.Fatal("a detached connection did not arm its doorbell")
	}

	if err := a[0].SetSweeper(s, 3); err != nil {
		t.Fatal(err)
	}
	_, err = a[0].RecvTimeout(0)
	mustTimeout(t, err)
	if n := s.Free(nil); n != 0 || s.Len() != 0 {
		t.Fatalf("Free: %d reported, %d left", n, s.Len())
	}
	a[0].cons.r.dataEC.disarm()
	_, err = a[0].RecvTimeout(0)
	mustTimeout(t, err)
	if s.Len() != 0 || !doorbellArmed(a[0].cons.r.dataEC) {
		t.Fatal("a freed sweeper took a wait")
	}
}

// A loop goroutine sweeps and arms many connections while their peers
// send from other goroutines and some connections are closed from yet
// another: every message is received once, in order, every close is
// reported (run with -race).
func TestSweeperConcurrent(t *testing.T) {
	const conns, msgs = 16, 300
	s, a, b := sweptPipes(t, conns)
	var senders sync.WaitGroup
	for i := range b {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for k := 0; k < msgs; k++ {
				err := b[i].Send([]byte{byte(k)})
				if err != nil && !(i%4 == 0 && errors.Is(err, ErrPeerClosed)) {
					t.Error(err)
				}
				if err != nil {
					return
				}
			}
		}()
	}
	closer := make(chan struct{})
	go func() {
		defer close(closer)
		for i := 0; i < conns; i += 4 {
			a[i].Close()
		}
	}()
	got := make([]int, conns)
	over := make([]bool, conns)
	left := conns
	try := func(i int) {
		for !over[i] {
			m, err := a[i].RecvTimeout(0)
			switch {
			case err == nil:
				if int(m[0]) != got[i]%256 {
					t.Fatalf("conn %d: message %d, want %d", i, m[0], got[i])
				}
				got[i]++
				if got[i] == msgs {
					over[i] = true
					left--
				}
				continue
			case errors.Is(err, ErrClosed):
				over[i] = true
				left--
			case !errors.Is(err, ErrTimeout):
				t.Fatalf("conn %d: %v", i, err)
			}
			return
		}
	}
	for i := range a {
		try(i)
	}
	tokens := make([]uint64, 8) // smaller than the set: the rest waits a sweep
	fds := make([]int, conns)
	for i := range a {
		fds[i], _ = a[i].NotifyFD()
	}
	deadline := time.Now().Add(30 * time.Second)
	for sweeps := 0; left > 0; sweeps++ {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting: got %v", got)
		}
		var n int
		if sweeps%50 == 49 {
			n = s.Arm(tokens)
			// The armed ones end through their descriptors: look at all.
			for i := range a {
				try(i)
			}
		} else {
			n = s.Sweep(tokens)
		}
		for _, tok := range tokens[:n] {
			try(int(tok >> 1))
		}
	}
	senders.Wait()
	<-closer
}

// Moving a connection between sweepers while its calls list themselves,
// the sweepers sweep and it is closed: no data race (-race), no entry
// left on a sweeper it no longer belongs to, the close reported.
func TestSweeperMovesAndCloses(t *testing.T) {
	s1, a, b := sweptPipes(t, 1)
	s2 := NewSweeper()
	c := a[0]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// repeat runs f(0), f(1), ... on a goroutine until stop is closed.
	repeat := func(f func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
					f(i)
				}
			}
		}()
	}
	repeat(func(int) { c.RecvTimeout(0) })                // the calls
	repeat(func(i int) { b[0].TrySend([]byte{byte(i)}) }) // the peer
	repeat(func(i int) {                                  // the moves
		switch i % 3 {
		case 0:
			c.SetSweeper(s1, 1)
		case 1:
			c.SetSweeper(s2, 2)
		default:
			c.SetSweeper(nil, 0)
		}
	})
	tokens := make([]uint64, 4)
	for i := 0; i < 20000; i++ {
		s1.Sweep(tokens)
		s2.Sweep(tokens)
	}
	close(stop)
	wg.Wait()
	if err := c.SetSweeper(s2, 2); err != nil {
		t.Fatal(err)
	}
	_, err := c.RecvTimeout(0)
	for err == nil {
		_, err = c.RecvTimeout(0)
	}
	mustTimeout(t, err)
	if s1.Len() != 0 || s2.Len() != 1 {
		t.Fatalf("entries: %d on the old sweeper, %d on the current one", s1.Len(), s2.Len())
	}
	c.Close()
	if got, want := sweepAll(s2), []uint64{2<<1 | SweepRecv}; !slices.Equal(got, want) {
		t.Fatalf("Sweep reported %v after Close, want %v", got, want)
	}
}
