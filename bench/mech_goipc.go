package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/goipc/goipc/goipc"
)

// goipcMech is goipc itself: shared-memory rings, a spin-then-futex wait.
// Both sides use the mode's spin budget for their own waits. Messages go
// through Send (one copy into the ring) and RecvInto (one copy out), like
// every other mechanism's read into a caller's buffer; the ring size is
// goipc's default (4 MiB per direction), MaxMessageSize its default (1 MiB)
// or the run's largest message.
type goipcMech struct {
	mode string
	spin time.Duration
}

// pieces: the "pieces" mode sets Options.FreeSpaceInPieces on both sides.
func (m goipcMech) pieces() bool { return m.mode == "pieces" }

func (m goipcMech) Name() string { return "goipc" }
func (m goipcMech) Mode() string { return m.mode }
func (m goipcMech) Design() Design {
	d := Design{KernelCopies: 0, UserCopies: 2}
	switch m.mode {
	case "spin":
		d.Syscalls = "0 (both sides poll)"
		d.Note = "goipc with Spin = SpinForever: pure polling, one busy core per waiting side"
	case "park":
		d.Syscalls = "2 (futex wake + futex wait) when the receiver is asleep, which is always"
		d.Note = "goipc with Spin = SpinNever: park on the futex at once"
	default:
		d.Syscalls = fmt.Sprintf("0 while the peer answers within the %v spin, else 2 (futex wake + wait)", goipc.DefaultSpin)
		d.Note = "goipc defaults: spin, then park on a futex"
		d.TimingDependent = true
		if m.pieces() {
			d.Note = "goipc defaults with FreeSpaceInPieces: a receiver with more to read returns freed space a sixteenth of the ring at a time (for streams)"
		}
	}
	return d
}
func (goipcMech) MaxSize() int         { return 0 }
func (goipcMech) StreamWindow(int) int { return 0 }

func (m goipcMech) options(maxSize int) *goipc.Options {
	return &goipc.Options{MaxMessageSize: max(goipc.DefaultMaxMessageSize, maxSize), Spin: m.spin, FreeSpaceInPieces: m.pieces()}
}

func (m goipcMech) Prepare(dir string, maxSize int) (*Setup, error) {
	path := filepath.Join(dir, "goipc.sock")
	l, err := goipc.Listen(path, m.options(maxSize))
	if err != nil {
		return nil, fmt.Errorf("goipc listen: %w", err)
	}
	return &Setup{
		Args: map[string]string{"path": path, "max": strconv.Itoa(maxSize)},
		Parent: func() (Endpoint, error) {
			defer l.Close()
			c, err := l.Accept()
			if err != nil {
				return nil, fmt.Errorf("goipc accept: %w", err)
			}
			return &goipcEndpoint{c: c}, nil
		},
	}, nil
}

func (m goipcMech) Open(args map[string]string, files []*os.File) (Endpoint, error) {
	maxSize, err := strconv.Atoi(args["max"])
	if err != nil {
		return nil, fmt.Errorf("bench: bad max %q", args["max"])
	}
	c, err := goipc.Dial(args["path"], m.options(maxSize))
	if err != nil {
		return nil, fmt.Errorf("goipc dial: %w", err)
	}
	return &goipcEndpoint{c: c}, nil
}

type goipcEndpoint struct{ c *goipc.Conn }

func (e *goipcEndpoint) Send(msg []byte) error { return e.c.Send(msg) }

func (e *goipcEndpoint) Recv(buf []byte) error {
	n, err := e.c.RecvInto(buf, -1)
	if err != nil {
		return err
	}
	if n != len(buf) {
		return fmt.Errorf("goipc: message of %d B, want %d: %w", n, len(buf), errShortDatagram)
	}
	return nil
}

// Abort closes the connection: blocked calls return ErrClosed.
func (e *goipcEndpoint) Abort() { e.c.Close() }

func (e *goipcEndpoint) Close() error {
	e.c.Close() // ErrClosed after Abort is fine
	return nil
}

func init() {
	register(goipcMech{mode: "default", spin: goipc.SpinDefault})
	register(goipcMech{mode: "spin", spin: goipc.SpinForever})
	register(goipcMech{mode: "park", spin: goipc.SpinNever})
	register(goipcMech{mode: "pieces", spin: goipc.SpinDefault})

	// The goipc transport of the cross-language rows: this process is the
	// Go consumer that echoes every message.
	goipcEcho = func(path string, size, n int, ready chan<- error) error {
		l, err := goipc.Listen(path, &goipc.Options{MaxMessageSize: max(goipc.DefaultMaxMessageSize, size)})
		ready <- err
		if err != nil {
			return err
		}
		defer l.Close()
		c, err := l.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		return echo(&goipcEndpoint{c: c}, size, n)
	}
	goipcDial = func(path string) (Endpoint, error) {
		c, err := goipc.Dial(path, nil)
		if err != nil {
			return nil, err
		}
		return &goipcEndpoint{c: c}, nil
	}
}
