// Command ping-pong is the ping-pong example in Go (examples/README.md):
// the consumer the other languages' ping programs talk to, and the Go ping
// (also the Go producer of `make demo` and of the interop matrix's
// pingpong and calls scenarios, docs/INTEROP.md).
//
//	go run ./examples/ping-pong/go pong --listen PATH
//	go run ./examples/ping-pong/go ping [--transport goipc|unix] --path PATH [--size N]
//	    [--iters N] [--warmup N] [--typed] [--call] [--threads N]
//
// pong echoes every message of every client, in place: RecvView reads the
// message in the ring, Send copies it into the answer ring, ReleaseView
// gives the space back. It prints "listening on PATH" once ready and runs
// until SIGINT or SIGTERM.
//
// ping does warmup + iters round trips of SIZE bytes (--dial is another
// name for --path, -n for --iters), checks that every answer equals what
// it sent (each message carries its sequence number in its first 8
// bytes), and prints one JSON line with the round-trip percentiles in ns
// (and per_s, timed round trips per second of wall time), the format of
// the C, Python and Rust ping programs (and of `goipc bench --peers`), or
// {"error": ...} and exit status 1 (2 for a bad command line). The ways:
//
//   - goipc: Send + RecvInto into one reused buffer. With --typed each
//     message is the kit's FlatBuffers Ping with a SIZE-byte payload
//     (message.WritePing) and the answer must be a Pong with the same seq
//     and payload (message.ParsePong). With --call each round trip is one
//     call (CallTimeout), a request answered by its reply; --threads N
//     makes the calls from N goroutines at once on the one connection,
//     each checking that it got the reply to its own request;
//   - unix: a plain Unix stream socket (net.Dial "unix"): write the SIZE
//     bytes, read SIZE bytes back, against an echo of the socket's bytes
//     (the C example's `pong --transport unix`).
//
// PATH may also be a nats:// address (docs/NATS.md): the natsbridge
// import below registers the scheme.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
	_ "github.com/goipc/goipc/goipc/natsbridge" // nats:// addresses
	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ping-pong pong --listen PATH | ping [--transport goipc|unix] --path PATH [--size N] [--iters N] [--warmup N] [--typed] [--call] [--threads N]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "pong":
		fs := flag.NewFlagSet("pong", flag.ExitOnError)
		path := fs.String("listen", "", "Unix socket path to listen on")
		fs.Parse(os.Args[2:])
		if err := pong(*path); err != nil {
			fmt.Fprintln(os.Stderr, "pong:", err)
			os.Exit(1)
		}
	case "ping":
		var cfg config
		fs := flag.NewFlagSet("ping", flag.ExitOnError)
		fs.StringVar(&cfg.Transport, "transport", "goipc", "goipc or unix")
		fs.StringVar(&cfg.Path, "path", "", "Unix socket path (or nats:// address) of the consumer")
		fs.StringVar(&cfg.Path, "dial", "", "another name for --path")
		fs.IntVar(&cfg.Size, "size", 64, "message (or Ping payload) size in bytes")
		fs.IntVar(&cfg.Iters, "iters", 10000, "timed round trips")
		fs.IntVar(&cfg.Iters, "n", 10000, "another name for --iters")
		fs.IntVar(&cfg.Warmup, "warmup", 1000, "untimed round trips first")
		fs.BoolVar(&cfg.Typed, "typed", false, "FlatBuffers Ping, answered by a Pong")
		fs.BoolVar(&cfg.Call, "call", false, "one call per round trip")
		fs.IntVar(&cfg.Threads, "threads", 1, "goroutines making the calls at once (with --call)")
		fs.Parse(os.Args[2:])
		if err := cfg.check(); err != nil {
			fmt.Fprintln(os.Stderr, "ping:", err)
			os.Exit(2)
		}
		os.Exit(ping(cfg))
	default:
		fmt.Fprintf(os.Stderr, "ping-pong: unknown role %q (pong or ping)\n", os.Args[1])
		os.Exit(2)
	}
}

// pong serves every client in its own goroutine until a signal arrives.
func pong(path string) error {
	ln, err := goipc.Listen(path, nil)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; ln.Close() }() // Accept then returns goipc.ErrClosed
	fmt.Println("listening on", path)
	for {
		c, err := ln.Accept()
		if errors.Is(err, goipc.ErrClosed) {
			return nil
		}
		if err != nil { // one client's failed handshake: keep serving
			fmt.Fprintln(os.Stderr, "pong: rejected a client:", err)
			continue
		}
		go echo(c)
	}
}

