package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// fdEndpoint moves messages over blocking file descriptors with raw read
// and write system calls. chunk == 0 means a byte stream (a message may
// arrive in pieces, Recv loops until it has all of it); chunk > 0 means
// datagrams of at most chunk bytes each, one write and one read per piece.
type fdEndpoint struct {
	rfd, wfd int
	chunk    int
	sock     bool // Abort shuts the socket down
	aborted  atomic.Bool
}

var errShortDatagram = errors.New("bench: datagram of unexpected size")

func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}

func (e *fdEndpoint) Send(msg []byte) error {
	if e.chunk == 0 {
		for len(msg) > 0 {
			n, err := retryEINTR(func() (int, error) { return unix.Write(e.wfd, msg) })
			if err != nil {
				return fmt.Errorf("write: %w", err)
			}
			msg = msg[n:]
		}
		return nil
	}
	for off := 0; off < len(msg); off += e.chunk {
		piece := msg[off:min(off+e.chunk, len(msg))]
		n, err := retryEINTR(func() (int, error) { return unix.Write(e.wfd, piece) })
		if err != nil {
			return fmt.Errorf("send: %w", err)
		}
		if n != len(piece) {
			return fmt.Errorf("send %d of %d bytes: %w", n, len(piece), errShortDatagram)
		}
	}
	return nil
}

func (e *fdEndpoint) Recv(buf []byte) error {
	if e.chunk == 0 {
		for got := 0; got < len(buf); {
			n, err := retryEINTR(func() (int, error) { return unix.Read(e.rfd, buf[got:]) })
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
			if n == 0 {
				return io.ErrUnexpectedEOF
			}
			got += n
		}
		return nil
	}
	for off := 0; off < len(buf); off += e.chunk {
		piece := buf[off:min(off+e.chunk, len(buf))]
		n, err := retryEINTR(func() (int, error) { return unix.Read(e.rfd, piece) })
		if err != nil {
			if err == unix.EAGAIN {
				return fmt.Errorf("recv: no datagram within the receive timeout (lost?): %w", err)
			}
			return fmt.Errorf("recv: %w", err)
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		if n != len(piece) {
			return fmt.Errorf("recv %d of %d bytes: %w", n, len(piece), errShortDatagram)
		}
	}
	return nil
}

func (e *fdEndpoint) Abort() {
	e.aborted.Store(true)
	if e.sock {
		_ = unix.Shutdown(e.rfd, unix.SHUT_RDWR)
	}
}

func (e *fdEndpoint) Close() error {
	err := unix.Close(e.rfd)
	if e.wfd != e.rfd {
		if err2 := unix.Close(e.wfd); err == nil {
			err = err2
		}
	}
	return err
}

// fileFD detaches the descriptor of an inherited *os.File for raw use. The
// *os.File is kept reachable by the caller's slice, so its finalizer does not
// close the descriptor; we dup it to own a descriptor of our own.
func fileFD(f *os.File) (int, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	_ = f.Close()
	return fd, nil
}

func needFiles(files []*os.File, n int) error {
	if len(files) < n {
		return fmt.Errorf("bench: child got %d inherited files, want %d", len(files), n)
	}
	return nil
}

// ---- pipe ----

type pipeMech struct{}

func (pipeMech) Name() string { return "pipe" }
func (pipeMech) Mode() string { return "default" }
func (pipeMech) Design() Design {
	return Design{KernelCopies: 2, Syscalls: "2 (write + read)",
		Note: "anonymous pipe pair, default 64 KiB pipe buffer; a message larger than the buffer takes several writes/reads"}
}
func (pipeMech) MaxSize() int         { return 0 }
func (pipeMech) StreamWindow(int) int { return 0 }

func (pipeMech) Prepare(dir string, maxSize int) (*Setup, error) {
	var p2c, c2p [2]int
	if err := unix.Pipe2(p2c[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	if err := unix.Pipe2(c2p[:], unix.O_CLOEXEC); err != nil {
		unix.Close(p2c[0])
		unix.Close(p2c[1])
		return nil, fmt.Errorf("pipe: %w", err)
	}
	ep := &fdEndpoint{rfd: c2p[0], wfd: p2c[1]}
	return &Setup{
		Files:  []*os.File{os.NewFile(uintptr(p2c[0]), "p2c-r"), os.NewFile(uintptr(c2p[1]), "c2p-w")},
		Parent: func() (Endpoint, error) { return ep, nil },
	}, nil
}

func (pipeMech) Open(args map[string]string, files []*os.File) (Endpoint, error) {
	if err := needFiles(files, 2); err != nil {
		return nil, err
	}
	r, err := fileFD(files[0])
	if err != nil {
		return nil, err
	}
	w, err := fileFD(files[1])
	if err != nil {
		unix.Close(r)
		return nil, err
	}
	return &fdEndpoint{rfd: r, wfd: w}, nil
}

// ---- named FIFO ----

type fifoMech struct{}

func (fifoMech) Name() string { return "fifo" }
func (fifoMech) Mode() string { return "default" }
func (fifoMech) Design() Design {
	return Design{KernelCopies: 2, Syscalls: "2 (write + read)",
		Note: "two named FIFOs (mkfifo) opened by path; same kernel code as a pipe"}
}
func (fifoMech) MaxSize() int         { return 0 }
func (fifoMech) StreamWindow(int) int { return 0 }

func (fifoMech) Prepare(dir string, maxSize int) (*Setup, error) {
	p2c, c2p := filepath.Join(dir, "p2c.fifo"), filepath.Join(dir, "c2p.fifo")
	for _, p := range []string{p2c, c2p} {
		if err := unix.Mkfifo(p, 0o600); err != nil {
			return nil, fmt.Errorf("mkfifo %s: %w", p, err)
		}
	}
	return &Setup{
		Args: map[string]string{"p2c": p2c, "c2p": c2p},
		// Open order matches the child's (p2c first) so the blocking
		// opens pair up instead of deadlocking.
		Parent: func() (Endpoint, error) {
			w, err := openRetry(p2c, unix.O_WRONLY)
			if err != nil {
				return nil, err
			}
			r, err := openRetry(c2p, unix.O_RDONLY)
			if err != nil {
				unix.Close(w)
				return nil, err
			}
			return &fdEndpoint{rfd: r, wfd: w}, nil
		},
	}, nil
}

func openRetry(path string, mode int) (int, error) {
	fd, err := retryEINTR(func() (int, error) { return unix.Open(path, mode|unix.O_CLOEXEC, 0) })
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	return fd, nil
}

func (fifoMech) Open(args map[string]string, files []*os.File) (Endpoint, error) {
	r, err := openRetry(args["p2c"], unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	w, err := openRetry(args["c2p"], unix.O_WRONLY)
	if err != nil {
		unix.Close(r)
		return nil, err
	}
	return &fdEndpoint{rfd: r, wfd: w}, nil
}

func init() {
	register(pipeMech{})
	register(fifoMech{})
}
