package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
)

func init() {
	commands["pong"] = command{summary: "serve connections and answer every message (a Go consumer)", run: runPong}
}

func runPong(args []string) int {
	fs := flag.NewFlagSet("goipc pong", flag.ContinueOnError)
	var addrs addrList
	fs.Var(&addrs, "listen", "`address` to listen on: a Unix socket path or nats://host:port/subject (required; repeat for several)")
	maxMsg := fs.Int("max-message", 0, "largest message `bytes` a client may ask for (0: default 1 MiB)")
	spin := fs.Duration("spin", 0, "spin budget before parking (0: default; -1ns: park at once)")
	verbose := fs.Bool("v", false, "log each connection, and every log line (no rate limit)")
	protoOverride := fs.Uint("protocol-version", 0, "announce another protocol `version` (testing version-mismatch handling)")
	// Listener limits: 0 is the library's default, -1 no limit.
	maxConns := fs.Int("max-conns", 0, fmt.Sprintf("most open connections (0: default %d; -1: no limit)", goipc.DefaultMaxConns))
	var maxSegment, maxMapped byteSize
	fs.Var(&maxSegment, "max-segment", fmt.Sprintf("largest segment `bytes` a client may share, K/M/G suffixes (0: default %s; -1: no limit)",
		byteSize(goipc.DefaultMaxSegmentSize)))
	fs.Var(&maxMapped, "max-mapped", fmt.Sprintf("segment `bytes` mapped over all connections, K/M/G suffixes (0: default %s; -1: no limit)",
		byteSize(goipc.DefaultMaxMappedBytes)))
	maxPending := fs.Int("max-pending", 0, fmt.Sprintf("most handshakes in progress; the oldest is dropped beyond (0: default %d; -1: no limit)", goipc.DefaultMaxPendingHandshakes))
	loopIdle := fs.Duration("loop", 0, "serve every connection from one event-loop goroutine that sweeps for `idle` after its last answer before it sleeps, instead of a goroutine per connection (0: a goroutine per connection)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(addrs) == 0 {
		fmt.Fprintln(os.Stderr, "goipc pong: --listen ADDRESS is required")
		return 2
	}
	if *loopIdle < 0 {
		fmt.Fprintf(os.Stderr, "goipc pong: --loop %v: the idle time must be positive (0: a goroutine per connection)\n", *loopIdle)
		return 2
	}
	opts := &goipc.Options{MaxMessageSize: *maxMsg, Spin: *spin, ProtocolVersionOverride: uint32(*protoOverride),
		MaxConns: *maxConns, MaxSegmentSize: int64(maxSegment), MaxMappedBytes: int64(maxMapped), MaxPendingHandshakes: *maxPending}
	s := &pongServer{verbose: *verbose, conns: map[*goipc.Conn]struct{}{}, log: newLogLimiter(os.Stderr, "goipc pong", *verbose)}
	// The listener's own messages (a limit reached) share the rate limit.
	opts.Logf = s.log.printf
	lns, err := listenAll(addrs, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goipc pong:", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	s.lns = lns
	var loopDone <-chan struct{} // stays nil (never ready) without --loop
	if *loopIdle > 0 {
		l, err := newPongLoop(s, *loopIdle)
		if err != nil {
			fmt.Fprintln(os.Stderr, "goipc pong:", err)
			return 1
		}
		s.loop, loopDone = l, l.done
		go l.run()
	}
	// The ready lines: scripts and tests wait for them before dialing.
	for _, addr := range addrs {
		fmt.Printf("goipc pong: listening on %s\n", addr)
	}
	done := make(chan struct{})
	go func() { acceptAll(lns, s.serve); close(done) }()
	code := 0
	select {
	case sig := <-sigs:
		fmt.Fprintf(os.Stderr, "goipc pong: %v, shutting down\n", sig)
	case <-done:
	case <-loopDone:
		// The loop failed (it logged why): every connection accepted from
		// now on would be closed at once, so stop rather than pretend.
		fmt.Fprintln(os.Stderr, "goipc pong: the event loop stopped, shutting down")
		code = 1
	}
	s.shutdown()
	return code
}

type pongServer struct {
	lns     []*goipc.Listener
	verbose bool
	log     *logLimiter // every line about clients goes through it
	mu      sync.Mutex
	conns   map[*goipc.Conn]struct{} // guarded by mu
	closing bool                     // shutdown began: serve takes no more; guarded by mu
	wg      sync.WaitGroup           // counts conns; Add only under mu, while !closing
	loop    *pongLoop                // with --loop; nil: a goroutine per connection
}

func (s *pongServer) serve(ln *goipc.Listener) {
	var reported uint64 // the part of ln.DroppedErrors already logged
	for {
		c, err := ln.Accept()
		if d := ln.DroppedErrors(); d != reported {
			// Failures the listener could not queue for us (we fell
			// behind a flood of bad clients): counted, so that every
			// refused client shows in the log. Checked after every Accept:
			// a failure is dropped only while 64 wait, which Accept
			// returns next.
			s.log.printfFor(int(d-reported), "goipc pong: %d more clients rejected, not reported one by one (at most 64 failed handshakes wait for Accept)", d-reported)
			reported = d
		}
		switch {
		case errors.Is(err, goipc.ErrClosed):
			return
		case err != nil:
			// A failed handshake concerns that one client.
			s.log.printf("goipc pong: rejected a client: %v", err)
			continue
		}
		s.mu.Lock()
		if s.closing {
			// Accepted just before shutdown closed the listener: shutdown
			// may be past its look at s.conns, or waiting on s.wg.
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		if s.loop != nil {
			s.loop.add(c)
			continue
		}
		go s.handle(c)
	}
}

func (s *pongServer) handle(c *goipc.Conn) {
	s.logConnected(c)
	start, n := time.Now(), 0
	err := echoLoop(c, &n, func(err error) { s.logAnswer(c, err) })
	s.logEnded(c, n, start, err)
	s.forget(c)
}

// The lines pong logs about a client, in either mode: its connection
// (with -v), an answer not made as asked, and its end (always, unless it
// hung up normally and -v is off).
func (s *pongServer) logConnected(c *goipc.Conn) {
	if s.verbose {
		s.log.printf("goipc pong: client pid %d connected", c.PeerPID())
	}
}

func (s *pongServer) logAnswer(c *goipc.Conn, err error) {
	s.log.printf("goipc pong: client pid %d: %v", c.PeerPID(), err)
}

func (s *pongServer) logEnded(c *goipc.Conn, n int, start time.Time, err error) {
	if s.verbose || !errors.Is(err, goipc.ErrPeerClosed) && !errors.Is(err, goipc.ErrClosed) {
		s.log.printf("goipc pong: client pid %d: %d messages in %v: %v", c.PeerPID(), n, time.Since(start).Round(time.Millisecond), err)
	}
}

// forget closes c, a connection accepted by serve, and stops counting it.
func (s *pongServer) forget(c *goipc.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
	s.wg.Done()
}

// echoLoop answers every message and call request until the connection
// ends. A Ping (FlatBuffers Message/Ping) gets a Pong with the same seq and
// payload; any other message is echoed unchanged. Either way it is read in
// place and the answer is written straight into reserved ring space, so
// the payload is copied once, ring to ring. report is told about messages
// that were answered but not as asked (a malformed Ping, a Pong that does
// not fit); the connection goes on.
func echoLoop(c *goipc.Conn, n *int, report func(error)) error {
	r := &replier{Conn: c} // a call request is answered with its reply (calls.go)
	for {
		in, err := c.RecvNextView(-1)
		if err != nil {
			return err
		}
		r.in = in
		if err := answer(r, in.Data, report); err != nil {
			c.ReleaseView()
			return err
		}
		c.ReleaseView()
		*n++
	}
}

func answer(c answerer, msg []byte, report func(error)) error {
	// Only a message carrying our file identifier is parsed: raw messages
	// skip the verifier's error path entirely.
	tagged := len(msg) >= 8 && string(msg[4:8]) == message.Identifier
	var perr error
	if tagged {
		var ping message.PingView
		if ping, perr = message.ParsePing(msg); perr == nil {
			return answerPing(c, ping, report)
		}
		// Another body (a Pong, or one from a newer schema) is well
		// formed: echo it quietly. Anything else is reported.
		if !errors.Is(perr, message.ErrWrongBody) && !errors.Is(perr, message.ErrUnknownBody) {
			report(fmt.Errorf("malformed Ping echoed unchanged: %w", perr))
		}
	}
	out, err := c.Reserve(len(msg), -1)
	if err != nil {
		return err
	}
	copy(out, msg)
	return c.Commit(len(msg))
}

// answerPing builds the Pong straight into reserved ring space.
//
// A Pong is 8 bytes larger than its Ping (it adds received_ns), so a valid
// Ping close to the connection's maximum message size has no Pong that
// fits. Such a Ping is answered with a Pong that carries its seq and
// clocks but an empty payload, and reported: the connection stays up, and
// the sender sees a Pong it can tell apart (goipc ping names the cause).
func answerPing(c answerer, ping message.PingView, report func(error)) error {
	received := monoNs()
	payload := ping.Payload()
	if message.PongSize(len(payload)) > c.MaxMessageSize() {
		report(fmt.Errorf("the Pong of a Ping with a %d B payload would be %d B, above the connection's maximum message size of %d B: answered with an empty payload",
			len(payload), message.PongSize(len(payload)), c.MaxMessageSize()))
		payload = nil
	}
	out, err := c.Reserve(message.PongSize(len(payload)), -1)
	if err != nil {
		return err
	}
	n, err := message.WritePong(out, ping.Seq(), ping.SentNs(), received, payload)
	if err != nil { // cannot happen: out has PongSize bytes
		c.AbortReserve()
		return err
	}
	return c.Commit(n)
}

// monoNs is CLOCK_MONOTONIC in nanoseconds, the clock every language's
// Ping/Pong timestamps use.
func monoNs() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func (s *pongServer) shutdown() {
	for _, ln := range s.lns {
		ln.Close() // also removes a socket file
	}
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	if s.loop != nil {
		// The loop closes its own connections: closing one under it
		// would close its descriptor while it is in the epoll set.
		s.loop.stop()
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
