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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipc/goipc/goipc/internal/sys"
)

// Listener accepts goipc connections on a Unix socket path.
//
// A goroutine of the listener accepts sockets as they come and runs each
// handshake in a goroutine of its own, under its own deadline, so that no
// client (silent, slow, half a hello, refused) delays another. Peer
// credentials are checked at accept, before anything is read. The
// listener's limits (Options.MaxConns, MaxSegmentSize, MaxMappedBytes,
// MaxPendingHandshakes) bound what dialers can make it hold.
type Listener struct {
	ln     *net.UnixListener
	remote io.Closer // instead of ln: a Transport's listener (transport_linux.go)
	path   string
	opts   resolved

	mu      sync.Mutex
	pending []*pendingHandshake // oldest first
	queue   []acceptResult      // finished handshakes for Accept, oldest first
	queued  chan struct{}       // a token when queue may be non-empty
	closed  chan struct{}
	notify  levelFD // NotifyFD's descriptor: readable iff queue is non-empty or closed

	conns  atomic.Int64 // open connections, accepted or queued
	mapped atomic.Int64 // their segment bytes
	// droppedErrs counts failed handshakes whose errors were not queued
	// for Accept (maxQueuedErrors were waiting): DroppedErrors.
	droppedErrs atomic.Uint64
	logged      [limitKinds + 1]atomic.Bool

	loopDone   chan struct{}
	handshakes sync.WaitGroup
}

type pendingHandshake struct {
	sock *net.UnixConn
	cred *unix.Ucred
}

// acceptResult is a connection for Accept, or the error of one client's
// failed handshake.
type acceptResult struct {
	conn *Conn
	err  error
}

// maxQueuedErrors bounds the failed handshakes kept for Accept to report;
// older ones are dropped (each client's failure is also its own error).
const maxQueuedErrors = 64

