package goipc

// Benchmarks between two processes: goipc against a Unix stream socket,
// measured in the same run so that their ratio means something on a noisy
// machine. Run with `make bench` or
//
//	go test -run '^$' -bench . -benchtime 2s ./goipc/
//
// Each round-trip benchmark reports ns/op for goipc plus the p50 of both
// mechanisms and their ratio ("unix-p50/goipc-p50"); each stream benchmark
// reports GB/s and messages/s for both.

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

var benchSizes = []int{64, 1 << 10, 64 << 10, 1 << 20}

const benchMaxMsg = 1 << 20

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// runBenchChild serves the benchmark peer roles (see runChild).
func runBenchChild(role string, args []string) int {
	path := args[0]
	switch role {
	case "bench-goipc-echo", "bench-goipc-sink", "bench-goipc-batchsink", "bench-goipc-piecesink":
		spin, _ := strconv.ParseInt(args[1], 10, 64)
		c, err := Dial(path, &Options{MaxMessageSize: benchMaxMsg, Spin: time.Duration(spin),
			FreeSpaceInPieces: role == "bench-goipc-piecesink"})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer c.Close()
		if role == "bench-goipc-batchsink" {
			// The batched stream's sink: RecvBatch, up to streamBatch
			// messages a call, every message copied out.
			buf := make([]byte, benchMaxMsg*2)
			sizes := make([]int, streamBatch)
			for {
				n, err := c.RecvBatch(buf, sizes, -1)
				if err != nil {
					return 0
				}
				for _, size := range sizes[:n] {
					if size == 0 {
						if err := c.Send(nil); err != nil {
							return 0
						}
					}
				}
			}
		}
		if role == "bench-goipc-sink" || role == "bench-goipc-piecesink" {
			// The sink copies every message out, as the Unix socket's
			// sink does (read into its buffer), and acks an empty one.
			// The piece sink returns freed space in pieces
			// (Options.FreeSpaceInPieces).
			buf := make([]byte, benchMaxMsg)
			for {
				n, err := c.RecvInto(buf, -1)
				if err != nil {
					return 0
				}
				if n == 0 {
					if err := c.Send(nil); err != nil {
						return 0
					}
				}
			}
		}
		for {
			m, err := c.RecvView(-1)
			if err != nil {
				return 0
			}
			out, err := c.Reserve(len(m), -1)
			if err != nil {
				return 0
			}
			copy(out, m)
			c.Commit(len(m))
			c.ReleaseView()
		}
	case "bench-unix-echo", "bench-unix-sink":
		conn, err := net.Dial("unix", path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer conn.Close()
		buf := make([]byte, benchMaxMsg+4)
		for {
			n, err := readSockFrame(conn, buf)
			if err != nil {
				return 0
			}
			if role == "bench-unix-echo" || n == 0 {
				if err := writeSockFrame(conn, buf, n); err != nil {
					return 0
				}
			}
		}
	}
	return 1
}

// Unix socket framing: a 4-byte length, then the payload, one write.
func readSockFrame(r io.Reader, buf []byte) (int, error) {
	if _, err := io.ReadFull(r, buf[:4]); err != nil {
		return 0, err
	}
	n := int(binary.LittleEndian.Uint32(buf))
	_, err := io.ReadFull(r, buf[4:4+n])
	return n, err
}

func writeSockFrame(w io.Writer, buf []byte, n int) error {
	binary.LittleEndian.PutUint32(buf, uint32(n))
	_, err := w.Write(buf[:4+n])
	return err
}

// benchPeer starts a child in role and returns the connected transport.
type benchTransport interface {
	roundTrip(msg []byte) error
	send(msg []byte) error
	ack() error
	close()
}

type goipcTransport struct{ c *Conn }

func (g goipcTransport) roundTrip(msg []byte) error {
	if err := g.c.Send(msg); err != nil {
		return err
	}
	_, err := g.c.RecvView(-1)
	if err != nil {
		return err
	}
	return g.c.ReleaseView()
}
func (g goipcTransport) send(msg []byte) error { return g.c.Send(msg) }
func (g goipcTransport) ack() error            { return g.roundTrip(nil) }
func (g goipcTransport) close()                { g.c.Close() }

type unixTransport struct {
	conn net.Conn
	buf  []byte
}

func (u *unixTransport) roundTrip(msg []byte) error {
	if err := u.send(msg); err != nil {
		return err
	}
	_, err := readSockFrame(u.conn, u.buf)
	return err
}
func (u *unixTransport) send(msg []byte) error {
	copy(u.buf[4:], msg)
	return writeSockFrame(u.conn, u.buf, len(msg))
}
func (u *unixTransport) ack() error { return u.roundTrip(nil) }
func (u *unixTransport) close()     { u.conn.Close() }

func startBenchPeer(b *testing.B, mech, role string, spin time.Duration) benchTransport {
	b.Helper()
	path := socketPath(b)
	cmd := childCommand(b, "bench-"+mech+"-"+role, path, strconv.FormatInt(int64(spin), 10))
	cmd.Stderr = os.Stderr
	var t benchTransport
	if mech == "goipc" {
		ln, err := Listen(path, &Options{MaxMessageSize: benchMaxMsg, Spin: spin})
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		c, err := ln.AcceptTimeout(20 * time.Second)
		if err != nil {
			b.Fatal(err)
		}
		t = goipcTransport{c}
	} else {
		ln, err := net.Listen("unix", path)
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		conn, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		t = &unixTransport{conn: conn, buf: make([]byte, benchMaxMsg+4)}
	}
	b.Cleanup(func() {
		t.close()
		cmd.Wait()
	})
	return t
}

// measureRoundTrips runs n round trips (after a warm-up) and returns their
// sorted latencies.
func measureRoundTrips(b *testing.B, t benchTransport, size, n int) []time.Duration {
	msg := make([]byte, size)
	for i := 0; i < min(n, 1000); i++ {
		if err := t.roundTrip(msg); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, n)
	for i := range lat {
		t0 := time.Now()
		if err := t.roundTrip(msg); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	slices.Sort(lat)
	return lat
}

func p50(sorted []time.Duration) float64 { return float64(sorted[len(sorted)/2].Nanoseconds()) }

// roundTripsFor picks enough round trips for tens of milliseconds per point.
func roundTripsFor(size int) int {
	switch {
	case size >= 1<<20:
		return 300
	case size >= 64<<10:
		return 3000
	}
	return 30000
}

// BenchmarkRoundTrip: ping/pong between two processes, goipc (default
// spin, and spin 0 = park at once) next to a Unix stream socket.
func BenchmarkRoundTrip(b *testing.B) {
	for _, size := range benchSizes {
		for _, mode := range []struct {
			name string
			spin time.Duration
		}{{"spin", SpinDefault}, {"park", SpinNever}} {
			b.Run(fmt.Sprintf("%s/%s", sizeName(size), mode.name), func(b *testing.B) {
				g := startBenchPeer(b, "goipc", "echo", mode.spin)
				u := startBenchPeer(b, "unix", "echo", 0)
				n := roundTripsFor(size)
				ul := measureRoundTrips(b, u, size, n)
				gl := measureRoundTrips(b, g, size, n)
				msg := make([]byte, size)
				b.SetBytes(int64(2 * size))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := g.roundTrip(msg); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(p50(gl), "goipc-p50-ns")
				b.ReportMetric(p50(ul), "unix-p50-ns")
				b.ReportMetric(p50(ul)/p50(gl), "unix/goipc")
			})
		}
	}
}

// measureStream sends n messages one way and waits for the consumer's
// ack, returning the elapsed time.
func measureStream(b *testing.B, t benchTransport, size, n int) time.Duration {
	msg := make([]byte, size)
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := t.send(msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := t.ack(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// streamBatch is how many messages a batched stream sends per SendBatch.
const streamBatch = 32

// measureStreamBatch is measureStream with the messages sent streamBatch
// at a time (SendBatch: one publish per batch).
func measureStreamBatch(b *testing.B, g goipcTransport, size, n int) time.Duration {
	msg := make([]byte, size)
	batch := make([][]byte, streamBatch)
	for i := range batch {
		batch[i] = msg
	}
	start := time.Now()
	for left := n; left > 0; {
		k := min(left, streamBatch)
		if _, err := g.c.SendBatch(batch[:k]); err != nil {
			b.Fatal(err)
		}
		left -= k
	}
	if err := g.ack(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// memcpyGBps is single-core memcpy bandwidth for size-byte copies, the
// yardstick of a stream: n copies from one buffer into successive slots of
// a destination as large as a default ring, as a producer writes them.
func memcpyGBps(size, n int) float64 {
	src := make([]byte, size)
	dst := make([]byte, max(DefaultRingSize, 2*size))
	slots := len(dst) / size
	for i := 0; i < slots; i++ { // fault the destination in first
		copy(dst[i*size:], src)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		j := i % slots
		copy(dst[j*size:(j+1)*size], src)
	}
	return float64(size) * float64(n) / time.Since(start).Seconds() / 1e9
}

// BenchmarkStream: one-way throughput between two processes, goipc next
// to a Unix stream socket, both consumers copying each message out, and
// single-core memcpy of the same sizes measured in the same run as the
// yardstick ("goipc/memcpy": the share of memcpy bandwidth a stream gets).
// "goipc-batch" is the same goipc stream sent with SendBatch and received
// with RecvBatch, streamBatch messages per call on each side.
func BenchmarkStream(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			g := startBenchPeer(b, "goipc", "sink", SpinDefault)
			gb := startBenchPeer(b, "goipc", "batchsink", SpinDefault).(goipcTransport)
			gp := startBenchPeer(b, "goipc", "piecesink", SpinDefault)
			u := startBenchPeer(b, "unix", "sink", 0)
			n := max(roundTripsFor(size)*10, 200)
			measureStream(b, u, size, n/10) // warm-up
			measureStream(b, g, size, n/10)
			measureStreamBatch(b, gb, size, n/10)
			measureStream(b, gp, size, n/10)
			ue := measureStream(b, u, size, n)
			ge := measureStream(b, g, size, n)
			be := measureStreamBatch(b, gb, size, n)
			pe := measureStream(b, gp, size, n)
			gbps := func(d time.Duration) float64 { return float64(size) * float64(n) / d.Seconds() / 1e9 }
			b.SetBytes(int64(size))
			b.ResetTimer()
			measureStream(b, g, size, b.N)
			b.StopTimer()
			b.ReportMetric(gbps(ge), "goipc-GB/s")
			b.ReportMetric(gbps(ue), "unix-GB/s")
			b.ReportMetric(float64(n)/ge.Seconds(), "goipc-msgs/s")
			b.ReportMetric(float64(n)/ue.Seconds(), "unix-msgs/s")
			b.ReportMetric(gbps(ge)/gbps(ue), "goipc/unix")
			mc := memcpyGBps(size, n)
			b.ReportMetric(mc, "memcpy-GB/s")
			b.ReportMetric(gbps(ge)/mc, "goipc/memcpy")
			b.ReportMetric(float64(n)/be.Seconds(), "goipc-batch-msgs/s")
			b.ReportMetric(gbps(be)/mc, "goipc-batch/memcpy")
			b.ReportMetric(float64(n)/pe.Seconds(), "goipc-pieces-msgs/s")
			b.ReportMetric(gbps(pe)/mc, "goipc-pieces/memcpy")
		})
	}
}
