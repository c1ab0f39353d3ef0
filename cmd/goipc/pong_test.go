package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
	"github.com/goipc/goipc/internal/testsock"
)

// TestPongKeepsAConnectionWhosePongDoesNotFit: a valid Ping that fills the
// connection's maximum message size has no Pong that fits (a Pong is 8 B
// larger). pong answers it with an empty payload and keeps serving.
func TestPongKeepsAConnectionWhosePongDoesNotFit(t *testing.T) {
	for _, mode := range pongModes {
		t.Run(mode.name, func(t *testing.T) { testPongKeepsAConnectionWhosePongDoesNotFit(t, mode.flags) })
	}
}

func testPongKeepsAConnectionWhosePongDoesNotFit(t *testing.T, flags []string) {
	path, _, stderr := startPong(t, flags...)
	c, err := goipc.Dial(path, nil) // the default maximum, 1 MiB
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := bytes.Repeat([]byte{0x5a}, 1048504)
	big := message.AppendPing(nil, 41, 4242, payload)
	if len(big) > c.MaxMessageSize() || message.PongSize(len(payload)) <= c.MaxMessageSize() {
		t.Fatalf("test premise: Ping %d B, Pong %d B, maximum %d B", len(big), message.PongSize(len(payload)), c.MaxMessageSize())
	}
	if err := c.SendTimeout(big, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	reply, err := c.RecvTimeout(10 * time.Second)
	if err != nil {
		t.Fatalf("the connection was dropped: %v (%s)", err, stderr)
	}
	pong, err := message.ParsePong(reply)
	if err != nil || pong.Seq() != 41 || pong.PingSentNs() != 4242 || len(pong.Payload()) != 0 {
		t.Fatalf("answer to the oversized Ping: %v, want a Pong with seq 41 and no payload", err)
	}
	// The same connection still answers normal Pings.
	c.Send(message.AppendPing(nil, 42, 1, []byte("small")))
	reply, err = c.RecvTimeout(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if pong, err := message.ParsePong(reply); err != nil || pong.Seq() != 42 || string(pong.Payload()) != "small" {
		t.Fatalf("next Pong: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "answered with an empty payload"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pong did not report the Pong it could not send: %s", stderr)
		}
	}
}

// TestPingSizesItsSegmentForThePong: goipc ping asks for a maximum message
// size that holds the Pong, says what to do when the consumer refuses it,
// and refuses sizes no connection can carry.
func TestPingSizesItsSegmentForThePong(t *testing.T) {
	path, _, _ := startPong(t)
	out, err := cli("ping", "--dial", path, "-n", "5", "--warmup", "0", "--size", "1048504").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("ping --size 1048504 against a 1 MiB consumer: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{"--size <= 1048500", "--max-message 1048584", "the Pong"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ping --size 1048504 output lacks %q:\n%s", want, out)
		}
	}
	// The largest payload whose Pong fits 1 MiB works against the default.
	if out, err := cli("ping", "--dial", path, "-n", "5", "--warmup", "0", "--size", "1048500").CombinedOutput(); err != nil {
		t.Fatalf("ping --size 1048500: %v\n%s", err, out)
	}
	// A consumer that allows more serves the larger size.
	big, _, _ := startPong(t, "--max-message", "1048584")
	if out, err := cli("ping", "--dial", big, "-n", "5", "--warmup", "0", "--size", "1048504").CombinedOutput(); err != nil {
		t.Fatalf("ping --size 1048504 against --max-message 1048584: %v\n%s", err, out)
	}
	// Sizes no connection can carry are usage errors.
	out, err = cli("ping", "--dial", path, "--size", strconv.Itoa(maxPingMessage)).CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "use --size <= ") {
		t.Fatalf("ping --size %d: %v\n%s", maxPingMessage, err, out)
	}
}

