package goipc

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestSendRecvBothWays(t *testing.T) {
	client, server := pair(t, nil, nil)
	for i := 0; i < 100; i++ {
		msg := bytes.Repeat([]byte{byte(i)}, i*37)
		if err := client.Send(msg); err != nil {
			t.Fatal(err)
		}
		got, err := server.Recv()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("server got %d bytes, %v", len(got), err)
		}
		if err := server.Send(append(got, 'x')); err != nil {
			t.Fatal(err)
		}
		back, err := client.RecvTimeout(time.Second)
		if err != nil || !bytes.Equal(back, append(msg, 'x')) {
			t.Fatalf("client got %d bytes, %v", len(back), err)
		}
	}
}

func TestMessageTooLargeLeavesConnUsable(t *testing.T) {
	client, server := pair(t, &Options{MaxMessageSize: 1000, RingSize: 8192}, nil)
	if client.MaxMessageSize() != 1000 || server.MaxMessageSize() != 1000 {
		t.Fatalf("max message %d/%d", client.MaxMessageSize(), server.MaxMessageSize())
	}
	if err := client.Send(make([]byte, 1001)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized send: %v", err)
	}
	if err := client.Send(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if got, err := server.Recv(); err != nil || len(got) != 1000 {
		t.Fatalf("%d %v", len(got), err)
	}
	if err := server.TrySend(nil); err != nil {
		t.Fatal(err)
	}
}

func TestRecvIntoBufferTooSmallKeepsMessage(t *testing.T) {
	client, server := pair(t, nil, nil)
	client.Send([]byte("hello world"))
	n, err := server.RecvInto(make([]byte, 5), time.Second)
	if !errors.Is(err, ErrBufferTooSmall) || n != 11 {
		t.Fatalf("RecvInto small: n=%d err=%v", n, err)
	}
	buf := make([]byte, 11)
	n, err = server.RecvInto(buf, 0)
	if err != nil || string(buf[:n]) != "hello world" {
		t.Fatalf("RecvInto: %q %v", buf[:n], err)
	}
}

func TestTimeouts(t *testing.T) {
	client, server := pair(t, &Options{RingSize: 4096, MaxMessageSize: 1000}, nil)
	if _, err := server.RecvTimeout(0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("try recv on empty: %v", err)
	}
	start := time.Now()
	if _, err := server.RecvTimeout(30 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("recv timeout: %v", err)
	}
	if time.Since(start) < 30*time.Millisecond {
		t.Fatal("recv returned before its timeout")
	}
	for client.TrySend(make([]byte, 1000)) == nil {
	}
	if err := client.SendTimeout(make([]byte, 1000), 20*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("send on full ring: %v", err)
	}
	// The connection is still usable both ways.
	if _, err := server.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := client.SendTimeout([]byte("x"), time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestContextCancelWakesReceiver(t *testing.T) {
	_, server := pair(t, nil, &Options{Spin: SpinNever})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := server.RecvContext(ctx)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("RecvContext after cancel: %v", err)
	}
}

func TestCloseInterruptsBlockedCalls(t *testing.T) {
	for _, spin := range []time.Duration{SpinNever, SpinDefault, SpinForever} {
		client, server := pair(t, &Options{Spin: spin, RingSize: 4096, MaxMessageSize: 1000}, &Options{Spin: spin})
		for client.TrySend(make([]byte, 1000)) == nil {
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		wg.Add(2)
		go func() { defer wg.Done(); _, err := client.Recv(); errs <- err }()
		go func() { defer wg.Done(); errs <- client.Send(make([]byte, 1000)) }()
		if err := client.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for i := 0; i < 2; i++ {
			if err := <-errs; !errors.Is(err, ErrClosed) {
				t.Errorf("spin %v: blocked call after Close: %v", spin, err)
			}
		}
		if err := client.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("double close: %v", err)
		}
		if err := client.Send(nil); !errors.Is(err, ErrClosed) {
			t.Errorf("send after close: %v", err)
		}
		// The server drains what was sent, then sees the peer gone.
		n := 0
		for {
			_, err := server.RecvTimeout(time.Second)
			if errors.Is(err, ErrPeerClosed) {
				break
			}
			if err != nil {
				t.Fatalf("server: %v", err)
			}
			n++
		}
		if n == 0 {
			t.Error("server received nothing that was sent before the close")
		}
		if err := server.Send(nil); !errors.Is(err, ErrPeerClosed) {
			t.Errorf("send to a closed peer: %v", err)
		}
	}
}

func TestReserveCommitAbort(t *testing.T) {
	client, server := pair(t, nil, nil)
	buf, err := client.Reserve(100, time.Second)
	if err != nil || len(buf) != 100 {
		t.Fatal(len(buf), err)
	}
	copy(buf, "abc")
	if err := client.Commit(3); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(10, 0); err != nil {
		t.Fatal(err)
	}
	if err := client.AbortReserve(); err != nil {
		t.Fatal(err)
	}
	if err := client.Commit(1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("commit without reserve: %v", err)
	}
	if err := client.AbortReserve(); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("abort without reserve: %v", err)
	}
	if _, err := client.Reserve(-1, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("negative reserve: %v", err)
	}
	view, err := server.RecvView(time.Second)
	if err != nil || string(view) != "abc" {
		t.Fatalf("view %q %v", view, err)
	}
	if err := server.ReleaseView(); err != nil {
		t.Fatal(err)
	}
	if err := server.ReleaseView(); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("double release: %v", err)
	}
	if _, err := server.RecvTimeout(0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("aborted reservation was delivered: %v", err)
	}
}

