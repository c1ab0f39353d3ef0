package goipc

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

// batchOf returns n messages of varied sizes (up to max bytes), each
// naming its index.
func batchOf(n, max int) [][]byte {
	msgs := make([][]byte, n)
	for i := range msgs {
		prefix := []byte(fmt.Sprintf("message %d|", i))
		pad := (i * 53) % (max - len(prefix) + 1)
		msgs[i] = append(prefix, bytes.Repeat([]byte{byte(i)}, pad)...)
	}
	return msgs
}

// expectMessages receives len(want) messages from c and checks each.
func expectMessages(t *testing.T, c *Conn, want [][]byte) {
	t.Helper()
	for i, w := range want {
		got, err := c.RecvTimeout(10 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("message %d: got %d bytes %q..., want %d bytes %q...", i, len(got), got[:min(len(got), 16)], len(w), w[:min(len(w), 16)])
		}
	}
}

func TestSendBatchInOrder(t *testing.T) {
	client, server := pair(t, nil, nil)
	for round := 0; round < 3; round++ {
		msgs := batchOf(200, 1000)
		n, err := client.SendBatch(msgs)
		if n != len(msgs) || err != nil {
			t.Fatalf("SendBatch: %d of %d sent, %v", n, len(msgs), err)
		}
		expectMessages(t, server, msgs)
	}
	// Plain messages still interleave with batches, in order.
	if err := client.Send([]byte("after")); err != nil {
		t.Fatal(err)
	}
	expectMessages(t, server, [][]byte{[]byte("after")})
}

