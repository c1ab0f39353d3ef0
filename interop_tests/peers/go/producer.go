package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
)

// callTimeout bounds every blocking call of a producer: a bug shows up as a
// timeout in the result line, never as a hang.
const callTimeout = 10 * time.Second

type producer struct {
	path, scenario, snapshot string
	n, size, rounds          int
	ringSize, maxMsg         int
	proto                    uint32
}

// result is the final JSON line; fail and failErr fill it for a failure.
type result map[string]any

func (p *producer) run() int {
	if p.path == "" || p.scenario == "" {
		usage()
	}
	scenarios := map[string]func() result{
		"sizes":   p.sizes,
		"burst":   p.burst,
		"stream":  p.stream,
		"version": p.version,
		"layout":  p.layout,
	}
	f, ok := scenarios[p.scenario]
	if !ok {
		fmt.Fprintf(os.Stderr, "peer producer: unknown scenario %q\n", p.scenario)
		return 2
	}
	r := f()
	r["event"], r["lang"], r["scenario"] = "result", lang, p.scenario
	if _, ok := r["ok"]; !ok {
		r["ok"] = true
	}
	emit(r)
	if r["ok"] != true {
		return 1
	}
	return 0
}

func fail(format string, args ...any) result {
	return result{"ok": false, "error": fmt.Sprintf(format, args...)}
}

// failErr reports err from a goipc call, with its status name.
func failErr(what string, err error) result {
	return result{"ok": false, "status": statusName(err), "error": fmt.Sprintf("%s: %v", what, err)}
}

func (p *producer) dial() (*goipc.Conn, error) {
	return goipc.DialTimeout(p.path, callTimeout, &goipc.Options{RingSize: p.ringSize, MaxMessageSize: p.maxMsg, ProtocolVersionOverride: p.proto})
}

// pattern holds the payload bytes: the payload of a Ping with sequence
// number seq and n bytes is pattern[seq%251 : seq%251+n], so that every
// round trip carries different bytes and a mix-up shows.
var pattern []byte

func payloadFor(seq uint64, n int) []byte {
	need := n + 251
	if len(pattern) < need {
		pattern = make([]byte, need)
		for i := range pattern {
			pattern[i] = byte(i*7 + 3)
		}
	}
	o := int(seq % 251)
	return pattern[o : o+n]
}

// sendPing builds a Ping in place in the ring; timeout as for Reserve.
func sendPing(c *goipc.Conn, seq uint64, payload []byte, timeout time.Duration) (int64, error) {
	out, err := c.Reserve(message.PingSize(len(payload)), timeout)
	if err != nil {
		return 0, err
	}
	sent := monoNs()
	m, err := message.WritePing(out, seq, sent, payload)
	if err != nil {
		c.AbortReserve()
		return 0, err
	}
	return sent, c.Commit(m)
}

// recvPong receives the next message and checks that it is the Pong
// answering (seq, sent) with payload.
func recvPong(c *goipc.Conn, seq uint64, sent int64, payload []byte) error {
	view, err := c.RecvView(callTimeout)
	if err != nil {
		return err
	}
	defer c.ReleaseView()
	return checkPong(view, seq, sent, payload)
}

// checkPong checks that msg is the Pong answering (seq, sent) with payload.
func checkPong(msg []byte, seq uint64, sent int64, payload []byte) error {
	pong, err := message.ParsePong(msg)
	switch {
	case err != nil:
		return fmt.Errorf("answer to Ping %d is not a valid Pong: %w", seq, err)
	case pong.Seq() != seq:
		return fmt.Errorf("Pong answers seq %d, want %d (lost or reordered)", pong.Seq(), seq)
	case sent != 0 && pong.PingSentNs() != sent:
		return fmt.Errorf("Pong %d carries ping_sent_ns %d, want %d", seq, pong.PingSentNs(), sent)
	case !bytes.Equal(pong.Payload(), payload):
		return fmt.Errorf("Pong %d payload (%d B) differs from the Ping's (%d B)", seq, len(pong.Payload()), len(payload))
	}
	return nil
}

func roundTrip(c *goipc.Conn, seq uint64, size int) error {
	payload := payloadFor(seq, size)
	sent, err := sendPing(c, seq, payload, callTimeout)
	if err != nil {
		return fmt.Errorf("send Ping %d: %w", seq, err)
	}
	if err := recvPong(c, seq, sent, payload); err != nil {
		return fmt.Errorf("receive Pong %d: %w", seq, err)
	}
	return nil
}