func TestCloseWithOpenViewKeepsMappingUntilRelease(t *testing.T) {
	client, server := pair(t, nil, nil)
	client.Send([]byte("still here"))
	view, err := server.RecvView(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	server.Close()
	if string(view) != "still here" { // would fault if the mapping were gone
		t.Fatalf("view %q", view)
	}
	if err := server.ReleaseView(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentSendersAndReceivers(t *testing.T) {
	client, server := pair(t, nil, nil)
	const senders, each = 4, 2000
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := client.Send([]byte{byte(s), byte(i), byte(i >> 8)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var mu sync.Mutex
	next := make([]int, senders)
	var rg sync.WaitGroup
	for r := 0; r < 2; r++ {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for {
				mu.Lock() // keeps the per-sender order check meaningful
				msg, err := server.RecvTimeout(200 * time.Millisecond)
				if errors.Is(err, ErrTimeout) {
					mu.Unlock()
					return
				}
				if err != nil {
					mu.Unlock()
					t.Error(err)
					return
				}
				s, i := int(msg[0]), int(msg[1])|int(msg[2])<<8
				if next[s] != i {
					t.Errorf("sender %d: got %d, want %d", s, i, next[s])
				}
				next[s]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	rg.Wait()
	for s, n := range next {
		if n != each {
			t.Errorf("sender %d: %d of %d delivered", s, n, each)
		}
	}
}

func TestListenRefusesLiveAndReplacesStale(t *testing.T) {
	checkLeaks(t)
	path := socketPath(t)
	ln, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, nil); !errors.Is(err, ErrAddressInUse) {
		t.Fatalf("second listen: %v", err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after close: %v", err)
	}
	if err := ln.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("double close: %v", err)
	}
	// A stale socket: bound by a process that is gone (no listener).
	fd, _ := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	ln, err = Listen(path, nil)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	ln.Close()
	// A regular file is never replaced.
	os.WriteFile(path, []byte("data"), 0o600)
	if _, err := Listen(path, nil); !errors.Is(err, ErrAddressInUse) {
		t.Fatalf("listen over a regular file: %v", err)
	}
}

func TestAcceptTimeoutAndClose(t *testing.T) {
	checkLeaks(t)
	ln, err := Listen(socketPath(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ln.AcceptTimeout(20 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("accept timeout: %v", err)
	}
	errc := make(chan error, 1)
	go func() { _, err := ln.Accept(); errc <- err }()
	ln.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	checkLeaks(t)
	if _, err := Dial(filepath.Join(t.TempDir(), "nobody"), nil); err == nil || !strings.Contains(err.Error(), "listener") {
		t.Fatalf("dial to nothing: %v", err)
	}
	if _, err := Dial("", nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("empty path: %v", err)
	}
	if _, err := Dial("/x", &Options{RingSize: 5000}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad ring size: %v", err)
	}
	if _, err := Dial("/x", &Options{RingSize: 4096, MaxMessageSize: 4096}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("max message larger than ring: %v", err)
	}
}

func TestVersionMismatchBothSides(t *testing.T) {
	ln, path := listenChecked(t)
	errc := make(chan error, 1)
	go func() { _, err := ln.Accept(); errc <- err }()
	_, err := Dial(path, &Options{ProtocolVersionOverride: 99})
	if !errors.Is(err, ErrVersionMismatch) || !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "99") {
		t.Fatalf("dialer: %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("listener: %v", err)
	}
	// The listener is still usable.
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		errc <- err
	}()
	c, err := Dial(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestListenerRefusesTooLargeMessages(t *testing.T) {
	checkLeaks(t)
	path := socketPath(t)
	ln, _ := Listen(path, &Options{MaxMessageSize: 1000})
	defer ln.Close()
	errc := make(chan error, 1)
	go func() { _, err := ln.Accept(); errc <- err }()
	if _, err := Dial(path, &Options{MaxMessageSize: 2000}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("dialer: %v", err)
	}
	if err := <-errc; !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("listener: %v", err)
	}
}

// TestPeerUIDPolicy dials from a child running as another uid: refused by
// default, accepted when that uid is allowed. Needs root to switch uid.
func TestPeerUIDPolicy(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a peer under another uid")
	}
	checkLeaks(t)
	dir, _ := os.MkdirTemp("", "goipc-uid")
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	path := filepath.Join(dir, "s.sock")
	// The test binary may sit in a directory only we can read: give the
	// other uid its own copy.
	self, _ := os.Executable()
	exe := filepath.Join(dir, "peer.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(exe, data, 0o755)
	for _, allow := range []bool{false, true} {
		opts := &Options{}
		if allow {
			opts.AllowUIDs = []uint32{65534}
		}
		ln, err := Listen(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, 0o777)
		errc := make(chan error, 1)
		go func() {
			c, err := ln.AcceptTimeout(20 * time.Second)
			if err == nil {
				c.Close()
			}
			errc <- err
		}()
		cmd := childCommand(t, "dial-once", path)
		cmd.Path = exe
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, _ := cmd.CombinedOutput()
		err = <-errc
		ln.Close()
		if allow && err != nil {
			t.Errorf("allowed uid refused: %v (child: %s)", err, out)
		}
		if !allow && (!errors.Is(err, ErrPermission) || !strings.Contains(string(out), "permission")) {
			t.Errorf("other uid: listener %v, child %s", err, out)
		}
	}
}

func childCommand(t testing.TB, role string, args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), "GOIPC_TEST_CHILD="+role)
	return cmd
}

func TestAdaptiveSpinBounds(t *testing.T) {
	c := &Conn{spin: 64 * time.Microsecond, spinNow: [2]time.Duration{64 * time.Microsecond, 64 * time.Microsecond}}
	for i := 0; i < 10; i++ {
		c.adaptSpin(dirRecv, false)
	}
	if got := c.spinNow[dirRecv]; got != 4*time.Microsecond {
		t.Fatalf("after losses: %v, want the floor 4µs", got)
	}
	if c.spinNow[dirSend] != 64*time.Microsecond {
		t.Fatal("directions are not independent")
	}
	for i := 0; i < 10; i++ {
		c.adaptSpin(dirRecv, true)
	}
	if got := c.spinNow[dirRecv]; got != 64*time.Microsecond {
		t.Fatalf("after wins: %v, want the ceiling 64µs", got)
	}
	// Preempted: the budget falls to 0 (park at once). A probe of the
	// whole budget comes at the first wait, then probes of the floor after
	// gaps that double up to spinProbeEvery while they lose; a won probe
	// restarts the budget from the floor, and the next fall probes at once
	// again.
	for fall := 0; fall < 2; fall++ {
		c.spinNow[dirRecv] = 0
		var at []int
		for i := 1; i <= 4*spinProbeEvery; i++ {
			if b := c.spinBudget(dirRecv); b != 0 {
				want := 4 * time.Microsecond
				if len(at) == 0 {
					want = 64 * time.Microsecond
				}
				if b != want {
					t.Fatalf("probe %d budget %v, want %v", len(at)+1, b, want)
				}
				at = append(at, i)
			}
		}
		if want := []int{1, 3, 7, 15, 31, 63, 95, 127}; !slices.Equal(at, want) {
			t.Fatalf("fall %d: probes at waits %v, want %v", fall, at, want)
		}
		c.adaptSpin(dirRecv, true)
		if got := c.spinNow[dirRecv]; got != 4*time.Microsecond {
			t.Fatalf("after a won probe: %v, want the floor", got)
		}
	}
	f := &Conn{spin: SpinForever, spinNow: [2]time.Duration{SpinForever, SpinForever}}
	f.adaptSpin(dirRecv, false)
	if f.spinNow[dirRecv] != SpinForever {
		t.Fatal("SpinForever adapted")
	}
}

// spinTestConn is a Conn with only what the adaptive spin reads: the
// budgets, and this end's wake counts (the segment's statistics words).
func spinTestConn(full time.Duration) (c *Conn, prodWakes, consWakes *uint64) {
	prodWakes, consWakes = new(uint64), new(uint64)
	c = &Conn{spin: full, spinNow: [2]time.Duration{full, full}}
	c.prod.r.prodWakes, c.cons.r.consWakes = prodWakes, consWakes
	return c, prodWakes, consWakes
}

// After a park that followed a wake of ours (the peer was parked), a
// reduced budget makes the next wait a long probe, on a schedule that
// backs off while the probes lose; a won probe resets it; and a short
// spin that lost to the peer's wakeup does not shrink the budget. Without
// that, both ends of a ping-pong that fell together kept losing their
// short spins to each other's wakeups (docs/PERFORMANCE.md, section 22).
func TestParkAfterWakingThePeerArmsLongProbes(t *testing.T) {
	const full, floor = 64 * time.Microsecond, 4 * time.Microsecond
	c, prodWakes, consWakes := spinTestConn(full)

	// Fallen to 0, every park after a wake of ours, every probe losing:
	// probes at parks 1, 4, 9, 18, 35, 68, 101, 134 (a lost probe's own
	// park, then gaps doubling from 2 up to spinProbeEvery).
	c.spinNow[dirRecv] = 0
	var at []int
	for i := 1; i <= 140; i++ {
		if i%3 == 0 {
			*consWakes++ // a wake of the peer's writer counts too
		} else {
			*prodWakes++
		}
		if c.spinArmed[dirRecv] && c.spinNow[dirRecv] != full {
			t.Fatalf("park %d: armed with a budget of %v", i, c.spinNow[dirRecv])
		}
		c.afterPark(dirRecv, c.spinNow[dirRecv], false)
		if c.spinArmed[dirRecv] {
			if c.spinNow[dirRecv] != full || c.spinProbeGap[dirRecv]&spinArmedMark == 0 {
				t.Fatalf("park %d: armed, budget %v, gap %#x", i, c.spinNow[dirRecv], c.spinProbeGap[dirRecv])
			}
			at = append(at, i)
		} else if c.spinNow[dirRecv] != 0 || c.spinProbeGap[dirRecv]&spinArmedMark != 0 {
			t.Fatalf("park %d: not armed, budget %v, gap %#x", i, c.spinNow[dirRecv], c.spinProbeGap[dirRecv])
		}
	}
	if want := []int{1, 4, 9, 18, 35, 68, 101, 134}; !slices.Equal(at, want) {
		t.Fatalf("long probes armed at parks %v, want %v", at, want)
	}

	// A won probe (adaptSpin clears the mark) keeps the full budget, and
	// resets the schedule: the next fall probes at once after the next
	// wake (the gap was 2 after the first probe).
	c, prodWakes, _ = spinTestConn(full)
	c.spinNow[dirRecv] = 0
	*prodWakes++
	if c.afterPark(dirRecv, 0, false); !c.spinArmed[dirRecv] || c.wokeGap[dirRecv] != 2 {
		t.Fatalf("the first wake armed no probe (gap %d)", c.wokeGap[dirRecv])
	}
	c.adaptSpin(dirRecv, true)
	if c.spinNow[dirRecv] != full || c.spinProbeGap[dirRecv] != 0 {
		t.Fatalf("after a won probe: budget %v gap %#x", c.spinNow[dirRecv], c.spinProbeGap[dirRecv])
	}
	c.spinNow[dirRecv] = 0 // fallen again (preempted)
	*prodWakes++
	c.afterPark(dirRecv, 0, false)
	if !c.spinArmed[dirRecv] || c.spinNow[dirRecv] != full {
		t.Fatalf("the first wake after a won probe did not arm one at once: %v", c.spinNow[dirRecv])
	}

	// No wake of ours, no probe: the peer is running.
	c, _, _ = spinTestConn(full)
	c.spinNow[dirRecv] = 0
	for i := 0; i < 10; i++ {
		if c.afterPark(dirRecv, 0, false); c.spinArmed[dirRecv] || c.spinNow[dirRecv] != 0 {
			t.Fatalf("armed without a wake: %v", c.spinNow[dirRecv])
		}
	}

	// A short spin that lost, in a wait that ended soon after: halved,
	// unless a wake of ours came first (then a long probe is armed).
	c, prodWakes, _ = spinTestConn(full)
	c.spinNow[dirRecv] = 2 * floor
	c.afterPark(dirRecv, 2*floor, true)
	if c.spinNow[dirRecv] != floor {
		t.Fatalf("a lost spin with the peer awake left %v, want %v", c.spinNow[dirRecv], floor)
	}
	c.spinNow[dirRecv] = 2 * floor
	c.wokeGap[dirRecv] = 4 // between probes
	*prodWakes++
	c.afterPark(dirRecv, 2*floor, true)
	if c.spinArmed[dirRecv] || c.spinNow[dirRecv] != 2*floor {
		t.Fatalf("a lost short spin against a parked peer, between probes: budget %v (armed %v), want %v kept", c.spinNow[dirRecv], c.spinArmed[dirRecv], 2*floor)
	}
	c.wokeGap[dirRecv], c.wokeProbe[dirRecv] = 0, 0
	*prodWakes++
	c.afterPark(dirRecv, 2*floor, true)
	if !c.spinArmed[dirRecv] || c.spinNow[dirRecv] != full {
		t.Fatalf("a lost short spin against a parked peer: budget %v, armed %v", c.spinNow[dirRecv], c.spinArmed[dirRecv])
	}
	// The long probe itself lost, soon after (contention): back to 0.
	c.afterPark(dirRecv, full, true)
	if c.spinArmed[dirRecv] || c.spinNow[dirRecv] != 0 {
		t.Fatalf("a lost long probe left %v (armed %v), want 0", c.spinNow[dirRecv], c.spinArmed[dirRecv])
	}

	f, _, fw := spinTestConn(SpinForever)
	*fw++
	f.spinNow[dirRecv] = 0
	f.afterPark(dirRecv, 0, false)
	if f.spinArmed[dirRecv] || f.spinNow[dirRecv] != 0 {
		t.Fatal("SpinForever adapted")
	}
}

// The wake a publish of ours makes shows in the segment's wake counts,
// which afterPark reads: a park after waking the parked peer arms a long
// probe; one after a send to a peer that waited for nothing does not.
func TestParkSeesTheWakeOfAParkedPeer(t *testing.T) {
	client, server := pair(t, nil, nil)
	armsAfterPark := func() bool {
		client.spinNow[dirRecv], client.spinArmed[dirRecv] = 0, false
		client.wokeProbe[dirRecv], client.wokeGap[dirRecv] = 0, 0
		client.spinProbeGap[dirRecv] = 0
		client.afterPark(dirRecv, 0, false)
		return client.spinArmed[dirRecv]
	}
	armsAfterPark() // takes in the wakes so far (none)
	if err := client.SendTimeout([]byte("awake"), -1); err != nil {
		t.Fatal(err)
	}
	if armsAfterPark() {
		t.Fatal("a send to a receiver that waits for nothing counted as a wake")
	}
	if _, err := server.RecvTimeout(-1); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := server.RecvTimeout(-1)
		got <- err
	}()
	waitUntil(t, "the receiver to park", client.prod.r.dataEC.waiting)
	if err := client.SendTimeout([]byte("wake up"), -1); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if !armsAfterPark() {
		t.Fatal("the park after waking the parked receiver armed no long probe")
	}
	if armsAfterPark() {
		t.Fatal("the same wake counted twice")
	}
}

// A wait after a futex wake of ours stretches its spin: futexWokePeer
// sees the epochs of the peer's eventcounts move (once per wake, either
// direction's, not with another call of the process parked, not for
// SpinNever or SpinForever), and peerLeftFutex sees the woken waiter's
// announcement gone. Through await on a real connection (200 µs budget,
// 500 µs timeout): after such a wake, with the peer running again, the
// wait spins past its budget and the timeout ends it unparked, even from
// a budget of 0; without the wake, or with the peer still announced on
// its futex, it parks (docs/PERFORMANCE.md section 23).
func TestAWaitAfterAFutexWakeStretchesItsSpin(t *testing.T) {
	const epoch = 1 << 32
	var data, space uint64
	c := &Conn{spin: 64 * time.Microsecond}
	c.prod.r.dataEC, c.cons.r.spaceEC = eventCount{&data}, eventCount{&space}
	if c.futexWokePeer(dirRecv) {
		t.Fatal("no wake, yet woken")
	}
	data += epoch
	if !c.futexWokePeer(dirRecv) || c.futexWokePeer(dirRecv) {
		t.Fatal("a wake is seen once")
	}
	space += epoch // the peer's writer, woken by our consumer
	if !c.futexWokePeer(dirSend) || !c.futexWokePeer(dirRecv) {
		t.Fatal("each direction sees a wake of either kind")
	}
	data += epoch
	parkedCalls.Add(1)
	woke := c.futexWokePeer(dirRecv)
	parkedCalls.Add(-1)
	if woke || c.futexWokePeer(dirRecv) {
		t.Fatal("stretched with another call parked, or the wake seen again")
	}
	for _, spin := range []time.Duration{SpinNever, SpinForever} {
		c.spin = spin
		data += epoch
		if c.futexWokePeer(dirRecv) {
			t.Fatalf("Spin %v stretched", spin)
		}
	}
	if !c.peerLeftFutex() {
		t.Fatal("no waiter announced, yet not left")
	}
	space++ // a futex waiter announced (ecWaitersMask)
	if c.peerLeftFutex() {
		t.Fatal("a waiter announced, yet left")
	}
	data |= ecDoorbell // a doorbell waiter is not a futex waiter
	space--
	if !c.peerLeftFutex() {
		t.Fatal("a doorbell announcement read as a futex waiter")
	}

	const budget = 200 * time.Microsecond
	client, _ := pair(t, &Options{Spin: budget}, nil)
	never := func() (bool, error) { return false, nil }
	ec := client.prod.r.dataEC // where the peer's receiver announces
	parksOf := func(now time.Duration, wake, peerAsleep bool, timeout time.Duration) uint64 {
		if err := client.lockRecv(&waitFor{}); err != nil {
			t.Fatal(err)
		}
		defer client.unlockRecv()
		client.spinNow[dirRecv], client.spinProbe[dirRecv], client.spinProbeGap[dirRecv] = now, 0, spinProbeEvery
		client.spinArmed[dirRecv], client.spinWins[dirRecv] = false, 0
		if wake {
			atomic.AddUint64(ec.word, epoch)
		}
		if peerAsleep {
			atomic.AddUint64(ec.word, 1)
			defer atomic.AddUint64(ec.word, ^uint64(0))
		}
		before := client.cons.n.parks
		w := timeoutWait(timeout)
		if err := client.await(dirRecv, client.cons.r.dataEC, never, &w, false); !errors.Is(err, ErrTimeout) {
			t.Fatal(err)
		}
		return client.cons.n.parks - before
	}
	// The waits that must park get a timeout far beyond their spin (and
	// beyond the yield of the asleep case, which a loaded machine can
	// make long), so that only a park can end them.
	const parkTimeout = 50 * time.Millisecond
	for _, now := range []time.Duration{0, budget} {
		for i := 0; i < 3; i++ {
			if n := parksOf(now, false, false, parkTimeout); n != 1 {
				t.Fatalf("budget %v, no wake: %d parks, want 1", now, n)
			}
			if n := parksOf(now, true, true, parkTimeout); n != 1 {
				t.Fatalf("budget %v, a wake but the peer still asleep: %d parks, want 1", now, n)
			}
		}
		// A spin that loses its CPU parks too: one attempt of several
		// must not have been descheduled.
		spun := false
		for i := 0; i < 50 && !spun; i++ {
			spun = parksOf(now, true, false, 500*time.Microsecond) == 0
		}
		if !spun {
			t.Fatalf("budget %v: after a wake, with the peer running, every wait parked", now)
		}
	}

	// A spin that started from a budget of 0 because of the wake, lost,
	// and parked keeps the budget at 0 (with its probes): halving it would
	// raise it to the floor, where no probe comes. A 5 ms budget, so that
	// a wait ended by the peer's message soon after counts as "lost soon".
	client2, server2 := pair(t, &Options{Spin: 5 * time.Millisecond}, nil)
	ec2 := client2.prod.r.dataEC
	atomic.AddUint64(ec2.word, 1) // the peer announced asleep: no stretch
	defer atomic.AddUint64(ec2.word, ^uint64(0))
	for i := 0; i < 3; i++ {
		client2.spinNow[dirRecv], client2.spinProbe[dirRecv], client2.spinProbeGap[dirRecv] = 0, 0, spinProbeEvery
		atomic.AddUint64(ec2.word, epoch)
		got := make(chan error, 1)
		go func() {
			_, err := client2.RecvTimeout(time.Minute)
			got <- err
		}()
		waitUntil(t, "the receiver to park", client2.cons.r.dataEC.waiting)
		if err := server2.Send([]byte("late")); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		if b := client2.spinNow[dirRecv]; b != 0 {
			t.Fatalf("a lost spin from a budget of 0 left the budget at %v", b)
		}
	}
}

// With SpinDefault a direction on a winning streak (spinStreak waits in a
// row that ended while spinning) spins up to spinExtended; anything else
// ends the streak, and only the default mode, at its full budget, with no
// other call of the process parked, ever extends.
func TestSpinStreakExtendsTheDefaultBudget(t *testing.T) {
	client, server := pair(t, nil, &Options{Spin: DefaultSpin})
	c := client
	for i := 0; i < spinStreak-1; i++ {
		c.noteStreak(dirRecv, true)
	}
	if got := c.spinLimit(dirRecv, DefaultSpin); got != DefaultSpin {
		t.Fatalf("after %d won spins: %v, want %v", spinStreak-1, got, DefaultSpin)
	}
	c.noteStreak(dirRecv, true)
	if got := c.spinLimit(dirRecv, DefaultSpin); got != spinExtended {
		t.Fatalf("after a streak of %d: %v, want %v", spinStreak, got, spinExtended)
	}
	if got := c.spinLimit(dirSend, DefaultSpin); got != DefaultSpin {
		t.Fatalf("the other direction extended: %v", got)
	}
	if got := c.spinLimit(dirRecv, DefaultSpin/2); got != DefaultSpin/2 {
		t.Fatalf("a halved budget extended: %v", got)
	}
	parkedCalls.Add(1)
	got := c.spinLimit(dirRecv, DefaultSpin)
	parkedCalls.Add(-1)
	if got != DefaultSpin {
		t.Fatalf("extended while another call was parked: %v", got)
	}
	c.noteStreak(dirRecv, false)
	if got := c.spinLimit(dirRecv, DefaultSpin); got != DefaultSpin {
		t.Fatalf("after the streak ended: %v, want %v", got, DefaultSpin)
	}
	// An explicit budget, even the default's value, is kept as given.
	for i := 0; i < 2*spinStreak; i++ {
		server.noteStreak(dirRecv, true)
	}
	if got := server.spinLimit(dirRecv, DefaultSpin); got != DefaultSpin {
		t.Fatalf("an explicit Spin of %v extended to %v", DefaultSpin, got)
	}
}

func TestProbeOfLiveListenerIsNoClient(t *testing.T) {
	ln, path := listenChecked(t)
	if _, err := Listen(path, nil); !errors.Is(err, ErrAddressInUse) { // connects to probe, then hangs up
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		c, err := Dial(path, nil)
		if err == nil {
			c.Close()
		}
		errc <- err
	}()
	c, err := ln.AcceptTimeout(10 * time.Second)
	if err != nil {
		t.Fatalf("accept after a probe: %v", err)
	}
	c.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestLongSocketPath(t *testing.T) {
	long := "/tmp/" + strings.Repeat("x", 200)
	if _, err := Listen(long, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("listen: %v", err)
	}
	if _, err := Dial(long, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("dial: %v", err)
	}
}

// A goroutine whose waits keep ending in won spins never enters the
// scheduler: with other calls of the process parked (or yielding), it
// lets them have its P every spinWinsPerYield such waits; alone, never
// (a yield with an idle P wakes a thread to look for work).
func TestWonSpinsYieldToOtherCalls(t *testing.T) {
	client, _ := pair(t, &Options{Spin: time.Millisecond}, nil)
	locked, _ := pair(t, &Options{Spin: time.Millisecond, ThreadLocked: true}, nil)
	// ready fails at await's first look and holds at spinFor's first
	// poll: a won spin, whatever the machine's load.
	wonWait := func(client *Conn) {
		t.Helper()
		if err := client.lockRecv(&waitFor{}); err != nil {
			t.Fatal(err)
		}
		defer client.unlockRecv()
		looks := 0
		ready := func() (bool, error) { looks++; return looks > 1, nil }
		w := timeoutWait(time.Minute)
		if err := client.await(dirRecv, client.cons.r.dataEC, ready, &w, false); err != nil {
			t.Fatal(err)
		}
		if looks != 2 {
			t.Fatalf("%d looks, want 2 (a spin that won at its first poll)", looks)
		}
	}
	yieldsAfter := func(c *Conn, waits int) uint64 {
		t.Helper()
		before := yieldsForOthers.Load()
		for i := 0; i < waits; i++ {
			wonWait(c)
		}
		return yieldsForOthers.Load() - before
	}
	if n := yieldsAfter(client, 4*spinWinsPerYield); n != 0 {
		t.Fatalf("alone: %d yields in %d won spins, want 0", n, 4*spinWinsPerYield)
	}
	parkedCalls.Add(1)
	n := yieldsAfter(client, 4*spinWinsPerYield)
	nLocked := yieldsAfter(locked, 4*spinWinsPerYield)
	parkedCalls.Add(-1)
	if n != 4 {
		t.Fatalf("another call parked: %d yields in %d won spins, want 4", n, 4*spinWinsPerYield)
	}
	if nLocked != 0 {
		t.Fatalf("ThreadLocked, another call parked: %d yields, want 0", nLocked)
	}
	yielders.Add(1)
	n = yieldsAfter(client, 2*spinWinsPerYield-1)
	yielders.Add(-1)
	if n != 1 {
		t.Fatalf("another call yielding: %d yields in %d won spins, want 1", n, 2*spinWinsPerYield-1)
	}
	if n := yieldsAfter(client, spinWinsPerYield); n != 0 {
		t.Fatalf("alone again: %d yields, want 0", n)
	}
}

// A futex sleep keeps the goroutine's P: a call woken from one yields it
// when other calls of the process are parked, and not when it is alone.
func TestAFutexWakeYieldsToOtherCalls(t *testing.T) {
	// The receives must still be on the futex when the test looks: with
	// the default 2 ms window, a test goroutine that did not run for 2 ms
	// (a busy CI machine) found the receive moved to its doorbell, and
	// waited for the futex waiter in vain.
	defer func(w time.Duration) { futexWindow = w }(futexWindow)
	futexWindow = time.Minute
	client, server := pair(t, &Options{Spin: SpinNever}, nil)
	locked, lockedPeer := pair(t, &Options{Spin: SpinNever, ThreadLocked: true}, nil)
	// yieldsOfWokenReceive parks a receive on the futex (SpinNever), sends
	// once its waiter is announced, and returns the yields it made.
	yieldsOfWokenReceive := func(client, server *Conn) uint64 {
		t.Helper()
		before := yieldsForOthers.Load()
		receiveParked(t, client, server, "the receive sleeps on the futex", func(w uint64) bool { return w&ecWaitersMask != 0 })
		return yieldsForOthers.Load() - before
	}
	if n := yieldsOfWokenReceive(client, server); n != 0 {
		t.Fatalf("alone: %d yields after a futex wake, want 0", n)
	}
	parkedCalls.Add(1)
	n := yieldsOfWokenReceive(client, server)
	nLocked := yieldsOfWokenReceive(locked, lockedPeer)
	parkedCalls.Add(-1)
	if n != 1 || nLocked != 0 {
		t.Fatalf("another call parked: %d yields after a futex wake (ThreadLocked: %d), want 1 (0)", n, nLocked)
	}
}
