package goipc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runChild plays a peer role in a re-executed test binary. Its arguments
// follow the -test.run flag in os.Args.
func runChild(role string) int {
	args := os.Args[2:]
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "child %s: %v\n", role, err)
		return 1
	}
	switch role {
	case "dial-once":
		c, err := Dial(args[0], &Options{AllowAnyUID: true})
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("ok")
		c.Close()
		return 0
	case "stream":
		n, _ := strconv.ParseUint(args[1], 10, 64)
		c, err := Dial(args[0], &Options{RingSize: 1 << 16, MaxMessageSize: streamMaxMsg})
		if err != nil {
			return fail(err)
		}
		defer c.Close()
		if err := duplexStream(c, n); err != nil {
			return fail(err)
		}
		return 0
	case "victim":
		return runVictim(args[0], args[1])
	case "adversary":
		return runAdversary(args[0], args[1])
	case "call-server":
		return runCallServer(args[0])
	}
	if strings.HasPrefix(role, "bench-") {
		return runBenchChild(role, args)
	}
	if st := runServerChild(role, args); st >= 0 {
		return st
	}
	return fail(fmt.Errorf("unknown role"))
}

const streamMaxMsg = 4000

// duplexStream sends n messages of random sizes, each carrying its
// sequence number and a payload derived from it, while receiving n such
// messages from the peer: any loss, duplicate, reordering or corruption
// is an error.
func duplexStream(c *Conn, n uint64) error {
	sendErr := make(chan error, 1)
	go func() {
		for seq := uint64(0); seq < n; seq++ {
			size := max(sizeFor(seq, streamMaxMsg), 8)
			buf, err := c.Reserve(size, 30*time.Second)
			if err != nil {
				sendErr <- fmt.Errorf("send %d: %w", seq, err)
				return
			}
			fill(buf, seq)
			if err := c.Commit(size); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	scratch := make([]byte, streamMaxMsg)
	for seq := uint64(0); seq < n; seq++ {
		msg, err := c.RecvView(30 * time.Second)
		if err != nil {
			return fmt.Errorf("receive %d: %w", seq, err)
		}
		if want := max(sizeFor(seq, streamMaxMsg), 8); len(msg) != want {
			return fmt.Errorf("message %d: %d bytes, want %d (seq field %d)", seq, len(msg), want, seqOf(msg))
		}
		if err := checkPayload(msg, seq, scratch); err != nil {
			return fmt.Errorf("message %d (seq field %d): %w", seq, seqOf(msg), err)
		}
		c.ReleaseView()
	}
	return <-sendErr
}

func seqOf(b []byte) int64 {
	if len(b) < 8 {
		return -1
	}
	return int64(binary.LittleEndian.Uint64(b))
}

// TestTwoProcessDuplexStream: 10 million messages (5 million each way, at
// once) between two processes, none lost, duplicated, reordered or corrupt.
func TestTwoProcessDuplexStream(t *testing.T) {
	perDirection := uint64(5_000_000)
	if testing.Short() {
		perDirection = 100_000
	}
	client := startPeer(t, "stream", strconv.FormatUint(perDirection, 10))
	c := client.accept(t, &Options{MaxMessageSize: streamMaxMsg})
	start := time.Now()
	if err := duplexStream(c, perDirection); err != nil {
		t.Fatal(err)
	}
	client.wait(t, 0)
	elapsed := time.Since(start)
	t.Logf("%d messages in %v (%.2f M msgs/s both ways)", 2*perDirection, elapsed, float64(2*perDirection)/elapsed.Seconds()/1e6)
}

// peer is a re-executed test binary dialing our listener.
type peer struct {
	cmd    *exec.Cmd
	ln     *Listener
	stderr *strings.Builder
	stdout io.ReadCloser
}

func startPeer(t *testing.T, role string, args ...string) *peer {
	t.Helper()
	checkLeaks(t)
	path := socketPath(t)
	ln, err := Listen(path, &Options{MaxMessageSize: streamMaxMsg})
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{cmd: childCommand(t, role, append([]string{path}, args...)...), ln: ln, stderr: &strings.Builder{}}
	p.cmd.Stderr = p.stderr
	p.stdout, _ = p.cmd.StdoutPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
		ln.Close()
	})
	return p
}

