package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
)

func init() {
	commands["ping"] = command{summary: "send messages to a consumer, check every answer, print round trips", run: runPing}
}

func runPing(args []string) int {
	fs := flag.NewFlagSet("goipc ping", flag.ContinueOnError)
	path := fs.String("dial", "", "`address` of the consumer: a Unix socket path or nats://host:port/subject (required)")
	n := fs.Int("n", 100000, "number of round trips to measure")
	warmup := fs.Int("warmup", 1000, "round trips before measuring")
	size := fs.Int("size", 64, "message size in `bytes`")
	spin := fs.Duration("spin", 0, "spin budget before parking (0: default; -1ns: park at once)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on a round trip after this long")
	raw := fs.Bool("raw", false, "send raw bytes and expect an exact echo, instead of FlatBuffers Ping/Pong")
	call := fs.Bool("call", false, "make each round trip a call (a request answered by its reply) instead of a message and its answer")
	gap := fs.Duration("gap", 0, "pause this long before each round trip, so that the consumer parks in between (sparse request/response; 0: back to back)")
	slowLog := fs.String("slow-log", "", "write the end (CLOCK_MONOTONIC, ns) and length (ns) of every measured round trip longer than --slow-over to `file`, "+
		"to line them up with a trace (perf record -k CLOCK_MONOTONIC; docs/PERFORMANCE.md section 27)")
	slowOver := fs.Duration("slow-over", 5*time.Microsecond, "with --slow-log: the round trips it lists are those longer than this")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" || *n <= 0 || *size < 0 || *warmup < 0 || *gap < 0 || *slowOver <= 0 {
		fmt.Fprintln(os.Stderr, "goipc ping: --dial PATH is required; -n and --slow-over must be > 0, --size, --warmup and --gap >= 0")
		return 2
	}
	var slow *slowLogger
	if *slowLog != "" {
		f, err := os.Create(*slowLog)
		if err != nil {
			fmt.Fprintln(os.Stderr, "goipc ping:", err)
			return 1
		}
		defer f.Close()
		slow = newSlowLogger(*slowOver, *n)
		defer func() {
			if err := slow.write(f); err != nil {
				fmt.Fprintln(os.Stderr, "goipc ping: --slow-log:", err)
			}
		}()
	}
	// The segment's maximum message size must hold the largest message of
	// either direction: the echo in raw mode, the Pong (8 bytes larger
	// than its Ping) otherwise.
	largest := *size
	if !*raw {
		if largest = message.PongSize(*size); largest < 0 || largest > maxPingMessage {
			fmt.Fprintf(os.Stderr, "goipc ping: --size %d: the Pong answering a Ping with that payload would exceed goipc's largest message (%d B); use --size <= %d\n",
				*size, maxPingMessage, maxPongPayload(maxPingMessage))
			return 2
		}
	} else if largest > maxPingMessage {
		fmt.Fprintf(os.Stderr, "goipc ping: --size %d exceeds goipc's largest message (%d B)\n", *size, maxPingMessage)
		return 2
	}
	c, err := goipc.DialTimeout(*path, *timeout, &goipc.Options{Spin: *spin, MaxMessageSize: maxMessageFor(largest)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "goipc ping:", err)
		if errors.Is(err, goipc.ErrInvalidArgument) && largest > goipc.DefaultMaxMessageSize {
			what := "an echo"
			if !*raw {
				what = "the Pong (8 B more than its Ping)"
			}
			fmt.Fprintf(os.Stderr, "goipc ping: --size %d needs messages of %d B for %s, above the consumer's maximum message size: "+
				"use --size <= %d against a consumer with the default maximum (%d B), or start goipc pong with --max-message %d\n",
				*size, largest, what, sizeWithin(*raw, goipc.DefaultMaxMessageSize), goipc.DefaultMaxMessageSize, largest)
		}
		return 1
	}
	defer c.Close()
	loop, what := pingPongLoop, "Ping/Pong round trips with a %d B payload"
	if *raw {
		loop, what = echoPingLoop, "raw echo round trips of %d B"
	}
	if *call {
		loop, what = callPongLoop, "Ping/Pong calls with a %d B payload"
		if *raw {
			loop, what = callEchoLoop, "raw echo calls of %d B"
		}
	}
	rtts, elapsed, err := loop(c, *warmup, *n, *size, *timeout, *gap, slow)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goipc ping:", err)
		return 1
	}
	fmt.Printf("goipc ping: %d "+what+" to %s\n", *n, *size, *path)
	printLatencies(os.Stdout, rtts, elapsed)
	if *gap > 0 {
		// How often the consumer had gone to sleep: each of our wakeups
		// (futex wakes and doorbell rings) found it parked.
		st, err := c.Stats()
		if err != nil {
			fmt.Fprintln(os.Stderr, "goipc ping:", err)
			return 1
		}
		fmt.Printf("paced: %v before each round trip; the consumer was asleep and woken %d times in %d round trips\n", *gap, st.Sent.Wakeups, *warmup+*n)
	}
	return 0
}

