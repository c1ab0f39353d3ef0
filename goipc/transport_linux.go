//go:build linux

package goipc

import "fmt"

// listenTransport makes a Listener whose connections come from a
// Transport instead of a Unix socket. Accept, the connection limits
// (MaxConns, MaxMappedBytes) and Close work as for a socket path.
func listenTransport(t Transport, addr string, opts *Options) (*Listener, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	l := &Listener{
		path:     addr,
		opts:     o,
		queued:   make(chan struct{}, 1),
		closed:   make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	close(l.loopDone) // no accept loop: the transport offers connections
	remote, err := t.Listen(addr, opts, l.offer)
	if err != nil {
		return nil, err
	}
	l.remote = remote
	return l, nil
}

// offer queues a transport's connection for Accept, within the
// listener's limits; the connection returns its share when released.
func (l *Listener) offer(c *Conn) error {
	size := int64(len(c.seg.mem))
	if !l.reserveConn() {
		err := fmt.Errorf("%w: refused a client on %s: %s = %d reached", ErrLimit, l.path, limitNames[limitConns], l.opts.maxConns)
		l.logLimit(limitConns, "goipc: listener %s: %v (logged once)", l.path, err)
		return err
	}
	if !l.reserveMapped(size) {
		l.conns.Add(-1)
		err := fmt.Errorf("%w: refused a client on %s: %s = %d reached", ErrLimit, l.path, limitNames[limitMappedBytes], l.opts.maxMapped)
		l.logLimit(limitMappedBytes, "goipc: listener %s: %v (logged once)", l.path, err)
		return err
	}
	// Not yet shared: nobody can release c while this is set.
	c.onRelease = func() {
		l.mapped.Add(-size)
		l.conns.Add(-1)
	}
	if !l.enqueue(acceptResult{conn: c}) {
		c.onRelease = nil
		l.mapped.Add(-size)
		l.conns.Add(-1)
		return ErrClosed
	}
	return nil
}
