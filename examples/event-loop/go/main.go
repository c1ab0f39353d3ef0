// Command event-loop is the event-loop example in Go (examples/README.md):
// many connections in one process. Goroutines are Go's event loop: each
// connection gets its own goroutine, written as plain blocking code, and a
// goroutine waiting on an idle connection parks in the runtime's netpoller
// without holding an OS thread.
//
//	go run ./examples/event-loop/go server --listen PATH
//	go run ./examples/event-loop/go client --dial PATH [--conns N] [-n ROUNDS]
//
// The server echoes every message, a goroutine per connection, until
// SIGINT or SIGTERM; it then prints how many connections it accepted and
// how many messages it echoed. The client dials N connections, reports
// what they cost while idle (goroutines, OS threads, Go memory), then
// runs ROUNDS round trips on every connection at once, a goroutine each,
// checking every reply, and prints one line. The event-loop programs of the other languages
// (asyncio, tokio, epoll) talk to this server the same way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/goipc/goipc/goipc"
)

// Small rings: a segment is allocated in full when it is dialed (two
// rings), so 16 KiB rings make 1000 connections cost 33 MB of shared
// memory instead of 8 GB with the default 4 MiB rings.
var smallRings = &goipc.Options{RingSize: 16 << 10, MaxMessageSize: 1 << 10}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: event-loop server --listen PATH | client --dial PATH [--conns N] [-n ROUNDS]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "server":
		fs := flag.NewFlagSet("server", flag.ExitOnError)
		path := fs.String("listen", "", "Unix socket path to listen on")
		fs.Parse(os.Args[2:])
		err = serve(*path)
	case "client":
		fs := flag.NewFlagSet("client", flag.ExitOnError)
		path := fs.String("dial", "", "Unix socket path of the server")
		conns := fs.Int("conns", 1000, "connections, each with its own goroutine")
		rounds := fs.Int("n", 100, "round trips per connection")
		fs.Parse(os.Args[2:])
		err = clients(*path, *conns, *rounds)
	default:
		err = fmt.Errorf("unknown role %q (server or client)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "event-loop:", err)
		os.Exit(1)
	}
}

func serve(path string) error {
	ln, err := goipc.Listen(path, nil)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		ln.Close() // ends Accept below
	}()
	fmt.Println("listening on", path)

	// Counted before the client can see them done (the connection before
	// its first answer, a message before its echo): when a client has all
	// its answers, the counts include them.
	var accepted, echoed atomic.Int64
	for {
		c, err := ln.Accept()
		if errors.Is(err, goipc.ErrClosed) {
			break
		}
		if err != nil {
			continue // a failed handshake concerns that one client
		}
		accepted.Add(1)
		go func() {
			defer c.Close()
			echo(c, &echoed)
		}()
	}
	// Connections still open end with the process.
	fmt.Printf("server go: %d connections accepted, %d messages echoed\n", accepted.Load(), echoed.Load())
	return nil
}

// echo answers every message with itself until the peer closes.
func echo(c *goipc.Conn, echoed *atomic.Int64) {
	for {
		msg, err := c.RecvView(-1) // in place, in the ring; -1: no time limit
		if err != nil {
			return // ErrPeerClosed: the client is done
		}
		echoed.Add(1)
		err = c.Send(msg) // the one copy, ring to ring
		c.ReleaseView()
		if err != nil {
			return
		}
	}
}

func clients(path string, n, rounds int) error {
	if n < 1 || rounds < 0 {
		return fmt.Errorf("--conns must be >= 1 and -n >= 0")
	}
	before := snapshot()
	conns := make([]*goipc.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := goipc.DialTimeout(path, 10*time.Second, smallRings)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
	}
	idle := snapshot()
	fmt.Printf("idle: %d connections: +%d goroutines, %d OS threads in the process, %.1f KiB of Go memory each\n",
		n, idle.goroutines-before.goroutines, idle.threads, float64(idle.goMemory-before.goMemory)/float64(n)/1024)

	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pingPong(c, i, rounds)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Printf("client go: %d connections x %d round trips, a goroutine each, every reply checked\n", n, rounds)
	return nil
}

// pingPong runs rounds round trips on connection i and checks each reply.
func pingPong(c *goipc.Conn, i, rounds int) error {
	reply := make([]byte, 64)
	for r := range rounds {
		msg := fmt.Appendf(nil, "connection %d round %d", i, r)
		if err := c.Send(msg); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		got, err := c.RecvInto(reply, 10*time.Second)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		if string(reply[:got]) != string(msg) {
			return fmt.Errorf("connection %d: sent %q, got %q", i, msg, reply[:got])
		}
	}
	return nil
}

type usage struct {
	goroutines int
	threads    int    // OS threads of the process
	goMemory   uint64 // heap in use and goroutine stacks, bytes
}

func snapshot() usage {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	threads := -1
	if tasks, err := os.ReadDir("/proc/self/task"); err == nil {
		threads = len(tasks)
	}
	return usage{goroutines: runtime.NumGoroutine(), threads: threads, goMemory: m.HeapInuse + m.StackInuse}
}
