package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mqAttr is struct mq_attr of <mqueue.h> (four longs, four reserved).
type mqAttr struct {
	Flags, Maxmsg, Msgsize, Curmsgs int64
	_                               [4]int64
}

// mqOpen is mq_open(3) as the kernel sees it: the name without its leading
// slash (glibc strips it before the system call).
func mqOpen(name string, flags int, attr *mqAttr) (int, error) {
	p, err := unix.BytePtrFromString(strings.TrimPrefix(name, "/"))
	if err != nil {
		return -1, err
	}
	fd, _, errno := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)), uintptr(flags), 0o600, uintptr(unsafe.Pointer(attr)), 0, 0)
	if errno != 0 {
		return -1, fmt.Errorf("mq_open %s: %w", name, errno)
	}
	return int(fd), nil
}

func mqUnlink(name string) {
	p, err := unix.BytePtrFromString(strings.TrimPrefix(name, "/"))
	if err != nil {
		return
	}
	unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0)
}

// mqMsgSize is the queue's message size: the system's msgsize_max (8 KiB by
// default; an unprivileged process cannot exceed it). Larger messages go as
// several queue messages.
func mqMsgSize() int {
	return readProcInt("/proc/sys/fs/mqueue/msgsize_max", 8192)
}

// mqMaxMsg is the queue depth: the system's msg_max (10 by default).
func mqMaxMsg() int {
	return readProcInt("/proc/sys/fs/mqueue/msg_max", 10)
}

func readProcInt(path string, def int) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return def
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || v <= 0 {
		return def
	}
	return v
}

type mqEndpoint struct {
	rfd, wfd int
	msgsize  int
	aborted  atomic.Bool
	abortFd  int // a write descriptor on our own receive queue (parent only)
}

func (e *mqEndpoint) Send(msg []byte) error {
	for off := 0; off < len(msg); off += e.msgsize {
		piece := msg[off:min(off+e.msgsize, len(msg))]
		for {
			_, _, errno := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, uintptr(e.wfd), uintptr(unsafe.Pointer(&piece[0])), uintptr(len(piece)), 0, 0, 0)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 {
				return fmt.Errorf("mq_send: %w", errno)
			}
			break
		}
	}
	return nil
}

func (e *mqEndpoint) Recv(buf []byte) error {
	for off := 0; off < len(buf); off += e.msgsize {
		want := min(e.msgsize, len(buf)-off)
		// mq_receive needs a buffer of at least the queue's message size:
		// buf has RecvSlack bytes of spare capacity for the last piece.
		dst := buf[off : off+e.msgsize : cap(buf)]
		var n uintptr
		for {
			var errno unix.Errno
			n, _, errno = unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, uintptr(e.rfd), uintptr(unsafe.Pointer(&dst[0])), uintptr(len(dst)), 0, 0, 0)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 {
				return fmt.Errorf("mq_receive: %w", errno)
			}
			break
		}
		if e.aborted.Load() {
			return fmt.Errorf("mq_receive: aborted")
		}
		if int(n) != want {
			return fmt.Errorf("mq_receive %d of %d bytes: %w", n, want, errShortDatagram)
		}
	}
	return nil
}

// Abort posts a message to our own receive queue: a dead peer does not
// wake a blocked mq_receive.
func (e *mqEndpoint) Abort() {
	e.aborted.Store(true)
	if e.abortFd >= 0 {
		b := []byte{0}
		unix.Syscall6(unix.SYS_MQ_TIMEDSEND, uintptr(e.abortFd), uintptr(unsafe.Pointer(&b[0])), 1, 0, 0, 0)
	}
}

func (e *mqEndpoint) Close() error {
	unix.Close(e.rfd)
	if e.abortFd >= 0 {
		unix.Close(e.abortFd)
	}
	return unix.Close(e.wfd)
}

type mqMech struct{}

var mqSeq atomic.Int64

func (mqMech) Name() string { return "posix-mq" }
func (mqMech) Mode() string { return "default" }
func (mqMech) Design() Design {
	return Design{KernelCopies: 2, Syscalls: "2 (mq_timedsend + mq_timedreceive)",
		Note: fmt.Sprintf("two POSIX message queues (depth %d, message size %d B = fs.mqueue.msgsize_max); a larger message goes as several queue messages",
			mqMaxMsg(), mqMsgSize())}
}
func (mqMech) MaxSize() int         { return 0 }
func (mqMech) StreamWindow(int) int { return 0 }

func (mqMech) Prepare(dir string, maxSize int) (*Setup, error) {
	base := fmt.Sprintf("/goipc-bench-%d-%d", os.Getpid(), mqSeq.Add(1))
	p2c, c2p := base+"-p2c", base+"-c2p"
	attr := mqAttr{Maxmsg: int64(mqMaxMsg()), Msgsize: int64(mqMsgSize())}
	wfd, err := mqOpen(p2c, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, &attr)
	if err != nil {
		return nil, err
	}
	rfd, err := mqOpen(c2p, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, &attr)
	if err != nil {
		unix.Close(wfd)
		mqUnlink(p2c)
		return nil, err
	}
	afd, err := mqOpen(c2p, unix.O_WRONLY|unix.O_CLOEXEC, nil)
	if err != nil {
		unix.Close(wfd)
		unix.Close(rfd)
		mqUnlink(p2c)
		mqUnlink(c2p)
		return nil, err
	}
	ep := &mqEndpoint{rfd: rfd, wfd: wfd, msgsize: int(attr.Msgsize), abortFd: afd}
	return &Setup{
		Args:    map[string]string{"p2c": p2c, "c2p": c2p, "msgsize": strconv.Itoa(int(attr.Msgsize))},
		Parent:  func() (Endpoint, error) { return ep, nil },
		Cleanup: func() { mqUnlink(p2c); mqUnlink(c2p) },
	}, nil
}

func (mqMech) Open(args map[string]string, files []*os.File) (Endpoint, error) {
	msgsize, err := strconv.Atoi(args["msgsize"])
	if err != nil {
		return nil, fmt.Errorf("bench: bad msgsize %q", args["msgsize"])
	}
	rfd, err := mqOpen(args["p2c"], unix.O_RDONLY|unix.O_CLOEXEC, nil)
	if err != nil {
		return nil, err
	}
	wfd, err := mqOpen(args["c2p"], unix.O_WRONLY|unix.O_CLOEXEC, nil)
	if err != nil {
		unix.Close(rfd)
		return nil, err
	}
	return &mqEndpoint{rfd: rfd, wfd: wfd, msgsize: msgsize, abortFd: -1}, nil
}

func init() { register(mqMech{}) }