// Listen listens on the Unix socket path. A stale socket file left by a
// dead listener is replaced; a path served by a live listener, or taken by
// something that is not a socket, is refused with ErrAddressInUse. Close
// removes the socket file. An address "scheme://..." (such as
// nats://host:4222/subject) goes to the Transport registered for scheme.
func Listen(path string, opts *Options) (*Listener, error) {
	if t, isURL, err := transportFor(path); isURL {
		if err != nil {
			return nil, err
		}
		return listenTransport(t, path, opts)
	}
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
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			return nil, fmt.Errorf("%w: a live listener already serves %s", ErrAddressInUse, path)
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("%w: listen %s: %w", ErrPermission, path, err)
		}
		return nil, fmt.Errorf("goipc: listen %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	l := &Listener{
		ln:       ln,
		path:     path,
		opts:     o,
		queued:   make(chan struct{}, 1),
		closed:   make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	go l.acceptLoop()
	return l, nil
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
		what := "a regular file"
		switch {
		case fi.IsDir():
			what = "a directory"
		case fi.Mode()&os.ModeSymlink != 0:
			what = "a symbolic link"
		case !fi.Mode().IsRegular():
			what = "a special file"
		}
		return fmt.Errorf("%w: %s is %s, not a socket; not replacing it", ErrAddressInUse, path, what)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: a live listener already serves %s", ErrAddressInUse, path)
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
// return ErrClosed; handshakes in progress are abandoned and connections
// not yet returned by Accept are closed. Connections already accepted
// stay open.
func (l *Listener) Close() error {
	var stop io.Closer = l.ln
	if l.remote != nil {
		stop = l.remote
	}
	if err := stop.Close(); err != nil {
		if errors.Is(err, net.ErrClosed) || errors.Is(err, ErrClosed) {
			return ErrClosed
		}
		return err
	}
	l.mu.Lock()
	close(l.closed)
	l.notify.close()
	for _, p := range l.pending {
		p.sock.SetDeadline(time.Unix(1, 0))
	}
	queue := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, r := range queue {
		if r.conn != nil {
			r.conn.Close()
		}
	}
	<-l.loopDone
	l.handshakes.Wait()
	return nil
}

// Accept waits for a client whose handshake has completed. A failed
// handshake (ErrProtocol, ErrVersionMismatch, ErrPermission, ErrTimeout,
// ErrLimit) is reported by Accept too: it concerns that one client, the
// listener stays usable, keep accepting.
func (l *Listener) Accept() (*Conn, error) { return l.AcceptContext(context.Background()) }

// DroppedErrors is how many failed handshakes Accept will never report:
// at most 64 failures wait for Accept, and one that ends while that many
// wait is counted here instead (its client got its own error either
// way). A server that logs Accept's errors should log this count too (as
// goipc pong does), so that every refused client is accounted for when
// the accepting goroutine falls behind a flood of bad clients.
func (l *Listener) DroppedErrors() uint64 { return l.droppedErrs.Load() }

// AcceptTimeout is Accept with a timeout: < 0 waits forever, 0 only takes
// a client whose handshake has already completed.
func (l *Listener) AcceptTimeout(timeout time.Duration) (*Conn, error) {
	if timeout < 0 {
		return l.AcceptContext(context.Background())
	}
	if timeout == 0 {
		if r, ok := l.dequeue(); ok {
			return r.conn, r.err
		}
		if l.isClosed() {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("%w: no client connected", ErrTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.AcceptContext(ctx)
}

// AcceptContext is Accept that gives up when ctx is done.
func (l *Listener) AcceptContext(ctx context.Context) (*Conn, error) {
	for {
		if r, ok := l.dequeue(); ok {
			return r.conn, r.err
		}
		select {
		case <-l.queued:
		case <-l.closed:
			if r, ok := l.dequeue(); ok {
				return r.conn, r.err
			}
			return nil, ErrClosed
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w: no client connected", ErrTimeout)
			}
			return nil, ctx.Err()
		}
	}
}

// NotifyFD returns a file descriptor that is readable while Accept would
// not wait: a connection (or a failed handshake's error) is queued, or the
// listener is closed. It is for event loops (epoll, asyncio's add_reader,
// tokio's AsyncFd) that accept without a thread: wait until it is
// readable, then call AcceptTimeout(0) until it returns ErrTimeout.
//
// Its readiness is exact, not a hint: it turns quiet when Accept takes the
// last queued connection, and readable when a handshake completes, with
// nothing in between to miss (a zero-timeout Accept that returned
// ErrTimeout found the descriptor quiet, so a wait that follows wakes for
// the next client). Another goroutine's Accept may take the client a
// wakeup announced: AcceptTimeout(0) then returns ErrTimeout; wait again.
//
// The descriptor belongs to the listener: do not read, write or close it.
// Close makes it readable (a poll blocked on it wakes) and then closes it:
// remove it from epoll sets before Close. Every call returns the same
// descriptor; a listener that never calls NotifyFD has none. It is an
// eventfd of this process. Errors: ErrClosed, or the eventfd's.
func (l *Listener) NotifyFD() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isClosed() {
		return -1, ErrClosed
	}
	return l.notify.create(len(l.queue) > 0)
}

func (l *Listener) isClosed() bool {
	select {
	case <-l.closed:
		return true
	default:
		return false
	}
}

func (l *Listener) dequeue() (acceptResult, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 {
		return acceptResult{}, false
	}
	r := l.queue[0]
	l.queue[0] = acceptResult{}
	l.queue = l.queue[1:]
	if len(l.queue) > 0 {
		l.signalQueued() // another Accept may take the next one
	} else {
		l.notify.set(false)
	}
	return r, true
}

func (l *Listener) signalQueued() {
	select {
	case l.queued <- struct{}{}:
	default:
	}
}

// enqueue hands a finished handshake to Accept. It reports false when
// the listener is closed (the caller then closes the connection).
func (l *Listener) enqueue(r acceptResult) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isClosed() {
		return false
	}
	if r.err != nil {
		errs := 0
		for _, q := range l.queue {
			if q.err != nil {
				errs++
			}
		}
		if errs >= maxQueuedErrors {
			// Dropped: Accept callers have plenty to report already. The
			// count keeps every refused client accounted for.
			l.droppedErrs.Add(1)
			return true
		}
	}
	l.queue = append(l.queue, r)
	l.signalQueued()
	l.notify.set(true)
	return true
}

// acceptLoop accepts sockets until the listener closes, checks each
// peer's credentials and starts its handshake.
func (l *Listener) acceptLoop() {
	defer close(l.loopDone)
	var backoff time.Duration
	for {
		sock, err := l.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors (or another transient failure): the
			// client stays in the kernel's backlog; try again soon.
			if sys.IsFdExhaustion(err) {
				l.logLimit(limitDescriptors, "goipc: listener %s: cannot accept: %v; retrying", l.path, err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-l.closed:
				return
			}
			continue
		}
		backoff = 0
		l.admit(sock)
	}
}

// admit checks a new socket's credentials and the connection limit, then
// starts its handshake, evicting the oldest pending handshake when there
// are too many.
func (l *Listener) admit(sock *net.UnixConn) {
	cred, err := peerCred(sock)
	if err == nil {
		err = l.opts.allowed(cred)
		if err != nil {
			l.refuse(sock, handshakePermission, 0, 0)
			l.enqueue(acceptResult{err: err})
			return
		}
	}
	if err != nil {
		sock.Close()
		l.enqueue(acceptResult{err: err})
		return
	}
	if l.conns.Load() >= l.opts.maxConns {
		l.refuseLimit(sock, cred, limitConns, uint64(l.opts.maxConns))
		return
	}
	p := &pendingHandshake{sock: sock, cred: cred}
	// The deadline is set here, before the handshake is pending: an
	// eviction (a deadline in the past) must never be overwritten by it.
	sock.SetDeadline(time.Now().Add(l.opts.handshakeTimeout))
	l.mu.Lock()
	if l.isClosed() {
		l.mu.Unlock()
		sock.Close()
		return
	}
	if len(l.pending) >= l.opts.maxPending {
		// The oldest pending client has had the longest to say hello: it
		// loses its place (its handshake goroutine sees the deadline).
		l.pending[0].sock.SetDeadline(time.Unix(1, 0))
		l.pending = l.pending[1:]
	}
	l.pending = append(l.pending, p)
	l.handshakes.Add(1)
	l.mu.Unlock()
	go l.handshake(p)
}

// removePending takes p off the pending list. It reports false if p was
// no longer there: evicted, or the listener closed, either of which has
// set its socket's deadline in the past. Only a handshake that removed
// itself may hand its socket to a connection: from then on nobody else
// touches the socket's deadline.
func (l *Listener) removePending(p *pendingHandshake) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, q := range l.pending {
		if q == p {
			l.pending = append(l.pending[:i], l.pending[i+1:]...)
			return true
		}
	}
	return false
}

