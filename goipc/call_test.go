package goipc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// answerFor is what the test servers reply to a request: the request
// reversed, then its length, so that a reply delivered to the wrong call
// (or truncated) cannot pass for the right one.
func answerFor(req []byte) []byte {
	out := make([]byte, len(req)+4)
	for i, b := range req {
		out[len(req)-1-i] = b
	}
	binary.LittleEndian.PutUint32(out[len(req):], uint32(len(req)))
	return out
}

// requestFor is a request unique to (caller, seq), of a size that varies.
func requestFor(caller, seq int) []byte {
	n := 16 + (caller*7+seq*13)%200
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b, uint64(caller))
	binary.LittleEndian.PutUint64(b[8:], uint64(seq))
	for i := 16; i < n; i++ {
		b[i] = byte(caller ^ seq ^ i)
	}
	return b
}

// serveEcho answers every request on c with answerFor until c ends.
func serveEcho(c *Conn) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			id, req, err := c.RecvRequest(context.Background())
			if err != nil {
				done <- err
				return
			}
			if err := c.Reply(id, answerFor(req)); err != nil {
				done <- err
				return
			}
		}
	}()
	return done
}

func TestCallRoundTrip(t *testing.T) {
	client, server := pair(t, nil, nil)
	served := serveEcho(server)
	for _, size := range []int{0, 1, 7, 8, 64, 4096, client.MaxCallSize() - 4} {
		req := bytes.Repeat([]byte{byte(size)}, size)
		got, err := client.Call(context.Background(), req)
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if !bytes.Equal(got, answerFor(req)) {
			t.Fatalf("%d bytes: wrong reply (%d bytes)", size, len(got))
		}
	}
	if client.MaxCallSize() != client.MaxMessageSize()-8 {
		t.Fatalf("MaxCallSize %d, MaxMessageSize %d", client.MaxCallSize(), client.MaxMessageSize())
	}
	if _, err := client.Call(context.Background(), make([]byte, client.MaxCallSize()+1)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("request above MaxCallSize: %v", err)
	}
	client.Close()
	if err := <-served; !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("server ended with %v", err)
	}
}

