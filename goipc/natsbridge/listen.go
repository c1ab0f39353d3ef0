package natsbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/goipc/goipc/goipc"
)

// listener accepts goipc connections on a NATS subject. Its NATS
// connection reconnects (to another node of a cluster) when it drops,
// and the queue subscription comes back with it; the connections it
// carried end (ErrPeerClosed), since messages may have been lost.
type listener struct {
	nc    *nats.Conn
	a     *address
	name  string
	opts  goipc.Options
	offer func(*goipc.Conn) error
	sub   *nats.Subscription
	logf  func(format string, args ...any)

	mu      sync.Mutex
	bridges map[*bridge]struct{}
	closed  bool
}

// Listen serves a nats:// address: see the package documentation.
func (transport) Listen(addr string, opts *goipc.Options, offer func(*goipc.Conn) error) (io.Closer, error) {
	a, err := parseAddress(addr)
	if err != nil {
		return nil, err
	}
	l := &listener{a: a, name: redact(addr), offer: offer, bridges: map[*bridge]struct{}{}}
	l.opts = pipeOptions(opts)
	l.logf = l.opts.Logf
	if l.logf == nil {
		l.logf = log.Printf
	}
	timeout := l.opts.HandshakeTimeout
	if timeout <= 0 {
		timeout = goipc.DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	l.nc, err = connect(ctx, a,
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { l.lost(err) }))
	if err != nil {
		return nil, fmt.Errorf("goipc: listen %s: %w", l.name, err)
	}
	if l.opts.MaxMessageSize != 0 {
		if _, err := maxMessageFor(l.opts.MaxMessageSize, l.nc.MaxPayload(), a.redacted); err != nil {
			l.nc.Close()
			return nil, fmt.Errorf("goipc: listen %s: %w", l.name, err)
		}
	}
	l.sub, err = l.nc.QueueSubscribe(a.subject, a.queue, l.onHello)
	if err == nil {
		// The subscription is known to the server once Flush returns: a
		// dialer started after Listen returned finds it.
		err = l.nc.FlushWithContext(ctx)
	}
	if err != nil {
		l.nc.Close()
		return nil, fmt.Errorf("goipc: listen %s: subscribe: %w", l.name, err)
	}
	return l, nil
}

// Close stops accepting. Connections already offered stay open; the NATS
// connection closes with the last of them.
func (l *listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return goipc.ErrClosed
	}
	l.closed = true
	idle := len(l.bridges) == 0
	l.mu.Unlock()
	l.sub.Unsubscribe()
	if idle {
		l.nc.Close()
	}
	return nil
}

// lost ends every connection when the NATS connection drops.
func (l *listener) lost(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		err = errors.New("closed by the server")
	}
	if len(l.bridges) > 0 {
		l.logf("goipc: listener %s: the NATS connection dropped (%v): ending its %d connections; reconnecting", l.name, err, len(l.bridges))
	}
	for b := range l.bridges {
		b.peerGone()
	}
}

func (l *listener) ended(b *bridge) {
	l.mu.Lock()
	delete(l.bridges, b)
	last := l.closed && len(l.bridges) == 0
	l.mu.Unlock()
	if last {
		l.nc.Close()
	}
}

// onHello answers one dialer's connect request.
func (l *listener) onHello(m *nats.Msg) {
	respond := func(w welcome) {
		w.Version = protocolVersion
		m.Respond(encodeJSON(&w))
	}
	refuse := func(status string, format string, args ...any) {
		respond(welcome{Status: status, Error: fmt.Sprintf(format, args...)})
	}
	var h hello
	if err := json.Unmarshal(m.Data, &h); err != nil {
		refuse(statusError, "the connect request is not a goipc hello: %v", err)
		return
	}
	if h.Version != protocolVersion {
		refuse(statusVersion, "the dialer speaks bridge protocol version %d, the listener %d", h.Version, protocolVersion)
		return
	}
	limit := l.opts.MaxMessageSize
	if limit == 0 {
		limit = goipc.DefaultMaxMessageSize
	}
	limit = int(min(int64(limit), l.nc.MaxPayload()-dataHeader))
	switch {
	case !validSubject(h.Inbox):
		refuse(statusError, "invalid inbox %q", h.Inbox)
		return
	case h.MaxMessage <= 0 || h.MaxMessage > limit:
		refuse(statusTooLarge, "maximum message size %d is not in [1, %d] (the listener's MaxMessageSize and the server's max_payload)", h.MaxMessage, limit)
		return
	case h.Window <= 0, h.heartbeat() < 10*time.Millisecond, h.peerTimeout() < 2*h.heartbeat():
		refuse(statusError, "invalid window %d, heartbeat %v or peer timeout %v", h.Window, h.heartbeat(), h.peerTimeout())
		return
	}
	o := l.opts
	o.MaxMessageSize = h.MaxMessage
	user, end, err := goipc.Pipe(&o)
	if err != nil {
		refuse(statusError, "%v", err)
		return
	}
	window := defaultWindow(h.MaxMessage)
	if l.a.window > 0 {
		window = uint64(l.a.window)
	}
	b := newBridge(l.nc, end, user, l.name, h.MaxMessage, h.heartbeat(), h.peerTimeout(), window, l.logf)
	b.onEnd = func() { l.ended(b) }
	b.setPeer(h.Inbox, uint64(h.Window))
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		user.Close()
		end.Close()
		refuse(statusClosed, "the listener is closing")
		return
	}
	l.bridges[b] = struct{}{}
	l.mu.Unlock()
	inbox := l.nc.NewInbox()
	if b.sub, err = l.nc.Subscribe(inbox, b.onMsg); err != nil {
		user.Close()
		b.terminate()
		refuse(statusError, "subscribe: %v", err)
		return
	}
	b.sub.SetPendingLimits(-1, -1)
	if err := l.offer(user); err != nil {
		user.Close()
		b.terminate()
		switch {
		case errors.Is(err, goipc.ErrLimit):
			refuse(statusLimit, "%v", err)
		case errors.Is(err, goipc.ErrClosed):
			refuse(statusClosed, "the listener is closing")
		default:
			refuse(statusError, "%v", err)
		}
		return
	}
	b.start()
	respond(welcome{Status: statusOK, Inbox: inbox, Window: int64(window)})
}
