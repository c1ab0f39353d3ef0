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
	"runtime"
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

// benchPipe is a connected pair for the benchmarks below, closed at the
// end. Pipe, not pair: pair's leak check can trip over the runtime's
// first use of the network poller when a benchmark runs first.
func benchPipe(b *testing.B) (client, server *Conn) {
	client, server, err := Pipe(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// BenchmarkCallOneGoroutine is one 64 B call round trip with both ends in
// one goroutine, so nothing ever waits: the instruction cost of a call
// next to a send+recv round trip (run it under callgrind, see
// hotpath_bench_test.go). The server is goipc pong's: RecvNextView, the
// answer written in place (Reserve, or ReserveReply for a request),
// Commit, ReleaseView. The call is CallTimeout's path cut where it would
// wait: startCall sends the request, the server answers, and awaitReply
// finds the reply at the head.
func BenchmarkCallOneGoroutine(b *testing.B) {
	serve := func(b *testing.B, server *Conn) {
		if err := echoNext(server); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("sendrecv", func(b *testing.B) {
		client, server := benchPipe(b)
		msg, buf := make([]byte, 64), make([]byte, 64)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if err := client.SendTimeout(msg, -1); err != nil {
				b.Fatal(err)
			}
			serve(b, server)
			if _, err := client.RecvInto(buf, -1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("call", func(b *testing.B) {
		client, server := benchPipe(b)
		msg, buf := make([]byte, 64), make([]byte, 64)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			w := timeoutWait(-1)
			idx, gen, err := client.startCall(&w, msg, len(msg), nil, buf, true)
			if err != nil {
				b.Fatal(err)
			}
			serve(b, server)
			if _, _, _, err := client.finishCall(idx, gen, &w, buf, true, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// echoNext answers the next message or call request with its own bytes,
// as goipc pong's loop does: read in place, the answer written straight
// into reserved ring space.
func echoNext(server *Conn) error {
	in, err := server.RecvNextView(-1)
	if err != nil {
		return err
	}
	var out []byte
	if in.Call {
		out, err = server.ReserveReply(in.ID, len(in.Data), -1)
	} else {
		out, err = server.Reserve(len(in.Data), -1)
	}
	if err != nil {
		server.ReleaseView()
		return err
	}
	copy(out, in.Data)
	server.Commit(len(in.Data))
	return server.ReleaseView()
}

// echoInBackground answers everything client sends with echoNext, from a
// goroutine of its own, until the connection closes; before the nth
// message it runs each(n), on that goroutine (nil: nothing). stop closes
// client and waits for the goroutine to end (the benchmark's cleanup does
// too, before the pair's own): after it, the server's fields may be read.
func echoInBackground(b *testing.B, client, server *Conn, each func(n int)) (stop func()) {
	served := make(chan struct{})
	go func() {
		defer close(served)
		for n := 1; ; n++ {
			if each != nil {
				each(n)
			}
			if echoNext(server) != nil {
				return
			}
		}
	}()
	stop = func() {
		client.Close()
		<-served
	}
	b.Cleanup(stop)
	return stop
}

// BenchmarkCallGoroutines: 64 B round trips between two goroutines of one
// process, a call (CallTimeout, as goipc_call) next to a send+recv round
// trip (SendTimeout + RecvInto), in alternating batches on one
// connection, against goipc pong's loop (RecvNextView, the answer in
// place, ReleaseView). Reports both p50s and their ratio; the process
// boundary and cgo are left out, so this isolates what the call path
// itself adds to a round trip.
func BenchmarkCallGoroutines(b *testing.B) {
	if runtime.NumCPU() < 2 {
		b.Skip("needs two CPUs")
	}
	client, server := benchPipe(b)
	echoInBackground(b, client, server, nil)
	msg, buf := make([]byte, 64), make([]byte, 64)
	call := func() error {
		_, err := client.CallTimeout(msg, buf, -1)
		return err
	}
	sendRecv := func() error {
		if err := client.SendTimeout(msg, -1); err != nil {
			return err
		}
		_, err := client.RecvInto(buf, -1)
		return err
	}
	const batch = 5000
	var cl, sl []time.Duration
	for range max(2, b.N/(2*batch)) {
		sl = append(sl, latencies(b, batch, sendRecv)...)
		cl = append(cl, latencies(b, batch, call)...)
	}
	slices.Sort(cl)
	slices.Sort(sl)
	b.ReportMetric(p50(cl), "call-p50-ns")
	b.ReportMetric(p50(sl), "sendrecv-p50-ns")
	b.ReportMetric(p50(cl)/p50(sl), "call/sendrecv")
}