func (p *peer) accept(t *testing.T, _ *Options) *Conn {
	t.Helper()
	c, err := p.ln.AcceptTimeout(20 * time.Second)
	if err != nil {
		t.Fatalf("accept: %v (child stderr: %s)", err, p.stderr)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (p *peer) wait(t *testing.T, wantCode int) {
	t.Helper()
	p.cmd.Wait()
	if code := p.cmd.ProcessState.ExitCode(); code != wantCode {
		t.Fatalf("child exit code %d, want %d; stderr: %s", code, wantCode, p.stderr)
	}
}

// readLine waits for the child to print a line (its readiness signal).
func (p *peer) readLine(t *testing.T) string {
	t.Helper()
	line, err := bufio.NewReader(p.stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child said nothing: %v (stderr: %s)", err, p.stderr)
	}
	return strings.TrimSpace(line)
}

// runVictim dials and then behaves per mode until it is killed.
func runVictim(path, mode string) int {
	c, err := Dial(path, &Options{RingSize: 1 << 16, MaxMessageSize: streamMaxMsg})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	switch mode {
	case "echo": // answer every message
		for {
			m, err := c.Recv()
			if err != nil || c.Send(m) != nil {
				return 1
			}
		}
	case "stream": // publish numbered messages as fast as possible
		for seq := uint64(0); ; seq++ {
			var b [64]byte
			fill(b[:], seq)
			if c.Send(b[:]) != nil {
				return 1
			}
		}
	case "idle": // read nothing: the parent's sends fill the ring
		select {}
	}
	return 1
}

// TestPeerKilledAtRandomPoints kills the peer with SIGKILL at random
// moments, 60 times, with the survivor blocked receiving, mid-stream, or
// blocked sending on a full ring: each time it returns ErrPeerClosed
// promptly, after delivering every message the peer had published.
func TestPeerKilledAtRandomPoints(t *testing.T) {
	rounds := 60
	if testing.Short() {
		rounds = 12
	}
	modes := []string{"echo", "stream", "idle"}
	for round := 0; round < rounds; round++ {
		mode := modes[round%len(modes)]
		t.Run(fmt.Sprintf("%d-%s", round, mode), func(t *testing.T) {
			p := startPeer(t, "victim", mode)
			c := p.accept(t, nil)
			if line := p.readLine(t); line != "ready" {
				t.Fatalf("child: %q", line)
			}
			killAfter := rand.IntN(3000)
			type result struct {
				err  error
				at   time.Time
				msgs int
			}
			res := make(chan result, 1)
			go func() {
				n := 0
				var err error
				msg := make([]byte, 64)
				for {
					switch mode {
					case "echo":
						if err = c.Send(msg); err == nil {
							_, err = c.Recv()
						}
					case "stream":
						var m []byte
						if m, err = c.Recv(); err == nil && seqOf(m) != int64(n) {
							err = fmt.Errorf("message %d has seq %d", n, seqOf(m))
						}
					case "idle":
						err = c.Send(msg)
					}
					if err != nil {
						res <- result{err, time.Now(), n}
						return
					}
					n++
				}
			}()
			time.Sleep(time.Duration(killAfter) * time.Microsecond) // a random kill point, not synchronisation
			p.cmd.Process.Signal(syscall.SIGKILL)
			p.cmd.Wait()
			dead := time.Now()
			select {
			case r := <-res:
				if !errors.Is(r.err, ErrPeerClosed) {
					t.Fatalf("after %d messages: %v", r.msgs, r.err)
				}
				if lag := r.at.Sub(dead); lag > 100*time.Millisecond {
					t.Fatalf("peer death noticed %v after the peer was reaped", lag)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("survivor still blocked 10 s after the peer died")
			}
		})
	}
}
