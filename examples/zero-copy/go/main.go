// Command zero-copy is the zero-copy example in Go (examples/README.md):
// messages built in place in the ring and read in place, with no copy on
// either side.
//
//	go run ./examples/zero-copy/go consumer --listen PATH
//	go run ./examples/zero-copy/go producer --dial PATH [-n N] [--size B]
//
// The producer reserves B bytes in the ring (Reserve), writes byte i of
// message k as (k + i) mod 256 straight into them, and publishes them
// (Commit). The consumer reads each message where it lies (RecvView), sums
// its bytes, and writes the 8-byte little-endian sum straight into the
// answer ring (Reserve/Commit) before it releases the message
// (ReleaseView). The producer reads the answer in place too and checks the
// sum. The consumer serves one producer at a time until SIGINT/SIGTERM.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/goipc/goipc/goipc"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: zero-copy consumer --listen PATH | producer --dial PATH [-n N] [--size B]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "consumer":
		fs := flag.NewFlagSet("consumer", flag.ExitOnError)
		path := fs.String("listen", "", "Unix socket path to listen on")
		fs.Parse(os.Args[2:])
		err = consume(*path)
	case "producer":
		fs := flag.NewFlagSet("producer", flag.ExitOnError)
		path := fs.String("dial", "", "Unix socket path of the consumer")
		n := fs.Int("n", 1000, "messages to send")
		size := fs.Int("size", 65536, "bytes per message")
		fs.Parse(os.Args[2:])
		err = produce(*path, *n, *size)
	default:
		err = fmt.Errorf("unknown role %q (consumer or producer)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "zero-copy:", err)
		os.Exit(1)
	}
}

func consume(path string) error {
	ln, err := goipc.Listen(path, nil)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; ln.Close() }()
	fmt.Println("listening on", path)
	for {
		c, err := ln.Accept()
		if errors.Is(err, goipc.ErrClosed) {
			return nil
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "zero-copy: rejected a client:", err)
			continue
		}
		n, err := answerSums(c)
		if errors.Is(err, goipc.ErrPeerClosed) {
			fmt.Printf("consumer: summed %d messages in place, then the producer hung up\n", n)
		} else {
			fmt.Fprintf(os.Stderr, "zero-copy: after %d messages: %v\n", n, err)
		}
	}
}

// answerSums answers each message with the sum of its bytes, until the
// producer hangs up (goipc.ErrPeerClosed).
func answerSums(c *goipc.Conn) (int, error) {
	defer c.Close()
	for n := 0; ; n++ {
		msg, err := c.RecvView(-1) // the message where the producer wrote it
		if err != nil {
			return n, err
		}
		var sum uint64
		for _, b := range msg {
			sum += uint64(b)
		}
		answer, err := c.Reserve(8, -1) // the answer's place in the other ring
		if err == nil {
			binary.LittleEndian.PutUint64(answer, sum)
			err = c.Commit(8)
		}
		c.ReleaseView() // only now may the producer reuse the message's space
		if err != nil {
			return n, err
		}
	}
}

func produce(path string, n, size int) error {
	c, err := goipc.DialTimeout(path, 10*time.Second, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	for k := range n {
		msg, err := c.Reserve(size, -1)
		if err != nil {
			return fmt.Errorf("message %d: %w", k, err)
		}
		var want uint64
		for i := range msg {
			msg[i] = byte(k + i)
			want += uint64(msg[i])
		}
		if err := c.Commit(size); err != nil {
			return err
		}
		answer, err := c.RecvView(10 * time.Second)
		if err != nil {
			return fmt.Errorf("answer %d: %w", k, err)
		}
		got := uint64(0)
		if len(answer) == 8 {
			got = binary.LittleEndian.Uint64(answer)
		}
		c.ReleaseView()
		if got != want {
			return fmt.Errorf("message %d: the consumer summed %d, want %d", k, got, want)
		}
	}
	fmt.Printf("producer go: %d messages of %d bytes built and answered in place\n", n, size)
	return nil
}
