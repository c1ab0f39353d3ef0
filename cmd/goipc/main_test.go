package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/message"
	"github.com/goipc/goipc/internal/testsock"
)

// TestMain lets tests run the CLI itself: the test binary re-executed with
// GOIPC_CLI=1 is the goipc command.
func TestMain(m *testing.M) {
	if os.Getenv("GOIPC_CLI") == "1" {
		main()
		return
	}
	switch os.Getenv("GOIPC_STAT_TEST_ROLE") { // processes stat_test.go runs
	case "hostile":
		os.Exit(runHostile())
	case "hold":
		os.Exit(runHold(os.Args[1]))
	}
	os.Exit(m.Run())
}

func cli(args ...string) *exec.Cmd {
	exe, _ := os.Executable()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "GOIPC_CLI=1")
	return cmd
}

// startPong runs `goipc pong` and waits for its ready line.
// syncBuffer is a bytes.Buffer safe to read while exec copies into it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startPong(t *testing.T, extra ...string) (path string, cmd *exec.Cmd, stderr *syncBuffer) {
	t.Helper()
	path = testsock.Path(t, "pong.sock")
	cmd = cli(append([]string{"pong", "--listen", path}, extra...)...)
	stderr = &syncBuffer{}
	cmd.Stderr = stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.Contains(line, "listening on") {
		t.Fatalf("pong did not start: %q %v %s", line, err, stderr)
	}
	return path, cmd, stderr
}

// pongModes are the ways goipc pong serves its connections: a goroutine
// each (the default) and one event loop (--loop). The tests of how pong
// answers (messages, Pings, calls, an oversized Pong, NATS, shutdown) run
// against both; those of the listener's flags run once.
var pongModes = []struct {
	name  string
	flags []string
}{{"goroutines", nil}, {"loop", []string{"--loop", "1ms"}}}

func TestPongAnswersPingsAndEchoesTheRest(t *testing.T) {
	for _, mode := range pongModes {
		t.Run(mode.name, func(t *testing.T) { testPongAnswersPingsAndEchoesTheRest(t, mode.flags) })
	}
}

func testPongAnswersPingsAndEchoesTheRest(t *testing.T, flags []string) {
	path, _, stderr := startPong(t, flags...)
	c, err := goipc.Dial(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := []byte("the payload")
	c.Send(message.AppendPing(nil, 7, 1234, payload))
	reply, err := c.RecvTimeout(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pong, err := message.ParsePong(reply)
	if err != nil || pong.Seq() != 7 || pong.PingSentNs() != 1234 || string(pong.Payload()) != "the payload" || pong.ReceivedNs() == 0 {
		t.Fatalf("pong %+v %v", pong, err)
	}
	// Not a Ping: echoed byte for byte, including empty messages and Pongs.
	for _, msg := range [][]byte{[]byte("plain bytes"), {}, message.AppendPong(nil, 1, 2, 3, nil)} {
		c.Send(msg)
		got, err := c.RecvTimeout(10 * time.Second)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo of %q: %q %v", msg, got, err)
		}
	}
	if strings.Contains(stderr.String(), "malformed") {
		t.Fatalf("a well-formed non-Ping was reported as malformed: %s", stderr)
	}
	// A malformed Ping (our identifier, a broken table) is echoed and logged.
	bad := message.AppendPing(nil, 9, 9, payload)
	bad[0] = 0xff
	c.Send(bad)
	if got, err := c.RecvTimeout(10 * time.Second); err != nil || !bytes.Equal(got, bad) {
		t.Fatalf("malformed ping: %q %v", got, err)
	}
	c.Close()
	// Wait for pong to log the malformed message (its log line is written
	// before it notices the hang-up, so poll for it with a bound).
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "malformed"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pong did not report the malformed Ping: %s", stderr)
		}
	}
}

func TestPingAgainstPong(t *testing.T) {
	for _, mode := range pongModes {
		t.Run(mode.name, func(t *testing.T) { testPingAgainstPong(t, mode.flags) })
	}
}

func testPingAgainstPong(t *testing.T, flags []string) {
	path, _, _ := startPong(t, flags...)
	for _, args := range [][]string{{"-n", "2000"}, {"-n", "200", "--size", "100000"}, {"-n", "2000", "--raw"}, {"-n", "500", "--size", "0"}, {"-n", "2000", "--call"}} {
		out, err := cli(append([]string{"ping", "--dial", path}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ping %v: %v\n%s", args, err, out)
		}
		for _, want := range []string{"p50", "p99.9", "round trips/s"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("ping %v output lacks %q:\n%s", args, want, out)
			}
		}
	}
}

