//go:build linux

package goipc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipc/goipc/goipc/internal/sys"
)

// The handshake, over the Unix stream socket that then stays open as the
// liveness channel (little-endian):
//
//	dialer -> listener  hello, 32 bytes, with the segment memfd (SCM_RIGHTS)
//	  0  8  magic "GOIPC-HS"
//	  8  4  protocol version
//	 12  4  layout version
//	 16  8  segment size
//	 24  8  reserved (0)
//	listener -> dialer  reply, 16 bytes
//	  0  8  magic "GOIPC-HS"
//	  8  4  protocol version
//	 12  4  status (handshakeOK or a handshake* code below)
const (
	hsMagic     = 0x53482d4350494f47 // "GOIPC-HS"
	hsHelloSize = 32
	hsReplySize = 16

	handshakeOK         = 0
	handshakeVersion    = 1
	handshakeBadSegment = 2
	handshakePermission = 3
	handshakeTooLarge   = 4
)

// Dial connects to the listener at path, creating the connection's segment.
func Dial(path string, opts *Options) (*Conn, error) {
	return DialContext(context.Background(), path, opts)
}

// DialTimeout is Dial bounded by timeout (< 0 waits as long as the
// handshake timeout allows).
func DialTimeout(path string, timeout time.Duration, opts *Options) (*Conn, error) {
	ctx := context.Background()
	if timeout >= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return DialContext(ctx, path, opts)
}

// DialContext is Dial that gives up when ctx is done.
func DialContext(ctx context.Context, path string, opts *Options) (*Conn, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.handshakeTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, dialError(path, err)
	}
	sock := nc.(*net.UnixConn)
	c, err := dialHandshake(ctx, sock, o)
	if err != nil {
		sock.Close()
		return nil, err
	}
	return c, nil
}

func dialError(path string, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: dial %s: %w", ErrTimeout, path, err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w: dial %s: %w", ErrPermission, path, err)
	}
	return fmt.Errorf("goipc: dial %s: %w (is a goipc listener running there?)", path, err)
}

func dialHandshake(ctx context.Context, sock *net.UnixConn, o resolved) (*Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		sock.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { sock.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	cred, err := checkPeer(sock, o)
	if err != nil {
		return nil, err
	}
	seg, fd, err := createSegment(o.ringSize, o.maxMessage)
	if err != nil {
		return nil, err
	}
	defer sys.Close(fd) // the listener holds its own copy once sent
	var hello [hsHelloSize]byte
	le := binary.LittleEndian
	le.PutUint64(hello[0:], hsMagic)
	le.PutUint32(hello[8:], o.protocolVersion)
	le.PutUint32(hello[12:], LayoutVersion)
	le.PutUint64(hello[16:], uint64(len(seg.mem)))
	_, _, werr := sock.WriteMsgUnix(hello[:], unix.UnixRights(fd), nil)
	// Read the reply even if the write failed: a listener that refuses us
	// may have answered and hung up before our hello arrived.
	var reply [hsReplySize]byte
	if _, err := io.ReadFull(sock, reply[:]); err != nil {
		seg.unmap()
		if werr != nil {
			return nil, handshakeIOError("send hello", werr)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: listener closed the connection during the handshake", ErrPeerClosed)
		}
		return nil, handshakeIOError("read reply", err)
	}
	if err := replyError(reply, o.protocolVersion); err != nil {
		seg.unmap()
		return nil, err
	}
	sock.SetDeadline(time.Time{})
	return newConn(seg, 0, 1, sock, o.spin, cred.Pid), nil
}

func replyError(reply [hsReplySize]byte, ours uint32) error {
	le := binary.LittleEndian
	if le.Uint64(reply[0:]) != hsMagic {
		return protocolErrorf("the socket peer is not a goipc listener (bad handshake magic)")
	}
	theirs := le.Uint32(reply[8:])
	switch st := le.Uint32(reply[12:]); st {
	case handshakeOK:
		if theirs != ours {
			return fmt.Errorf("%w: listener speaks protocol version %d, this side %d", ErrVersionMismatch, theirs, ours)
		}
		return nil
	case handshakeVersion:
		return fmt.Errorf("%w: listener speaks protocol version %d, this side %d (upgrade one side)", ErrVersionMismatch, theirs, ours)
	case handshakePermission:
		return fmt.Errorf("%w: the listener refused this process's credentials", ErrPermission)
	case handshakeTooLarge:
		return fmt.Errorf("%w: the listener refused the segment: maximum message size above its limit", ErrInvalidArgument)
	case handshakeBadSegment:
		return protocolErrorf("the listener refused the segment")
	default:
		return protocolErrorf("unknown handshake status %d", st)
	}
}

func handshakeIOError(step string, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: handshake (%s): %w", ErrTimeout, step, err)
	}
	return fmt.Errorf("goipc: handshake (%s): %w", step, err)
}

