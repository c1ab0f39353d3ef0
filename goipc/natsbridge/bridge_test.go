package natsbridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/nats-io/nats.go"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/natsbridge/natstest"
)

// pair listens and dials on one subject of srv and returns both ends.
func pair(t testing.TB, url string, lopts, dopts *goipc.Options) (dialer, accepted *goipc.Conn) {
	t.Helper()
	ln, err := goipc.Listen(url, lopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	d, err := goipc.Dial(url, dopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	a, err := ln.AcceptTimeout(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return d, a
}

// startServer runs one nats-server node for the test.
func startServer(t testing.TB) *natstest.Server { return natstest.Start(t, natstest.Config{}) }

// dialWithin dials with the whole handshake bounded by d: DialTimeout
// alone keeps the default 5 s handshake timeout, too short for the tests
// that dial dozens of connections at once on a busy 2-core machine.
func dialWithin(addr string, d time.Duration) (*goipc.Conn, error) {
	return goipc.DialTimeout(addr, d, &goipc.Options{HandshakeTimeout: d})
}

func seqMsg(i, size int) []byte {
	m := make([]byte, max(size, 8))
	binary.LittleEndian.PutUint64(m, uint64(i))
	for j := 8; j < len(m); j++ {
		m[j] = byte(i + j)
	}
	return m
}

func TestPingPongBothWays(t *testing.T) {
	srv := natstest.Start(t, natstest.Config{})
	d, a := pair(t, srv.URL()+"/t.pingpong", nil, nil)
	const n = 2000
	for i := range n {
		if err := d.Send(seqMsg(i, i%300)); err != nil {
			t.Fatal(err)
		}
		got, err := a.RecvTimeout(10 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, seqMsg(i, i%300)) {
			t.Fatalf("message %d: got %x", i, got[:8])
		}
		if err := a.Send(got); err != nil {
			t.Fatal(err)
		}
		back, err := d.RecvTimeout(10 * time.Second)
		if err != nil || !bytes.Equal(back, got) {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent.Messages != n || st.Received.Messages != n {
		t.Fatalf("stats: sent %d received %d, want %d each", st.Sent.Messages, st.Received.Messages, n)
	}
}

// A producer that closes after sending: the consumer receives every
// message, in order, then ErrPeerClosed; and a Send to the closed peer
// fails with ErrPeerClosed too.
func TestCloseDeliversEverythingThenPeerClosed(t *testing.T) {
	srv := natstest.Start(t, natstest.Config{})
	d, a := pair(t, srv.URL()+"/t.close", nil, nil)
	const n = 5000
	for i := range n {
		if err := d.Send(seqMsg(i, 1024)); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	for i := range n {
		got, err := a.RecvTimeout(10 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, seqMsg(i, 1024)) {
			t.Fatalf("message %d out of order", i)
		}
	}
	if _, err := a.RecvTimeout(10 * time.Second); !errors.Is(err, goipc.ErrPeerClosed) {
		t.Fatalf("after the last message: %v, want ErrPeerClosed", err)
	}
	if err := a.Send([]byte("x")); !errors.Is(err, goipc.ErrPeerClosed) {
		t.Fatalf("Send to a closed peer: %v, want ErrPeerClosed", err)
	}
}

// A lost last message (nothing follows it) is caught by the count in
// the next heartbeat: the receiver gets ErrProtocol, not a silent hang.
func TestLostLastMessageIsProtocolError(t *testing.T) {
	srv := startServer(t)
	faultAt(t, 3, func([]byte) [][]byte { return nil })
	d, a := pair(t, srv.URL()+"/t.tail?"+fastBeat, nil, nil)
	for i := range 3 {
		if err := d.Send(seqMsg(i, 16)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if _, err := a.RecvTimeout(10 * time.Second); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	_, err := a.RecvTimeout(10 * time.Second)
	if !errors.Is(err, goipc.ErrProtocol) || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("after the lost last message: %v, want ErrProtocol saying lost", err)
	}
}

// faultAt installs a fault that applies to the data message with the
// given sequence number of any connection, for the test's duration.
func faultAt(t *testing.T, seq uint64, apply func(msg []byte) [][]byte) {
	var mu sync.Mutex
	setFault(t, func(msg []byte) [][]byte {
		mu.Lock()
		defer mu.Unlock()
		if u64At(msg) == seq {
			return apply(msg)
		}
		return [][]byte{msg}
	})
}

func setFault(t *testing.T, f func(msg []byte) [][]byte) {
	testFault.Store(&f)
	t.Cleanup(func() { testFault.Store(nil) })
}

// Lost and repeated messages between the two bridges become
// ErrProtocol on the receiving end, after the messages before the fault
// and never a message twice or out of order.
func TestLossAndDuplicateAreProtocolErrors(t *testing.T) {
	srv := natstest.Start(t, natstest.Config{})
	for _, tc := range []struct {
		name  string
		apply func(msg []byte) [][]byte
		want  string
	}{
		{"loss", func([]byte) [][]byte { return nil }, "lost"},
		{"duplicate", func(m []byte) [][]byte { return [][]byte{m, m} }, "duplicate"},
		{"reorder", nil, "lost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const faultSeq, n = 50, 100
			if tc.apply == nil { // hold message 50 back and send it after 51
				var held []byte
				setFault(t, func(msg []byte) [][]byte {
					switch u64At(msg) {
					case faultSeq:
						held = append([]byte(nil), msg...)
						return nil
					case faultSeq + 1:
						return [][]byte{msg, held}
					}
					return [][]byte{msg}
				})
			} else {
				faultAt(t, faultSeq, tc.apply)
			}
			d, a := pair(t, srv.URL()+"/t.fault."+tc.name, nil, nil)
			for i := range n {
				// The receiver may have reported the fault already.
				if err := d.Send(seqMsg(i, 16)); errors.Is(err, goipc.ErrProtocol) {
					break
				} else if err != nil {
					t.Fatal(err)
				}
			}
			var got int
			var err error
			for {
				var m []byte
				m, err = a.RecvTimeout(10 * time.Second)
				if err != nil {
					break
				}
				if !bytes.Equal(m, seqMsg(got, 16)) {
					t.Fatalf("message %d: got message %d", got, binary.LittleEndian.Uint64(m))
				}
				got++
			}
			if !errors.Is(err, goipc.ErrProtocol) {
				t.Fatalf("after %d messages: %v, want ErrProtocol", got, err)
			}
			// Message seq k is the k-th sent: at most the faulty one (a
			// duplicate's first copy is good) arrives.
			if got > faultSeq {
				t.Fatalf("%d messages received, the fault was at the %d-th", got, faultSeq)
			}
			if want := tc.want; !bytes.Contains([]byte(err.Error()), []byte(want)) {
				t.Fatalf("error %q does not say %q", err, want)
			}
			// The dialer hears about it: its calls fail with ErrProtocol.
			if _, err := d.RecvTimeout(10 * time.Second); !errors.Is(err, goipc.ErrProtocol) {
				t.Fatalf("dialer after the fault: %v, want ErrProtocol", err)
			}
			if err := d.Send([]byte("x")); !errors.Is(err, goipc.ErrProtocol) {
				t.Fatalf("dialer's Send after the fault: %v, want ErrProtocol", err)
			}
		})
	}
}

// Many connections share the listener's NATS connection; each keeps its
// own order, and every message is answered.
func TestManyConnectionsOneListener(t *testing.T) {
	srv := startServer(t)
	url := srv.URL() + "/t.many"
	ln, err := goipc.Listen(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const conns, rounds = 64, 50
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer a.Close(); echo(a) }()
		}
	}()
	errs := make(chan error, conns)
	for c := range conns {
		go func() {
			// Liveness is not under test here: 64 connections under -race
			// on a busy 2-core machine can starve a heartbeat for a second.
			d, err := dialWithin(url+"?heartbeat=500ms&peer_timeout=10s", 20*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer d.Close()
			for i := range rounds {
				m := seqMsg(c*rounds+i, 40)
				if err := d.Send(m); err != nil {
					errs <- err
					return
				}
				got, err := d.RecvTimeout(20 * time.Second)
				if err != nil || !bytes.Equal(got, m) {
					errs <- fmt.Errorf("connection %d round trip %d: %v", c, i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// The connect retry recognises nats.go's early-PING failure and nothing
// else (an unreachable server must fail at once).
func TestConnectRetriesOnlyTheEarlyPing(t *testing.T) {
	if !isEarlyPing(fmt.Errorf("nats: expected 'PONG', got 'PING'")) {
		t.Error("the early-PING error is not retried")
	}
	for _, err := range []error{nats.ErrNoServers, nats.ErrAuthorization, nats.ErrTimeout} {
		if isEarlyPing(err) {
			t.Errorf("%v would be retried", err)
		}
	}
}
