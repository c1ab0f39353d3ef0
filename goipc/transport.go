package goipc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
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
