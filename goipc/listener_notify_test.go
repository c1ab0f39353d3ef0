package goipc

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listenChecked returns a listener, closed at cleanup, and its path.
func listenChecked(t *testing.T) (*Listener, string) {
	t.Helper()
	checkLeaks(t)
	path := socketPath(t)
	ln, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, path
}

// notifyListener returns a listener, closed at cleanup, and its NotifyFD.
func notifyListener(t *testing.T) (ln *Listener, path string, fd int) {
	t.Helper()
	ln, path = listenChecked(t)
	fd, err := ln.NotifyFD()
	if err != nil {
		t.Fatal(err)
	}
	return ln, path, fd
}

func dialClosedAtCleanup(t *testing.T, path string) {
	t.Helper()
	c, err := Dial(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
}

func acceptNow(t *testing.T, ln *Listener) {
	t.Helper()
	c, err := ln.AcceptTimeout(0)
	if err != nil {
		t.Fatalf("the descriptor was readable, a zero-timeout Accept failed: %v", err)
	}
	c.Close()
}

// Dial returns once its connection is queued for Accept, so the
// descriptor is readable at that moment (no wait needed), and quiet again
// once Accept has taken the connection.
func TestListenerNotifyFDReadyAfterDial(t *testing.T) {
	ln, path, fd := notifyListener(t)
	if again, err := ln.NotifyFD(); err != nil || again != fd {
		t.Fatalf("NotifyFD returned %d, then %d (%v)", fd, again, err)
	}
	if readable(t, fd, 0) {
		t.Fatal("readable with no client")
	}
	if _, err := ln.AcceptTimeout(0); !errors.Is(err, ErrTimeout) {
		t.Fatal(err)
	}
	dialClosedAtCleanup(t, path)
	if !readable(t, fd, 0) {
		t.Fatal("a client's Dial returned, the descriptor is quiet")
	}
	acceptNow(t, ln)
	if readable(t, fd, 0) {
		t.Fatal("readable after Accept took the only client")
	}
}

// The descriptor stays readable while clients are queued and turns quiet
// when the last one is taken; one created with a client already queued
// starts readable.
func TestListenerNotifyFDQuietAfterTheQueueDrains(t *testing.T) {
	ln, path := listenChecked(t)
	const clients = 3
	for range clients {
		dialClosedAtCleanup(t, path)
	}
	fd, err := ln.NotifyFD()
	if err != nil {
		t.Fatal(err)
	}
	for i := range clients {
		if !readable(t, fd, 0) {
			t.Fatalf("quiet with %d clients queued", clients-i)
		}
		acceptNow(t, ln)
	}
	if readable(t, fd, 0) {
		t.Fatal("readable after the queue drained")
	}
	if _, err := ln.AcceptTimeout(0); !errors.Is(err, ErrTimeout) {
		t.Fatal(err)
	}
}

// A failed handshake is reported by Accept, so it makes the descriptor
// readable too.
func TestListenerNotifyFDReadyForAFailedHandshake(t *testing.T) {
	ln, path, fd := notifyListener(t)
	sock, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if _, err := sock.Write(make([]byte, hsHelloSize)); err != nil { // not a hello
		t.Fatal(err)
	}
	if !readable(t, fd, 10*time.Second) {
		t.Fatal("a handshake failed, the descriptor stayed quiet")
	}
	if _, err := ln.AcceptTimeout(0); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Accept: %v, want ErrProtocol", err)
	}
	if readable(t, fd, 0) {
		t.Fatal("readable after Accept reported the only failure")
	}
}

// Close wakes a poll blocked on the descriptor (here on a duplicate, which
// outlives the listener's copy and stays readable), then closes it.
func TestListenerNotifyFDReadableOnClose(t *testing.T) {
	ln, _, fd := notifyListener(t)
	dup, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup)
	woke := make(chan error, 1)
	go func() {
		pfd := []unix.PollFd{{Fd: int32(dup), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(pfd, -1)
			if !errors.Is(err, unix.EINTR) {
				if err == nil && pfd[0].Revents&unix.POLLIN == 0 {
					err = errors.New("poll returned without POLLIN")
				}
				woke <- err
				return
			}
		}
	}()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-woke:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake a poll on the descriptor")
	}
	if _, err := ln.NotifyFD(); !errors.Is(err, ErrClosed) {
		t.Fatalf("NotifyFD after Close: %v, want ErrClosed", err)
	}
}

// Many clients dial at once while two event-loop acceptors wait on the
// descriptor and take clients with zero-timeout Accepts until ErrTimeout:
// every client is accepted, none waits for a wakeup that never comes.
func TestListenerNotifyFDManyDials(t *testing.T) {
	ln, path, fd := notifyListener(t)
	const clients = 64
	var accepted atomic.Int64
	// The acceptor that takes the last client closes this pipe's write
	// end, which ends the other's wait.
	var done [2]int
	if err := unix.Pipe2(done[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(done[0])
	var finish sync.Once
	defer finish.Do(func() { unix.Close(done[1]) }) // if an acceptor failed
	var acceptors sync.WaitGroup
	errs := make(chan error, 2+clients)
	for range 2 {
		acceptors.Add(1)
		go func() {
			defer acceptors.Done()
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(done[0]), Events: unix.POLLIN}}
			for {
				n, err := unix.Poll(pfd, 10_000)
				if errors.Is(err, unix.EINTR) {
					continue
				}
				if err != nil || n == 0 {
					errs <- errors.Join(errors.New("the descriptor stayed quiet for 10 s with clients missing"), err)
					return
				}
				if pfd[1].Revents != 0 {
					return
				}
				for {
					c, err := ln.AcceptTimeout(0)
					if errors.Is(err, ErrTimeout) {
						break // the other acceptor may have taken it: wait again
					}
					if err != nil {
						errs <- err
						return
					}
					c.Close()
					if accepted.Add(1) == clients {
						finish.Do(func() { unix.Close(done[1]) })
					}
				}
			}
		}()
	}
	var dialers sync.WaitGroup
	for range clients {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			c, err := Dial(path, nil)
			if err != nil {
				errs <- err
				return
			}
			c.Close()
		}()
	}
	dialers.Wait()
	acceptors.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := accepted.Load(); n != clients {
		t.Fatalf("accepted %d of %d clients", n, clients)
	}
	if readable(t, fd, 0) {
		t.Fatal("readable after every client was accepted")
	}
}