// TestPingWithGaps: --gap pauses before each round trip, so that the
// consumer parks between them (sparse request/response), and ping says how
// often it had to wake it; in every mode. A negative gap is refused.
func TestPingWithGaps(t *testing.T) {
	path, _, _ := startPong(t)
	for _, mode := range [][]string{{"--raw"}, {}, {"--call"}, {"--call", "--raw"}} {
		args := append([]string{"ping", "--dial", path, "-n", "20", "--warmup", "0", "--gap", "3ms"}, mode...)
		out, err := cli(args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ping %v: %v\n%s", args, err, out)
		}
		var gap string
		var woken, trips int
		i := strings.Index(string(out), "paced: ")
		if i < 0 {
			t.Fatalf("ping %v: no pacing line:\n%s", args, out)
		}
		if _, err := fmt.Sscanf(string(out[i:]), "paced: %s before each round trip; the consumer was asleep and woken %d times in %d round trips", &gap, &woken, &trips); err != nil {
			t.Fatalf("ping %v: %v in\n%s", args, err, out)
		}
		// 3 ms is past the consumer's spin (50 µs) and its futex window
		// (2 ms): it parks on its doorbell before every round trip, so
		// (nearly) every send wakes it.
		if gap != "3ms" || trips != 20 || 2*woken < trips || woken > trips {
			t.Errorf("ping %v: gap %s, woken %d times in %d round trips", args, gap, woken, trips)
		}
	}
	out, err := cli("ping", "--dial", path, "--gap", "-1ms").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("ping --gap -1ms: %v\n%s", err, out)
	}
}

// TestPingSlowLog: --slow-log lists every measured round trip longer than
// --slow-over, in every mode: its end on CLOCK_MONOTONIC (within the
// run, in order) and its length. With a threshold below any round trip
// it lists them all; above every one, none. A threshold of 0 is refused.
func TestPingSlowLog(t *testing.T) {
	path, _, _ := startPong(t)
	log := filepath.Join(t.TempDir(), "slow.txt")
	for _, mode := range [][]string{{"--raw"}, {}, {"--call"}, {"--call", "--raw"}} {
		for _, c := range []struct {
			over string
			want int
		}{{"1ns", 20}, {"1h", 0}} {
			args := append([]string{"ping", "--dial", path, "-n", "20", "--warmup", "3", "--slow-log", log, "--slow-over", c.over}, mode...)
			before := monoNs()
			if out, err := cli(args...).CombinedOutput(); err != nil {
				t.Fatalf("ping %v: %v\n%s", args, err, out)
			}
			after := monoNs()
			data, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			if !strings.HasPrefix(lines[0], "# goipc ping: the measured round trips longer than "+c.over) {
				t.Fatalf("ping %v: header %q", args, lines[0])
			}
			if got := len(lines) - 1; got != c.want {
				t.Fatalf("ping %v: %d round trips listed, want %d:\n%s", args, got, c.want, data)
			}
			last := before
			for _, l := range lines[1:] {
				var end, length int64
				if _, err := fmt.Sscanf(l, "%d %d", &end, &length); err != nil {
					t.Fatalf("ping %v: line %q: %v", args, l, err)
				}
				if end < last || end > after || length <= 0 || end-length < before {
					t.Fatalf("ping %v: round trip ending at %d after %d ns, outside the run [%d, %d] or out of order", args, end, length, before, after)
				}
				last = end
			}
		}
	}
	out, err := cli("ping", "--dial", path, "--slow-log", log, "--slow-over", "0").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("ping --slow-over 0: %v\n%s", err, out)
	}
}

// TestPingDetectsWrongAnswers: a consumer that answers wrongly makes ping
// fail with a non-zero exit.
func TestPingDetectsWrongAnswers(t *testing.T) {
	path := testsock.Path(t, "liar.sock")
	ln, err := goipc.Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A liar: serves clients one after another, flipping one bit of every
	// answer, until the listener closes.
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, goipc.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			for {
				m, err := c.Recv()
				if err != nil {
					break
				}
				m[len(m)-1] ^= 1
				c.Send(m)
			}
			c.Close()
		}
	}()
	for _, mode := range []string{"--raw", "--size=64"} {
		out, err := cli("ping", "--dial", path, "-n", "10", "--warmup", "0", mode).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "answer 0") && !strings.Contains(string(out), "Pong 0") {
			t.Fatalf("ping %s against a liar: %v\n%s", mode, err, out)
		}
	}
}

func TestPongServesConcurrentClientsAndStopsCleanly(t *testing.T) {
	for _, mode := range pongModes {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
			t.Run(mode.name+"/"+sig.String(), func(t *testing.T) { testPongServesConcurrentClientsAndStopsCleanly(t, mode.flags, sig) })
		}
	}
}

func testPongServesConcurrentClientsAndStopsCleanly(t *testing.T, flags []string, sig syscall.Signal) {
	path, cmd, stderr := startPong(t, flags...)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := cli("ping", "--dial", path, "-n", "3000").CombinedOutput()
			if err != nil {
				errs <- fmt.Errorf("%v: %s", err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A client still connected when the signal arrives.
	c, err := goipc.Dial(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd.Process.Signal(sig)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("pong exit after %v: %v (%s)", sig, err, stderr)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	if _, err := c.RecvTimeout(10 * time.Second); !errors.Is(err, goipc.ErrPeerClosed) {
		t.Errorf("connected client after shutdown: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nosuch"}, {"pong"}, {"ping"}, {"ping", "--dial", "/x", "-n", "0"}} {
		err := cli(args...).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("goipc %v: %v, want exit code 2", args, err)
		}
	}
	out, err := cli("ping", "--dial", filepath.Join(t.TempDir(), "none")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "listener") {
		t.Errorf("ping to nothing: %v %s", err, out)
	}
}
