package goipc

// Call benchmarks between two processes: the child answers calls and plain
// messages alike (runCallServer: a Server with four handlers), so a call
// round trip and a send+recv round trip are measured against the same peer
// in the same run. Run with
//
//	go test -run '^$' -bench Call -benchtime 2s ./goipc/

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// startCallPeer starts a call-server child and returns our end.
func startCallPeer(b *testing.B) *Conn {
	b.Helper()
	path := socketPath(b)
	ln, err := Listen(path, &Options{MaxMessageSize: streamMaxMsg})
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	cmd := childCommand(b, "call-server", path)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c, err := ln.AcceptTimeout(20 * time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		cmd.Wait()
	})
	return c
}

// latencies runs n round trips of fn (after a warm-up) and returns them
// sorted.
func latencies(b *testing.B, n int, fn func() error) []time.Duration {
	for range min(n, 1000) {
		if err := fn(); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, n)
	for i := range lat {
		t0 := time.Now()
		if err := fn(); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	slices.Sort(lat)
	return lat
}

// BenchmarkCall: a call round trip (CallInto) next to a send+recv round
// trip on the same connection to the same peer, 64 B; reports both p50s
// and their ratio (call/sendrecv; the goal is <= 1.1).
func BenchmarkCall(b *testing.B) {
	c := startCallPeer(b)
	req, buf := make([]byte, 64), make([]byte, 128)
	call := func() error {
		_, err := c.CallInto(context.Background(), req, buf)
		return err
	}
	sendRecv := func() error {
		if err := c.Send(req); err != nil {
			return err
		}
		_, err := c.RecvInto(buf, -1)
		return err
	}
	const n = 20000
	// Interleaved halves, so that a change of machine load hits both.
	var cl, sl []time.Duration
	for range 2 {
		sl = append(sl, latencies(b, n/2, sendRecv)...)
		cl = append(cl, latencies(b, n/2, call)...)
	}
	slices.Sort(cl)
	slices.Sort(sl)
	b.ResetTimer()
	for range b.N {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(p50(cl), "call-p50-ns")
	b.ReportMetric(p50(sl), "sendrecv-p50-ns")
	b.ReportMetric(p50(cl)/p50(sl), "call/sendrecv")
}

// BenchmarkCallParallel: G goroutines calling at once on one connection
// (64 B); calls/s next to one goroutine's, in the same run.
func BenchmarkCallParallel(b *testing.B) {
	for _, g := range []int{1, 8} {
		b.Run(fmt.Sprintf("%dgoroutines", g), func(b *testing.B) {
			c := startCallPeer(b)
			run := func(total int) time.Duration {
				var wg sync.WaitGroup
				start := time.Now()
				for k := range g {
					wg.Add(1)
					go func() {
						defer wg.Done()
						req, buf := make([]byte, 64), make([]byte, 128)
						for i := k; i < total; i += g {
							if _, err := c.CallInto(context.Background(), req, buf); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				return time.Since(start)
			}
			run(2000) // warm-up
			b.ResetTimer()
			d := run(b.N)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/d.Seconds(), "calls/s")
		})
	}
}