func TestMaxPongPayload(t *testing.T) {
	for _, limit := range []int{80, 81, 87, 88, 4096, 1 << 20, 1<<20 + 3, maxPingMessage} {
		n := maxPongPayload(limit)
		if message.PongSize(n) > limit || message.PongSize(n+1) <= limit {
			t.Errorf("maxPongPayload(%d) = %d: PongSize %d, next %d", limit, n, message.PongSize(n), message.PongSize(n+1))
		}
	}
	if got := maxPongPayload(1 << 20); got != 1048500 {
		t.Errorf("maxPongPayload(1 MiB) = %d, want 1048500", got)
	}
}

// TestPingReportsAPongWithoutItsPayload: a consumer that answers with an
// empty payload (as goipc pong does when the Pong cannot fit) is named as
// such, not as a corrupt answer.
func TestPingReportsAPongWithoutItsPayload(t *testing.T) {
	path := testsock.Path(t, "empty.sock")
	ln, err := goipc.Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for {
			m, err := c.Recv()
			if err != nil {
				return
			}
			ping, err := message.ParsePing(m)
			if err != nil {
				return
			}
			c.Send(message.AppendPong(nil, ping.Seq(), ping.SentNs(), 1, nil))
		}
	}()
	out, err := cli("ping", "--dial", path, "-n", "3", "--warmup", "0", "--size", "64").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "without its payload") {
		t.Fatalf("ping against a consumer that drops payloads: %v\n%s", err, out)
	}
}

// TestPongRateLimitsItsLogPerListener: a client that reconnects in a loop
// with a bad hello gets one log line per attempt today's way; pong writes a
// burst, then a bounded rate, and accounts for every line it dropped.
func TestPongRateLimitsItsLogPerListener(t *testing.T) {
	path, _, stderr := startPong(t)
	const attempts = 300
	start := time.Now()
	badClients(t, path, attempts)
	elapsed := time.Since(start)
	rejected := regexp.MustCompile(`(?m)^goipc pong: rejected a client: `)
	summary := regexp.MustCompile(`(?m)^goipc pong: (\d+) log lines suppressed`)
	unqueued := regexp.MustCompile(`(?m)^goipc pong: (\d+) more clients rejected, not reported one by one`)
	// Every attempt is either logged or counted in a summary, which comes at
	// most logSummaryDelay after the first line it counts. (On a loaded
	// machine pong's accepting goroutine may fall 64 failures behind: the
	// listener counts the failures it could not queue, and pong logs the
	// count, itself a line the limiter may suppress.)
	var logged, counted int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s := stderr.String()
		logged, counted = len(rejected.FindAllString(s, -1)), 0
		for _, m := range summary.FindAllStringSubmatch(s, -1) {
			n, _ := strconv.Atoi(m[1])
			counted += n
		}
		for _, m := range unqueued.FindAllStringSubmatch(s, -1) {
			n, _ := strconv.Atoi(m[1])
			counted += n
		}
		if logged+counted == attempts || time.Now().After(deadline) {
			break
		}
	}
	if logged+counted != attempts {
		t.Fatalf("%d lines logged + %d counted as suppressed, want %d attempts accounted for:\n%s", logged, counted, attempts, stderr)
	}
	// The bucket: logBurst lines at once, then logRate per second.
	if limit := logBurst + int(logRate*(elapsed.Seconds()+1)); logged > limit {
		t.Fatalf("%d rejection lines in %v, want at most %d", logged, elapsed, limit)
	}
	if counted == 0 {
		t.Fatalf("no line suppressed out of %d in %v:\n%s", attempts, elapsed, stderr)
	}
}

// badClients makes n clients, one after the other, each sending a hello of
// the right size with a bad magic and waiting for the refusal.
func badClients(t *testing.T, path string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		nc, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(bytes.Repeat([]byte{'x'}, 32))
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var reply [16]byte
		nc.Read(reply[:]) // the refusal: the attempt has been handled
		nc.Close()
	}
}