// checkPeer reads SO_PEERCRED and applies the uid policy.
func checkPeer(sock *net.UnixConn, o resolved) (*unix.Ucred, error) {
	rc, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, fmt.Errorf("goipc: SO_PEERCRED: %w", cerr)
	}
	if o.allowAnyUID || cred.Uid == uint32(os.Getuid()) || slices.Contains(o.allowUIDs, cred.Uid) {
		return cred, nil
	}
	return nil, fmt.Errorf("%w: peer pid %d runs as uid %d, this process as uid %d (see Options.AllowUIDs)",
		ErrPermission, cred.Pid, cred.Uid, os.Getuid())
}

// Listener accepts goipc connections on a Unix socket path.
type Listener struct {
	ln   *net.UnixListener
	path string
	opts resolved
}

// Listen listens on the Unix socket path. A stale socket file left by a
// dead listener is replaced; a path served by a live listener is refused
// with ErrAddressInUse. Close removes the socket file.
func Listen(path string, opts *Options) (*Listener, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%w: %s", ErrAddressInUse, path)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%w: listen %s: %w", ErrPermission, path, err)
		}
		return nil, fmt.Errorf("goipc: listen %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	return &Listener{ln: ln, path: path, opts: o}, nil
}

// maxPathLen is the longest socket path: sun_path holds 108 bytes with
// the terminating NUL.
const maxPathLen = len(unix.RawSockaddrUnix{}.Path) - 1

func checkPath(path string) error {
	switch {
	case path == "":
		return fmt.Errorf("%w: empty socket path", ErrInvalidArgument)
	case len(path) > maxPathLen:
		return fmt.Errorf("%w: socket path is %d bytes, the limit is %d (use a shorter directory)", ErrInvalidArgument, len(path), maxPathLen)
	}
	return nil
}

// removeStaleSocket removes path if it is a socket nobody listens on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("goipc: listen %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%w: %s exists and is not a socket; not replacing it", ErrAddressInUse, path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: %s", ErrAddressInUse, path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("goipc: listen %s: probing the existing socket: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("goipc: listen %s: removing a stale socket: %w", path, err)
	}
	return nil
}

// Addr is the socket path.
func (l *Listener) Addr() string { return l.path }

// Close stops listening and removes the socket file. Blocked Accept calls
// return ErrClosed. Connections already accepted stay open.
func (l *Listener) Close() error {
	if err := l.ln.Close(); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return ErrClosed
		}
		return err
	}
	return nil
}

// Accept waits for a client and completes its handshake. A handshake
// error (ErrProtocol, ErrVersionMismatch, ErrPermission, ErrTimeout)
// concerns that one client: the listener stays usable, keep accepting.
func (l *Listener) Accept() (*Conn, error) { return l.AcceptContext(context.Background()) }

// AcceptTimeout is Accept with a timeout: < 0 waits forever, 0 only takes
// a client already waiting.
func (l *Listener) AcceptTimeout(timeout time.Duration) (*Conn, error) {
	if timeout < 0 {
		return l.AcceptContext(context.Background())
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(timeout, time.Millisecond))
	defer cancel()
	return l.AcceptContext(ctx)
}

