package natsbridge

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/natsbridge/natstest"
)

// Benchmarks (not tests): goipc over NATS against plain nats.go on the
// same server in the same run. Both sides of each run are in this
// process, as are both sides of the baseline. `make bench-nats` runs them.

func echo(c *goipc.Conn) {
	for {
		m, err := c.RecvView(-1)
		if err != nil {
			return
		}
		err = c.Send(m)
		c.ReleaseView()
		if err != nil {
			return
		}
	}
}

func BenchmarkRoundTrip64B(b *testing.B) {
	srv := natstest.Start(b, natstest.Config{})
	b.Run("goipc-nats", func(b *testing.B) {
		d, a := pair(b, srv.URL()+"/bench.rt", nil, nil)
		go echo(a)
		msg := make([]byte, 64)
		b.ResetTimer()
		for b.Loop() {
			if err := d.Send(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := d.Recv(); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A call (request frame with its id, reply routed back by id) in
	// place of the send and the receive.
	b.Run("goipc-nats-call", func(b *testing.B) {
		d, a := pair(b, srv.URL()+"/bench.call", nil, nil)
		go echoAndAnswer(a)
		msg := make([]byte, 64)
		buf := make([]byte, 64)
		b.ResetTimer()
		for b.Loop() {
			if _, err := d.CallTimeout(msg, buf, -1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("nats-request", func(b *testing.B) {
		resp, req := natsConns(b, srv.URL())
		sub, err := resp.Subscribe("bench.req", func(m *nats.Msg) { m.Respond(m.Data) })
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Unsubscribe()
		resp.Flush()
		msg := make([]byte, 64)
		b.ResetTimer()
		for b.Loop() {
			if _, err := req.Request("bench.req", msg, 10*time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkOneWay1KiB(b *testing.B) {
	srv := natstest.Start(b, natstest.Config{})
	b.Run("goipc-nats", func(b *testing.B) {
		d, a := pair(b, srv.URL()+"/bench.oneway", nil, nil)
		msg := make([]byte, 1024)
		done := make(chan error, 1)
		b.SetBytes(1024)
		b.ResetTimer()
		n := b.N
		go func() {
			for range n {
				if _, err := a.RecvView(-1); err != nil {
					done <- err
					return
				}
				a.ReleaseView()
			}
			done <- nil
		}()
		for range n {
			if err := d.Send(msg); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	})
	b.Run("nats-pubsub", func(b *testing.B) {
		sc, pc := natsConns(b, srv.URL())
		n := b.N
		got := 0
		done := make(chan struct{})
		sub, err := sc.Subscribe("bench.oneway", func(*nats.Msg) {
			got++
			if got == n {
				close(done)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		sub.SetPendingLimits(-1, -1)
		sc.Flush()
		msg := make([]byte, 1024)
		b.SetBytes(1024)
		b.ResetTimer()
		for range n {
			if err := pc.Publish("bench.oneway", msg); err != nil {
				b.Fatal(err)
			}
		}
		pc.Flush()
		<-done
	})
}

func natsConns(b *testing.B, url string) (x, y *nats.Conn) {
	x, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	y, err = nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { x.Close(); y.Close() })
	return x, y
}

// BenchmarkNodeKill measures, with the default heartbeat settings, how
// long after SIGKILL of a cluster node the producer's call returns
// ErrPeerClosed: the node carrying the dialer ("dialer-node", noticed on
// the socket) and the node carrying the listener ("listener-node", noticed
// by the heartbeats; the bound is peer_timeout + heartbeat = 1.2 s). Each
// iteration starts its own 3-node cluster: run it with -benchtime 3x.
func BenchmarkNodeKill(b *testing.B) {
	for _, kill := range []struct {
		name string
		node int
	}{{"dialer-node", 0}, {"listener-node", 1}} {
		b.Run(kill.name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				nodes := natstest.Cluster(b, 3, natstest.Config{})
				subject := "/bench.kill"
				ln, err := goipc.Listen(nodes[1].URL()+","+nodes[2].URL()[len("nats://"):]+subject, nil)
				if err != nil {
					b.Fatal(err)
				}
				d, err := dialWithin(nodes[0].URL()+subject, 10*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				a, err := ln.AcceptTimeout(10 * time.Second)
				if err != nil {
					b.Fatal(err)
				}
				go echo(a)
				b.StartTimer()
				killed := time.Now()
				nodes[kill.node].Kill()
				var perr error
				for perr == nil {
					if perr = d.Send(make([]byte, 64)); perr == nil {
						_, perr = d.RecvTimeout(10 * time.Second)
					}
				}
				took := time.Since(killed)
				if !errors.Is(perr, goipc.ErrPeerClosed) {
					b.Fatalf("after the kill: %v", perr)
				}
				total += took
				b.StopTimer()
				d.Close()
				a.Close()
				ln.Close()
				for _, n := range nodes {
					n.Kill()
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-ErrPeerClosed")
		})
	}
}
