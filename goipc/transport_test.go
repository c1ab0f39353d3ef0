//go:build linux

package goipc

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// loopTransport connects Dial("loop://NAME") to Listen("loop://NAME") in
// this process through Pipe: the smallest transport, to test the hooks.
type loopTransport struct {
	mu     sync.Mutex
	offers map[string]func(*Conn) error
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func (t *loopTransport) Listen(addr string, opts *Options, offer func(*Conn) error) (io.Closer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.offers[addr] = offer
	var once sync.Once
	return closerFunc(func() error {
		err := ErrClosed
		once.Do(func() {
			t.mu.Lock()
			delete(t.offers, addr)
			t.mu.Unlock()
			err = nil
		})
		return err
	}), nil
}

func (t *loopTransport) Dial(ctx context.Context, addr string, opts *Options) (*Conn, error) {
	t.mu.Lock()
	offer := t.offers[addr]
	t.mu.Unlock()
	if offer == nil {
		return nil, errors.New("no listener")
	}
	d, l, err := Pipe(opts)
	if err != nil {
		return nil, err
	}
	if err := offer(l); err != nil {
		d.Close()
		l.Close()
		return nil, err
	}
	return d, nil
}

var loop = &loopTransport{offers: map[string]func(*Conn) error{}}

func init() { RegisterTransport("loop", loop) }

func TestTransportDialListenAcceptAndLimits(t *testing.T) {
	ln, err := Listen("loop://a", &Options{MaxConns: 1, Logf: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	if ln.Addr() != "loop://a" {
		t.Fatalf("Addr %q", ln.Addr())
	}
	d, err := Dial("loop://a", nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ln.AcceptTimeout(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Send([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if m, err := a.RecvTimeout(time.Second); err != nil || string(m) != "hi" {
		t.Fatalf("%q %v", m, err)
	}
	if _, err := Dial("loop://a", nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("over MaxConns: %v, want ErrLimit", err)
	}
	// Both ends released: the connection's share of the limit returns.
	d.Close()
	a.Close()
	d2, err := Dial("loop://a", nil)
	if err != nil {
		t.Fatalf("after the first connection closed: %v", err)
	}
	defer d2.Close()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	// The queued (never accepted) connection was closed by Close.
	if _, err := d2.RecvTimeout(time.Second); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("queued connection after Listener.Close: %v, want ErrPeerClosed", err)
	}
	if err := ln.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := ln.AcceptTimeout(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

func TestTransportUnknownScheme(t *testing.T) {
	for _, f := range []func() error{
		func() error { _, err := Dial("nats://127.0.0.1:4222/x", nil); return err },
		func() error { _, err := Listen("nats://127.0.0.1:4222/x", nil); return err },
	} {
		err := f()
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "natsbridge") {
			t.Fatalf("nats:// without the transport: %v, want ErrInvalidArgument naming the package", err)
		}
	}
}

// Break fails blocked and later calls with ErrProtocol (wrapping the
// cause), on both directions.
func TestBreakFailsCallsWithProtocolError(t *testing.T) {
	d, l, err := Pipe(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	defer l.Close()
	cause := errors.New("message 7 lost")
	blocked := make(chan error, 1)
	go func() { _, err := d.Recv(); blocked <- err }()
	d.Break(cause)
	if err := <-blocked; !errors.Is(err, ErrProtocol) || !errors.Is(err, cause) {
		t.Fatalf("blocked Recv: %v", err)
	}
	if err := d.Send([]byte("x")); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Send after Break: %v", err)
	}
	if _, err := d.Stats(); err != nil {
		t.Fatalf("Stats after Break: %v", err)
	}
}

// A transport's end reads every frame raw with its id (RecvFrameView, the
// user's replies too, not routed as calls) and writes frames with the ids
// they came with (SendFrame): a relay between two pipes carries calls
// both ways, each reply back to its own caller.
func TestFramesRelayCalls(t *testing.T) {
	caller, callerEnd, err := Pipe(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	serverEnd, server, err := Pipe(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	relay := func(from, to *Conn) {
		defer to.Close()
		for {
			f, err := from.RecvFrameView(-1)
			if err != nil {
				return
			}
			err = to.SendFrame(f, -1)
			from.ReleaseView()
			if err != nil {
				return
			}
		}
	}
	go relay(callerEnd, serverEnd)
	go relay(serverEnd, callerEnd)
	go func() {
		for {
			in, err := server.RecvNextView(-1)
			if err != nil {
				return
			}
			if in.Call {
				err = server.Reply(in.ID, append([]byte("re:"), in.Data...))
			} else {
				err = server.Send(in.Data)
			}
			server.ReleaseView()
			if err != nil {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				req := []byte(strings.Repeat("x", g) + string(rune('a'+i%26)))
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				got, err := caller.Call(ctx, req)
				cancel()
				if err != nil || string(got) != "re:"+string(req) {
					t.Errorf("call %d/%d: %q %v", g, i, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := caller.Send([]byte("plain")); err != nil {
		t.Fatal(err)
	}
	if got, err := caller.RecvTimeout(10 * time.Second); err != nil || string(got) != "plain" {
		t.Fatalf("a plain message through the relay: %q %v", got, err)
	}
	if n := caller.DroppedReplies(); n != 0 {
		t.Fatalf("%d replies dropped", n)
	}
	if err := callerEnd.SendFrame(Frame{Kind: FrameKind(9)}, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("an unknown frame kind: %v, want ErrInvalidArgument", err)
	}
	if err := callerEnd.SendFrame(Frame{Kind: FrameReply, Data: make([]byte, callerEnd.MaxCallSize()+1)}, 0); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("a reply above MaxCallSize: %v, want ErrMessageTooLarge", err)
	}
}