// When pong's accepting goroutine falls behind a flood of bad clients,
// the listener keeps 64 failures for it and counts the others; pong logs
// the count, so that every refused client is in the log.
func TestPongLogsTheFailuresTheListenerCouldNotQueue(t *testing.T) {
	path := testsock.Path(t, "pong.sock")
	ln, err := goipc.Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	const extra = 7
	badClients(t, path, 64+extra) // before anyone accepts
	// A client has its refusal before its failure is queued (or counted):
	// wait for the last ones.
	waitUntil(t, fmt.Sprintf("DroppedErrors is %d after 64+%d failures", extra, extra), func() bool { return ln.DroppedErrors() == extra })
	var out syncBuffer
	s := &pongServer{conns: map[*goipc.Conn]struct{}{}, log: newLogLimiter(&out, "goipc pong", true)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve(ln)
	}()
	rejected := regexp.MustCompile(`(?m)^goipc pong: rejected a client: `)
	unqueued := regexp.MustCompile(`(?m)^goipc pong: (\d+) more clients rejected, not reported one by one`)
	accounted := func() (logged, counted int) {
		o := out.String()
		for _, m := range unqueued.FindAllStringSubmatch(o, -1) {
			n, _ := strconv.Atoi(m[1])
			counted += n
		}
		return len(rejected.FindAllString(o, -1)), counted
	}
	waitUntil(t, "every failure logged or counted", func() bool {
		l, c := accounted()
		return l+c == 64+extra
	})
	ln.Close()
	<-done
	if logged, counted := accounted(); logged != 64 || counted != extra {
		t.Fatalf("%d rejections logged and %d counted, want 64 and %d:\n%s", logged, counted, extra, out.String())
	}
}

// A line that stands for several (printfFor) counts as that many when
// suppressed.
func TestLogLimiterCountsALineForSeveral(t *testing.T) {
	var out syncBuffer
	l := newLogLimiter(&out, "goipc pong", false)
	l.delay = time.Hour // the summary comes with the next line that passes
	for i := 0; i < logBurst; i++ {
		l.printf("line %d", i)
	}
	l.printfFor(5, "5 at once")
	l.printf("one more")
	l.tokens = 1 // as after a second: the next line passes, the summary first
	l.printf("passes")
	if want := "goipc pong: 6 log lines suppressed"; !strings.Contains(out.String(), want) {
		t.Fatalf("want %q in:\n%s", want, out.String())
	}
}

func TestLogLimiterUnlimitedAndSummary(t *testing.T) {
	var all syncBuffer
	l := newLogLimiter(&all, "goipc pong", true)
	for i := 0; i < 50; i++ {
		l.printf("line %d", i)
	}
	if n := strings.Count(all.String(), "\n"); n != 50 {
		t.Fatalf("unlimited limiter wrote %d lines, want 50", n)
	}
	var some syncBuffer
	l = newLogLimiter(&some, "goipc pong", false)
	l.delay = time.Hour // the summary comes with the next line that passes
	for i := 0; i < logBurst+5; i++ {
		l.printf("line %d", i)
	}
	if got := strings.Count(some.String(), "\n"); got != logBurst {
		t.Fatalf("wrote %d lines of %d, want the burst of %d", got, logBurst+5, logBurst)
	}
	l.mu.Lock()
	l.tokens = 1 // as if time had passed
	l.mu.Unlock()
	l.printf("after")
	const want = "goipc pong: 5 log lines suppressed"
	if s := some.String(); !strings.Contains(s, want) || !strings.HasSuffix(s, "after\n") {
		t.Fatalf("want the summary %q then the line:\n%s", want, s)
	}
}

