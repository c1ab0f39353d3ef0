package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
)

// TestPongAnswersCalls: goipc pong answers a Ping call with a Pong and any
// other call with its echo, as the call's reply, from many goroutines on
// one connection, while plain messages on the same connection are answered
// as before.
func TestPongAnswersCalls(t *testing.T) {
	path, _, _ := startPong(t)
	c, err := goipc.Dial(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 9)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				seq := uint64(g*1000 + i)
				payload := fmt.Appendf(nil, "caller %d call %d", g, i)
				reply, err := c.Call(ctx, message.AppendPing(nil, seq, 42, payload))
				if err != nil {
					errs <- err
					return
				}
				pong, err := message.ParsePong(reply)
				if err != nil || pong.Seq() != seq || pong.PingSentNs() != 42 || !bytes.Equal(pong.Payload(), payload) {
					errs <- fmt.Errorf("caller %d call %d: not its own Pong (%v)", g, i, err)
					return
				}
				if echo, err := c.Call(ctx, payload); err != nil || !bytes.Equal(echo, payload) {
					errs <- fmt.Errorf("caller %d echo call %d: %q %v", g, i, echo, err)
					return
				}
			}
		}()
	}
	// Meanwhile, plain messages and their answers on the same connection.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 300 {
			msg := fmt.Appendf(nil, "plain %d", i)
			if err := c.Send(msg); err != nil {
				errs <- err
				return
			}
			if got, err := c.RecvTimeout(time.Minute); err != nil || !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("plain %d: %q %v", i, got, err)
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if d := c.DroppedReplies(); d != 0 {
		t.Errorf("%d replies dropped", d)
	}
}

func TestPingCallAgainstPong(t *testing.T) {
	path, _, _ := startPong(t)
	for _, args := range [][]string{{"-n", "2000", "--call"}, {"-n", "2000", "--call", "--raw"}, {"-n", "50", "--call", "--size", "100000"}} {
		out, err := cli(append([]string{"ping", "--dial", path}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ping %v: %v\n%s", args, err, out)
		}
		if !strings.Contains(string(out), "calls") || !strings.Contains(string(out), "p50") {
			t.Errorf("ping %v output:\n%s", args, out)
		}
	}
}
