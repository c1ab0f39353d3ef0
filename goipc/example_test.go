package goipc_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/goipc/goipc/goipc"
)

// Both sides of a connection. The consumer usually runs in another process
// (in any language); here it is a goroutine so that the example runs alone.
func Example() {
	dir, _ := os.MkdirTemp("", "goipc-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.sock")

	// The consumer: listen, accept one client, echo its messages until it
	// hangs up (echo: Recv, Send).
	ln, err := goipc.Listen(path, nil)
	if err != nil {
		fmt.Println("listen:", err)
		return
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		echo(c)
	}()

	// The producer: dial, send, wait for the answer.
	c, err := goipc.DialTimeout(path, 5*time.Second, nil)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.Close()
	if err := c.Send([]byte("hello")); err != nil {
		fmt.Println("send:", err)
		return
	}
	reply, err := c.RecvTimeout(5 * time.Second)
	fmt.Printf("%s %v\n", reply, err)
	// Output: hello <nil>
}

// echo sends back every message it receives on c, until the peer closes,
// then closes c.
func echo(c *goipc.Conn) {
	defer c.Close()
	for {
		msg, err := c.Recv()
		if err != nil { // goipc.ErrPeerClosed once the peer closes
			return
		}
		if err := c.Send(msg); err != nil {
			return
		}
	}
}

// echoConsumer listens on a fresh socket and echoes every message of one
// client with Recv and Send; it returns the path and a function that closes
// the listener and removes the socket's folder.
func echoConsumer() (path string, stop func()) {
	dir, _ := os.MkdirTemp("", "goipc-example")
	path = filepath.Join(dir, "echo.sock")
	ln, err := goipc.Listen(path, nil)
	if err != nil {
		panic(err)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		echo(c)
	}()
	return path, func() { ln.Close(); os.RemoveAll(dir) }
}

// dialEcho dials a fresh echoConsumer; stop closes both sides.
func dialEcho() (c *goipc.Conn, stop func()) {
	path, stopConsumer := echoConsumer()
	c, err := goipc.Dial(path, nil)
	if err != nil {
		panic(err)
	}
	return c, func() { c.Close(); stopConsumer() }
}

// Listen serves one path; each Accept returns one connection, with its own
// shared-memory segment. Options set the listener's limits.
func ExampleListen() {
	dir, _ := os.MkdirTemp("", "goipc-example")
	defer os.RemoveAll(dir)
	ln, err := goipc.Listen(filepath.Join(dir, "app.sock"), &goipc.Options{MaxMessageSize: 64 << 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()

	_, err = ln.AcceptTimeout(10 * time.Millisecond) // nobody dials here
	fmt.Println(errors.Is(err, goipc.ErrTimeout))
	// Output: true
}

// Dial connects to a listener; the dialer's options define the connection
// (ring size, largest message), within the listener's limits.
func ExampleDial() {
	path, stop := echoConsumer()
	defer stop()

	c, err := goipc.Dial(path, &goipc.Options{MaxMessageSize: 4096})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Println(c.MaxMessageSize())
	// Output: 4096
}

// Send copies a message into the ring (waiting while it is full); Recv
// returns a copy of the next one. RecvInto reuses a buffer instead.
func ExampleConn_Send() {
	c, stop := dialEcho()
	defer stop()

	for _, m := range []string{"one", "two"} {
		if err := c.Send([]byte(m)); err != nil {
			fmt.Println(err)
			return
		}
	}
	first, _ := c.Recv()
	buf := make([]byte, 16)
	n, _ := c.RecvInto(buf, time.Second)
	fmt.Println(string(first), string(buf[:n]))

	err := c.Send(make([]byte, c.MaxMessageSize()+1))
	fmt.Println(errors.Is(err, goipc.ErrMessageTooLarge))
	// Output:
	// one two
	// true
}

// Reserve and Commit build a message in place, in the ring: no copy. The
// reservation may be larger than the message; Commit says how much to send.
func ExampleConn_Reserve() {
	c, stop := dialEcho()
	defer stop()

	buf, err := c.Reserve(64, time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	n := copy(buf, "built in place")
	if err := c.Commit(n); err != nil { // or AbortReserve to send nothing
		fmt.Println(err)
		return
	}
	reply, err := c.RecvTimeout(time.Second)
	fmt.Printf("%s %v\n", reply, err)
	// Output: built in place <nil>
}

// RecvView reads a message in place, in the ring: no copy. The slice is
// valid until ReleaseView, which gives the space back to the peer; copy
// what you keep.
func ExampleConn_RecvView() {
	c, stop := dialEcho()
	defer stop()

	if err := c.Send([]byte("read in place")); err != nil {
		fmt.Println(err)
		return
	}
	view, err := c.RecvView(time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(view), string(view[:4]))
	if err := c.ReleaseView(); err != nil { // before the next receive
		fmt.Println(err)
	}
	// Output: 13 read
}
