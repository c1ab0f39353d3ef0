package natsbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/goipc/goipc/goipc"
)

// transport is the goipc.Transport for nats:// and tls:// addresses.
type transport struct{}

func init() {
	goipc.RegisterTransport("nats", transport{})
	goipc.RegisterTransport("tls", transport{})
}

// connect opens a NATS connection for addr within ctx's deadline.
func connect(ctx context.Context, a *address, extra ...nats.Option) (*nats.Conn, error) {
	// The servers are tried in the order given: the first is preferred.
	// Asynchronous errors (a dropped connection) reach the bridges through
	// the disconnect handlers; nats.go's default handler would print them.
	opts := append([]nats.Option{nats.DontRandomize(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})}, a.natsOpts...)
	opts = append(opts, extra...)
	// Each try gets what is left of ctx's deadline (a later option
	// overrides an earlier one), so retries never outlast it.
	withTimeout := func() []nats.Option {
		if dl, ok := ctx.Deadline(); ok {
			return append(opts[:len(opts):len(opts)], nats.Timeout(max(time.Until(dl), time.Millisecond)))
		}
		return opts
	}
	nc, err := nats.Connect(a.servers, withTimeout()...)
	for try := 1; err != nil && isEarlyPing(err) && try < connectTries && ctx.Err() == nil; try++ {
		nc, err = nats.Connect(a.servers, withTimeout()...)
	}
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
			return nil, fmt.Errorf("%w: NATS server %s refused the credentials: %w", goipc.ErrPermission, a.redacted, err)
		}
		return nil, fmt.Errorf("goipc: cannot reach a NATS server at %s: %w", a.redacted, err)
	}
	return nc, nil
}

// connectTries bounds the connects that isEarlyPing retries.
const connectTries = 3

// isEarlyPing reports nats.go's "expected 'PONG', got 'PING'": a
// server that took more than a second to answer the client's first PING
// (a loaded machine, dozens of connects at once) sends its own RTT PING
// first, and nats.go gives up on the connect (nats-server issue 1174).
// It is transient: a new connect succeeds. nats.go has no sentinel error
// for it, hence the text.
func isEarlyPing(err error) bool {
	return strings.Contains(err.Error(), "expected 'PONG', got 'PING'")
}

// maxMessageFor is the connection's maximum message size: the one asked
// for, or by default goipc's default bounded by what the server carries.
func maxMessageFor(asked int, maxPayload int64, server string) (int, error) {
	room := maxPayload - dataHeader
	if asked == 0 {
		return int(min(int64(goipc.DefaultMaxMessageSize), room)), nil
	}
	if int64(asked) > room {
		return 0, fmt.Errorf("%w: MaxMessageSize %d does not fit the NATS server's max_payload %d at %s (%d bytes are the bridge's header): lower MaxMessageSize or raise max_payload",
			goipc.ErrInvalidArgument, asked, maxPayload, server, dataHeader)
	}
	return asked, nil
}

