package goipc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// The server's side of calls: receive a request, answer it with a reply
// carrying its id, in any order and from any goroutine.

// RecvRequest returns the next call request and its id, copied out of
// the ring. Answer it with Reply(id, ...), from any goroutine, in any
// order. Plain messages are left for Recv (see Call on the head-of-line
// rule). When ctx is done first it returns ctx.Err().
func (c *Conn) RecvRequest(ctx context.Context) (id uint64, req []byte, err error) {
	w := waitFor{ctx: ctx}
	f, err := c.recvFrame(takeRequest, &w)
	if err != nil {
		return 0, nil, err
	}
	req = append(make([]byte, 0, len(f.payload)), f.payload...)
	return f.id, req, c.ReleaseView()
}

// RecvRequestInto copies the next call request into buf and returns its
// id and length. If buf is too small it returns the length and an error
// wrapping ErrBufferTooSmall, and the request stays queued. timeout is as
// for RecvTimeout.
func (c *Conn) RecvRequestInto(buf []byte, timeout time.Duration) (id uint64, n int, err error) {
	w := timeoutWait(timeout)
	f, err := c.recvFrame(takeRequest, &w)
	if err != nil {
		return 0, 0, err
	}
	if len(f.payload) > len(buf) {
		c.unview(false)
		return 0, len(f.payload), fmt.Errorf("%w: request is %d bytes, buffer %d", ErrBufferTooSmall, len(f.payload), len(buf))
	}
	return f.id, copy(buf, f.payload), c.ReleaseView()
}

// RecvRequestView returns the next call request in place, in the ring,
// like RecvView: valid until ReleaseView, which must come before the next
// receive on this connection (the receive side is held meanwhile, so keep
// it short: other receivers and callers wait).
func (c *Conn) RecvRequestView(timeout time.Duration) (id uint64, req []byte, err error) {
	w := timeoutWait(timeout)
	f, err := c.recvFrame(takeRequest, &w)
	return f.id, f.payload, err
}

// Incoming is a message or a call request, read in place by RecvNextView.
type Incoming struct {
	Data []byte // in the ring, valid until ReleaseView
	Call bool   // a call request: answer it with Reply(ID, ...)
	ID   uint64 // the call's id
}

// RecvNextView returns the next plain message or call request, whichever
// comes first, in place (as RecvView). For servers that answer both, with
// no head-of-line wait between them.
func (c *Conn) RecvNextView(timeout time.Duration) (Incoming, error) {
	w := timeoutWait(timeout)
	f, err := c.recvFrame(takeMessage|takeRequest, &w)
	return Incoming{Data: f.payload, Call: f.kind == frameKindRequest, ID: f.id}, err
}

// Reply answers the call request id with reply (at most MaxCallSize
// bytes), waiting for ring space as long as it takes. Safe from any
// goroutine; replies may go in any order. A reply whose caller has given
// up is dropped by the peer.
func (c *Conn) Reply(id uint64, reply []byte) error {
	w := waitFor{}
	return c.reply(id, reply, &w)
}

// ReplyTimeout is Reply with a timeout, as for SendTimeout.
func (c *Conn) ReplyTimeout(id uint64, reply []byte, timeout time.Duration) error {
	w := timeoutWait(timeout)
	return c.reply(id, reply, &w)
}

func (c *Conn) reply(id uint64, reply []byte, w *waitFor) error {
	if err := c.checkCallSize(len(reply), "reply"); err != nil {
		return err
	}
	return c.sendCall(frameKindReply, id, reply, len(reply), nil, w)
}

// ReserveReply is Reserve for the reply to call id: it returns room for
// up to n bytes, to fill in place; Commit sends the first bytes as the
// reply, AbortReserve drops it. The send side is held meanwhile.
func (c *Conn) ReserveReply(id uint64, n int, timeout time.Duration) ([]byte, error) {
	if err := c.checkCallSize(n, "reply"); err != nil {
		return nil, err
	}
	buf, err := c.reserve(n+callIDSize, timeoutWait(timeout))
	if err != nil {
		return nil, err
	}
	c.prod.markCall(frameKindReply, id)
	return buf[callIDSize:], nil
}