// echo answers each message with the same bytes until the client hangs up.
func echo(c *goipc.Conn) {
	defer c.Close()
	for {
		msg, err := c.RecvView(-1) // in place, in the ring
		if err != nil {            // goipc.ErrPeerClosed: the client is done
			return
		}
		err = c.Send(msg) // the one copy: ring to ring
		c.ReleaseView()   // before the next receive
		if err != nil {
			return
		}
	}
}

// config is ping's command line; it is echoed in the JSON line.
type config struct {
	Transport string `json:"transport"`
	Path      string `json:"-"`
	Size      int    `json:"size"`
	Iters     int    `json:"iters"`
	Warmup    int    `json:"-"`
	Typed     bool   `json:"typed"`
	Call      bool   `json:"call"`
	Threads   int    `json:"threads"`
}

func (cfg config) check() error {
	switch {
	case cfg.Path == "":
		return errors.New("--path is required")
	case cfg.Size < 0 || cfg.Iters < 1 || cfg.Warmup < 0 || cfg.Threads < 1:
		return errors.New("need --size >= 0, --iters >= 1, --warmup >= 0, --threads >= 1")
	case cfg.Transport != "goipc" && cfg.Transport != "unix":
		return fmt.Errorf("unknown transport %q (goipc or unix)", cfg.Transport)
	case cfg.Transport == "unix" && (cfg.Typed || cfg.Call):
		return errors.New("--typed and --call need --transport goipc")
	case cfg.Threads > 1 && !cfg.Call:
		// Replies to plain messages are not addressed: with two receivers
		// on one connection, each would get the other's answers.
		return errors.New("--threads needs --call")
	}
	return nil
}

// result is the JSON line every language's ping prints.
type result struct {
	Lang string `json:"lang"`
	config
	P50   uint64  `json:"p50_ns,omitempty"`
	P90   uint64  `json:"p90_ns,omitempty"`
	P99   uint64  `json:"p99_ns,omitempty"`
	P999  uint64  `json:"p999_ns,omitempty"`
	Max   uint64  `json:"max_ns,omitempty"`
	PerS  float64 `json:"per_s,omitempty"`
	Error string  `json:"error,omitempty"`
}

