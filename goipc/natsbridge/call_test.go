package natsbridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/goipc/goipc/goipc"
)

// answer is the tests' call handler: the reply names the request, so a
// reply delivered to the wrong call is caught.
func answer(req []byte) []byte { return append([]byte("re:"), req...) }

// callMany makes calls from goroutines on c, perCaller each, and checks
// every reply against its own request.
func callMany(t *testing.T, c *goipc.Conn, callers, perCaller int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perCaller {
				req := fmt.Appendf(nil, "caller %d call %d %s", g, i, bytes.Repeat([]byte{'x'}, (g*31+i)%500))
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				got, err := c.Call(ctx, req)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("caller %d call %d: %w", g, i, err)
					return
				}
				if !bytes.Equal(got, answer(req)) {
					errs <- fmt.Errorf("caller %d call %d: reply %.40q is not its own", g, i, got)
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
	if n := c.DroppedReplies(); n != 0 {
		t.Errorf("%d replies dropped, want 0", n)
	}
}

// Many goroutines call on one connection, in both directions: a dialer
// calling goipc.Serve on a nats:// listener, and the accepted end calling
// a dialer that answers with RecvRequest and Reply. Every reply is checked.
func TestCallsFromManyGoroutines(t *testing.T) {
	srv := startServer(t)
	t.Run("dialer calls Serve", func(t *testing.T) {
		url := srv.URL() + "/t.calls"
		ln, err := goipc.Listen(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() {
			served <- goipc.Serve(ln, func(req []byte) ([]byte, error) { return answer(req), nil })
		}()
		d, err := dialWithin(url, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		callMany(t, d, 16, 200)
		ln.Close()
		if err := <-served; err != nil {
			t.Fatalf("Serve: %v", err)
		}
	})
	t.Run("listener calls RecvRequest", func(t *testing.T) {
		d, a := pair(t, srv.URL()+"/t.calls.back", nil, nil)
		go func() {
			for {
				id, req, err := d.RecvRequest(context.Background())
				if err != nil {
					return
				}
				go d.Reply(id, answer(req))
			}
		}()
		callMany(t, a, 16, 200)
	})
}

// The server answers a batch of calls in the reverse order of their
// requests: each caller still gets its own reply.
func TestCallRepliesOutOfOrder(t *testing.T) {
	srv := startServer(t)
	d, a := pair(t, srv.URL()+"/t.calls.order", nil, nil)
	const batch = 8
	served := make(chan error, 1)
	go func() {
		var ids []uint64
		var reqs [][]byte
		for len(ids) < batch {
			id, req, err := a.RecvRequest(context.Background())
			if err != nil {
				served <- err
				return
			}
			ids, reqs = append(ids, id), append(reqs, req)
		}
		for i := batch - 1; i >= 0; i-- {
			if err := a.Reply(ids[i], answer(reqs[i])); err != nil {
				served <- err
				return
			}
		}
		served <- nil
	}()
	callMany(t, d, batch, 1)
	if err := <-served; err != nil {
		t.Fatalf("server: %v", err)
	}
}

// A call that times out ends; its reply, arriving later over NATS, is
// dropped and counted, and never delivered to the next call.
func TestCallTimeoutLateReplyDropped(t *testing.T) {
	srv := startServer(t)
	d, a := pair(t, srv.URL()+"/t.calls.late", nil, nil)
	held := make(chan uint64, 1)
	go func() {
		id, _, err := a.RecvRequest(context.Background())
		if err != nil {
			return
		}
		held <- id
	}()
	buf := make([]byte, 64)
	if _, err := d.CallTimeout([]byte("slow"), buf, 200*time.Millisecond); !errors.Is(err, goipc.ErrTimeout) {
		t.Fatalf("the unanswered call: %v, want ErrTimeout", err)
	}
	var id uint64
	select {
	case id = <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the server")
	}
	if err := a.Reply(id, []byte("late")); err != nil {
		t.Fatal(err)
	}
	go func() {
		id, req, err := a.RecvRequest(context.Background())
		if err == nil {
			a.Reply(id, answer(req))
		}
	}()
	// The late reply travels ahead of this call's on the ordered path:
	// it is dropped before this reply is routed.
	n, err := d.CallTimeout([]byte("next"), buf, 30*time.Second)
	if err != nil || string(buf[:n]) != "re:next" {
		t.Fatalf("the next call: %q %v, want re:next", buf[:n], err)
	}
	if got := d.DroppedReplies(); got != 1 {
		t.Fatalf("DroppedReplies %d, want 1 (the late reply)", got)
	}
}

// A lost request between the bridges is ErrProtocol for the callers, not
// a call waiting forever for a reply that cannot come.
func TestLostRequestIsProtocolError(t *testing.T) {
	srv := startServer(t)
	faultAt(t, 2, func(msg []byte) [][]byte {
		if msg[0] != msgRequest {
			return [][]byte{msg}
		}
		return nil
	})
	d, a := pair(t, srv.URL()+"/t.calls.lost?"+fastBeat, nil, nil)
	go func() {
		for {
			id, req, err := a.RecvRequest(context.Background())
			if err != nil {
				return
			}
			a.Reply(id, answer(req))
		}
	}()
	buf := make([]byte, 64)
	if n, err := d.CallTimeout([]byte("one"), buf, 30*time.Second); err != nil || string(buf[:n]) != "re:one" {
		t.Fatalf("first call: %q %v", buf[:n], err)
	}
	_, err := d.CallTimeout([]byte("two"), buf, 30*time.Second)
	if !errors.Is(err, goipc.ErrProtocol) {
		t.Fatalf("the call whose request was lost: %v, want ErrProtocol", err)
	}
}

// A consumer process dies with calls in flight: every call returns
// ErrPeerClosed within the heartbeat bound.
func TestConsumerKilledWithCallsInFlight(t *testing.T) {
	srv := startServer(t)
	addr := srv.URL() + "/t.calls.kill"
	p := startConsumer(t, addr)
	c, _ := dialConsumer(t, addr+"?"+fastBeat)
	buf := make([]byte, 64)
	for i := range 100 {
		req := fmt.Appendf(nil, "ping %d", i)
		if n, err := c.CallTimeout(req, buf, 10*time.Second); err != nil || !bytes.Equal(buf[:n], req) {
			t.Fatalf("call %d: %q %v", i, buf[:n], err)
		}
	}
	const inFlight = 16
	var sent, wg sync.WaitGroup
	results := make(chan error, inFlight)
	ends := make(chan time.Time, inFlight)
	for range inFlight {
		sent.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc, err := c.StartCall([]byte("hold"), 10*time.Second)
			sent.Done()
			if err != nil {
				results <- err
				return
			}
			_, err = pc.Wait(context.Background())
			ends <- time.Now()
			results <- err
		}()
	}
	sent.Wait()
	// Requests and calls share one ordered path and the consumer reads
	// them in order: once this call is answered, it holds all the others.
	if n, err := c.CallTimeout([]byte("after"), buf, 10*time.Second); err != nil || string(buf[:n]) != "after" {
		t.Fatalf("the call after the held ones: %q %v", buf[:n], err)
	}
	killed := time.Now()
	p.kill()
	wg.Wait()
	close(results)
	close(ends)
	for err := range results {
		if !errors.Is(err, goipc.ErrPeerClosed) {
			t.Errorf("a call in flight: %v, want ErrPeerClosed", err)
		}
	}
	var worst time.Duration
	for end := range ends {
		worst = max(worst, end.Sub(killed))
	}
	t.Logf("%d calls in flight ended %v after SIGKILL at the latest", inFlight, worst.Round(time.Millisecond))
	if worst > deathSlack {
		t.Fatalf("calls ended %v after the kill; the bound is 350 ms (allowed %v)", worst, deathSlack)
	}
}

// The server closes its end with calls in flight: each returns
// ErrPeerClosed once the close has crossed NATS, none waits for ever.
func TestServerClosesWithCallsInFlight(t *testing.T) {
	srv := startServer(t)
	d, a := pair(t, srv.URL()+"/t.calls.close", nil, nil)
	const inFlight = 4
	results := make(chan error, inFlight)
	for range inFlight {
		go func() {
			_, err := d.CallTimeout([]byte("held"), make([]byte, 16), 30*time.Second)
			results <- err
		}()
	}
	for i := range inFlight {
		if _, _, err := a.RecvRequestInto(make([]byte, 16), 10*time.Second); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	closed := time.Now()
	a.Close()
	for range inFlight {
		if err := <-results; !errors.Is(err, goipc.ErrPeerClosed) {
			t.Errorf("a call in flight when the server closed: %v, want ErrPeerClosed", err)
		}
	}
	t.Logf("calls ended %v after the close", time.Since(closed).Round(time.Millisecond))
}