// A batch larger than the ring publishes what it wrote before it waits
// for space: the receiver drains it while it is being sent.
func TestSendBatchLargerThanRing(t *testing.T) {
	opts := &Options{RingSize: 4096, MaxMessageSize: 512}
	client, server := pair(t, opts, nil)
	msgs := batchOf(2000, 512) // about 500 KB through a 4 KiB ring
	done := make(chan error, 1)
	go func() {
		n, err := client.SendBatch(msgs)
		if err == nil && n != len(msgs) {
			err = fmt.Errorf("%d of %d sent", n, len(msgs))
		}
		done <- err
	}()
	expectMessages(t, server, msgs)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// With timeout 0, a batch sends what fits and reports how much that was;
// the receiver gets exactly those messages, and the rest can follow.
func TestSendBatchTimeoutSendsPrefix(t *testing.T) {
	opts := &Options{RingSize: 4096, MaxMessageSize: 256}
	client, server := pair(t, opts, nil)
	msgs := make([][]byte, 100)
	for i := range msgs {
		msgs[i] = bytes.Repeat([]byte{byte(i)}, 200)
	}
	n, err := client.SendBatchTimeout(msgs, 0)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("SendBatchTimeout(0) on a batch larger than the ring: %d sent, err %v, want ErrTimeout", n, err)
	}
	if n <= 0 || n >= len(msgs) {
		t.Fatalf("SendBatchTimeout(0): %d of %d sent, want a proper prefix", n, len(msgs))
	}
	expectMessages(t, server, msgs[:n])
	if _, err := server.RecvTimeout(0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("after the sent prefix the ring must be empty: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		rest, err := client.SendBatchTimeout(msgs[n:], 10*time.Second)
		if err == nil && rest != len(msgs)-n {
			err = fmt.Errorf("the rest: %d of %d sent", rest, len(msgs)-n)
		}
		done <- err
	}()
	expectMessages(t, server, msgs[n:])
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A batch wakes a parked receiver once, not once per message: its frames
// are published together.
func TestSendBatchWakesOnce(t *testing.T) {
	client, server := pair(t, &Options{Spin: SpinNever}, &Options{Spin: SpinNever})
	msgs := batchOf(100, 64)
	got := make(chan error, 1)
	go func() {
		// The first receive parks (SpinNever); the rest find their
		// messages already published.
		for i, w := range msgs {
			m, err := server.Recv()
			if err == nil && !bytes.Equal(m, w) {
				err = fmt.Errorf("message %d: got %q, want %q", i, m, w)
			}
			if err != nil {
				got <- err
				return
			}
		}
		got <- nil
	}()
	waitUntil(t, "the receiver parked", func() bool {
		st, err := server.Stats()
		return err == nil && st.Received.ReceiverParked
	})
	before, err := client.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := client.SendBatch(msgs); n != len(msgs) || err != nil {
		t.Fatalf("SendBatch: %d sent, %v", n, err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	after, err := client.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if w := after.Sent.Wakeups - before.Sent.Wakeups; w != 1 {
		t.Fatalf("a batch of %d messages to a parked receiver woke it %d times, want 1", len(msgs), w)
	}
	if m := after.Sent.Messages - before.Sent.Messages; m != uint64(len(msgs)) {
		t.Fatalf("sent-messages counter moved by %d, want %d", m, len(msgs))
	}
}

func TestSendBatchRefusals(t *testing.T) {
	client, server := pair(t, &Options{MaxMessageSize: 1000, RingSize: 8192}, nil)
	if n, err := client.SendBatch(nil); n != 0 || err != nil {
		t.Fatalf("empty batch: %d, %v", n, err)
	}
	// One oversized message refuses the whole batch before anything is sent.
	msgs := [][]byte{[]byte("a"), make([]byte, 1001), []byte("c")}
	if n, err := client.SendBatch(msgs); n != 0 || !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("batch with an oversized message: %d sent, %v", n, err)
	}
	if _, err := server.RecvTimeout(0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a refused batch must send nothing: %v", err)
	}
	// The connection is still usable.
	if n, err := client.SendBatch([][]byte{[]byte("x"), []byte("y")}); n != 2 || err != nil {
		t.Fatalf("batch after a refusal: %d, %v", n, err)
	}
	expectMessages(t, server, [][]byte{[]byte("x"), []byte("y")})
	client.Close()
	if n, err := client.SendBatch([][]byte{[]byte("z")}); n != 0 || !errors.Is(err, ErrClosed) {
		t.Fatalf("batch on a closed connection: %d, %v", n, err)
	}
}

// A batch to a peer that is gone fails with ErrPeerClosed and sends nothing.
func TestSendBatchPeerGone(t *testing.T) {
	client, server := pair(t, nil, nil)
	server.Close()
	waitUntil(t, "the client saw its peer close", func() bool {
		_, err := client.RecvTimeout(0)
		return errors.Is(err, ErrPeerClosed)
	})
	if n, err := client.SendBatch([][]byte{[]byte("x")}); n != 0 || !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("batch to a closed peer: %d, %v", n, err)
	}
}

// A producer that a full ring keeps waiting is woken about once per
// quarter ring of freed space, not once per message (ring.go, settle;
// docs/PROTOCOL.md, "Freed space in quarters").
func TestFullRingWakesProducerPerQuarter(t *testing.T) {
	const ring, size, count = 16384, 64, 20000
	opts := &Options{RingSize: ring, MaxMessageSize: 1024, Spin: SpinNever}
	client, server := pair(t, opts, &Options{Spin: SpinNever})
	streamInOrder(t, client, server, size, count)
	st, err := server.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Every frame is 72 bytes: the stream moves count*72 bytes, which is
	// count*72/(ring/4) quarters. Allow twice that, plus the wakeups of
	// the rounds where the consumer read everything it had seen.
	quarters := uint64(count * frameSize(size) / (ring / 4))
	if limit := 2*quarters + 64; st.Received.Wakeups > limit {
		t.Fatalf("the consumer woke the producer %d times for %d messages (%d quarter rings), want at most %d",
			st.Received.Wakeups, count, quarters, limit)
	}
	t.Logf("%d messages, %d wakeups of the producer", count, st.Received.Wakeups)
}

// recvBatches receives len(want) messages with RecvBatch (at most max per
// call) and checks each; it returns the number of calls it took.
func recvBatches(t *testing.T, c *Conn, want [][]byte, max int) int {
	t.Helper()
	buf := make([]byte, 64<<10)
	sizes := make([]int, max)
	calls := 0
	for i := 0; i < len(want); {
		n, err := c.RecvBatch(buf, sizes, 10*time.Second)
		if err != nil {
			t.Fatalf("RecvBatch at message %d: %v", i, err)
		}
		if n < 1 || n > max || i+n > len(want) {
			t.Fatalf("RecvBatch at message %d took %d messages (room for %d, %d left)", i, n, max, len(want)-i)
		}
		calls++
		off := 0
		for k := 0; k < n; k++ {
			got := buf[off : off+sizes[k]]
			if !bytes.Equal(got, want[i]) {
				t.Fatalf("message %d: got %d bytes %q..., want %d bytes", i, len(got), got[:min(len(got), 16)], len(want[i]))
			}
			off += sizes[k]
			i++
		}
	}
	return calls
}

func TestRecvBatchInOrder(t *testing.T) {
	client, server := pair(t, nil, nil)
	msgs := batchOf(500, 1000)
	if n, err := client.SendBatch(msgs); n != len(msgs) || err != nil {
		t.Fatalf("SendBatch: %d, %v", n, err)
	}
	// Everything is published: a call takes as many as its sizes allow.
	if calls := recvBatches(t, server, msgs, 64); calls != (len(msgs)+63)/64 {
		t.Fatalf("500 published messages took %d RecvBatch calls of up to 64, want %d", calls, (len(msgs)+63)/64)
	}
	if _, err := server.RecvBatch(make([]byte, 10), make([]int, 4), 0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("RecvBatch on an empty ring with timeout 0: %v, want ErrTimeout", err)
	}
}

// A stream through a small ring, sent one by one and received in
// batches: nothing lost, nothing reordered, and the space goes back.
func TestRecvBatchStream(t *testing.T) {
	client, server := pair(t, &Options{RingSize: 4096, MaxMessageSize: 512}, nil)
	msgs := batchOf(3000, 512)
	sent := make(chan error, 1)
	go func() {
		for i, m := range msgs {
			if err := client.Send(m); err != nil {
				sent <- fmt.Errorf("message %d: %w", i, err)
				return
			}
		}
		sent <- nil
	}()
	recvBatches(t, server, msgs, 16)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

func TestRecvBatchBufferLimits(t *testing.T) {
	client, server := pair(t, nil, nil)
	small, big := []byte("small"), bytes.Repeat([]byte{7}, 100)
	if n, err := client.SendBatch([][]byte{big, small, big}); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	sizes := make([]int, 8)
	buf := make([]byte, 50)
	// The first message does not fit: refused, and it stays.
	if n, err := server.RecvBatch(buf, sizes, 0); n != 0 || !errors.Is(err, ErrBufferTooSmall) || sizes[0] != len(big) {
		t.Fatalf("first message larger than the buffer: %d, %v, size %d reported (want %d)", n, err, sizes[0], len(big))
	}
	if got, err := server.RecvTimeout(0); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("the refused message must stay: %d bytes, %v", len(got), err)
	}
	// A later one that does not fit ends the batch and comes next.
	if n, err := server.RecvBatch(buf, sizes, 0); n != 1 || err != nil || !bytes.Equal(buf[:sizes[0]], small) {
		t.Fatalf("batch ending before a message that does not fit: %d, %v", n, err)
	}
	if got, err := server.RecvTimeout(0); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("the message after the batch: %d bytes, %v", len(got), err)
	}
	if _, err := server.RecvBatch(buf, nil, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("RecvBatch without sizes: %v", err)
	}
}

// A peer's last messages are delivered before ErrPeerClosed.
func TestRecvBatchDrainsClosedPeer(t *testing.T) {
	client, server := pair(t, nil, nil)
	msgs := batchOf(40, 100)
	if n, err := client.SendBatch(msgs); n != len(msgs) || err != nil {
		t.Fatal(n, err)
	}
	client.Close()
	recvBatches(t, server, msgs, 7)
	if _, err := server.RecvBatch(make([]byte, 1000), make([]int, 4), 10*time.Second); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("after the last message: %v, want ErrPeerClosed", err)
	}
}

