package natsbridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/goipc/goipc/goipc"
)

// bridge carries one goipc connection over NATS. It owns one end of a
// goipc.Pipe (end); the user holds the other. Four goroutines run it:
//
//   - outbound reads what the user sent (end.RecvFrameView: messages,
//     call requests and replies, with their ids), waits for credit
//     and publishes it to the peer's inbox;
//   - the subscription callback (onMsg) checks each message from the peer
//     and writes its frame into end without waiting (SendFrame, timeout
//     0); when the user's ring is full it appends to the backlog, which
//   - writer moves into end as the user makes room (SendFrame, waiting);
//   - monitor sends heartbeats and declares the peer gone after
//     peerTimeout of silence.
//
// How a connection ends:
//   - the user closes its end: outbound forwards what the user had sent,
//     publishes close, and the bridge terminates;
//   - the peer closes, dies or the NATS connection is lost (peerDone):
//     outbound discards what the user sends from then on, writer delivers
//     the backlog, then the bridge terminates: closing end makes the user
//     see ErrPeerClosed once it has received everything;
//   - a protocol error (a gap, a duplicate, a malformed message): the
//     user's end is broken (goipc.ErrProtocol) and the bridge terminates.
type bridge struct {
	nc          *nats.Conn
	end         *goipc.Conn // the bridge's end of the pipe
	user        *goipc.Conn // the user's end, broken on a protocol error
	sub         *nats.Subscription
	peer        string // the peer's inbox
	addr        string // for messages (redacted)
	maxMessage  int
	heartbeat   time.Duration
	peerTimeout time.Duration
	window      uint64                           // our receive window, announced to the peer
	onEnd       func()                           // after termination: the dialer closes its NATS connection
	logf        func(format string, args ...any) // Options.Logf: why a connection ended abnormally

	// ready is closed once peer and the peer's window are known: the
	// dialer learns them from the welcome, after subscribing.
	ready chan struct{}

	// Sending side, guarded by sendMu; sendCond signals credit and ends.
	sendMu     sync.Mutex
	sendCond   *sync.Cond
	sent       uint64 // cumulative cost published
	granted    uint64 // cumulative cost the peer allows: what it took + its window
	peerWindow uint64
	peerDone   bool   // the peer closed or is gone: discard what the user sends
	ending     bool   // terminating: outbound stops
	seq        uint64 // last data seq published (outbound goroutine only)
	// published is seq once its message is in the NATS connection's
	// buffer: a heartbeat carries it, and NATS keeps one publisher's
	// messages in order, so the receiver can tell a lost last message.
	published atomic.Uint64

	// Receiving side. recvSeq belongs to the subscription callback; the
	// rest is guarded by inMu.
	recvSeq  uint64
	inMu     sync.Mutex
	backlog  []goipc.Frame // frames waiting for ring space, oldest first
	closing  bool          // deliver the backlog, then terminate
	userGone bool          // the user closed its end: drop what arrives
	broken   bool          // a protocol error broke the user's end
	taken    uint64        // cumulative cost taken in (written to the ring, or dropped after the user left)
	reported uint64        // taken as last sent in a credit
	wake     chan struct{}

	heard    atomic.Bool // the peer sent something since the monitor's last look
	spoke    atomic.Bool // we published something since the monitor's last look
	done     chan struct{}
	endOnce  sync.Once
	goneOnce sync.Once
}