// pause is the --gap before a round trip.
func pause(gap time.Duration) {
	if gap > 0 {
		time.Sleep(gap)
	}
}

// pingPongLoop sends warmup+n Pings built in place in the ring, and
// checks that each Pong carries the Ping's seq, timestamp and payload.
func pingPongLoop(c *goipc.Conn, warmup, n, size int, timeout, gap time.Duration, slow *slowLogger) ([]time.Duration, time.Duration, error) {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i*7 + 3)
	}
	if message.PongSize(size) > c.MaxMessageSize() {
		return nil, 0, fmt.Errorf("the Pong answering a Ping with a %d B payload is %d B, above the connection's maximum of %d B: use a payload of at most %d B",
			size, message.PongSize(size), c.MaxMessageSize(), maxPongPayload(c.MaxMessageSize()))
	}
	rtts := newSamples(n)
	var start time.Time
	for i := 0; i < warmup+n; i++ {
		if i == warmup {
			start = time.Now()
		}
		pause(gap)
		t0 := time.Since(epoch)
		out, err := c.Reserve(message.PingSize(size), timeout)
		if err != nil {
			return nil, 0, fmt.Errorf("send Ping %d: %w", i, err)
		}
		sent := monoNs()
		m, err := message.WritePing(out, uint64(i), sent, payload)
		if err != nil {
			c.AbortReserve()
			return nil, 0, err
		}
		if err := c.Commit(m); err != nil {
			return nil, 0, fmt.Errorf("send Ping %d: %w", i, err)
		}
		view, err := c.RecvView(timeout)
		if err != nil {
			return nil, 0, fmt.Errorf("receive Pong %d: %w", i, err)
		}
		rtt := time.Since(epoch) - t0
		pong, err := message.ParsePong(view)
		switch {
		case err != nil:
			err = fmt.Errorf("answer %d is not a valid Pong (is the consumer an exact echo? try --raw): %w", i, err)
		case pong.Seq() != uint64(i) || pong.PingSentNs() != sent:
			err = fmt.Errorf("Pong %d answers seq %d sent at %d, want seq %d sent at %d", i, pong.Seq(), pong.PingSentNs(), i, sent)
		case len(pong.Payload()) == 0 && size > 0:
			err = fmt.Errorf("Pong %d came back without its payload (the Ping's was %d B): the consumer could not fit the Pong (%d B) "+
				"in its maximum message size; goipc pong answers so instead of dropping the connection", i, size, message.PongSize(size))
		case !bytes.Equal(pong.Payload(), payload):
			err = fmt.Errorf("Pong %d payload differs from the Ping's", i)
		}
		c.ReleaseView()
		if err != nil {
			return nil, 0, err
		}
		if i >= warmup {
			rtts = append(rtts, rtt)
			slow.note(rtt)
		}
	}
	return rtts, time.Since(start), nil
}

