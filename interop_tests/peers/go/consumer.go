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
// its seq, sent_ns and payload (built in place in the ring): a Ping sent
// as a message with a message, a Ping sent as a call request with the
// call's reply. A message that is not a Ping is counted as malformed and
// echoed, so that its sender never waits for an answer that will not come.
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

// serve answers plain messages with plain messages and call requests
// with replies (the calls scenario), the same way.
func serve(c *goipc.Conn) {
	defer c.Close()
	n, malformed := 0, 0
	var err error
	for {
		var in goipc.Incoming
		if in, err = c.RecvNextView(-1); err != nil {
			break
		}
		ping, perr := message.ParsePing(in.Data)
		if perr != nil {
			malformed++
			err = echo(c, in)
		} else {
			err = pong(c, in, ping)
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

// reserveAnswer reserves room for the answer to in: a plain message, or
// the reply to a call request.
func reserveAnswer(c *goipc.Conn, in goipc.Incoming, n int) ([]byte, error) {
	if in.Call {
		return c.ReserveReply(in.ID, n, -1)
	}
	return c.Reserve(n, -1)
}

func pong(c *goipc.Conn, in goipc.Incoming, ping message.PingView) error {
	received := monoNs()
	payload := ping.Payload()
	out, err := reserveAnswer(c, in, message.PongSize(len(payload)))
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

func echo(c *goipc.Conn, in goipc.Incoming) error {
	out, err := reserveAnswer(c, in, len(in.Data))
	if err != nil {
		return err
	}
	copy(out, in.Data)
	return c.Commit(len(in.Data))
}

// monoNs is CLOCK_MONOTONIC in ns, the clock of every Ping/Pong timestamp.
func monoNs() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