func newBridge(nc *nats.Conn, end, user *goipc.Conn, addr string, maxMessage int, heartbeat, peerTimeout time.Duration, window uint64, logf func(string, ...any)) *bridge {
	if logf == nil {
		logf = log.Printf
	}
	b := &bridge{
		logf: logf,
		nc:   nc, end: end, user: user, addr: addr, maxMessage: maxMessage,
		heartbeat: heartbeat, peerTimeout: peerTimeout, window: window,
		ready: make(chan struct{}),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	b.sendCond = sync.NewCond(&b.sendMu)
	return b
}

// defaultWindow is the receive window a side announces: room for at
// least four maximum-size messages.
func defaultWindow(maxMessage int) uint64 {
	return max(uint64(minWindow), 4*cost(maxMessage))
}

// setPeer records the peer's inbox and window; onMsg waits for it.
func (b *bridge) setPeer(inbox string, window uint64) {
	b.peer = inbox
	b.peerWindow = window
	b.granted = window
	close(b.ready)
}

func (b *bridge) start() {
	go b.outbound()
	go b.writer()
	go b.monitor()
}

// ---- sending ----

func (b *bridge) outbound() {
	// Grows to the largest message sent: an idle connection does not
	// hold a maximum-size buffer.
	buf := make([]byte, 0, callHeader+min(b.maxMessage, 4096))
	defer func() {
		// After a protocol error the end stays open (see terminate)
		// until the user closes its own: wait for that, discarding
		// (a broken end sends nothing, but a view may be pending).
		b.inMu.Lock()
		broken := b.broken
		b.inMu.Unlock()
		for broken {
			if _, err := b.end.RecvFrameView(-1); err != nil {
				break
			}
			b.end.ReleaseView()
		}
		b.end.Close()
	}()
	for {
		// Messages, call requests and replies alike, in the ring's order,
		// each with its call id: the peer's bridge writes them into its
		// end as they were, so the callers' ids come back on their replies.
		f, err := b.end.RecvFrameView(-1)
		if err != nil {
			if errors.Is(err, goipc.ErrPeerClosed) {
				// The user closed its end after everything it sent was
				// forwarded: tell the peer where the stream ends.
				b.sendMu.Lock()
				tell := !b.peerDone && !b.ending
				b.sendMu.Unlock()
				if tell {
					b.publish(appendU64(nil, msgClose, b.seq))
					b.nc.Flush()
				}
				b.inMu.Lock()
				b.userGone = true
				b.inMu.Unlock()
			}
			b.terminate()
			return
		}
		forward, ok := b.waitCredit(frameCost(f))
		if !ok {
			b.end.ReleaseView()
			return
		}
		if !forward {
			b.end.ReleaseView()
			continue
		}
		b.seq++
		buf = appendFrame(buf[:0], b.seq, f)
		b.end.ReleaseView()
		if err := b.publishData(buf); err != nil {
			b.logf("goipc: %s: publish failed, ending the connection: %v", b.addr, err)
			b.peerGone()
		}
		b.published.Store(b.seq)
	}
}

// frameCost is what a frame counts against the peer's window.
func frameCost(f goipc.Frame) uint64 {
	if f.Kind == goipc.FrameMessage {
		return cost(len(f.Data))
	}
	return cost(len(f.Data) + 8)
}

// appendFrame appends the NATS message that carries frame f as message seq.
func appendFrame(buf []byte, seq uint64, f goipc.Frame) []byte {
	switch f.Kind {
	case goipc.FrameRequest:
		buf = binary.LittleEndian.AppendUint64(appendU64(buf, msgRequest, seq), f.ID)
	case goipc.FrameReply:
		buf = binary.LittleEndian.AppendUint64(appendU64(buf, msgReply, seq), f.ID)
	default:
		buf = appendU64(buf, msgData, seq)
	}
	return append(buf, f.Data...)
}

// waitCredit waits until the peer's window has room for a message of
// cost c and counts it as sent. forward is false when the peer is done
// (discard the message); ok is false when the bridge is terminating.
func (b *bridge) waitCredit(c uint64) (forward, ok bool) {
	b.sendMu.Lock()
	defer b.sendMu.Unlock()
	for {
		switch {
		case b.ending:
			return false, false
		case b.peerDone:
			return false, true
		// Within the window, or nothing outstanding (a message larger
		// than the window then still goes, alone).
		case b.sent+c <= b.granted || b.sent+b.peerWindow <= b.granted:
			b.sent += c
			return true, true
		}
		b.sendCond.Wait()
	}
}

// testFault, when set (by tests only), sees every data message before it
// is published and returns what to publish instead: nothing (a loss), the
// message twice (a duplicate), or other messages.
// Atomic: bridges of a finished test may still be running.
var testFault atomic.Pointer[func(msg []byte) [][]byte]

func (b *bridge) publishData(msg []byte) error {
	if f := testFault.Load(); f != nil {
		for _, m := range (*f)(msg) {
			if err := b.publish(m); err != nil {
				return err
			}
		}
		return nil
	}
	return b.publish(msg)
}

func (b *bridge) publish(msg []byte) error {
	b.spoke.Store(true)
	return b.nc.Publish(b.peer, msg)
}

// ---- receiving ----

// onMsg handles one message from the peer. It never waits for the user
// (a full ring sends data to the backlog), so heartbeats and credits are
// seen however slow the user is.
func (b *bridge) onMsg(m *nats.Msg) {
	select {
	case <-b.ready:
	case <-b.done: // the dial failed
		return
	}
	b.heard.Store(true)
	d := m.Data
	if len(d) == 0 {
		b.protocolError(fmt.Errorf("empty message from the peer"))
		return
	}
	switch d[0] {
	case msgData, msgRequest, msgReply:
		f, seq, err := b.parseFrame(d)
		if err != nil {
			b.protocolError(err)
			return
		}
		switch {
		case seq <= b.recvSeq:
			b.protocolError(fmt.Errorf("message %d received again after message %d (a duplicate)", seq, b.recvSeq))
			return
		case seq > b.recvSeq+1:
			b.protocolError(fmt.Errorf("message %d received after message %d: %d lost", seq, b.recvSeq, seq-b.recvSeq-1))
			return
		}
		b.recvSeq = seq
		b.deliver(f)
	case msgCredit:
		if len(d) != 9 {
			b.protocolError(fmt.Errorf("credit message of %d bytes", len(d)))
			return
		}
		b.credit(u64At(d))
	case msgHeartbeat:
		if len(d) != 9 {
			b.protocolError(fmt.Errorf("heartbeat message of %d bytes", len(d)))
			return
		}
		// A heartbeat may trail messages sent after it read its count
		// (last < recvSeq); one that is ahead names messages that can
		// no longer arrive: they were published before it.
		if last := u64At(d); last > b.recvSeq {
			b.protocolError(fmt.Errorf("the peer has sent %d messages, %d arrived: %d lost", last, b.recvSeq, last-b.recvSeq))
			return
		}
	case msgClose:
		if len(d) != 9 {
			b.protocolError(fmt.Errorf("close message of %d bytes", len(d)))
			return
		}
		if last := u64At(d); last != b.recvSeq {
			b.protocolError(fmt.Errorf("the peer closed after message %d, the last received is %d", last, b.recvSeq))
			return
		}
		b.peerGone()
	case msgAbort:
		b.protocolError(fmt.Errorf("the peer reported: %s", d[1:]))
	default:
		b.protocolError(fmt.Errorf("unknown message type %d from the peer", d[0]))
	}
}

// parseFrame checks a data, request or reply message from the peer and
// returns the frame it carries and its sequence number.
func (b *bridge) parseFrame(d []byte) (goipc.Frame, uint64, error) {
	f := goipc.Frame{Kind: goipc.FrameMessage}
	header, limit, what := dataHeader, b.maxMessage, "data"
	if d[0] != msgData {
		f.Kind, header, limit, what = goipc.FrameReply, callHeader, b.maxMessage-8, "reply"
		if d[0] == msgRequest {
			f.Kind, what = goipc.FrameRequest, "request"
		}
	}
	if len(d) < header {
		return f, 0, fmt.Errorf("%s message of %d bytes, shorter than its header", what, len(d))
	}
	seq := u64At(d)
	if len(d)-header > limit {
		return f, 0, fmt.Errorf("%s message %d is %d bytes, above the connection's maximum %d", what, seq, len(d)-header, limit)
	}
	if header == callHeader {
		f.ID = binary.LittleEndian.Uint64(d[dataHeader:callHeader])
	}
	f.Data = d[header:]
	return f, seq, nil
}

// deliver writes a frame into the user's ring, or queues it for the
// writer when the ring is full or older frames are queued.
func (b *bridge) deliver(f goipc.Frame) {
	b.inMu.Lock()
	defer b.inMu.Unlock()
	if b.userGone {
		b.took(frameCost(f))
		return
	}
	if len(b.backlog) == 0 {
		err := b.end.SendFrame(f, 0)
		switch {
		case err == nil:
			b.took(frameCost(f))
			return
		case errors.Is(err, goipc.ErrTimeout): // the ring is full
		case errors.Is(err, goipc.ErrPeerClosed): // the user closed its end
			b.userGone = true
			b.took(frameCost(f))
			return
		default: // ErrClosed (terminating) or a broken pipe
			return
		}
	}
	b.backlog = append(b.backlog, f) // nats.go gave us our own copy
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// took counts cost as taken in and, once a quarter of the window has
// been taken since the last credit, tells the peer. Called under inMu.
func (b *bridge) took(c uint64) {
	b.taken += c
	if b.taken-b.reported >= b.window/4 {
		b.reported = b.taken
		b.publish(appendU64(nil, msgCredit, b.taken))
	}
}

// credit records that the peer has taken in `taken` cost in total.
func (b *bridge) credit(taken uint64) {
	b.sendMu.Lock()
	if taken > b.sent {
		b.sendMu.Unlock()
		b.protocolError(fmt.Errorf("the peer granted credit for %d bytes, %d were sent", taken, b.sent))
		return
	}
	if g := taken + b.peerWindow; g > b.granted {
		b.granted = g
		b.sendCond.Broadcast()
	}
	b.sendMu.Unlock()
}

// writer moves the backlog into the user's ring, waiting for room.
func (b *bridge) writer() {
	for {
		select {
		case <-b.wake:
		case <-b.done:
			return
		}
		for {
			b.inMu.Lock()
			if b.userGone { // nobody will read them: taken all the same
				for _, f := range b.backlog {
					b.took(frameCost(f))
				}
				b.backlog = nil
			}
			if len(b.backlog) == 0 {
				closing := b.closing
				b.inMu.Unlock()
				if closing {
					b.terminate()
					return
				}
				break
			}
			f := b.backlog[0]
			b.inMu.Unlock()
			err := b.end.SendFrame(f, -1)
			b.inMu.Lock()
			b.backlog[0] = goipc.Frame{}
			b.backlog = b.backlog[1:]
			if errors.Is(err, goipc.ErrPeerClosed) {
				b.userGone = true
				err = nil
			}
			b.took(frameCost(f))
			b.inMu.Unlock()
			if err != nil { // ErrClosed: terminating
				return
			}
		}
	}
}

// ---- liveness ----

// monitor sends a heartbeat each interval in which nothing else was
// sent, and declares the peer gone after peerTimeout without a message
// from it: a dead peer is noticed within peerTimeout + heartbeat.
func (b *bridge) monitor() {
	t := time.NewTicker(b.heartbeat)
	defer t.Stop()
	var silent time.Duration
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
		}
		if !b.spoke.Swap(false) {
			b.publish(appendU64(nil, msgHeartbeat, b.published.Load()))
		}
		if b.heard.Swap(false) {
			silent = 0
			continue
		}
		silent += b.heartbeat
		if silent >= b.peerTimeout {
			b.logf("goipc: %s: nothing from the peer for %v (peer_timeout): the peer is gone, ending the connection", b.addr, silent)
			b.peerGone()
			return
		}
	}
}