// AcceptContext is Accept that gives up when ctx is done.
func (l *Listener) AcceptContext(ctx context.Context) (*Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		l.ln.SetDeadline(dl)
		defer l.ln.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { l.ln.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		c, err := l.acceptOne(ctx)
		// A client that hangs up before saying hello (such as Listen's
		// probe of a live socket path) is no client: wait for the next.
		if errors.Is(err, errNoHello) {
			continue
		}
		return c, err
	}
}

var errNoHello = fmt.Errorf("%w: client closed the connection before its hello", ErrPeerClosed)

func (l *Listener) acceptOne(ctx context.Context) (*Conn, error) {
	sock, err := l.ln.AcceptUnix()
	if err != nil {
		switch {
		case errors.Is(err, net.ErrClosed):
			return nil, ErrClosed
		case errors.Is(err, os.ErrDeadlineExceeded):
			if ctx.Err() == context.Canceled {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: no client connected", ErrTimeout)
		}
		return nil, fmt.Errorf("goipc: accept: %w", err)
	}
	c, err := l.acceptHandshake(sock)
	if err != nil {
		sock.Close()
		return nil, err
	}
	return c, nil
}

func (l *Listener) acceptHandshake(sock *net.UnixConn) (*Conn, error) {
	o := l.opts
	sock.SetDeadline(time.Now().Add(o.handshakeTimeout))
	reply := func(status uint32) {
		var r [hsReplySize]byte
		binary.LittleEndian.PutUint64(r[0:], hsMagic)
		binary.LittleEndian.PutUint32(r[8:], o.protocolVersion)
		binary.LittleEndian.PutUint32(r[12:], status)
		sock.Write(r[:])
	}
	var hello [hsHelloSize]byte
	oob := make([]byte, unix.CmsgSpace(4*4)) // room to notice (and close) extra fds
	n, oobn, flags, _, err := sock.ReadMsgUnix(hello[:], oob)
	if n == 0 && errors.Is(err, io.EOF) {
		return nil, errNoHello
	}
	if err != nil {
		return nil, handshakeIOError("read hello", err)
	}
	fds, ferr := parseRights(oob[:oobn])
	defer func() {
		for _, fd := range fds {
			sys.Close(fd)
		}
	}()
	// Credentials are checked after the hello is read, so that a refused
	// dialer's hello is not cut off mid-write and it reads our answer.
	cred, err := checkPeer(sock, o)
	if err != nil {
		reply(handshakePermission)
		return nil, err
	}
	le := binary.LittleEndian
	switch {
	case n == 0:
		return nil, errNoHello
	case n != hsHelloSize || le.Uint64(hello[0:]) != hsMagic:
		reply(handshakeBadSegment)
		return nil, protocolErrorf("the client is not a goipc dialer (bad hello)")
	case le.Uint32(hello[8:]) != o.protocolVersion || le.Uint32(hello[12:]) != LayoutVersion:
		reply(handshakeVersion)
		return nil, fmt.Errorf("%w: client pid %d speaks protocol version %d layout %d, this side protocol %d layout %d",
			ErrVersionMismatch, cred.Pid, le.Uint32(hello[8:]), le.Uint32(hello[12:]), o.protocolVersion, LayoutVersion)
	case flags&unix.MSG_CTRUNC != 0 || ferr != nil || len(fds) != 1:
		reply(handshakeBadSegment)
		return nil, protocolErrorf("the hello must carry exactly one segment fd (got %d, truncated=%v, %v)", len(fds), flags&unix.MSG_CTRUNC != 0, ferr)
	}
	seg, err := openSegment(fds[0], le.Uint64(hello[16:]), o.maxMessage)
	if err != nil {
		if errors.Is(err, ErrInvalidArgument) {
			reply(handshakeTooLarge)
		} else if errors.Is(err, ErrVersionMismatch) {
			reply(handshakeVersion)
		} else {
			reply(handshakeBadSegment)
		}
		return nil, err
	}
	reply(handshakeOK)
	sock.SetDeadline(time.Time{})
	return newConn(seg, 1, 0, sock, o.spin, cred.Pid), nil
}

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_RIGHTS {
			got, err := unix.ParseUnixRights(&m)
			if err != nil {
				return fds, err
			}
			fds = append(fds, got...)
		}
	}
	return fds, nil
}
