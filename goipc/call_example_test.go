package goipc_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
)

// Calls: a server answers every request with Serve; goroutines call on
// one shared connection, and each gets the reply to its own request.
func ExampleConn_Call() {
	dir, _ := os.MkdirTemp("", "goipc-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "calls.sock")

	ln, err := goipc.Listen(path, nil)
	if err != nil {
		fmt.Println("listen:", err)
		return
	}
	served := make(chan error, 1)
	go func() {
		served <- goipc.Serve(ln, func(req []byte) ([]byte, error) {
			return append([]byte("hello, "), req...), nil
		})
	}()

	c, err := goipc.DialTimeout(path, 5*time.Second, nil)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	replies := make([]string, 3)
	var wg sync.WaitGroup
	for i, name := range []string{"ada", "bob", "cy"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reply, err := c.Call(context.Background(), []byte(name))
			if err != nil {
				replies[i] = err.Error()
				return
			}
			replies[i] = string(reply)
		}()
	}
	wg.Wait()
	fmt.Println(replies)
	c.Close()
	ln.Close()
	fmt.Println("Serve:", <-served)
	// Output:
	// [hello, ada hello, bob hello, cy]
	// Serve: <nil>
}

// A typed call: a FlatBuffers Ping as the request, answered by a Pong
// (goipc pong, or any peer, does the same in any language).
func ExampleConn_CallInto_ping() {
	dir, _ := os.MkdirTemp("", "goipc-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "ping.sock")

	ln, err := goipc.Listen(path, nil)
	if err != nil {
		fmt.Println("listen:", err)
		return
	}
	defer ln.Close()
	go goipc.Serve(ln, func(req []byte) ([]byte, error) {
		ping, err := message.ParsePing(req) // verified before any field is read
		if err != nil {
			return nil, err
		}
		return message.AppendPong(nil, ping.Seq(), ping.SentNs(), 0, ping.Payload()), nil
	})

	c, err := goipc.DialTimeout(path, 5*time.Second, nil)
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.Close()
	req := message.AppendPing(nil, 7, 0, []byte("payload"))
	buf := make([]byte, 256)
	n, err := c.CallInto(context.Background(), req, buf)
	if err != nil {
		fmt.Println("call:", err)
		return
	}
	pong, err := message.ParsePong(buf[:n])
	if err != nil {
		fmt.Println("reply:", err)
		return
	}
	fmt.Printf("Pong %d: %s\n", pong.Seq(), pong.Payload())
	// Output: Pong 7: payload
}