// TestPongListenerLimitFlags: --max-conns, --max-segment and --max-mapped
// reach the listener: a client over a limit is refused with ErrLimit
// naming it, and the connections already open keep working.
func TestPongListenerLimitFlags(t *testing.T) {
	small := &goipc.Options{RingSize: 4096, MaxMessageSize: 1024} // a 12 KiB segment
	big := &goipc.Options{RingSize: 1 << 16, MaxMessageSize: 1024}
	for _, tc := range []struct {
		flags   []string
		opts    *goipc.Options // the second client's
		limit   string
		refused bool
	}{
		{[]string{"--max-conns", "1"}, small, "MaxConns", true},
		{[]string{"--max-conns", "2"}, small, "", false},
		{[]string{"--max-segment", "32K"}, big, "MaxSegmentSize", true},
		{[]string{"--max-mapped", "20K"}, small, "MaxMappedBytes", true},
		{[]string{"--max-mapped", "-1", "--max-segment", "-1"}, big, "", false},
	} {
		t.Run(strings.Join(tc.flags, "="), func(t *testing.T) {
			path, _, stderr := startPong(t, tc.flags...)
			defer func() {
				if t.Failed() {
					t.Logf("pong stderr: %s", stderr)
				}
			}()
			first, err := goipc.DialTimeout(path, 10*time.Second, small)
			if err != nil {
				t.Fatalf("first client: %v", err)
			}
			defer first.Close()
			second, err := goipc.DialTimeout(path, 10*time.Second, tc.opts)
			if !tc.refused {
				if err != nil {
					t.Fatalf("second client: %v", err)
				}
				second.Close()
			} else if !errors.Is(err, goipc.ErrLimit) || !strings.Contains(err.Error(), tc.limit) {
				t.Fatalf("second client: %v, want ErrLimit naming %s", err, tc.limit)
			}
			first.Send([]byte("still served"))
			if got, err := first.RecvTimeout(10 * time.Second); err != nil || string(got) != "still served" {
				t.Fatalf("first client after the refusal: %q %v", got, err)
			}
		})
	}
}

func TestByteSizeFlag(t *testing.T) {
	for in, want := range map[string]int64{"65536": 65536, "64K": 64 << 10, "64KiB": 64 << 10, "16g": 16 << 30, "2T": 2 << 40, "-1": -1, "0": 0, "12B": 12} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, bad := range []string{"", "x", "1.5G", "K", "9999999999T"} {
		var b byteSize
		if err := b.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted: %d", bad, b)
		}
	}
	if s := byteSize(16 << 30).String(); s != "16G" {
		t.Errorf("String = %q", s)
	}
	if err := cli("pong", "--listen", testsock.Path(t, "p.sock"), "--max-segment", "lots").Run(); err == nil {
		t.Error("pong --max-segment lots started")
	}
}

// TestPongMaxPendingFlag: with --max-pending 1, a legitimate client that
// arrives while a silent one holds the only place evicts it at once (by
// default the silent one would keep its place for the 5 s handshake
// timeout).
// Two dials in a row with one place also check that an eviction never
// touches a connection whose handshake has completed.
func TestPongMaxPendingFlag(t *testing.T) {
	path, _, _ := startPong(t, "--max-pending", "1")
	silent, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, err := goipc.DialTimeout(path, 10*time.Second, nil)
	if err != nil {
		t.Fatalf("legitimate client behind a silent one: %v", err)
	}
	defer c.Close()
	// Evicted: pong hangs up on the silent client well before its
	// handshake timeout (5 s); a read that waits 4 s tells them apart.
	silent.SetReadDeadline(time.Now().Add(4 * time.Second))
	var b [16]byte
	if n, err := silent.Read(b[:]); !errors.Is(err, io.EOF) {
		t.Fatalf("silent client after a legitimate one arrived: read %d, %v; want EOF (evicted)", n, err)
	}
	c.Send([]byte("served"))
	if got, err := c.RecvTimeout(10 * time.Second); err != nil || string(got) != "served" {
		t.Fatalf("legitimate client: %q %v", got, err)
	}
}