// Close wakes a blocked SendBatch (ring full) and a blocked RecvBatch
// (ring empty) with ErrClosed; the batch reports what it sent before, and
// the peer receives exactly that, in order.
func TestCloseInterruptsBatches(t *testing.T) {
	for _, spin := range []time.Duration{SpinNever, SpinDefault, SpinForever} {
		client, server := pair(t, &Options{Spin: spin, RingSize: 4096, MaxMessageSize: 256}, &Options{Spin: spin})
		msgs := make([][]byte, 200) // about 10 rings' worth: the batch blocks
		for i := range msgs {
			msgs[i] = bytes.Repeat([]byte{byte(i)}, 200)
		}
		type result struct {
			n   int
			err error
		}
		sent, got := make(chan result, 1), make(chan result, 1)
		go func() { n, err := client.SendBatch(msgs); sent <- result{n, err} }()
		go func() {
			n, err := client.RecvBatch(make([]byte, 1024), make([]int, 8), -1)
			got <- result{n, err}
		}()
		waitUntil(t, "the batch to fill the ring", func() bool {
			st, err := client.Stats()
			return err == nil && st.Sent.InUse+2*frameSize(200) > st.Sent.Capacity
		})
		if err := client.Close(); err != nil {
			t.Fatal(err)
		}
		s, r := <-sent, <-got
		if !errors.Is(s.err, ErrClosed) || s.n <= 0 || s.n >= len(msgs) {
			t.Fatalf("spin %v: SendBatch after Close: %d sent, %v (want a proper prefix and ErrClosed)", spin, s.n, s.err)
		}
		if !errors.Is(r.err, ErrClosed) || r.n != 0 {
			t.Fatalf("spin %v: RecvBatch after Close: %d, %v", spin, r.n, r.err)
		}
		recvBatches(t, server, msgs[:s.n], 8)
		if _, err := server.RecvBatch(make([]byte, 1024), make([]int, 8), 10*time.Second); !errors.Is(err, ErrPeerClosed) {
			t.Fatalf("spin %v: after the sent prefix: %v, want ErrPeerClosed", spin, err)
		}
	}
}

