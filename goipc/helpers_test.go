package goipc

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipc/goipc/internal/testsock"
)

// TestMain doubles as the entry point of peer processes: two-process tests
// re-exec the test binary with GOIPC_TEST_CHILD naming the role to play.
func TestMain(m *testing.M) {
	if role := os.Getenv("GOIPC_TEST_CHILD"); role != "" {
		os.Exit(runChild(role))
	}
	// The runtime's netpoller opens its epoll and eventfd descriptors on
	// first use, for good; a doorbell wait may be that first use, and the
	// leak check of a test run alone would count them. Start it here.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	os.Exit(m.Run())
}

// resources is what a test must give back: goroutines, fds and mappings.
type resources struct {
	goroutines int
	fds        int
	mappings   int
}

func countResources(t testing.TB) resources {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return resources{
		goroutines: runtime.NumGoroutine(),
		fds:        len(ents),
		mappings:   strings.Count(string(maps), "memfd:goipc"),
	}
}

// checkLeaks records the resources in use now and, when the test ends,
// fails it if more remain. Goroutines and fds owned by the runtime settle
// asynchronously, so the check polls for a bounded time before failing.
func checkLeaks(t testing.TB) {
	t.Helper()
	before := countResources(t)
	t.Cleanup(func() {
		var now resources
		for deadline := time.Now().Add(2 * time.Second); ; {
			now = countResources(t)
			if now.goroutines <= before.goroutines && now.fds <= before.fds && now.mappings <= before.mappings {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			runtime.Gosched()
			time.Sleep(5 * time.Millisecond) // polling a condition, bounded by the deadline
		}
		buf := make([]byte, 1<<16)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("leak: before %+v, after %+v\n%s", before, now, buf)
	})
}

// socketPath returns a fresh socket path in the test's temp dir.
func socketPath(t testing.TB) string {
	return testsock.Path(t, "s.sock")
}

// pair returns a connected dialer/listener pair, closed at cleanup.
func pair(t testing.TB, dialOpts, listenOpts *Options) (client, server *Conn) {
	t.Helper()
	checkLeaks(t)
	path := socketPath(t)
	ln, err := Listen(path, listenOpts)
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		c   *Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = Dial(path, dialOpts)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		r.c.Close()
	})
	return client, r.c
}

// anonSegment maps a zeroed, anonymous shared segment with an initialised
// header, for tests of the ring without a peer.
func anonSegment(t testing.TB, ringSize, maxMessage uint64) *segment {
	t.Helper()
	mem, err := unix.Mmap(-1, 0, int(segmentSize(ringSize)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	initSegment(mem, ringSize, maxMessage, "/test", ProtocolVersion)
	seg, err := parseSegment(mem, maxMessage)
	if err != nil {
		t.Fatal(err)
	}
	return seg
}

func mustf(cond bool, format string, args ...any) error {
	if cond {
		return nil
	}
	return fmt.Errorf(format, args...)
}

// waitUntil polls cond until it holds or 10 s pass: a state check with a
// bound, not a sleep standing in for an event.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}

// receiveParked starts a receive on c, waits until parked(c's data
// eventcount word) holds, then sends a message from peer and checks that
// the receive got it.
func receiveParked(t *testing.T, c, peer *Conn, what string, parked func(word uint64) bool) {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, 16)
		_, err := c.RecvInto(buf, time.Minute)
		got <- err
	}()
	ec := c.cons.r.dataEC
	waitUntil(t, what, func() bool { return parked(atomic.LoadUint64(ec.word)) })
	if err := peer.Send([]byte("end")); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}
