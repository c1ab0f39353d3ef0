package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
)

// Calls in the CLI: goipc pong answers a call request the way it answers a
// message (a Pong for a Ping, else the echo), as the call's reply; goipc
// ping --call makes each round trip a call.

// answerer is where pong writes an answer: the connection for a plain
// message, the call's reply for a request.
type answerer interface {
	Reserve(n int, timeout time.Duration) ([]byte, error)
	Commit(n int) error
	AbortReserve() error
	MaxMessageSize() int
}

// replier answers what echoLoop received last (in): with a plain message,
// or with the reply to the call request. One per connection, reused.
type replier struct {
	*goipc.Conn
	in goipc.Incoming
}

func (r *replier) Reserve(n int, timeout time.Duration) ([]byte, error) {
	if r.in.Call {
		return r.ReserveReply(r.in.ID, n, timeout)
	}
	return r.Conn.Reserve(n, timeout)
}

// MaxMessageSize is the largest answer: a reply carries the 8-byte call id.
func (r *replier) MaxMessageSize() int {
	if r.in.Call {
		return r.MaxCallSize()
	}
	return r.Conn.MaxMessageSize()
}

// callPongLoop is pingPongLoop with each Ping sent as a call request and
// its Pong taken as the call's reply.
func callPongLoop(c *goipc.Conn, warmup, n, size int, timeout, gap time.Duration, slow *slowLogger) ([]time.Duration, time.Duration, error) {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i*7 + 3)
	}
	if message.PingSize(size) > c.MaxCallSize() {
		return nil, 0, fmt.Errorf("a Ping with a %d B payload is %d B, above the connection's largest call of %d B", size, message.PingSize(size), c.MaxCallSize())
	}
	req, reply := make([]byte, message.PingSize(size)), make([]byte, message.PongSize(size))
	return measure(warmup, n, gap, slow, func(i int) error {
		sent := monoNs()
		m, err := message.WritePing(req, uint64(i), sent, payload)
		if err != nil {
			return err
		}
		got, err := c.CallTimeout(req[:m], reply, timeout)
		if err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
		pong, err := message.ParsePong(reply[:got])
		switch {
		case err != nil:
			return fmt.Errorf("reply %d is not a valid Pong: %w", i, err)
		case pong.Seq() != uint64(i) || pong.PingSentNs() != sent:
			return fmt.Errorf("Pong %d answers seq %d sent at %d, want seq %d sent at %d", i, pong.Seq(), pong.PingSentNs(), i, sent)
		case !bytes.Equal(pong.Payload(), payload):
			return fmt.Errorf("Pong %d payload differs from the Ping's", i)
		}
		return nil
	})
}

// callEchoLoop is echoPingLoop with each message sent as a call request
// and the echo taken as the call's reply.
func callEchoLoop(c *goipc.Conn, warmup, n, size int, timeout, gap time.Duration, slow *slowLogger) ([]time.Duration, time.Duration, error) {
	req, reply := make([]byte, size), make([]byte, size)
	for i := range req {
		req[i] = byte(i*7 + 3)
	}
	return measure(warmup, n, gap, slow, func(i int) error {
		if size >= 8 {
			binary.LittleEndian.PutUint64(req, uint64(i))
		}
		got, err := c.CallTimeout(req, reply, timeout)
		if err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
		if got != size || !bytes.Equal(reply[:got], req) {
			return fmt.Errorf("reply %d differs from the request (%d bytes, want %d)", i, got, size)
		}
		return nil
	})
}

// measure runs warmup+n round trips, each after a pause of gap, and
// returns the measured ones (noting the slow ones in slow).
func measure(warmup, n int, gap time.Duration, slow *slowLogger, roundTrip func(i int) error) ([]time.Duration, time.Duration, error) {
	rtts := newSamples(n)
	var start time.Time
	for i := 0; i < warmup+n; i++ {
		if i == warmup {
			start = time.Now()
		}
		pause(gap)
		t0 := time.Now()
		if err := roundTrip(i); err != nil {
			return nil, 0, err
		}
		if i >= warmup {
			rtt := time.Since(t0)
			rtts = append(rtts, rtt)
			slow.note(rtt)
		}
	}
	return rtts, time.Since(start), nil
}
