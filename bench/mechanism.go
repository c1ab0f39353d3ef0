package bench

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Endpoint is one side of an established channel between the two processes.
//
// Send and Recv move exactly one message of a size both sides know in
// advance. Recv fills buf completely. buf always has at least
// [RecvSlack] bytes of spare capacity beyond len(buf), which a mechanism may
// use as scratch (POSIX message queues must offer a buffer as large as the
// queue's message size). An Endpoint is used by one goroutine at a time,
// except Abort, which may be called from any goroutine.
type Endpoint interface {
	Send(msg []byte) error
	Recv(buf []byte) error
	// Abort unblocks a Send or Recv that waits for a peer that is gone
	// (used by the watchdog after it killed the child).
	Abort()
	Close() error
}

// RecvSlack is the spare capacity every Recv buffer has beyond its length.
const RecvSlack = 64 << 10

// Design describes what a mechanism costs by construction, per one-way
// message of a size that fits the mechanism's buffers in one piece.
type Design struct {
	// KernelCopies is how many times the kernel copies the payload.
	KernelCopies int `json:"kernel_copies"`
	// UserCopies is how many times user space copies the payload outside
	// the kernel (into and out of shared memory).
	UserCopies int `json:"user_copies"`
	// Syscalls is the number of system calls per message on the fast
	// path, both processes together.
	Syscalls string `json:"syscalls"`
	// Note explains the figures and any limit (chunking, windows).
	Note string `json:"note"`
	// TimingDependent marks designs whose system calls depend on timing
	// (spin, then sleep): strace, which slows every call, makes them sleep
	// more often than in the timed runs, so their measured count is an
	// upper bound.
	TimingDependent bool `json:"timing_dependent,omitempty"`
}

// Setup is what a mechanism's parent side prepared for one child.
type Setup struct {
	// Args are passed to the child's Open (serialised in its environment).
	Args map[string]string
	// Files are inherited by the child as fds 4, 5, ... (fd 3 is the
	// control socket) and closed in the parent once the child started.
	Files []*os.File
	// Parent opens the parent's endpoint; it runs while the child opens
	// its own, so it may block until the child connects.
	Parent func() (Endpoint, error)
	// Cleanup removes what Prepare created (paths, queue names). It runs
	// after both endpoints are closed or the child is gone.
	Cleanup func()
}

// Mechanism is one IPC mechanism in one mode.
type Mechanism interface {
	// Name is the mechanism's family name: it contains one of the words
	// pipe, fifo, unix, seqpacket, tcp, udp, mq, eventfd, goipc.
	Name() string
	// Mode distinguishes variants of one mechanism ("default" when none).
	Mode() string
	// Design says what the mechanism costs by construction.
	Design() Design
	// MaxSize is the largest message the mechanism can carry (0: no limit).
	MaxSize() int
	// StreamWindow is, for unreliable mechanisms, how many messages of the
	// given size the stream sender may have in flight before it waits for
	// an acknowledgement from the receiver (0: no window, the mechanism
	// blocks the sender itself when the receiver falls behind).
	StreamWindow(size int) int
	// Prepare creates the parent's resources in dir (a fresh private
	// directory). maxSize is the largest message of the run.
	Prepare(dir string, maxSize int) (*Setup, error)
	// Open creates the child's endpoint from the Args and Files of Setup.
	Open(args map[string]string, files []*os.File) (Endpoint, error)
}

// ID is how a mechanism is named on the command line: name, or name:mode
// when the mode is not "default".
func ID(m Mechanism) string {
	if m.Mode() == "default" {
		return m.Name()
	}
	return m.Name() + ":" + m.Mode()
}

// ErrUnknownMechanism is returned by Lookup for a name no mechanism has.
var ErrUnknownMechanism = errors.New("bench: unknown mechanism")

var registry []Mechanism

func register(m Mechanism) { registry = append(registry, m) }

// order is the display order of mechanism families.
var order = []string{"pipe", "fifo", "unix-stream", "unix-seqpacket", "tcp", "udp", "posix-mq", "eventfd-shm", "goipc"}

func rank(m Mechanism) int {
	for i, n := range order {
		if n == m.Name() {
			return i
		}
	}
	return len(order)
}

// All returns every registered mechanism in display order.
func All() []Mechanism {
	out := append([]Mechanism(nil), registry...)
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// Lookup finds a mechanism by ID (name or name:mode). A bare family name
// with several modes returns every mode of that family.
func Lookup(id string) ([]Mechanism, error) {
	id = strings.TrimSpace(id)
	var out []Mechanism
	for _, m := range All() {
		if m.Name() == id {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		for _, m := range All() {
			if ID(m) == id || m.Name()+":"+m.Mode() == id {
				return []Mechanism{m}, nil
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownMechanism, id, strings.Join(IDs(), ", "))
	}
	return out, nil
}

// IDs lists the IDs of every registered mechanism in display order.
func IDs() []string {
	var ids []string
	for _, m := range All() {
		ids = append(ids, ID(m))
	}
	return ids
}

// hidden mechanisms are known to children (so tests can run them) but not
// listed by All.
var hidden []Mechanism

func lookupExact(name, mode string) (Mechanism, error) {
	for _, m := range append(registry[:len(registry):len(registry)], hidden...) {
		if m.Name() == name && m.Mode() == mode {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%w %s:%s", ErrUnknownMechanism, name, mode)
}