// refuse answers a client with a failure status and hangs up, without
// reading its hello. The write cannot block for long: a fresh socket's
// buffer holds the reply.
func (l *Listener) refuse(sock *net.UnixConn, status uint32, limit uint32, value uint64) {
	sock.SetDeadline(time.Now().Add(l.opts.handshakeTimeout))
	sock.Write(l.reply(status, limit, value))
	sock.Close()
}

// refuseLimit refuses a client over a limit, logs the first such refusal
// of the listener, and tells Accept.
func (l *Listener) refuseLimit(sock *net.UnixConn, cred *unix.Ucred, limit uint32, value uint64) {
	l.refuse(sock, handshakeLimit, limit, value)
	err := fmt.Errorf("%w: refused client pid %d: %s = %d reached", ErrLimit, cred.Pid, limitNames[limit], value)
	if limit == limitDescriptors {
		err = fmt.Errorf("%w: refused client pid %d: %s", ErrLimit, cred.Pid, limitNames[limit])
	}
	l.logLimit(limit, "goipc: listener %s: %v (logged once)", l.path, err)
	l.enqueue(acceptResult{err: err})
}

func (l *Listener) logLimit(limit uint32, format string, args ...any) {
	if !l.logged[limit].Swap(true) {
		l.opts.logf(format, args...)
	}
}

func (l *Listener) reply(status uint32, limit uint32, value uint64) []byte {
	r := make([]byte, hsReplySize)
	le := binary.LittleEndian
	le.PutUint64(r[0:], hsMagic)
	le.PutUint32(r[8:], l.opts.protocolVersion)
	le.PutUint32(r[12:], status)
	le.PutUint32(r[16:], limit)
	le.PutUint64(r[24:], value)
	return r
}

// handshake runs one client's handshake in its own goroutine.
func (l *Listener) handshake(p *pendingHandshake) {
	defer l.handshakes.Done()
	err := l.acceptHandshake(p)
	if err != nil {
		l.removePending(p)
		p.sock.Close()
		// A client that hangs up before saying hello (such as Listen's
		// probe of a live socket path) is no client.
		if !errors.Is(err, errNoHello) && err != errRefused {
			l.enqueue(acceptResult{err: err})
		}
	}
}

var errNoHello = fmt.Errorf("%w: client closed the connection before its hello", ErrPeerClosed)

