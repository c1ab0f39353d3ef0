package goipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Transport carries goipc connections for addresses of one URL scheme
// (such as "nats://host:4222/subject") over something other than a
// shared kernel. Dial, DialContext and Listen hand such addresses to the
// transport registered for their scheme; every other address is a Unix
// socket path.
//
// A transport builds each connection from a Pipe: it returns one end to
// the user and drives the other end itself, moving messages between that
// end and its network. Every Conn method then works unchanged, in Go and
// through the C ABI. See goipc/natsbridge for the NATS transport.
type Transport interface {
	// Dial connects to addr (the whole address, scheme included) and
	// returns the user's end of the connection.
	Dial(ctx context.Context, addr string, opts *Options) (*Conn, error)

	// Listen starts accepting connections at addr. It hands each new
	// connection (the user's end) to offer, which returns nil when the
	// connection was queued for Accept, an error wrapping ErrLimit when a
	// listener limit refuses it, or ErrClosed when the Listener is closed;
	// on an error the transport closes the connection and tells its
	// client why. Closing the returned io.Closer stops accepting; it must
	// return ErrClosed when called again. Connections already offered
	// stay open.
	Listen(addr string, opts *Options, offer func(*Conn) error) (io.Closer, error)
}

var transports struct {
	sync.RWMutex
	byScheme map[string]Transport
}

// RegisterTransport makes Dial, DialContext and Listen hand addresses
// that start with scheme + "://" to t. A transport package calls it from
// its init function; importing the package (for its side effect) is then
// enough. Registering a scheme twice panics, as with database/sql drivers.
func RegisterTransport(scheme string, t Transport) {
	transports.Lock()
	defer transports.Unlock()
	if transports.byScheme == nil {
		transports.byScheme = map[string]Transport{}
	}
	if _, dup := transports.byScheme[scheme]; dup {
		panic("goipc: RegisterTransport called twice for scheme " + scheme)
	}
	transports.byScheme[scheme] = t
}

// transportFor returns the transport for addr when addr is a URL
// ("scheme://..."). A URL whose scheme has no transport registered is an
// error that says which package to import.
func transportFor(addr string) (Transport, bool, error) {
	scheme, _, isURL := strings.Cut(addr, "://")
	if !isURL || strings.ContainsRune(scheme, '/') {
		return nil, false, nil
	}
	transports.RLock()
	t := transports.byScheme[scheme]
	transports.RUnlock()
	if t == nil {
		hint := ""
		if scheme == "nats" || scheme == "tls" {
			hint = ` (import _ "github.com/goipc/goipc/goipc/natsbridge" to register it)`
		}
		return nil, true, fmt.Errorf("%w: no goipc transport registered for %q addresses%s", ErrInvalidArgument, scheme+"://", hint)
	}
	return t, true, nil
}

// Break makes the connection unusable: calls in progress and every later
// call (but Close and Stats) return err, which is wrapped in ErrProtocol
// when it does not wrap it already. It is meant for transports: a bridge
// that finds its network lost, repeated or reordered a message breaks the
// user's end, so that the gap is an error rather than a silent loss.
// Breaking a closed or already broken connection does nothing.
func (c *Conn) Break(err error) {
	if err == nil {
		err = errors.New("connection broken")
	}
	if !errors.Is(err, ErrProtocol) {
		err = fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	// The reference keeps the mapping while the eventcounts are woken.
	if c.enter(dirRecv) != nil {
		return
	}
	defer c.leave(dirRecv)
	c.fail(err)
	c.wakeLocalWaiters()
	c.notify.signal(dirRecv)
	c.notify.signal(dirSend)
}

// FrameKind says what a frame carries. It is meant for transports, which
// move every kind of frame, with its call id, between their end of a Pipe
// and their network (docs/PROTOCOL.md, "Calls").
type FrameKind uint8

const (
	FrameMessage FrameKind = frameKindMessage // a plain message
	FrameRequest FrameKind = frameKindRequest // a call request, answered by a reply with its ID
	FrameReply   FrameKind = frameKindReply   // the reply to the call request with its ID
)

// Frame is one frame as a transport reads (RecvFrameView) or writes
// (SendFrame) it: its kind, its call id (requests and replies), and its
// payload (without the id).
type Frame struct {
	Kind FrameKind
	ID   uint64
	Data []byte
}

// RecvFrameView is for transports: it returns the next frame of any kind,
// in place (valid until ReleaseView, as RecvView). Replies included: they
// are handed over with their ids instead of being routed to this end's
// calls, so a transport's end must not make calls itself. timeout is as
// for RecvTimeout.
func (c *Conn) RecvFrameView(timeout time.Duration) (Frame, error) {
	w := timeoutWait(timeout)
	f, err := c.recvFrame(takeMessage|takeRequest|takeReply, &w)
	return Frame{Kind: FrameKind(f.kind), ID: f.id, Data: f.payload}, err
}

// SendFrame is for transports: it writes f into the ring as it came from
// the network: a request keeps the id its caller chose (the reply must
// carry it back), a reply the id of the request it answers. timeout is as
// for SendTimeout (0: ErrTimeout at once if the ring is full). A call
// frame's payload is at most MaxCallSize bytes.
func (c *Conn) SendFrame(f Frame, timeout time.Duration) error {
	w := timeoutWait(timeout)
	switch f.Kind {
	case FrameMessage:
		return c.send(f.Data, w)
	case FrameRequest, FrameReply:
		if err := c.checkCallSize(len(f.Data), "call frame"); err != nil {
			return err
		}
		return c.sendCall(uint32(f.Kind), f.ID, f.Data, len(f.Data), nil, &w)
	}
	return fmt.Errorf("%w: frame kind %d", ErrInvalidArgument, f.Kind)
}
