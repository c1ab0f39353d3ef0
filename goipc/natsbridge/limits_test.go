package natsbridge

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/natsbridge/natstest"
)

// A consumer that does not read slows the producer: its ring fills and
// sends time out, after a bounded number of messages (the two rings and
// the window between them); nothing is dropped: once the consumer
// reads, every message arrives in order.
func TestSlowConsumerBackpressure(t *testing.T) {
	srv := startServer(t)
	const ring, window, size = 64 << 10, 64 << 10, 1024
	o := &goipc.Options{RingSize: ring, MaxMessageSize: 4096}
	d, a := pair(t, srv.URL()+"/t.slow?window=65536", o, o)
	sent := 0
	for {
		// A full ring for 300 ms: the bridge has stopped draining it,
		// for lack of credit.
		err := d.SendTimeout(seqMsg(sent, size), 300*time.Millisecond)
		if errors.Is(err, goipc.ErrTimeout) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent++
		if sent > 10000 {
			t.Fatal("10000 messages sent to a consumer that reads nothing: no backpressure")
		}
	}
	frame := size + 8
	lower := ring / frame                              // at least the producer's own ring
	upper := 2*ring/frame + window/int(cost(size)) + 2 // both rings and one window
	t.Logf("%d messages of %d B went out before Send timed out (bounds %d..%d)", sent, size, lower, upper)
	if sent < lower || sent > upper {
		t.Fatalf("%d messages sent before the producer blocked, want %d..%d", sent, lower, upper)
	}
	for i := range sent {
		got, err := a.RecvTimeout(10 * time.Second)
		if err != nil {
			t.Fatalf("message %d of %d: %v", i, sent, err)
		}
		if !bytes.Equal(got, seqMsg(i, size)) {
			t.Fatalf("message %d out of order", i)
		}
	}
	// The producer can go on.
	if err := d.SendTimeout(seqMsg(sent, size), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, err := a.RecvTimeout(10 * time.Second); err != nil || !bytes.Equal(got, seqMsg(sent, size)) {
		t.Fatalf("after draining: %v", err)
	}
}

// The maximum message size follows the server's max_payload: by default
// it is what fits; asking for more is refused at Dial; a larger message
// is ErrMessageTooLarge and the largest one arrives whole.
func TestMaxPayload(t *testing.T) {
	const maxPayload = 64 << 10
	srv := natstest.Start(t, natstest.Config{MaxPayload: maxPayload})
	url := srv.URL() + "/t.max"
	d, a := pair(t, url, nil, nil)
	if got, want := d.MaxMessageSize(), maxPayload-dataHeader; got != want {
		t.Fatalf("MaxMessageSize %d, want max_payload - %d = %d", got, dataHeader, want)
	}
	if err := d.Send(make([]byte, d.MaxMessageSize()+1)); !errors.Is(err, goipc.ErrMessageTooLarge) {
		t.Fatalf("one byte over: %v, want ErrMessageTooLarge", err)
	}
	big := bytes.Repeat([]byte{7}, d.MaxMessageSize())
	if err := d.Send(big); err != nil {
		t.Fatal(err)
	}
	if got, err := a.RecvTimeout(10 * time.Second); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("the largest message: %v", err)
	}
	// The largest call: its request and reply, with the 8-byte id, fill a
	// NATS message of max_payload exactly (17-byte header).
	go func() {
		id, req, err := a.RecvRequest(context.Background())
		if err == nil {
			a.Reply(id, req)
		}
	}()
	bigCall := bytes.Repeat([]byte{9}, d.MaxCallSize())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got, err := d.Call(ctx, bigCall); err != nil || !bytes.Equal(got, bigCall) {
		t.Fatalf("the largest call (%d bytes): %v", len(bigCall), err)
	}
	if _, err := d.Call(ctx, make([]byte, d.MaxCallSize()+1)); !errors.Is(err, goipc.ErrMessageTooLarge) {
		t.Fatalf("a call one byte over: %v, want ErrMessageTooLarge", err)
	}
	_, err := goipc.Dial(url, &goipc.Options{MaxMessageSize: 1 << 20})
	if !errors.Is(err, goipc.ErrInvalidArgument) || !strings.Contains(err.Error(), "max_payload") {
		t.Fatalf("1 MiB messages on a 64 KiB server: %v, want ErrInvalidArgument naming max_payload", err)
	}
}

// Listener limits apply to NATS connections as to Unix ones.
func TestListenerMaxConns(t *testing.T) {
	srv := startServer(t)
	url := srv.URL() + "/t.limit"
	quiet := func(string, ...any) {}
	_, a := pair(t, url, &goipc.Options{MaxConns: 1, Logf: quiet}, nil)
	_, err := goipc.Dial(url, nil)
	if !errors.Is(err, goipc.ErrLimit) || !strings.Contains(err.Error(), "MaxConns") {
		t.Fatalf("second connection: %v, want ErrLimit naming MaxConns", err)
	}
	a.Close()
}

func TestParseAddress(t *testing.T) {
	good := []struct{ addr, servers, subject string }{
		{"nats://127.0.0.1:4222/pong", "nats://127.0.0.1:4222", "pong"},
		{"nats://127.0.0.1:4222,127.0.0.1:4223/a.b", "nats://127.0.0.1:4222,nats://127.0.0.1:4223", "a.b"},
		{"nats://u:p@127.0.0.1:4222/x?heartbeat=1s&peer_timeout=3s", "nats://u:p@127.0.0.1:4222", "x"},
		{"tls://127.0.0.1:4222/x", "tls://127.0.0.1:4222", "x"},
	}
	for _, g := range good {
		a, err := parseAddress(g.addr)
		if err != nil {
			t.Errorf("%s: %v", g.addr, err)
			continue
		}
		if a.servers != g.servers || a.subject != g.subject {
			t.Errorf("%s: servers %q subject %q", g.addr, a.servers, a.subject)
		}
	}
	bad := []string{
		"nats://127.0.0.1:4222", "nats://127.0.0.1:4222/", "nats://127.0.0.1:4222/a.*", "nats://127.0.0.1:4222/a..b",
		"nats:///x", "nats://h:1/x?bogus=1", "nats://h:1/x?heartbeat=1s&peer_timeout=1s", "nats://h:1/x?window=1",
		"nats://h:1/x?tls_cert=c", "http://h:1/x",
	}
	for _, b := range bad {
		if _, err := parseAddress(b); !errors.Is(err, goipc.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", b, err)
		}
	}
	if _, err := parseAddress("nats://user:secret@h:1/x?bogus=1"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("an error message shows the password: %v", err)
	}
}
