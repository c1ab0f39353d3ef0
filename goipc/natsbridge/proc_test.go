package natsbridge

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goipc/goipc/goipc"
)

// The test binary doubles as a consumer process: with GOIPC_NATS_CONSUMER
// set to an address it listens there, prints "ready", and on every
// connection first sends its pid (8 bytes), then echoes every message
// and answers every call with its request, except a call whose request
// is "hold": that one it never answers.
func TestMain(m *testing.M) {
	if addr := os.Getenv("GOIPC_NATS_CONSUMER"); addr != "" {
		os.Exit(runConsumer(addr))
	}
	os.Exit(m.Run())
}

func runConsumer(addr string) int {
	ln, err := goipc.Listen(addr, nil)
	if err != nil {
		fmt.Println("listen error:", err)
		return 1
	}
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, goipc.ErrClosed) {
				return 0
			}
			continue
		}
		go func() {
			defer c.Close()
			if c.Send(binary.LittleEndian.AppendUint64(nil, uint64(os.Getpid()))) != nil {
				return
			}
			echoAndAnswer(c)
		}()
	}
}

func echoAndAnswer(c *goipc.Conn) {
	for {
		in, err := c.RecvNextView(-1)
		if err != nil {
			return
		}
		switch {
		case !in.Call:
			err = c.Send(in.Data)
		case string(in.Data) != "hold":
			err = c.Reply(in.ID, in.Data)
		}
		c.ReleaseView()
		if err != nil {
			return
		}
	}
}

// consumerProc is a consumer process started by startConsumer.
type consumerProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func (p *consumerProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

func startConsumer(t *testing.T, addr string) *consumerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GOIPC_NATS_CONSUMER="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &consumerProc{cmd: cmd, exited: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	select {
	case l := <-lines:
		if l != "ready" {
			t.Fatalf("consumer: %s", l)
		}
	case <-p.exited:
		t.Fatal("the consumer process exited before it was ready")
	case <-time.After(30 * time.Second):
		t.Fatal("the consumer process was not ready within 30 s")
	}
	return p
}

// dialConsumer dials addr and reads the consumer's pid.
func dialConsumer(t *testing.T, addr string) (*goipc.Conn, int) {
	t.Helper()
	c, err := dialWithin(addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	m, err := c.RecvTimeout(10 * time.Second)
	if err != nil || len(m) != 8 {
		t.Fatalf("the consumer's pid: %v (%d bytes)", err, len(m))
	}
	return c, int(binary.LittleEndian.Uint64(m))
}

// pingUntilError pings c until a call fails; it returns the error, the
// round trips done, and when the error came.
func pingUntilError(c *goipc.Conn, limit time.Duration) (error, int, time.Time) {
	for i := 0; ; i++ {
		msg := seqMsg(i, 64)
		err := c.SendTimeout(msg, limit)
		if err == nil {
			var got []byte
			got, err = c.RecvTimeout(limit)
			if err == nil && string(got) != string(msg) {
				err = fmt.Errorf("round trip %d: wrong echo", i)
			}
		}
		if err != nil {
			return err, i, time.Now()
		}
	}
}

// The heartbeat settings of the tests that kill things: peers are
// declared gone after 300 ms of silence, so detection takes at most
// 350 ms; the tests allow 5 s (a loaded machine) and log the time.
const (
	fastBeat   = "heartbeat=50ms&peer_timeout=300ms"
	deathSlack = 5 * time.Second
)

func TestConsumerKilledProducerGetsPeerClosed(t *testing.T) {
	srv := startServer(t)
	addr := srv.URL() + "/t.kill"
	p := startConsumer(t, addr)
	c, pid := dialConsumer(t, addr+"?"+fastBeat)
	if pid != p.cmd.Process.Pid {
		t.Fatalf("pid %d, the consumer is %d", pid, p.cmd.Process.Pid)
	}
	for i := range 200 {
		if err := c.Send(seqMsg(i, 64)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.RecvTimeout(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	killed := time.Now()
	p.kill()
	err, n, at := pingUntilError(c, -1)
	if !errors.Is(err, goipc.ErrPeerClosed) {
		t.Fatalf("after the kill: %v, want ErrPeerClosed", err)
	}
	took := at.Sub(killed)
	t.Logf("ErrPeerClosed %v after SIGKILL (%d more round trips)", took.Round(time.Millisecond), n)
	if took > deathSlack {
		t.Fatalf("ErrPeerClosed came %v after the kill; the bound is 350 ms (allowed %v)", took, deathSlack)
	}
}

// Two consumers share one subject (a queue group): connections spread
// over both, and killing one fails only the connections it held.
func TestQueueGroupSharesConnectionsAndContainsFailure(t *testing.T) {
	srv := startServer(t)
	addr := srv.URL() + "/t.queue"
	p1, p2 := startConsumer(t, addr), startConsumer(t, addr)
	const n = 24
	conns := make([]*goipc.Conn, n)
	byPid := map[int][]int{}
	for i := range conns {
		var pid int
		conns[i], pid = dialConsumer(t, addr+"?"+fastBeat)
		byPid[pid] = append(byPid[pid], i)
	}
	one, two := byPid[p1.cmd.Process.Pid], byPid[p2.cmd.Process.Pid]
	t.Logf("consumer 1 holds %d connections, consumer 2 %d", len(one), len(two))
	if len(one)+len(two) != n || len(one) == 0 || len(two) == 0 {
		t.Fatalf("connections by consumer pid: %v, want all %d spread over both consumers", byPid, n)
	}
	p1.kill()
	for _, i := range one {
		if err, _, _ := pingUntilError(conns[i], -1); !errors.Is(err, goipc.ErrPeerClosed) {
			t.Fatalf("connection %d (killed consumer): %v, want ErrPeerClosed", i, err)
		}
	}
	for _, i := range two {
		for k := range 20 {
			if err := conns[i].Send(seqMsg(k, 32)); err != nil {
				t.Fatalf("connection %d (live consumer): %v", i, err)
			}
			if _, err := conns[i].RecvTimeout(10 * time.Second); err != nil {
				t.Fatalf("connection %d (live consumer): %v", i, err)
			}
		}
	}
	// New connections all go to the survivor.
	for range 4 {
		if _, pid := dialConsumer(t, addr); pid != p2.cmd.Process.Pid {
			t.Fatalf("a new connection went to pid %d, not the surviving consumer", pid)
		}
	}
}

func TestDialWithoutListener(t *testing.T) {
	srv := startServer(t)
	_, err := goipc.DialTimeout(srv.URL()+"/t.nobody", 5*time.Second, nil)
	if err == nil || !strings.Contains(err.Error(), "no goipc listener") {
		t.Fatalf("dial with no listener: %v", err)
	}
}