// Options.FreeSpaceInPieces on the receiving side: a stream through a ring
// it keeps full arrives whole and in order, with the sender parking (the
// quarter rule on top of the pieces) or spinning; the option is the
// receiver's alone; and a receiver that has read everything it saw has
// returned all of it (docs/PROTOCOL.md, "Freed space in pieces (opt-in)").
func TestFreeSpaceInPieces(t *testing.T) {
	for _, spin := range []time.Duration{SpinNever, SpinDefault} {
		t.Run(fmt.Sprint(spin), func(t *testing.T) {
			const ring, size, count = 16384, 64, 20000
			client, server := pair(t, &Options{RingSize: ring, MaxMessageSize: 1024, Spin: spin},
				&Options{Spin: spin, FreeSpaceInPieces: true})
			if server.cons.piece != ring/freedPieces || client.cons.piece != 0 {
				t.Fatalf("pieces: receiving side %d, want %d; sending side %d, want 0",
					server.cons.piece, ring/freedPieces, client.cons.piece)
			}
			streamInOrder(t, client, server, size, count)

			// Fill the ring, then read everything: all the space is back.
			msg, buf := make([]byte, size), make([]byte, 1024)
			filled := 0
			for client.TrySend(msg) == nil {
				filled++
			}
			for i := 0; i < filled; i++ {
				if _, err := server.RecvInto(buf, 0); err != nil {
					t.Fatalf("message %d of %d: %v", i, filled, err)
				}
			}
			again := 0
			for client.TrySend(msg) == nil {
				again++
			}
			if uint64(filled) < ring/frameSize(size)/2 || again != filled {
				t.Fatalf("%d messages filled the ring, %d once it was read back", filled, again)
			}
		})
	}
}

// streamInOrder sends count messages of size bytes (numbered in their
// first two bytes) from client to server, on a goroutine, and checks that
// server receives each whole and in order.
func streamInOrder(t *testing.T, client, server *Conn, size, count int) {
	t.Helper()
	sent := make(chan error, 1)
	go func() {
		msg := make([]byte, size)
		for i := 0; i < count; i++ {
			msg[0], msg[1] = byte(i), byte(i>>8)
			if err := client.Send(msg); err != nil {
				sent <- fmt.Errorf("message %d: %w", i, err)
				return
			}
		}
		sent <- nil
	}()
	buf := make([]byte, 1024)
	for i := 0; i < count; i++ {
		n, err := server.RecvInto(buf, 10*time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if n != size || buf[0] != byte(i) || buf[1] != byte(i>>8) {
			t.Fatalf("message %d: got %d bytes starting %d,%d", i, n, buf[0], buf[1])
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}
