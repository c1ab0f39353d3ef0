// Command many-producers is the many-producers example in Go
// (examples/README.md): one Go consumer serving producers written in any
// language at once, and a Go producer.
//
//	go run ./examples/many-producers/go consumer --listen PATH --producers K
//	go run ./examples/many-producers/go producer --dial PATH --name NAME [-n N]
//
// Each connection is its own pair of rings, so the consumer simply serves
// each one in its own goroutine. A producer sends "NAME i" for i = 0..N-1,
// then "done"; the consumer checks that the messages of each producer
// arrive in order, answers "done" with the count it received (8 bytes,
// little-endian), and exits once K producers are done, printing one line
// per producer. The producer checks that count and prints one line.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goipc/goipc/goipc"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: many-producers consumer --listen PATH --producers K | producer --dial PATH --name NAME [-n N]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "consumer":
		fs := flag.NewFlagSet("consumer", flag.ExitOnError)
		path := fs.String("listen", "", "Unix socket path to listen on")
		producers := fs.Int("producers", 1, "how many producers to serve before exiting")
		fs.Parse(os.Args[2:])
		err = consume(*path, *producers)
	case "producer":
		fs := flag.NewFlagSet("producer", flag.ExitOnError)
		path := fs.String("dial", "", "Unix socket path of the consumer")
		name := fs.String("name", "go", "this producer's name (no spaces)")
		n := fs.Int("n", 10000, "messages to send")
		fs.Parse(os.Args[2:])
		err = produce(*path, *name, *n)
	default:
		err = fmt.Errorf("unknown role %q (consumer or producer)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "many-producers:", err)
		os.Exit(1)
	}
}

func consume(path string, producers int) error {
	ln, err := goipc.Listen(path, nil)
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println("listening on", path)
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for range producers {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- serve(c)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Printf("consumer: %d producers served\n", producers)
	return nil
}

// serve counts one producer's messages, checking their order, until "done".
func serve(c *goipc.Conn) error {
	defer c.Close()
	name, count := "", 0
	for {
		msg, err := c.Recv()
		if err != nil {
			return fmt.Errorf("producer %q after %d messages: %w", name, count, err)
		}
		if string(msg) == "done" {
			answer := binary.LittleEndian.AppendUint64(nil, uint64(count))
			fmt.Printf("consumer: %s sent %d messages, in order\n", name, count)
			return c.Send(answer)
		}
		who, seq, ok := strings.Cut(string(msg), " ")
		i, err := strconv.Atoi(seq)
		if !ok || err != nil || (name != "" && who != name) || i != count {
			return fmt.Errorf("producer %q: message %d is %q", name, count, msg)
		}
		name = who
		count++
	}
}

func produce(path, name string, n int) error {
	c, err := goipc.DialTimeout(path, 10*time.Second, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	for i := range n {
		if err := c.Send(fmt.Appendf(nil, "%s %d", name, i)); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	if err := c.Send([]byte("done")); err != nil {
		return err
	}
	answer, err := c.RecvTimeout(10 * time.Second)
	if err != nil {
		return err
	}
	if len(answer) != 8 || binary.LittleEndian.Uint64(answer) != uint64(n) {
		return fmt.Errorf("sent %d messages, the consumer answered %x", n, answer)
	}
	fmt.Printf("producer %s: %d messages, the consumer counted %d\n", name, n, n)
	return nil
}