// TestCallManyGoroutinesOneConn: many goroutines call on one shared
// connection while the server answers out of order (several handlers,
// random delays); every reply must be the answer to its own request.
func TestCallManyGoroutinesOneConn(t *testing.T) {
	client, server := pair(t, &Options{MaxInflightCalls: 8}, nil)
	srv := &Server{Concurrency: 4, Handler: func(req []byte) ([]byte, error) {
		if rand.IntN(4) == 0 {
			time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond) // reorders replies
		}
		return answerFor(req), nil
	}}
	served := make(chan error, 1)
	go func() { served <- srv.ServeConn(server) }()
	const callers, calls = 16, 300
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for i := range calls {
				req := requestFor(g, i)
				var got []byte
				var err error
				if i%2 == 0 {
					got, err = client.Call(context.Background(), req)
				} else {
					var n int
					n, err = client.CallInto(context.Background(), req, buf)
					got = buf[:n]
				}
				if err != nil {
					errs <- fmt.Errorf("caller %d call %d: %w", g, i, err)
					return
				}
				if !bytes.Equal(got, answerFor(req)) {
					errs <- fmt.Errorf("caller %d call %d: got another call's reply (%d bytes)", g, i, len(got))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := client.DroppedReplies(); n != 0 {
		t.Errorf("%d replies dropped", n)
	}
	client.Close()
	if err := <-served; err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
}

// TestCallRepliesOutOfOrder: the server takes three requests and answers
// them in reverse order; each caller gets its own.
func TestCallRepliesOutOfOrder(t *testing.T) {
	client, server := pair(t, nil, nil)
	type result struct {
		i   int
		got []byte
		err error
	}
	results := make(chan result, 3)
	for i := range 3 {
		go func() {
			got, err := client.Call(context.Background(), requestFor(i, i))
			results <- result{i, got, err}
		}()
	}
	type req struct {
		id  uint64
		req []byte
	}
	var reqs []req
	for range 3 {
		id, r, err := server.RecvRequest(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, req{id, r})
	}
	for i := len(reqs) - 1; i >= 0; i-- {
		if err := server.Reply(reqs[i].id, answerFor(reqs[i].req)); err != nil {
			t.Fatal(err)
		}
		// The reply to the latest request must reach its caller while
		// the other two still wait: order of answers, not of requests.
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !bytes.Equal(r.got, answerFor(reqs[i].req)) {
			t.Fatalf("caller %d got a reply that answers another request", r.i)
		}
	}
}

// TestCallTimeoutDropsLateReply: a call that times out returns
// ErrTimeout; its reply, arriving afterwards, is dropped and counted, and
// never reaches the next call.
func TestCallTimeoutDropsLateReply(t *testing.T) {
	client, server := pair(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	lateID := make(chan uint64, 1)
	go func() {
		id, _, err := server.RecvRequest(context.Background())
		if err == nil {
			lateID <- id
		}
	}()
	if _, err := client.Call(ctx, []byte("slow")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call past its deadline: %v", err)
	}
	// Reply only now, after the caller has given up.
	if err := server.Reply(<-lateID, []byte("late")); err != nil {
		t.Fatal(err)
	}
	served := serveEcho(server)
	buf := make([]byte, 64)
	n, err := client.CallTimeout([]byte("next"), buf, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := buf[:n]; !bytes.Equal(got, answerFor([]byte("next"))) {
		t.Fatalf("next call got %q", got)
	}
	if d := client.DroppedReplies(); d != 1 {
		t.Fatalf("%d replies dropped, want 1 (the late one)", d)
	}
	// A timeout with CallTimeout too.
	server.Close()
	<-served
}

func TestCallTimeoutVariants(t *testing.T) {
	client, _ := pair(t, nil, nil)
	buf := make([]byte, 8)
	start := time.Now()
	if _, err := client.CallTimeout([]byte("x"), buf, 30*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("CallTimeout: %v", err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("CallTimeout returned after %v", d)
	}
	if _, err := client.CallTimeout([]byte("x"), buf, 0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("CallTimeout(0): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { cancel() }()
	if _, err := client.Call(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
}

// callsInFlight starts n calls on client and returns once the server has
// taken every request (so that each call is in flight), answering none.
// The channel gets each call's result.
func callsInFlight(t *testing.T, client, server *Conn, n int) <-chan error {
	t.Helper()
	got := make(chan error, n)
	for i := range n {
		go func() {
			_, err := client.Call(context.Background(), requestFor(i, 0))
			got <- err
		}()
	}
	for range n {
		if _, _, err := server.RecvRequest(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// TestCallsFailWhenPeerDies: calls in flight (one reading the ring, the
// others waiting) all return ErrPeerClosed promptly when the peer closes.
func TestCallsFailWhenPeerDies(t *testing.T) {
	client, server := pair(t, nil, nil)
	const callers = 12
	got := callsInFlight(t, client, server, callers)
	server.Close()
	deadline := time.After(2 * time.Second)
	for range callers {
		select {
		case err := <-got:
			if !errors.Is(err, ErrPeerClosed) {
				t.Fatalf("call ended with %v, want ErrPeerClosed", err)
			}
		case <-deadline:
			t.Fatal("calls still blocked 2 s after the peer closed")
		}
	}
	if _, err := client.Call(context.Background(), []byte("x")); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("call after the peer closed: %v", err)
	}
}

// TestCallRepliesBeforePeerDeathAreDelivered: replies the peer published
// before it closed still reach their callers.
func TestCallRepliesBeforePeerDeathAreDelivered(t *testing.T) {
	client, server := pair(t, nil, nil)
	p1, err := client.StartCall([]byte("a"), -1)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := client.StartCall([]byte("b"), -1)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		id, req, err := server.RecvRequest(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		server.Reply(id, answerFor(req))
	}
	server.Close()
	for _, p := range []PendingCall{p2, p1} {
		got, err := p.Wait(context.Background())
		if err != nil {
			t.Fatalf("call %#x: %v", p.ID(), err)
		}
		if len(got) != 5 {
			t.Fatalf("call %#x: %q", p.ID(), got)
		}
	}
}

func TestCallCloseInterruptsCalls(t *testing.T) {
	client, server := pair(t, nil, nil)
	const callers = 6
	got := callsInFlight(t, client, server, callers)
	client.Close()
	for range callers {
		if err := <-got; !errors.Is(err, ErrClosed) {
			t.Fatalf("call ended with %v, want ErrClosed", err)
		}
	}
}

// TestCallBackpressure: beyond MaxInflightCalls a call waits for a slot.
func TestCallBackpressure(t *testing.T) {
	client, server := pair(t, &Options{MaxInflightCalls: 2}, nil)
	p1, err := client.StartCall([]byte("1"), -1)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := client.StartCall([]byte("2"), -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.StartCall([]byte("3"), 0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("third call with two slots: %v", err)
	}
	if _, err := client.StartCall([]byte("3"), 10*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("third call with two slots, 10 ms: %v", err)
	}
	third := make(chan error, 1)
	go func() {
		_, err := client.Call(context.Background(), []byte("3"))
		third <- err
	}()
	p1.Cancel()
	served := serveEcho(server)
	if err := <-third; err != nil {
		t.Fatalf("third call once a slot was free: %v", err)
	}
	if _, err := p2.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Options{MaxInflightCalls: MaxInflightCallsLimit + 1}).resolve(); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("MaxInflightCalls above the limit: %v", err)
	}
	client.Close()
	<-served
}

func TestCallIntoBufferTooSmall(t *testing.T) {
	client, server := pair(t, nil, nil)
	served := serveEcho(server)
	buf := make([]byte, 4)
	n, err := client.CallInto(context.Background(), []byte("too long for four"), buf)
	if !errors.Is(err, ErrBufferTooSmall) || n != len(answerFor([]byte("too long for four"))) {
		t.Fatalf("CallInto with a small buffer: %d, %v", n, err)
	}
	n, err = client.CallInto(context.Background(), nil, buf)
	if err != nil || n != 4 {
		t.Fatalf("next call: %d, %v", n, err)
	}
	client.Close()
	<-served
}

// TestPendingCall: a pending call survives a timed-out wait and a buffer
// that is too small, and ends when its reply is taken or it is cancelled.
func TestPendingCall(t *testing.T) {
	client, server := pair(t, nil, nil)
	p, err := client.StartCall([]byte("pending"), -1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := p.WaitInto(buf, 0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("WaitInto(0) before the reply: %v", err)
	}
	if _, err := p.WaitInto(buf, 5*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("WaitInto(5ms) before the reply: %v", err)
	}
	id, req, err := server.RecvRequest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if id != p.ID() {
		t.Fatalf("server saw id %#x, the call has %#x", id, p.ID())
	}
	want := answerFor(req)
	if err := server.Reply(id, want); err != nil {
		t.Fatal(err)
	}
	n, err := p.WaitInto(buf[:2], -1)
	if !errors.Is(err, ErrBufferTooSmall) || n != len(want) {
		t.Fatalf("WaitInto with a small buffer: %d, %v", n, err)
	}
	n, err = p.WaitInto(buf, -1)
	if err != nil || !bytes.Equal(buf[:n], want) {
		t.Fatalf("WaitInto: %q, %v", buf[:n], err)
	}
	if _, err := p.WaitInto(buf, -1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("WaitInto on an ended call: %v", err)
	}
	if err := p.Cancel(); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Cancel of an ended call: %v", err)
	}
	// Cancel, then the reply comes: dropped.
	p, err = client.StartCall([]byte("cancelled"), -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cancel(); err != nil {
		t.Fatal(err)
	}
	id, _, err = server.RecvRequest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	server.Reply(id, []byte("nobody waits"))
	// A reply to an id never issued: dropped too.
	server.Reply(0xdead<<slotBits|0xffff, []byte("never asked"))
	served := serveEcho(server)
	if _, err := client.Call(context.Background(), []byte("after")); err != nil {
		t.Fatal(err)
	}
	if d := client.DroppedReplies(); d != 2 {
		t.Fatalf("%d replies dropped, want 2", d)
	}
	if _, err := (PendingCall{}).WaitInto(buf, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("zero PendingCall: %v", err)
	}
	client.Close()
	<-served
}

// TestCallAndPlainMessagesShareAConnection: the server sends plain
// messages between its replies; a receiver takes them while callers get
// their replies, in both orders of arrival.
func TestCallAndPlainMessagesShareAConnection(t *testing.T) {
	client, server := pair(t, nil, nil)
	const messages = 200
	go func() {
		for i := 0; ; i++ {
			in, err := server.RecvNextView(-1)
			if err != nil {
				return
			}
			if !in.Call {
				t.Errorf("plain message from the client")
			}
			reply := answerFor(in.Data)
			id := in.ID
			server.ReleaseView()
			if i < messages {
				server.Send([]byte(fmt.Sprintf("note %d", i)))
			}
			server.Reply(id, reply)
		}
	}()
	recvd := make(chan error, 1)
	go func() {
		for i := range messages {
			m, err := client.Recv()
			if err != nil {
				recvd <- err
				return
			}
			if string(m) != fmt.Sprintf("note %d", i) {
				recvd <- fmt.Errorf("message %d: %q", i, m)
				return
			}
		}
		recvd <- nil
	}()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range messages {
				req := requestFor(g, i)
				got, err := client.Call(context.Background(), req)
				if err != nil || !bytes.Equal(got, answerFor(req)) {
					t.Errorf("caller %d call %d: %v", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := <-recvd; err != nil {
		t.Fatal(err)
	}
}

// TestCallWaitsBehindUnreadMessage: the head-of-line rule. A plain
// message nobody receives blocks the reply behind it until its deadline;
// once received, the call completes.
func TestCallWaitsBehindUnreadMessage(t *testing.T) {
	client, server := pair(t, nil, nil)
	p, err := client.StartCall([]byte("q"), -1)
	if err != nil {
		t.Fatal(err)
	}
	id, req, err := server.RecvRequest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	server.Send([]byte("unread"))
	server.Reply(id, answerFor(req))
	if _, err := p.WaitInto(make([]byte, 8), 20*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("reply behind an unread message: %v", err)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := p.Wait(context.Background())
		got <- b
	}()
	m, err := client.RecvTimeout(time.Second)
	if err != nil || string(m) != "unread" {
		t.Fatalf("Recv: %q, %v", m, err)
	}
	if b := <-got; !bytes.Equal(b, answerFor(req)) {
		t.Fatalf("reply once the message was read: %q", b)
	}
	// And a plain receiver waits behind an unread request the same way.
	if err := client.Send([]byte("to the server")); err != nil {
		t.Fatal(err)
	}
	other, err := client.StartCall([]byte("unanswered"), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Cancel()
	if _, err := server.RecvTimeout(time.Second); err != nil {
		t.Fatalf("plain message before the request: %v", err)
	}
	if _, err := server.RecvTimeout(20 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Recv with only a request queued: %v", err)
	}
	if _, req, err := server.RecvRequest(context.Background()); err != nil || string(req) != "unanswered" {
		t.Fatalf("RecvRequest: %q, %v", req, err)
	}
}

// TestCallsBothWays: each side serves calls and makes calls at once, so
// each ring carries requests and replies interleaved.
func TestCallsBothWays(t *testing.T) {
	a, b := pair(t, nil, nil)
	srv := &Server{Concurrency: 2, Handler: func(req []byte) ([]byte, error) { return answerFor(req), nil }}
	var served sync.WaitGroup
	for _, c := range []*Conn{a, b} {
		served.Add(1)
		go func() { defer served.Done(); srv.ServeConn(c) }()
	}
	var wg sync.WaitGroup
	for side, c := range []*Conn{a, b} {
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 200 {
					req := requestFor(side*10+g, i)
					got, err := c.Call(context.Background(), req)
					if err != nil || !bytes.Equal(got, answerFor(req)) {
						t.Errorf("side %d caller %d call %d: %v", side, g, i, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	a.Close()
	b.Close()
	served.Wait()
}

// TestServe: Serve answers calls from several clients and returns nil
// once its listener is closed, having closed their connections.
func TestServe(t *testing.T) {
	checkLeaks(t)
	path := socketPath(t)
	ln, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		served <- Serve(ln, func(req []byte) ([]byte, error) {
			if string(req) == "fail" {
				return nil, errors.New("handler refuses")
			}
			return answerFor(req), nil
		})
	}()
	var clients []*Conn
	for i := range 3 {
		c, err := Dial(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		for j := range 20 {
			req := requestFor(i, j)
			got, err := c.Call(context.Background(), req)
			if err != nil || !bytes.Equal(got, answerFor(req)) {
				t.Fatalf("client %d call %d: %v", i, j, err)
			}
		}
		// A plain message is answered with a plain message.
		if err := c.Send([]byte("plain")); err != nil {
			t.Fatal(err)
		}
		if m, err := c.RecvTimeout(5 * time.Second); err != nil || !bytes.Equal(m, answerFor([]byte("plain"))) {
			t.Fatalf("plain message: %q, %v", m, err)
		}
	}
	// A handler error ends that connection only.
	if _, err := clients[0].Call(context.Background(), []byte("fail")); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("call whose handler fails: %v", err)
	}
	if _, err := clients[1].Call(context.Background(), []byte("still served")); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	for _, c := range clients[1:] {
		if _, err := c.Call(context.Background(), []byte("after")); !errors.Is(err, ErrPeerClosed) {
			t.Fatalf("call after Serve returned: %v", err)
		}
	}
	for _, c := range clients {
		c.Close()
	}
}

// TestOldPeerCannotCall: a peer that announces protocol version 1 (which
// has no calls) is refused at the handshake, on both ends, so it can
// neither make nor receive a call (TestVersionMismatchBothSides covers a
// version-1 listener too).
func TestOldPeerCannotCall(t *testing.T) {
	ln, path := listenChecked(t)
	if c, err := Dial(path, &Options{ProtocolVersionOverride: 1}); !errors.Is(err, ErrVersionMismatch) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dialing as version 1: %v", err)
	}
	if _, err := ln.AcceptTimeout(5 * time.Second); !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("the listener's side of it: %v", err)
	}
}

// TestCallIntoDoesNotAllocate: a call and its answer through
// RecvRequestView and ReserveReply allocate nothing in steady state. One
// goroutine plays both sides, running CallInto's two steps (startCall,
// finishCall) around the server's answer, so that nothing ever
// parks (parking is not the hot path, and the count is process-wide).
func TestCallIntoDoesNotAllocate(t *testing.T) {
	client, server := pair(t, nil, nil)
	req, buf := make([]byte, 64), make([]byte, 64)
	w := waitFor{}
	call := func() {
		idx, gen, err := client.startCall(&w, req, len(req), nil, buf, true)
		if err != nil {
			t.Fatal(err)
		}
		id, got, err := server.RecvRequestView(0)
		if err != nil {
			t.Fatal(err)
		}
		out, err := server.ReserveReply(id, len(got), 0)
		if err != nil {
			t.Fatal(err)
		}
		copy(out, got)
		server.ReleaseView()
		server.Commit(len(got))
		if _, _, _, err := client.finishCall(idx, gen, &w, buf, true, false); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 { // make the call table
		call()
	}
	if allocs := testing.AllocsPerRun(1000, call); allocs != 0 {
		t.Fatalf("%v allocations per call", allocs)
	}
}

// TestStartCallFunc builds the request in place.
func TestStartCallFunc(t *testing.T) {
	client, server := pair(t, nil, nil)
	served := serveEcho(server)
	p, err := client.StartCallFunc(5, func(b []byte) error { copy(b, "built"); return nil }, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Wait(context.Background())
	if err != nil || !bytes.Equal(got, answerFor([]byte("built"))) {
		t.Fatalf("%q, %v", got, err)
	}
	failed := errors.New("cannot build")
	if _, err := client.StartCallFunc(5, func([]byte) error { return failed }, -1); !errors.Is(err, failed) {
		t.Fatalf("fill error: %v", err)
	}
	// Nothing was sent for the failed one: the next call gets its own reply.
	if got, err := client.Call(context.Background(), []byte("x")); err != nil || !bytes.Equal(got, answerFor([]byte("x"))) {
		t.Fatalf("%q, %v", got, err)
	}
	client.Close()
	<-served
}

// runCallServer dials and answers calls (answerFor, four handlers) until
// it is killed.
func runCallServer(path string) int {
	c, err := Dial(path, &Options{RingSize: 1 << 16, MaxMessageSize: streamMaxMsg})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	(&Server{Concurrency: 4, Handler: func(req []byte) ([]byte, error) { return answerFor(req), nil }}).ServeConn(c)
	return 1
}

// TestCallPeerKilledWithCallsInFlight kills a serving peer with SIGKILL
// at random moments while eight goroutines call on one connection: every
// reply before the kill is right, and every caller then gets
// ErrPeerClosed within 100 ms of the peer being reaped.
func TestCallPeerKilledWithCallsInFlight(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 6
	}
	for round := range rounds {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			p := startPeer(t, "call-server")
			c := p.accept(t, nil)
			if line := p.readLine(t); line != "ready" {
				t.Fatalf("child: %q", line)
			}
			const callers = 8
			type result struct {
				err   error
				at    time.Time
				calls int
			}
			res := make(chan result, callers)
			for g := range callers {
				go func() {
					buf := make([]byte, streamMaxMsg)
					for i := 0; ; i++ {
						req := requestFor(g, i)
						n, err := c.CallInto(context.Background(), req, buf)
						if err == nil && !bytes.Equal(buf[:n], answerFor(req)) {
							err = fmt.Errorf("call %d got another call's reply", i)
						}
						if err != nil {
							res <- result{err, time.Now(), i}
							return
						}
					}
				}()
			}
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond) // a random kill point, not synchronisation
			p.cmd.Process.Signal(syscall.SIGKILL)
			p.cmd.Wait()
			dead := time.Now()
			timeout := time.After(10 * time.Second)
			for range callers {
				select {
				case r := <-res:
					if !errors.Is(r.err, ErrPeerClosed) {
						t.Fatalf("after %d calls: %v", r.calls, r.err)
					}
					if lag := r.at.Sub(dead); lag > 100*time.Millisecond {
						t.Fatalf("peer death noticed %v after the peer was reaped", lag)
					}
				case <-timeout:
					t.Fatal("a caller still blocked 10 s after the peer died")
				}
			}
		})
	}
}

// TestReceiveSideWaitHonoursTimeout: a receive (or a call) waiting for the
// receive side while another goroutine holds a view gives up at its
// timeout, and gets the side once the view is released.
func TestReceiveSideWaitHonoursTimeout(t *testing.T) {
	client, server := pair(t, nil, nil)
	server.Send([]byte("held"))
	server.Send([]byte("next"))
	if _, err := client.RecvView(time.Second); err != nil { // held by this goroutine
		t.Fatal(err)
	}
	got := make(chan error, 2)
	go func() {
		_, err := client.RecvTimeout(20 * time.Millisecond)
		got <- err
	}()
	go func() {
		_, err := client.CallTimeout([]byte("x"), make([]byte, 8), 20*time.Millisecond)
		got <- err
	}()
	for range 2 {
		if err := <-got; !errors.Is(err, ErrTimeout) {
			t.Fatalf("waiting for a held receive side: %v, want ErrTimeout", err)
		}
	}
	client.ReleaseView()
	if m, err := client.RecvTimeout(time.Second); err != nil || string(m) != "next" {
		t.Fatalf("after the view: %q %v", m, err)
	}
}