// maxPayload is the largest payload whose Pong (the larger answer) fits a
// message of maxMsg bytes.
func maxPayload(maxMsg int) int {
	n := maxMsg
	for n > 0 && message.PongSize(n) > maxMsg {
		n--
	}
	return n
}

// sizes: round trips at each interesting payload size up to the maximum,
// then a Ping just too large is refused and the connection stays usable.
func (p *producer) sizes() result {
	c, err := p.dial()
	if err != nil {
		return failErr("dial", err)
	}
	defer c.Close()
	maxMsg := c.MaxMessageSize()
	maxP := maxPayload(maxMsg)
	sizes := []int{0, 1, 63, 64, 4095, 4096, 65536, maxP}
	seq := uint64(0)
	for _, s := range sizes {
		for range 3 {
			if err := roundTrip(c, seq, s); err != nil {
				return failErr(fmt.Sprintf("payload %d B", s), err)
			}
			seq++
		}
	}
	tooBig := maxP
	for message.PingSize(tooBig) <= maxMsg {
		tooBig++
	}
	_, err = sendPing(c, seq, payloadFor(seq, tooBig), callTimeout)
	if !errors.Is(err, goipc.ErrMessageTooLarge) {
		return fail("a Ping with a %d B payload (%d B > max %d B) gave %v, want message too large", tooBig, message.PingSize(tooBig), maxMsg, err)
	}
	if err := roundTrip(c, seq, 64); err != nil {
		return failErr("round trip after the refused message", err)
	}
	return result{"sizes": sizes, "max_message": maxMsg, "max_payload": maxP, "too_large_payload": tooBig, "round_trips": int(seq) + 1}
}

// burst: each round sends Pings without reading until a send would have to
// wait (the ring is full: the consumer is blocked on our full answer ring),
// then reads every Pong, checking order and payload.
func (p *producer) burst() result {
	c, err := p.dial()
	if err != nil {
		return failErr("dial", err)
	}
	defer c.Close()
	seq, next, maxBurst := uint64(0), uint64(0), 0
	for r := 0; r < p.rounds; r++ {
		burst := 0
		for {
			_, err := sendPing(c, seq, payloadFor(seq, p.size), 0)
			if errors.Is(err, goipc.ErrTimeout) {
				break // the ring is full: backpressure
			}
			if err != nil {
				return failErr(fmt.Sprintf("round %d: send Ping %d", r, seq), err)
			}
			seq++
			burst++
			if burst > 10_000_000 {
				return fail("round %d: 10M Pings sent and the ring never filled", r)
			}
		}
		if burst == 0 {
			return fail("round %d: the ring was full before the first Ping", r)
		}
		maxBurst = max(maxBurst, burst)
		for ; next < seq; next++ {
			if err := recvPong(c, next, 0, payloadFor(next, p.size)); err != nil {
				return failErr(fmt.Sprintf("round %d: receive Pong %d", r, next), err)
			}
		}
	}
	return result{"messages": seq, "rounds": p.rounds, "ring_full": p.rounds, "max_burst": maxBurst, "ring_size": p.ringSize}
}

// stream: round trips until the connection fails; after n of them it says
// so ({"event":"streaming"}), for the driver to kill a peer mid-stream.
// Success is ending with peer-closed.
func (p *producer) stream() result {
	c, err := p.dial()
	if err != nil {
		return failErr("dial", err)
	}
	defer c.Close()
	var i uint64
	for ; ; i++ {
		if i == uint64(p.n) {
			emit(map[string]any{"event": "streaming", "lang": lang, "round_trips": i})
		}
		if err = roundTrip(c, i, p.size); err != nil {
			break
		}
	}
	r := failErr("stream", err)
	r["round_trips"] = i
	if r["status"] == "peer_closed" {
		r["ok"] = true
	} else {
		r["error"] = fmt.Sprintf("want peer closed, got %v", r["error"])
	}
	return r
}

// version: the dial must fail with a protocol error that names the version.
func (p *producer) version() result {
	c, err := p.dial()
	if err == nil {
		c.Close()
		return fail("dial succeeded; want a protocol version mismatch")
	}
	msg := err.Error()
	if statusName(err) != "protocol" || !strings.Contains(msg, "version") {
		return result{"ok": false, "status": statusName(err), "error": "want a protocol error naming the version, got: " + msg}
	}
	return result{"status": "protocol", "message": msg}
}
