package main

import (
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
)

// runConsumer listens on path and answers every Ping with a Pong carrying
// its seq, sent_ns and payload (built in place in the ring). A message that
// is not a Ping is counted as malformed and echoed, so that its sender
// never waits for an answer that will not come.
func runConsumer(path string, proto uint32, once bool) int {
	if path == "" {
		usage()
	}
	ln, err := goipc.Listen(path, &goipc.Options{ProtocolVersionOverride: proto})
	if err != nil {
		emit(map[string]any{"event": "listen_error", "lang": lang, "status": statusName(err), "error": err.Error()})
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sigs; ln.Close() }()
	emit(map[string]any{"event": "ready", "lang": lang, "path": path})

	var wg sync.WaitGroup
	for {
		c, err := ln.Accept()
		if errors.Is(err, goipc.ErrClosed) {
			break
		}
		if err != nil { // a failed handshake concerns that one client
			emit(map[string]any{"event": "accept_error", "lang": lang, "status": statusName(err), "error": err.Error()})
			if once {
				break
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(c)
		}()
		if once {
			wg.Wait()
			break
		}
	}
	ln.Close()
	wg.Wait()
	return 0
}

func serve(c *goipc.Conn) {
	defer c.Close()
	n, malformed := 0, 0
	var err error
	for {
		var msg []byte
		if msg, err = c.RecvView(-1); err != nil {
			break
		}
		ping, perr := message.ParsePing(msg)
		if perr != nil {
			malformed++
			err = echo(c, msg)
		} else {
			err = pong(c, ping)
		}
		c.ReleaseView()
		if err != nil {
			break
		}
		n++
	}
	emit(map[string]any{"event": "conn_end", "lang": lang, "status": statusName(err), "error": err.Error(),
		"messages": n, "malformed": malformed})
}

func pong(c *goipc.Conn, ping message.PingView) error {
	received := monoNs()
	payload := ping.Payload()
	out, err := c.Reserve(message.PongSize(len(payload)), -1)
	if err != nil {
		return err
	}
	m, err := message.WritePong(out, ping.Seq(), ping.SentNs(), received, payload)
	if err != nil {
		c.AbortReserve()
		return err
	}
	return c.Commit(m)
}

func echo(c *goipc.Conn, msg []byte) error {
	out, err := c.Reserve(len(msg), -1)
	if err != nil {
		return err
	}
	copy(out, msg)
	return c.Commit(len(msg))
}

// monoNs is CLOCK_MONOTONIC in ns, the clock of every Ping/Pong timestamp.
func monoNs() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