// Dial connects to the goipc listener at a nats:// address; see the
// package documentation.
func (transport) Dial(ctx context.Context, addr string, opts *goipc.Options) (*goipc.Conn, error) {
	a, err := parseAddress(addr)
	if err != nil {
		return nil, err
	}
	o := pipeOptions(opts)
	timeout := o.HandshakeTimeout
	if timeout <= 0 {
		timeout = goipc.DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	name := redact(addr)

	// lost is closed when the NATS connection drops: the bridge, made
	// later, then ends the connection.
	lost := make(chan struct{})
	var lostErr error
	nc, err := connect(ctx, a, nats.NoReconnect(), nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
		select {
		case <-lost:
		default:
			lostErr = err
			close(lost)
		}
	}))
	if err != nil {
		return nil, fmt.Errorf("goipc: dial %s: %w", name, err)
	}
	o.MaxMessageSize, err = maxMessageFor(o.MaxMessageSize, nc.MaxPayload(), a.redacted)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("goipc: dial %s: %w", name, err)
	}
	user, end, err := goipc.Pipe(&o)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("goipc: dial %s: %w", name, err)
	}
	window := defaultWindow(o.MaxMessageSize)
	if a.window > 0 {
		window = uint64(a.window)
	}
	br := newBridge(nc, end, user, name, o.MaxMessageSize, a.heartbeat, a.peerTimeout, window, o.Logf)
	br.onEnd = nc.Close
	fail := func(err error) (*goipc.Conn, error) {
		br.terminate()
		user.Close()
		return nil, err
	}
	inbox := nc.NewInbox()
	if br.sub, err = nc.Subscribe(inbox, br.onMsg); err != nil {
		return fail(fmt.Errorf("goipc: dial %s: subscribe: %w", name, err))
	}
	// Credit bounds what can be pending; nats.go must never drop.
	br.sub.SetPendingLimits(-1, -1)
	h := hello{
		Version: protocolVersion, Inbox: inbox, MaxMessage: o.MaxMessageSize, Window: int64(window),
		HeartbeatMs: a.heartbeat.Milliseconds(), PeerTimeoutMs: a.peerTimeout.Milliseconds(),
	}
	reply, err := request(ctx, nc, a.subject, encodeJSON(&h))
	if err != nil {
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			err = fmt.Errorf("goipc: dial %s: no goipc listener on subject %q (is a goipc listener running there?)", name, a.subject)
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			err = fmt.Errorf("%w: dial %s: no answer from a listener within %v", goipc.ErrTimeout, name, timeout)
		default:
			err = fmt.Errorf("goipc: dial %s: connect request: %w", name, err)
		}
		return fail(err)
	}
	var w welcome
	if err := json.Unmarshal(reply.Data, &w); err != nil {
		return fail(fmt.Errorf("%w: dial %s: the listener's reply is not a goipc welcome: %v", goipc.ErrProtocol, name, err))
	}
	if err := welcomeError(&w, name); err != nil {
		return fail(err)
	}
	if !validSubject(w.Inbox) || w.Window <= 0 {
		return fail(fmt.Errorf("%w: dial %s: the listener's welcome has no valid inbox or window", goipc.ErrProtocol, name))
	}
	br.setPeer(w.Inbox, uint64(w.Window))
	br.start()
	go func() {
		select {
		case <-lost:
			select {
			case <-br.done: // our own Close
			default:
				if lostErr == nil {
					lostErr = errors.New("closed by the server")
				}
				br.logf("goipc: %s: the NATS connection dropped (%v), ending the connection", name, lostErr)
			}
			br.peerGone()
		case <-br.done:
		}
	}()
	return user, nil
}

// noListenerGrace is how long Dial retries a connect request that no
// listener received ("no responders"): in a cluster, a listener's
// subscription reaches the other nodes a few milliseconds after Listen
// returned, and a dialer on another node must not fail in between.
const noListenerGrace = 500 * time.Millisecond

// request sends the connect request, retrying "no responders" for
// noListenerGrace (within ctx).
func request(ctx context.Context, nc *nats.Conn, subject string, data []byte) (*nats.Msg, error) {
	giveUp := time.Now().Add(noListenerGrace)
	wait := 5 * time.Millisecond
	for {
		reply, err := nc.RequestWithContext(ctx, subject, data)
		if !errors.Is(err, nats.ErrNoResponders) || time.Now().Add(wait).After(giveUp) {
			return reply, err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, err
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// welcomeError maps a refusal to the error a Unix-socket dial would give.
func welcomeError(w *welcome, name string) error {
	if w.Version != protocolVersion && w.Status != statusOK {
		return fmt.Errorf("%w: dial %s: the listener speaks bridge protocol version %d, this side %d", goipc.ErrVersionMismatch, name, w.Version, protocolVersion)
	}
	switch w.Status {
	case statusOK:
		if w.Version != protocolVersion {
			return fmt.Errorf("%w: dial %s: the listener speaks bridge protocol version %d, this side %d", goipc.ErrVersionMismatch, name, w.Version, protocolVersion)
		}
		return nil
	case statusVersion:
		return fmt.Errorf("%w: dial %s: %s", goipc.ErrVersionMismatch, name, w.Error)
	case statusTooLarge:
		return fmt.Errorf("%w: dial %s: the listener refused the connection: %s", goipc.ErrInvalidArgument, name, w.Error)
	case statusLimit:
		return fmt.Errorf("%w: dial %s: %s", goipc.ErrLimit, name, w.Error)
	case statusClosed:
		return fmt.Errorf("%w: dial %s: the listener is closing", goipc.ErrPeerClosed, name)
	default:
		return fmt.Errorf("goipc: dial %s: the listener refused the connection: %s", name, w.Error)
	}
}

// pipeOptions are the options of a bridged connection's pipe: the
// user's, except that the default spin is none. A message over NATS takes
// tens of microseconds or more, so a spinning wait (in the user's call or
// the bridge's) would only take the CPU that NATS needs; an explicit
// Options.Spin is kept.
func pipeOptions(opts *goipc.Options) goipc.Options {
	var o goipc.Options
	if opts != nil {
		o = *opts
	}
	if o.Spin == goipc.SpinDefault {
		o.Spin = goipc.SpinNever
	}
	return o
}
