package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// EnvChild is the environment variable that makes a re-executed binary act
// as the bench's child. Its value is a JSON spec written by the parent.
const EnvChild = "GOIPC_BENCH_CHILD"

// ctlFD is the control socket's descriptor in the child; the mechanism's
// inherited files follow it.
const ctlFD = 3

// childSpec is what the parent tells a child in its environment.
type childSpec struct {
	Role   string            `json:"role"` // "child", "syscount" or "peer"
	Mech   string            `json:"mech"`
	Mode   string            `json:"mode"`
	Args   map[string]string `json:"args,omitempty"`
	NFiles int               `json:"nfiles"`
	// syscount role: one measured point run as a parent (see syscount.go).
	Count *countSpec `json:"count,omitempty"`
	// peer role: the Go reference peer (see peers.go).
	Peer *peerSpec `json:"peer,omitempty"`
}

// command is one run the parent asks of the child, on the control socket.
type command struct {
	Op     string `json:"op"` // "pingpong", "stream"
	Size   int    `json:"size"`
	Iters  int    `json:"iters"`
	Window int    `json:"window,omitempty"`
	Seq0   uint64 `json:"seq0"`
	Verify bool   `json:"verify,omitempty"`
}

// childReport is the child's answer: sent once when its endpoint is open,
// then once after each command.
type childReport struct {
	Err   string `json:"err,omitempty"`
	Usage usage  `json:"usage"`
	Tid   int    `json:"tid,omitempty"` // the child's benchmark thread (first report)
}

// IsChild reports whether this process was started by the bench as a child.
func IsChild() bool { return os.Getenv(EnvChild) != "" }

// ChildMain runs the child side and returns the process exit status. The
// binary that the bench re-executes must call it first thing when IsChild
// is true: `goipc bench-child` does, and so does the tests' TestMain.
func ChildMain() int {
	var spec childSpec
	if err := json.Unmarshal([]byte(os.Getenv(EnvChild)), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "goipc bench child: bad %s: %v\n", EnvChild, err)
		return 2
	}
	var err error
	switch spec.Role {
	case "child":
		err = runChild(&spec)
	case "syscount":
		err = runSyscountParent(&spec)
	case "peer":
		err = runGoPeer(&spec)
	default:
		err = fmt.Errorf("unknown role %q", spec.Role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "goipc bench %s %s:%s: %v\n", spec.Role, spec.Mech, spec.Mode, err)
		return 1
	}
	return 0
}

func runChild(spec *childSpec) error {
	runtime.LockOSThread()
	ctl := os.NewFile(ctlFD, "ctl")
	defer ctl.Close()
	enc := json.NewEncoder(ctl)
	dec := json.NewDecoder(bufio.NewReader(ctl))
	m, err := lookupExact(spec.Mech, spec.Mode)
	if err != nil {
		enc.Encode(childReport{Err: err.Error()})
		return err
	}
	files := make([]*os.File, spec.NFiles)
	for i := range files {
		files[i] = os.NewFile(uintptr(ctlFD+1+i), fmt.Sprintf("inherited-%d", i))
	}
	ep, err := m.Open(spec.Args, files)
	if err != nil {
		enc.Encode(childReport{Err: err.Error()})
		return err
	}
	defer ep.Close()
	if err := enc.Encode(childReport{Tid: unix.Gettid()}); err != nil {
		return err
	}
	for {
		var c command
		if err := dec.Decode(&c); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("control: %w", err)
		}
		u0 := getUsage()
		err := childRun(ep, &c)
		rep := childReport{Usage: getUsage().sub(u0)}
		if err != nil {
			rep.Err = err.Error()
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
		if rep.Err != "" {
			return errors.New(rep.Err)
		}
	}
}

// childRun is the child's half of one command.
func childRun(ep Endpoint, c *command) error {
	buf := newRecvBuf(c.Size)
	ack := newPayload(1)
	switch c.Op {
	case "pingpong":
		for i := 0; i < c.Iters; i++ {
			if err := ep.Recv(buf); err != nil {
				return fmt.Errorf("pingpong %d B, message %d: %w", c.Size, i, err)
			}
			if c.Verify {
				if err := verify(buf, c.Seq0+uint64(i)); err != nil {
					return err
				}
			}
			if err := ep.Send(buf); err != nil {
				return fmt.Errorf("pingpong %d B, reply %d: %w", c.Size, i, err)
			}
		}
		return nil
	case "stream":
		for i := 0; i < c.Iters; i++ {
			if err := ep.Recv(buf); err != nil {
				return fmt.Errorf("stream %d B, message %d: %w", c.Size, i, err)
			}
			if c.Verify {
				if err := verify(buf, c.Seq0+uint64(i)); err != nil {
					return err
				}
			}
			if c.Window > 0 && (i+1)%c.Window == 0 && i+1 < c.Iters {
				if err := ep.Send(ack); err != nil {
					return fmt.Errorf("stream window ack: %w", err)
				}
			}
		}
		if err := ep.Send(ack); err != nil {
			return fmt.Errorf("stream final ack: %w", err)
		}
		return nil
	}
	return fmt.Errorf("unknown op %q", c.Op)
}
