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
	"time"

	"golang.org/x/sys/unix"
)

// The handshake, over the Unix stream socket that then stays open as the
// liveness channel and carries doorbell bytes (little-endian):
//
//	dialer -> listener  hello, 32 bytes, with the segment memfd (SCM_RIGHTS)
//	  0  8  magic "GOIPC-HS"
//	  8  4  protocol version
//	 12  4  layout version
//	 16  8  segment size
//	 24  8  reserved (0)
//	listener -> dialer  reply, 32 bytes (a version-1 listener sends 16)
//	  0  8  magic "GOIPC-HS"
//	  8  4  protocol version
//	 12  4  status (handshakeOK or a handshake* code below)
//	 16  4  which limit, for handshakeLimit (limit* below), else 0
//	 20  4  reserved (0)
//	 24  8  the limit's value, for handshakeLimit, else 0
//
// A listener may answer before it reads the hello (a refused uid, too many
// connections): the dialer always reads the reply, even when its hello
// could not be sent.
const (
	hsMagic       = 0x53482d4350494f47 // "GOIPC-HS"
	hsHelloSize   = 32
	hsReplyPrefix = 16 // what every protocol version sends
	hsReplySize   = 32

	handshakeOK         = 0
	handshakeVersion    = 1
	handshakeBadSegment = 2
	handshakePermission = 3
	handshakeTooLarge   = 4
	handshakeLimit      = 5
	handshakeSparse     = 6
)

// Limits a listener can refuse a client for (reply bytes 16-19).
const (
	limitConns = iota + 1
	limitSegmentSize
	limitMappedBytes
	limitDescriptors
	limitKinds
)

var limitNames = [limitKinds]string{
	limitConns:       "MaxConns (open connections)",
	limitSegmentSize: "MaxSegmentSize (bytes of one segment)",
	limitMappedBytes: "MaxMappedBytes (segment bytes over all connections)",
	limitDescriptors: "file descriptors (the listener process ran out)",
}

// Dial connects to the listener at path, creating the connection's segment.
// An address "scheme://..." (such as nats://host:4222/subject) goes to the
// Transport registered for scheme (see RegisterTransport).
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
	if t, isURL, err := transportFor(path); isURL {
		if err != nil {
			return nil, err
		}
		return t.Dial(ctx, path, opts)
	}
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
	c, err := dialHandshake(ctx, sock, &o, path)
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

func dialHandshake(ctx context.Context, sock *net.UnixConn, o *resolved, path string) (*Conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		sock.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { sock.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	cred, err := checkPeer(sock, o)
	if err != nil {
		return nil, err
	}
	seg, err := createSegment(o.ringSize, o.maxMessage, path, o.protocolVersion)
	if err != nil {
		return nil, fmt.Errorf("goipc: dial %s: creating the segment: %w", path, err)
	}
	var hello [hsHelloSize]byte
	le := binary.LittleEndian
	le.PutUint64(hello[0:], hsMagic)
	le.PutUint32(hello[8:], o.protocolVersion)
	le.PutUint32(hello[12:], LayoutVersion)
	le.PutUint64(hello[16:], uint64(len(seg.mem)))
	_, _, werr := sock.WriteMsgUnix(hello[:], unix.UnixRights(seg.fd), nil)
	// Read the reply even if the write failed: a listener that refuses us
	// may have answered and hung up before our hello arrived.
	var reply [hsReplySize]byte
	err = readReply(sock, reply[:], o.protocolVersion)
	if err != nil {
		seg.unmap()
		if werr != nil && !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrLimit) && !errors.Is(err, ErrPermission) && !errors.Is(err, ErrInvalidArgument) {
			return nil, handshakeIOError("send hello", werr)
		}
		return nil, err
	}
	sock.SetDeadline(time.Time{})
	c, err := newConn(seg, true, sock, o, cred.Pid, path, nil)
	if err != nil {
		seg.unmap()
		return nil, err
	}
	return c, nil
}

// readReply reads the listener's reply: its common 16-byte prefix, then,
// when the listener speaks our version, the rest.
func readReply(sock *net.UnixConn, reply []byte, ours uint32) error {
	if _, err := io.ReadFull(sock, reply[:hsReplyPrefix]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: listener closed the connection during the handshake", ErrPeerClosed)
		}
		return handshakeIOError("read reply", err)
	}
	le := binary.LittleEndian
	if le.Uint64(reply[0:]) != hsMagic {
		return protocolErrorf("the socket peer is not a goipc listener (bad handshake magic)")
	}
	theirs := le.Uint32(reply[8:])
	st := le.Uint32(reply[12:])
	if theirs != ours || st == handshakeVersion {
		return fmt.Errorf("%w: listener speaks protocol version %d, this side %d (upgrade one side)", ErrVersionMismatch, theirs, ours)
	}
	if _, err := io.ReadFull(sock, reply[hsReplyPrefix:]); err != nil {
		return handshakeIOError("read reply", err)
	}
	switch st {
	case handshakeOK:
		return nil
	case handshakePermission:
		return fmt.Errorf("%w: the listener refused this process's credentials", ErrPermission)
	case handshakeTooLarge:
		return fmt.Errorf("%w: the listener refused the segment: maximum message size above its limit", ErrInvalidArgument)
	case handshakeLimit:
		kind, value := le.Uint32(reply[16:]), le.Uint64(reply[24:])
		name := "unknown limit"
		if kind > 0 && kind < limitKinds {
			name = limitNames[kind]
		}
		if kind == limitDescriptors {
			return fmt.Errorf("%w: the listener refused the connection: %s", ErrLimit, name)
		}
		return fmt.Errorf("%w: the listener refused the connection: %s = %d reached", ErrLimit, name, value)
	case handshakeSparse:
		return protocolErrorf("the listener refused the segment: not fully allocated (sparse)")
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

// peerCred reads SO_PEERCRED: available right after connect/accept,
// before any byte is exchanged.
func peerCred(sock *net.UnixConn) (*unix.Ucred, error) {
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
	return cred, nil
}

// checkPeer reads SO_PEERCRED and applies the uid policy.
func checkPeer(sock *net.UnixConn, o *resolved) (*unix.Ucred, error) {
	cred, err := peerCred(sock)
	if err != nil {
		return nil, err
	}
	return cred, o.allowed(cred)
}

func (o *resolved) allowed(cred *unix.Ucred) error {
	if o.allowAnyUID || cred.Uid == uint32(os.Getuid()) || slices.Contains(o.allowUIDs, cred.Uid) {
		return nil
	}
	return fmt.Errorf("%w: peer pid %d runs as uid %d, this process as uid %d (see Options.AllowUIDs)",
		ErrPermission, cred.Pid, cred.Uid, os.Getuid())
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