// Handler answers one call: req is the request, valid only until the
// handler returns; the returned slice is the reply. A non-nil error ends
// the connection's serving (ServeConn returns it; Serve closes the
// connection, so the peer's calls fail with ErrPeerClosed): send
// application errors inside replies.
type Handler func(req []byte) ([]byte, error)

// DefaultServeConcurrency bounds the handlers a Server runs at once on
// one connection, when Server.Concurrency is 0.
const DefaultServeConcurrency = 8

// Server answers calls with Handler on every connection it serves, with up
// to Concurrency handlers at once per connection, replying as each one
// finishes (out of order). A plain message is handed to Handler too, and
// its answer, unless nil, is sent back as a plain message.
type Server struct {
	Handler     Handler
	Concurrency int // per connection; 0 means DefaultServeConcurrency
}

// Serve answers every call on every connection accepted from ln with h
// (see Server). It returns nil once ln is closed, after closing the
// connections it served and waiting for their handlers.
func Serve(ln *Listener, h Handler) error {
	return (&Server{Handler: h}).Serve(ln)
}

// Serve accepts connections from ln and serves each (ServeConn) until ln
// is closed; it then closes them, waits for their handlers, and returns
// nil. A failed handshake concerns one client and is skipped.
func (s *Server) Serve(ln *Listener) error {
	var mu sync.Mutex
	conns := map[*Conn]struct{}{}
	var wg sync.WaitGroup
	defer func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		c, err := ln.Accept()
		if errors.Is(err, ErrClosed) {
			return nil
		}
		if err != nil {
			continue
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.ServeConn(c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
}

// ServeConn answers the calls (and plain messages) that arrive on c until
// the connection ends: it returns nil when the peer closed it, else the
// error that ended it (a handler's, ErrClosed, a protocol error). It does
// not close c. Handlers start on demand: an idle connection has one
// goroutine, parked.
func (s *Server) ServeConn(c *Conn) error {
	limit := s.Concurrency
	if limit <= 0 {
		limit = DefaultServeConcurrency
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := &serveState{s: s, c: c, ctx: ctx, cancel: cancel, limit: limit}
	st.start()
	st.wg.Wait()
	cancel()
	if errors.Is(st.err, ErrPeerClosed) {
		return nil
	}
	return st.err
}

type serveState struct {
	s      *Server
	c      *Conn
	ctx    context.Context
	cancel context.CancelFunc
	limit  int
	wg     sync.WaitGroup

	mu      sync.Mutex
	workers int // running
	idle    int // waiting for a frame
	err     error
}

// start adds a worker; the caller holds no lock.
func (st *serveState) start() {
	st.mu.Lock()
	st.workers++
	st.idle++
	st.mu.Unlock()
	st.wg.Add(1)
	go st.work()
}

// stop records the first error and stops every worker.
func (st *serveState) stop(err error) {
	st.mu.Lock()
	if st.err == nil {
		st.err = err
	}
	st.mu.Unlock()
	st.cancel()
}

// work receives a frame, hands it to the handler, and answers; it starts
// another worker when it was the last idle one and the limit allows.
func (st *serveState) work() {
	defer st.wg.Done()
	c := st.c
	var buf []byte // the request, copied out of the ring: the handler may take its time
	for {
		w := waitFor{ctx: st.ctx}
		f, err := c.recvFrame(takeMessage|takeRequest, &w)
		if err != nil {
			if st.ctx.Err() == nil {
				st.stop(err)
			}
			return
		}
		buf = append(buf[:0], f.payload...)
		call, id := f.kind == frameKindRequest, f.id
		c.ReleaseView()
		st.mu.Lock()
		st.idle--
		more := st.idle == 0 && st.workers < st.limit
		st.mu.Unlock()
		if more {
			st.start()
		}
		out, err := st.s.Handler(buf)
		if err == nil {
			aw := waitFor{ctx: st.ctx}
			switch {
			case call:
				err = c.reply(id, out, &aw)
			case out != nil:
				err = c.send(out, aw)
			}
		}
		if err != nil {
			st.stop(err)
			return
		}
		st.mu.Lock()
		st.idle++
		st.mu.Unlock()
	}
}
