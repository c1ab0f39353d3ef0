package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The processes of the server benchmark: servers, clients and hogs, each
// started from the goipc command (ServerOptions.CLI).

// proc is a process the harness started: its stdout lines arrive on lines
// (closed at EOF), the tail of its stderr is kept for error messages.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan []byte
	stderr *tailBuffer
	exited chan struct{} // closed when the process has been waited for
	err    error         // its exit status, after exited
}

func (h *harness) start(name string, args ...string) (*proc, error) {
	argv := append(slices.Clone(h.opts.CLI), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// A harness that dies takes its processes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, lines: make(chan []byte, 64), stderr: &tailBuffer{max: 4096}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.lines <- slices.Clone(sc.Bytes())
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// why describes how the process ended, with the tail of its stderr.
func (p *proc) why() string {
	status := "exited"
	if p.err != nil {
		status = p.err.Error()
	}
	tail := strings.TrimSpace(p.stderr.String())
	if tail == "" {
		return fmt.Sprintf("%s %s", p.name, status)
	}
	return fmt.Sprintf("%s %s: %s", p.name, status, lastLines(tail, 3))
}

// line returns the next stdout line, or an error when the process ends
// first or timeout passes.
func (p *proc) line(timeout time.Duration) ([]byte, error) {
	select {
	case l, ok := <-p.lines:
		if !ok {
			<-p.exited
			return nil, errors.New(p.why())
		}
		return l, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("%s: no answer within %v", p.name, timeout)
	}
}

// stop ends the process: stdin closed (clients exit), SIGTERM (servers
// shut down), SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	go p.drain()
	p.stdin.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// kill ends the process at once.
func (p *proc) kill() {
	go p.drain()
	p.cmd.Process.Kill()
	<-p.exited
}

// drain discards stdout lines nobody will read, so that the reader can
// reach the end of the output and wait for the process.
func (p *proc) drain() {
	for range p.lines {
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = slices.Clone(t.b[len(t.b)-t.max:])
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