// TestPongLoopServesOthersWhileAClientDoesNotRead: with --loop, a client
// that sends without reading its answers fills its rings; the loop keeps
// the one message it cannot answer and goes on serving the others. Once
// the client reads, every answer arrives, in order.
func TestPongLoopServesOthersWhileAClientDoesNotRead(t *testing.T) {
	path, _, stderr := startPong(t, "--loop", "1ms")
	small := &goipc.Options{RingSize: goipc.MinRingSize, MaxMessageSize: 256}
	stuck, err := goipc.Dial(path, small)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	msg := func(i int) []byte { return []byte(fmt.Sprintf("message %06d of the client that does not read", i)) }
	sent := 0
	// Until the send side stays full for a while: the loop's answers fill
	// the client's receive ring, then the loop stops taking messages.
	for {
		if err := stuck.SendTimeout(msg(sent), 200*time.Millisecond); errors.Is(err, goipc.ErrTimeout) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		// Two rings of MinRingSize hold far fewer: a server that takes
		// more drops answers.
		if sent++; sent > 10000 {
			t.Fatalf("%d messages went out and the ring never filled: answers were dropped", sent)
		}
	}
	if sent < 2 {
		t.Fatalf("only %d messages went out before the ring was full", sent)
	}
	other, err := goipc.Dial(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := range 100 {
		want := []byte(fmt.Sprintf("other %d", i))
		if err := other.SendTimeout(want, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		got, err := other.RecvTimeout(10 * time.Second)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("answer %d to the other client: %q %v (%s)", i, got, err, stderr)
		}
	}
	for i := range sent {
		got, err := stuck.RecvTimeout(10 * time.Second)
		if err != nil || !bytes.Equal(got, msg(i)) {
			t.Fatalf("answer %d of %d to the client that did not read: %q %v (%s)", i, sent, got, err, stderr)
		}
	}
	if got, err := stuck.RecvTimeout(0); !errors.Is(err, goipc.ErrTimeout) {
		t.Fatalf("an answer more than was sent: %q %v", got, err)
	}
}

// TestPongLoopManyConnectionsAndCalls: with --loop, many connections at
// once, some sending messages and some making calls from several
// goroutines, with pauses long enough for the loop to arm its doorbells
// and sleep; every answer goes to its asker.
func TestPongLoopManyConnectionsAndCalls(t *testing.T) {
	path, _, stderr := startPong(t, "--loop", "1ms", "-v")
	const conns, rounds = 40, 50
	small := &goipc.Options{RingSize: 16 << 10, MaxMessageSize: 1 << 10}
	errs := make(chan error, conns*4)
	var wg sync.WaitGroup
	for i := range conns {
		c, err := goipc.Dial(path, small)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		callers := 1
		if i%2 == 1 {
			callers = 3
		}
		for g := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range rounds {
					req := []byte(fmt.Sprintf("conn %d goroutine %d round %d", i, g, r))
					var got []byte
					var err error
					if i%2 == 1 {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						got, err = c.Call(ctx, req)
						cancel()
					} else {
						if err = c.SendTimeout(req, 10*time.Second); err == nil {
							got, err = c.RecvTimeout(10 * time.Second)
						}
					}
					if err != nil || !bytes.Equal(got, req) {
						errs <- fmt.Errorf("%s: got %q, %v", req, got, err)
						return
					}
					if r%10 == 9 {
						time.Sleep(5 * time.Millisecond) // > the loop's idle: it sleeps
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("%v (%s)", err, stderr)
	}
}

// TestPongLoopDropsAClosedClient: with --loop, a client that goes away is
// dropped (logged with -v) while another keeps being served.
func TestPongLoopDropsAClosedClient(t *testing.T) {
	path, _, stderr := startPong(t, "--loop", "1ms", "-v")
	gone, err := goipc.Dial(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	stays, err := goipc.Dial(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stays.Close()
	for _, c := range []*goipc.Conn{gone, stays} {
		if err := c.SendTimeout([]byte("hello"), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if got, err := c.RecvTimeout(10 * time.Second); err != nil || string(got) != "hello" {
			t.Fatalf("first answer: %q %v", got, err)
		}
	}
	gone.Close()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "1 messages in"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pong did not drop the closed client: %s", stderr)
		}
	}
	if err := stays.SendTimeout([]byte("still here"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, err := stays.RecvTimeout(10 * time.Second); err != nil || string(got) != "still here" {
		t.Fatalf("answer after the other client left: %q %v", got, err)
	}
}

// TestPongLoopRejectsANegativeIdle: --loop takes a positive idle time; a
// negative one is a usage error, not a silent goroutine per connection.
func TestPongLoopRejectsANegativeIdle(t *testing.T) {
	out, err := cli("pong", "--listen", testsock.Path(t, "p.sock"), "--loop", "-1ms").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "must be positive") {
		t.Fatalf("pong --loop -1ms: %v, want exit 2 naming the flag\n%s", err, out)
	}
}
