package natsbridge

import (
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
