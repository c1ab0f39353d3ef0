// Command ping-pong is the ping-pong example in Go (examples/README.md):
// the consumer the other languages' ping programs talk to, and a Go ping.
//
//	go run ./examples/ping-pong/go pong --listen PATH
//	go run ./examples/ping-pong/go ping --path PATH [--size N] [--iters N] [--warmup N]
//
// pong echoes every message of every client, in place: RecvView reads the
// message in the ring, Send copies it into the answer ring, ReleaseView
// gives the space back. It prints "listening on PATH" once ready and runs
// until SIGINT or SIGTERM.
//
// ping does warmup + iters round trips of SIZE bytes, checks that every
// answer equals what it sent (each message carries its sequence number in
// its first 8 bytes), and prints one JSON line with the round-trip
// percentiles in ns, the format of the C, Python and Rust ping programs
// (and of `goipc bench --peers`), or {"error": ...} and exit status 1.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/goipc/goipc/goipc"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ping-pong pong --listen PATH | ping --path PATH [--size N] [--iters N] [--warmup N]")
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
		fs := flag.NewFlagSet("ping", flag.ExitOnError)
		path := fs.String("path", "", "Unix socket path of the consumer")
		size := fs.Int("size", 64, "message size in bytes (at least 8)")
		iters := fs.Int("iters", 10000, "timed round trips")
		warmup := fs.Int("warmup", 1000, "untimed round trips first")
		fs.Parse(os.Args[2:])
		os.Exit(ping(*path, *size, *iters, *warmup))
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

// result is the JSON line every language's ping prints.
type result struct {
	Lang      string `json:"lang"`
	Transport string `json:"transport"`
	Size      int    `json:"size"`
	Iters     int    `json:"iters"`
	P50       int64  `json:"p50_ns,omitempty"`
	P90       int64  `json:"p90_ns,omitempty"`
	P99       int64  `json:"p99_ns,omitempty"`
	P999      int64  `json:"p999_ns,omitempty"`
	Max       int64  `json:"max_ns,omitempty"`
	Error     string `json:"error,omitempty"`
}

func ping(path string, size, iters, warmup int) int {
	res := result{Lang: "go", Transport: "goipc", Size: size, Iters: iters}
	rtts, err := roundTrips(path, size, iters, warmup)
	if err == nil {
		slices.Sort(rtts)
		at := func(q float64) int64 { return int64(rtts[int(q*float64(len(rtts)-1))]) }
		res.P50, res.P90, res.P99, res.P999, res.Max = at(0.50), at(0.90), at(0.99), at(0.999), at(1)
	} else {
		res.Error = err.Error()
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	if err != nil {
		return 1
	}
	return 0
}

func roundTrips(path string, size, iters, warmup int) ([]time.Duration, error) {
	if size < 8 || iters < 1 || warmup < 0 {
		return nil, fmt.Errorf("need --size >= 8, --iters >= 1, --warmup >= 0")
	}
	c, err := goipc.DialTimeout(path, 10*time.Second, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i)
	}
	reply := make([]byte, size)
	rtts := make([]time.Duration, 0, iters)
	for i := 0; i < warmup+iters; i++ {
		binary.LittleEndian.PutUint64(msg, uint64(i))
		start := time.Now()
		if err := c.Send(msg); err != nil {
			return nil, fmt.Errorf("send %d: %w", i, err)
		}
		n, err := c.RecvInto(reply, -1)
		if err != nil {
			return nil, fmt.Errorf("receive %d: %w", i, err)
		}
		if i >= warmup {
			rtts = append(rtts, time.Since(start))
		}
		if !bytes.Equal(reply[:n], msg) {
			return nil, fmt.Errorf("reply %d differs from the message sent", i)
		}
	}
	return rtts, nil
}