func ping(cfg config) int {
	res := result{Lang: "go", config: cfg}
	rtts, elapsed, err := run(cfg)
	if err == nil {
		slices.Sort(rtts)
		res.P50, res.P90, res.P99, res.P999 = percentile(rtts, 500), percentile(rtts, 900), percentile(rtts, 990), percentile(rtts, 999)
		res.Max = rtts[len(rtts)-1]
		res.PerS = float64(len(rtts)) / max(elapsed.Seconds(), 1e-9)
	} else {
		res.Error = err.Error()
		fmt.Fprintln(os.Stderr, "ping:", err)
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	if err != nil {
		return 1
	}
	return 0
}

// percentile is the nearest rank: the smallest sample with at least
// permille/1000 of them at or below it (as the C, Python and Rust pings).
func percentile(sorted []uint64, permille int) uint64 {
	rank := (permille*len(sorted) + 999) / 1000
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// roundTrip sends message seq (msg) and fills reply with the answer (a
// Pong's payload when typed), returning the answer's length.
type roundTrip func(seq uint64, msg, reply []byte) (int, error)

// run does the warm-up round trips, then the timed ones; each phase is
// shared by the goroutines round robin (round trip i is goroutine i mod
// threads's). It returns the timed round trips (ns) and their wall time.
func run(cfg config) ([]uint64, time.Duration, error) {
	var newRoundTrip func() roundTrip
	if cfg.Transport == "unix" {
		s, err := dialUnix(cfg.Path)
		if err != nil {
			return nil, 0, err
		}
		defer s.Close()
		newRoundTrip = func() roundTrip { return unixRoundTrip(s) }
	} else {
		opts := &goipc.Options{}
		// The consumer listens with max(1 MiB, size): 0 is the 1 MiB
		// default. A Ping or Pong needs room for its fields around the
		// payload, and a call for its id.
		if need := cfg.Size + 128; need > 1<<20 {
			opts.MaxMessageSize = need
		}
		c, err := goipc.DialTimeout(cfg.Path, 10*time.Second, opts)
		if err != nil {
			return nil, 0, err
		}
		defer c.Close()
		newRoundTrip = func() roundTrip { return goipcRoundTrip(c, cfg) }
	}
	if _, err := phase(cfg, newRoundTrip, 0, cfg.Warmup); err != nil {
		return nil, 0, err
	}
	start := time.Now()
	rtts, err := phase(cfg, newRoundTrip, cfg.Warmup, cfg.Warmup+cfg.Iters)
	return rtts, time.Since(start), err
}

// phase does round trips from..to-1 on cfg.Threads goroutines (each with
// its own buffers and round trip) and returns their times.
func phase(cfg config, newRoundTrip func() roundTrip, from, to int) ([]uint64, error) {
	rtts := make([][]uint64, cfg.Threads)
	errs := make([]error, cfg.Threads)
	var wg sync.WaitGroup
	for g := range cfg.Threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rtts[g], errs[g] = roundTrips(cfg.Size, newRoundTrip(), from+g, to, cfg.Threads)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return slices.Concat(rtts...), nil
}

// roundTrips does round trips from, from+step, ... below to, checking
// every answer against what was sent.
func roundTrips(size int, rt roundTrip, from, to, step int) ([]uint64, error) {
	msg, reply := make([]byte, size), make([]byte, size)
	for j := range msg {
		msg[j] = byte(j*131 + 7)
	}
	var stamp [8]byte
	times := make([]uint64, 0, (to-from+step-1)/step)
	for i := from; i < to; i += step {
		binary.LittleEndian.PutUint64(stamp[:], uint64(i))
		copy(msg, stamp[:])          // the sequence number in the first (up to) 8 bytes
		clear(reply[:min(size, 16)]) // a stale buffer must not pass the check
		t0 := time.Now()
		n, err := rt(uint64(i), msg, reply)
		dt := time.Since(t0)
		if err != nil {
			return nil, fmt.Errorf("round trip %d: %w", i, err)
		}
		if n != size || !bytes.Equal(reply, msg) {
			return nil, fmt.Errorf("round trip %d: the reply (%d bytes) differs from what was sent (%d bytes)", i, n, size)
		}
		times = append(times, uint64(dt.Nanoseconds()))
	}
	return times, nil
}

// goipcRoundTrip is one of the four ways through goipc: raw or typed
// (Ping/Pong), send + receive or one call.
func goipcRoundTrip(c *goipc.Conn, cfg config) roundTrip {
	if !cfg.Typed {
		if cfg.Call {
			return func(_ uint64, msg, reply []byte) (int, error) { return c.CallTimeout(msg, reply, -1) }
		}
		return func(_ uint64, msg, reply []byte) (int, error) {
			if err := c.Send(msg); err != nil {
				return 0, err
			}
			return c.RecvInto(reply, -1)
		}
	}
	req, answer := make([]byte, message.PingSize(cfg.Size)), make([]byte, message.PongSize(cfg.Size))
	return func(seq uint64, msg, reply []byte) (int, error) {
		n, err := message.WritePing(req, seq, monotonicNs(), msg)
		if err != nil {
			return 0, err
		}
		var got int
		if cfg.Call {
			got, err = c.CallTimeout(req[:n], answer, -1)
		} else if err = c.Send(req[:n]); err == nil {
			got, err = c.RecvInto(answer, -1)
		}
		if err != nil {
			return 0, err
		}
		pong, err := message.ParsePong(answer[:got])
		if err != nil {
			return 0, fmt.Errorf("the answer is not a Pong: %w", err)
		}
		if pong.Seq() != seq {
			return 0, fmt.Errorf("a Pong with seq %d, sent a Ping with seq %d", pong.Seq(), seq)
		}
		copy(reply, pong.Payload())
		return len(pong.Payload()), nil
	}
}

// monotonicNs is CLOCK_MONOTONIC, the clock of a Ping's sent_ns.
func monotonicNs() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func dialUnix(path string) (net.Conn, error) {
	// The consumer listens before starting us; retry briefly all the same.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := net.Dial("unix", path)
		if err == nil || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func unixRoundTrip(s net.Conn) roundTrip {
	return func(_ uint64, msg, reply []byte) (int, error) {
		if _, err := s.Write(msg); err != nil {
			return 0, err
		}
		return io.ReadFull(s, reply)
	}
}
