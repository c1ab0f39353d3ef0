package goipc

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// More parked calls than futex slots: the ring poller wakes them, every
// message arrives in order, and once the traffic stops the poller arms
// the doorbells it holds and goes idle.
func TestPollerCarriesManyConnections(t *testing.T) {
	checkLeaks(t)
	const conns, rounds = 48, 1000
	var wg sync.WaitGroup
	errs := make(chan error, 2*conns)
	for i := 0; i < conns; i++ {
		client, server := pair(t, nil, nil)
		wg.Add(2)
		go func() { // echo
			defer wg.Done()
			buf := make([]byte, 64)
			for {
				n, err := server.RecvInto(buf, -1)
				if errors.Is(err, ErrPeerClosed) {
					return
				}
				if err == nil {
					err = server.Send(buf[:n])
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
		go func(id uint64) {
			defer wg.Done()
			defer client.Close()
			msg, reply := make([]byte, 16), make([]byte, 64)
			for r := uint64(0); r < rounds; r++ {
				binary.LittleEndian.PutUint64(msg, id)
				binary.LittleEndian.PutUint64(msg[8:], r)
				if err := client.Send(msg); err != nil {
					errs <- err
					return
				}
				n, err := client.RecvInto(reply, -1)
				if err != nil {
					errs <- err
					return
				}
				if n != 16 || binary.LittleEndian.Uint64(reply) != id || binary.LittleEndian.Uint64(reply[8:]) != r {
					errs <- errors.New("a reply out of order or for another connection")
					return
				}
			}
		}(uint64(i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitUntil(t, "the poller going idle", func() bool { return !pollerBusy() })
	poller.mu.Lock()
	left := len(poller.entries)
	poller.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d calls still on the idle poller's list", left)
	}
}

// A call the poller gave up on waits on its doorbell: armed in the shared
// word, woken by the peer's ring, with the message.
func TestPollerHandsQuietCallsToTheirDoorbell(t *testing.T) {
	checkLeaks(t)
	takeFutexSlots(t) // straight from the spin to the poller
	client, server := pair(t, nil, nil)
	got := make(chan []byte, 1)
	go func() {
		m, err := server.Recv()
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	ec := server.cons.r.dataEC
	waitUntil(t, "the poller arming the receive's doorbell", func() bool {
		poller.mu.Lock()
		defer poller.mu.Unlock()
		return server.polls[dirRecv].armed
	})
	if atomic.LoadUint64(ec.word)&ecDoorbell == 0 {
		t.Fatal("the poller says it armed the doorbell, the shared word says not")
	}
	waitUntil(t, "the poller going idle", func() bool { return !pollerBusy() })
	if err := client.Send([]byte("rung")); err != nil {
		t.Fatal(err)
	}
	if m := <-got; string(m) != "rung" {
		t.Fatalf("received %q, want %q", m, "rung")
	}
	if atomic.LoadUint64(ec.word)&ecDoorbell != 0 {
		t.Fatal("the doorbell is still armed after the call returned")
	}
}

// A call parked with the poller ends on Close, off the poller's list.
func TestPollerForgetsClosedCalls(t *testing.T) {
	checkLeaks(t)
	takeFutexSlots(t)
	setPollerIdle(time.Hour) // the poller never gives up here
	defer setPollerIdle(pollerIdle)
	_, server := pair(t, nil, nil)
	done := make(chan error, 1)
	go func() {
		_, err := server.Recv()
		done <- err
	}()
	waitUntil(t, "the receive on the poller's list", func() bool {
		poller.mu.Lock()
		defer poller.mu.Unlock()
		return server.polls[dirRecv].index >= 0
	})
	server.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv on a closed Conn = %v, want ErrClosed", err)
	}
	poller.mu.Lock()
	idx := server.polls[dirRecv].index
	poller.mu.Unlock()
	if idx != -1 {
		t.Fatal("the closed call is still on the poller's list")
	}
	setPollerIdle(pollerIdle)
	waitUntil(t, "the poller going idle", func() bool { return !pollerBusy() })
}

func setPollerIdle(d time.Duration) {
	poller.mu.Lock()
	poller.idle = d
	poller.mu.Unlock()
}

// takeFutexSlots holds every futex slot until the test ends, as parked
// calls of a busy server would: the next call to park goes to the poller.
func takeFutexSlots(t *testing.T) {
	poller.starvedUntil.Store(0)     // no backoff left by an earlier test
	saved := pollerMinParked.Swap(0) // a lone call counts as many
	t.Cleanup(func() { pollerMinParked.Store(saved) })
	n := 0
	for futexSleepers.acquire() {
		n++
	}
	t.Cleanup(func() {
		for ; n > 0; n-- {
			futexSleepers.release()
		}
	})
}