// acceptHandshake reads the hello, maps and checks the segment within the
// limits, and queues the connection for Accept before it answers OK (so
// that a dialer whose Dial returned finds its connection acceptable).
func (l *Listener) acceptHandshake(p *pendingHandshake) error {
	o := &l.opts
	sock, cred := p.sock, p.cred // its deadline was set by admit
	reply := func(status uint32) { sock.Write(l.reply(status, 0, 0)) }
	var hello [hsHelloSize]byte
	oob := make([]byte, unix.CmsgSpace(4*4)) // room to notice (and close) extra fds
	n, oobn, flags, _, err := sock.ReadMsgUnix(hello[:], oob)
	if n == 0 && (err == nil || errors.Is(err, io.EOF)) {
		return errNoHello
	}
	if err != nil {
		return handshakeIOError("read hello", err)
	}
	fds, ferr := parseRights(oob[:oobn])
	owned := fds // closed on return unless the segment takes one
	defer func() {
		for _, fd := range owned {
			sys.Close(fd)
		}
	}()
	le := binary.LittleEndian
	truncated := flags&unix.MSG_CTRUNC != 0
	switch {
	case n != hsHelloSize || le.Uint64(hello[0:]) != hsMagic:
		reply(handshakeBadSegment)
		return protocolErrorf("the client is not a goipc dialer (bad hello)")
	case le.Uint32(hello[8:]) != o.protocolVersion || le.Uint32(hello[12:]) != LayoutVersion:
		reply(handshakeVersion)
		return fmt.Errorf("%w: client pid %d speaks protocol version %d layout %d, this side protocol %d layout %d",
			ErrVersionMismatch, cred.Pid, le.Uint32(hello[8:]), le.Uint32(hello[12:]), o.protocolVersion, LayoutVersion)
	case truncated && len(fds) == 0 && outOfDescriptors():
		// The kernel could not install the segment fd in this process.
		l.refuseLimit(sock, cred, limitDescriptors, 0)
		return errRefused
	case truncated || ferr != nil || len(fds) != 1:
		reply(handshakeBadSegment)
		return protocolErrorf("the hello must carry exactly one segment fd (got %d, truncated=%v, %v)", len(fds), truncated, ferr)
	}
	size := le.Uint64(hello[16:])
	if int64(size) > o.maxSegment || size > uint64(segmentSize(MaxRingSize)) {
		l.refuseLimit(sock, cred, limitSegmentSize, uint64(o.maxSegment))
		return errRefused
	}
	if !l.reserveMapped(int64(size)) {
		l.refuseLimit(sock, cred, limitMappedBytes, uint64(o.maxMapped))
		return errRefused
	}
	if !l.reserveConn() {
		l.mapped.Add(-int64(size))
		l.refuseLimit(sock, cred, limitConns, uint64(o.maxConns))
		return errRefused
	}
	release := func() {
		l.mapped.Add(-int64(size))
		l.conns.Add(-1)
	}
	seg, err := openSegment(fds[0], size, o.maxMessage)
	if err != nil {
		release()
		switch {
		case errors.Is(err, ErrInvalidArgument):
			reply(handshakeTooLarge)
		case errors.Is(err, ErrVersionMismatch):
			reply(handshakeVersion)
		case errors.Is(err, sys.ErrSparse):
			reply(handshakeSparse)
		default:
			reply(handshakeBadSegment)
		}
		return fmt.Errorf("client pid %d: %w", cred.Pid, err)
	}
	// The mapping keeps the segment alive: close our copy of the memfd
	// now, so that an accepted connection costs one descriptor (its
	// socket), as with any socket server (docs/DECISIONS.md).
	sys.Close(fds[0])
	owned = nil
	if !l.removePending(p) {
		seg.unmap()
		release()
		return handshakeIOError("evicted or listener closed", os.ErrDeadlineExceeded)
	}
	seg.setAcceptorPID(sys.Getpid())
	sock.SetDeadline(time.Time{})
	c, err := newConn(seg, false, sock, o, cred.Pid, l.path, release)
	if err != nil {
		seg.unmap()
		release()
		reply(handshakeBadSegment)
		return err
	}
	c.replied = make(chan struct{})
	if !l.enqueue(acceptResult{conn: c}) {
		close(c.replied)
		c.Close()
		return nil
	}
	reply(handshakeOK)
	close(c.replied)
	return nil
}

// errRefused marks a handshake that refuseLimit already answered and
// reported.
var errRefused = errors.New("goipc: refused (already reported)")

func (l *Listener) reserveConn() bool {
	if l.conns.Add(1) > l.opts.maxConns {
		l.conns.Add(-1)
		return false
	}
	return true
}

func (l *Listener) reserveMapped(n int64) bool {
	if l.mapped.Add(n) > l.opts.maxMapped {
		l.mapped.Add(-n)
		return false
	}
	return true
}

// outOfDescriptors reports whether this process cannot open one more fd.
func outOfDescriptors() bool {
	fd, err := unix.Dup(0)
	if err == nil {
		unix.Close(fd)
		return false
	}
	return sys.IsFdExhaustion(err)
}