// echoPingLoop sends warmup+n messages, each stamped with its sequence number,
// checks that every answer is byte for byte what was sent, and returns the
// measured round trips.
func echoPingLoop(c *goipc.Conn, warmup, n, size int, timeout, gap time.Duration, slow *slowLogger) ([]time.Duration, time.Duration, error) {
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i*7 + 3)
	}
	reply := make([]byte, size)
	rtts := newSamples(n)
	var start time.Time
	for i := 0; i < warmup+n; i++ {
		if i == warmup {
			start = time.Now()
		}
		pause(gap)
		if size >= 8 {
			binary.LittleEndian.PutUint64(msg, uint64(i))
		}
		t0 := time.Since(epoch)
		if err := c.SendTimeout(msg, timeout); err != nil {
			return nil, 0, fmt.Errorf("send %d: %w", i, err)
		}
		got, err := c.RecvInto(reply, timeout)
		if err != nil {
			return nil, 0, fmt.Errorf("receive %d: %w", i, err)
		}
		rtt := time.Since(epoch) - t0
		if got != size || !bytes.Equal(reply[:got], msg) {
			return nil, 0, fmt.Errorf("answer %d differs from what was sent (%d bytes, want %d)", i, got, size)
		}
		if i >= warmup {
			rtts = append(rtts, rtt)
			slow.note(rtt)
		}
	}
	return rtts, time.Since(start), nil
}

// maxPingMessage is the largest message a connection can carry: half the
// largest ring (goipc.Options.MaxMessageSize).
const maxPingMessage = goipc.MaxRingSize / 2

// maxPongPayload is the largest Ping payload whose Pong fits in limit bytes.
func maxPongPayload(limit int) int {
	// PongSize(n) is PongSize(0) plus n rounded up to 8 bytes, so the
	// answer is within 8 bytes of this.
	n := max(0, limit-message.PongSize(0)+8)
	for n > 0 && message.PongSize(n) > limit {
		n--
	}
	return n
}

// sizeWithin is the largest --size whose messages fit in limit bytes.
func sizeWithin(raw bool, limit int) int {
	if raw {
		return limit
	}
	return maxPongPayload(limit)
}

// epoch is the origin of the round-trip timestamps: time.Since(epoch) is
// one monotonic clock read, where time.Now also reads the wall clock.
var epoch = time.Now()

// slowLogger keeps the end and length of the round trips longer than
// over, up to a bound, for --slow-log. A nil *slowLogger notes nothing.
type slowLogger struct {
	over    time.Duration
	entries [][2]int64 // end (CLOCK_MONOTONIC ns), length (ns)
	missed  int        // past the bound
}

// slowLogMax bounds a slow log's entries (16 MiB).
const slowLogMax = 1 << 20

func newSlowLogger(over time.Duration, n int) *slowLogger {
	return &slowLogger{over: over, entries: prefaulted(min(n, slowLogMax), [2]int64{1, 1})}
}

// note records rtt if it is longer than the threshold; the clock is read
// only then, after the round trip was timed.
func (s *slowLogger) note(rtt time.Duration) {
	if s == nil || rtt <= s.over {
		return
	}
	if len(s.entries) == cap(s.entries) {
		s.missed++
		return
	}
	s.entries = append(s.entries, [2]int64{monoNs(), int64(rtt)})
}

// write writes the log: a comment line, then "end length" per round
// trip, in nanoseconds.
func (s *slowLogger) write(w io.Writer) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "# goipc ping: the measured round trips longer than %v: end (CLOCK_MONOTONIC, ns) and length (ns)\n", s.over)
	for _, e := range s.entries {
		fmt.Fprintf(b, "%d %d\n", e[0], e[1])
	}
	if s.missed > 0 {
		fmt.Fprintf(b, "# %d more not kept (at most %d are)\n", s.missed, slowLogMax)
	}
	return b.Flush()
}

// newSamples returns room for n round trips with its pages already
// faulted in (prefaulted).
func newSamples(n int) []time.Duration { return prefaulted(n, time.Duration(1)) }

// prefaulted returns an empty slice with room for n elements whose pages
// were written before the timed loop: a first touch inside it (one page
// per 512 samples) would be measured as the transport's latency.
func prefaulted[T any](n int, v T) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = v
	}
	return s[:0]
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(sorted)-1))
	return sorted[i]
}

func printLatencies(w *os.File, rtts []time.Duration, elapsed time.Duration) {
	s := slices.Clone(rtts)
	slices.Sort(s)
	fmt.Fprintf(w, "round trip: min %v  p50 %v  p99 %v  p99.9 %v  max %v\n",
		s[0], percentile(s, 50), percentile(s, 99), percentile(s, 99.9), s[len(s)-1])
	fmt.Fprintf(w, "throughput: %.0f round trips/s\n", float64(len(s))/elapsed.Seconds())
}
