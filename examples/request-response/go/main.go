// Command request-response is the request/response example in Go
// (examples/README.md): a server that answers calls with goipc.Serve, and
// a client that calls from several goroutines on one shared connection.
//
//	go run ./examples/request-response/go server --listen PATH
//	go run ./examples/request-response/go client --dial PATH [--threads T] [-n N]
//
// The service squares numbers: a request is a uint64 x (8 bytes,
// little-endian), its reply x*x. Caller t sends x = t*1000000 + i for
// i = 0..N-1, so every request of the run is different and every reply
// names the request it belongs to: a reply routed to the wrong caller
// fails the check. The server answers until SIGINT or SIGTERM, then
// prints how many calls it answered; the client prints one line and
// exits 0 when every reply matched its request.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/goipc/goipc/goipc"
)

// maxCalls keeps x = t*1000000 + i below 2^32, so x*x fits in 64 bits and
// different requests never have the same reply.
const maxCalls = 1000000

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: request-response server --listen PATH | client --dial PATH [--threads T] [-n N]")
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
		threads := fs.Int("threads", 8, "goroutines calling at once on the one connection")
		n := fs.Int("n", 1000, "calls per goroutine")
		fs.Parse(os.Args[2:])
		if *threads < 1 || *threads > 4000 || *n < 0 || *n > maxCalls {
			err = fmt.Errorf("--threads must be in [1, 4000] and -n in [0, %d]", maxCalls)
			break
		}
		err = call(*path, *threads, *n)
	default:
		err = fmt.Errorf("unknown role %q (server or client)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "request-response:", err)
		os.Exit(1)
	}
}

// square is the handler: it gets each request (valid until it returns)
// and returns the reply. Serve runs up to 8 handlers at once per
// connection and sends each reply as its handler finishes, so replies may
// leave in another order than the requests came: the call ids route them.
func square(req []byte) ([]byte, error) {
	if len(req) != 8 {
		// An error ends the connection: the client's calls fail with
		// ErrPeerClosed. Application errors belong inside replies.
		return nil, fmt.Errorf("a request is 8 bytes, got %d", len(req))
	}
	x := binary.LittleEndian.Uint64(req)
	return binary.LittleEndian.AppendUint64(nil, x*x), nil
}

func serve(path string) error {
	ln, err := goipc.Listen(path, nil)
	if err != nil {
		return err
	}
	// Serve returns once the listener is closed: close it on a signal.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	fmt.Println("listening on", path)

	var answered atomic.Int64 // counted before the reply leaves: a client that has its reply sees it counted
	err = goipc.Serve(ln, func(req []byte) ([]byte, error) {
		answered.Add(1)
		return square(req)
	})
	fmt.Printf("server go: %d calls answered\n", answered.Load())
	return err
}

func call(path string, threads, n int) error {
	c, err := goipc.DialTimeout(path, 10*time.Second, nil)
	if err != nil {
		return err
	}
	defer c.Close()

	errs := make(chan error, threads)
	var wg sync.WaitGroup
	for t := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- caller(c, t, n)
		}()
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(collect(errs)...); err != nil {
		return err
	}
	fmt.Printf("client go: %d threads x %d calls on one connection, every reply matched its request\n", threads, n)
	return nil
}

// caller makes n calls on the shared connection and checks every reply.
// (CallInto reads the reply into a buffer of the caller's, without an
// allocation per call.)
func caller(c *goipc.Conn, t, n int) error {
	req := make([]byte, 8)
	for i := range n {
		x := uint64(t)*maxCalls + uint64(i)
		binary.LittleEndian.PutUint64(req, x)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		reply, err := c.Call(ctx, req)
		cancel()
		if err != nil {
			return fmt.Errorf("caller %d, call %d: %w", t, i, err)
		}
		if len(reply) != 8 || binary.LittleEndian.Uint64(reply) != x*x {
			return fmt.Errorf("caller %d, call %d: sent %d, got the reply %x", t, i, x, reply)
		}
	}
	return nil
}

func collect(errs <-chan error) []error {
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}
