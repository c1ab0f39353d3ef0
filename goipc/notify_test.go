package goipc

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// readable waits up to d for fd to be readable.
func readable(t *testing.T, fd int, d time.Duration) bool {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, int(d/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
}

// notifyPipe returns a small pipe, closed at cleanup, and the first
// end's NotifyFD.
func notifyPipe(t *testing.T) (a, b *Conn, fd int) {
	t.Helper()
	checkLeaks(t)
	a, b, err := Pipe(&Options{RingSize: MinRingSize, MaxMessageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	if fd, err = a.NotifyFD(); err != nil {
		t.Fatal(err)
	}
	return a, b, fd
}

// The descriptor wakes a waiting receive, and a failed send on the same
// connection does not swallow that wakeup (one descriptor, two
// directions).
func TestNotifyFDBothDirections(t *testing.T) {
	a, b, fd := notifyPipe(t)
	if again, _ := a.NotifyFD(); again != fd {
		t.Fatalf("NotifyFD returned %d, then %d", fd, again)
	}
	msg := make([]byte, 1000)
	for a.TrySend(msg) == nil { // fill a's send ring
	}
	if _, err := a.RecvTimeout(0); !errors.Is(err, ErrTimeout) { // arm the receive direction
		t.Fatal(err)
	}
	if err := b.Send([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if !readable(t, fd, 10*time.Second) {
		t.Fatal("a message arrived, the descriptor stayed quiet")
	}
	if err := a.TrySend(msg); !errors.Is(err, ErrTimeout) { // the other direction fails
		t.Fatal(err)
	}
	if !readable(t, fd, 10*time.Second) {
		t.Fatal("a failed send swallowed the receive's wakeup")
	}
	if m, err := a.RecvTimeout(0); err != nil || string(m) != "ping" {
		t.Fatalf("%q %v", m, err)
	}
	if _, err := a.RecvTimeout(0); !errors.Is(err, ErrTimeout) {
		t.Fatal(err)
	}
	// The send direction: b frees space, the descriptor wakes a's sender.
	if _, err := b.RecvTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !readable(t, fd, 10*time.Second) {
		t.Fatal("space was freed, the descriptor stayed quiet")
	}
	if err := a.TrySend(msg); err != nil {
		t.Fatalf("send after space was freed: %v", err)
	}
	// The peer going away makes it readable too.
	for a.TrySend(msg) == nil {
	}
	a.RecvTimeout(0)
	b.Close()
	if !readable(t, fd, 10*time.Second) {
		t.Fatal("the peer closed, the descriptor stayed quiet")
	}
	for {
		if _, err := a.RecvTimeout(0); errors.Is(err, ErrPeerClosed) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

// A connection used in one direction only: the descriptor starts
// readable, and one failed call makes it quiet (no stale readiness of the
// direction never used).
func TestNotifyFDQuietAfterOneFailedCall(t *testing.T) {
	a, _, fd := notifyPipe(t)
	if !readable(t, fd, 0) {
		t.Fatal("a new descriptor is not readable")
	}
	if _, err := a.RecvTimeout(0); !errors.Is(err, ErrTimeout) {
		t.Fatal(err)
	}
	if readable(t, fd, 0) {
		t.Fatal("readable after the only direction in use found nothing")
	}
}

// A direction whose wakeup was acted on (a send that waited for space and
// then went out) does not keep the descriptor readable for the other
// direction: an idle receive after it is quiet.
func TestNotifyFDQuietAfterAWakeupWasUsed(t *testing.T) {
	a, b, fd := notifyPipe(t)
	msg := make([]byte, 1000)
	for a.TrySend(msg) == nil { // fill a's ring: the send direction is armed
	}
	if _, err := b.RecvTimeout(5 * time.Second); err != nil { // frees space
		t.Fatal(err)
	}
	if !readable(t, fd, 10*time.Second) {
		t.Fatal("space was freed, the descriptor stayed quiet")
	}
	if err := a.TrySend(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RecvTimeout(0); !errors.Is(err, ErrTimeout) {
		t.Fatal(err)
	}
	if readable(t, fd, 100*time.Millisecond) {
		t.Fatal("readable while only an idle receive waits")
	}
}
