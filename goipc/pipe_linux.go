//go:build linux

package goipc

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/goipc/goipc/goipc/internal/sys"
)

// Pipe returns the two ends of a connection within this process: a
// segment and a Unix socket pair, exactly as Dial and Accept would make
// them (the first end is the dialer's), with no listener and no
// handshake. Each end behaves like any Conn: closing one makes the other
// see ErrPeerClosed after it has received what was sent. A waiting call
// parks on the doorbell (the netpoller) at once, without the futex stage:
// both ends live in this process, where a futex sleeper would hold a P. Useful for tests,
// and for bridges that carry a connection over another transport.
func Pipe(opts *Options) (dialer, listener *Conn, err error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("goipc: Pipe: socketpair: %w", err)
	}
	socks := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "goipc-pipe")
		nc, err := net.FileConn(f) // dups fd
		f.Close()
		if err != nil {
			for _, s := range socks[:i] {
				s.Close()
			}
			if i == 0 {
				unix.Close(fds[1])
			}
			return nil, nil, fmt.Errorf("goipc: Pipe: %w", err)
		}
		socks[i] = nc.(*net.UnixConn)
	}
	closeSocks := func() { socks[0].Close(); socks[1].Close() }
	segA, err := createSegment(o.ringSize, o.maxMessage, "", o.protocolVersion)
	if err != nil {
		closeSocks()
		return nil, nil, fmt.Errorf("goipc: Pipe: %w", err)
	}
	// The listener's end maps the same memfd and, like an accepted
	// connection, holds no descriptor of its own on it.
	segB, err := openSegment(segA.fd, uint64(len(segA.mem)), o.maxMessage)
	if err != nil {
		segA.unmap()
		closeSocks()
		return nil, nil, err
	}
	pid := int32(sys.Getpid())
	segB.setAcceptorPID(int(pid))
	if dialer, err = newConn(segA, true, socks[0], &o, pid, "", nil); err == nil {
		listener, err = newConn(segB, false, socks[1], &o, pid, "", nil)
		if err != nil {
			dialer.Close()
			segB.unmap()
			socks[1].Close()
			return nil, nil, err
		}
		dialer.doorbellOnly, listener.doorbellOnly = true, true
		return dialer, listener, nil
	}
	segA.unmap()
	segB.unmap()
	closeSocks()
	return nil, nil, err
}