// peerGone ends the connection from the peer's side: the peer closed,
// died, or this side's NATS connection was lost. The user receives what
// already arrived, then ErrPeerClosed.
func (b *bridge) peerGone() {
	b.goneOnce.Do(func() {
		b.sendMu.Lock()
		b.peerDone = true
		b.sendCond.Broadcast()
		b.sendMu.Unlock()
		b.inMu.Lock()
		b.closing = true
		b.inMu.Unlock()
		select {
		case b.wake <- struct{}{}:
		default:
		}
	})
}

// protocolError breaks the user's end with err, tells the peer, and
// terminates.
func (b *bridge) protocolError(err error) {
	b.user.Break(fmt.Errorf("%w: %s: %w", goipc.ErrProtocol, b.addr, err))
	b.inMu.Lock()
	b.broken, b.userGone, b.backlog = true, true, nil
	b.inMu.Unlock()
	b.publish(append([]byte{msgAbort}, err.Error()...))
	b.terminate()
}

// terminate stops the bridge: it closes its end (the user sees
// ErrPeerClosed once it has received what is in its ring), stops the
// goroutines and the subscription. After a protocol error the end stays
// open until the user closes its own (outbound then closes it): a closed
// peer would make the user's next Send report ErrPeerClosed rather than
// the ErrProtocol it was broken with.
func (b *bridge) terminate() {
	b.endOnce.Do(func() {
		b.sendMu.Lock()
		b.ending = true
		b.sendCond.Broadcast()
		b.sendMu.Unlock()
		close(b.done)
		b.inMu.Lock()
		broken := b.broken
		b.inMu.Unlock()
		if !broken {
			b.end.Close()
		}
		if b.sub != nil {
			b.sub.Unsubscribe()
		}
		if b.onEnd != nil {
			b.onEnd()
		}
	})
}
