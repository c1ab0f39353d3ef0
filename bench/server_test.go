package bench

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/internal/testsock"
)

func TestReadProcOfThisProcess(t *testing.T) {
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.threads < 1 || s.rssKiB <= 0 || s.pssKiB <= 0 || s.vmSizeKiB <= 0 || s.volCtxSw+s.involCtxSw <= 0 {
		t.Fatalf("implausible sample of this process: %+v", s)
	}
	// Burn a little CPU: utime+stime must not go backwards, and counts it.
	t0 := s.cpuTicks
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	s, _ = readProc(os.Getpid())
	if s.cpuTicks < t0 || s.cpuTicks == 0 {
		t.Fatalf("cpu ticks %d after %d and 50 ms of work", s.cpuTicks, t0)
	}
	if n := countFDs(os.Getpid()); n < 3 {
		t.Fatalf("countFDs = %d", n)
	}
	if n := threadCount(os.Getpid()); n < 1 {
		t.Fatalf("threadCount = %d", n)
	}
	if _, err := readProc(1 << 30); err == nil {
		t.Fatal("readProc of a pid that does not exist succeeded")
	}
}

// serveUnix runs an echo server on a fresh socket; corrupt flips one byte
// of the 3rd reply.
func serveUnix(t *testing.T, corrupt bool) string {
	t.Helper()
	path := testsock.Path(t, "echo.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if !corrupt {
		go ServeUnixEcho(ln, UnixEchoMaxMessage, nil)
		return path
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4+64)
				for i := 0; ; i++ {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if i == 2 {
						buf[4+20] ^= 0xff
					}
					c.Write(buf)
				}
			}()
		}
	}()
	return path
}

// serveCorruptGoipc runs a goipc echo server in this process that flips
// one byte of the 3rd reply of each connection.
func serveCorruptGoipc(t *testing.T) string {
	t.Helper()
	path := testsock.Path(t, "goipc.sock")
	ln, err := goipc.Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, goipc.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			go func() {
				defer c.Close()
				for i := 0; ; i++ {
					m, err := c.Recv()
					if err != nil {
						return
					}
					if i == 2 {
						m[20] ^= 0xff
					}
					c.Send(m)
				}
			}()
		}
	}()
	return path
}

// TestRunLoadChecksEveryReply: the load role measures round trips on each
// producer's own connection and fails on the first reply that differs.
func TestRunLoadChecksEveryReply(t *testing.T) {
	good := serveUnix(t, false)
	rep := runLoad(serverUnix, good, 3, 100*time.Millisecond, 64, 0)
	if rep.Error != "" || rep.Producers != 3 || rep.RoundTrips < 3 || rep.P50 <= 0 || rep.P50 > rep.P99 || rep.P99 > rep.Max || rep.ElapsedS <= 0 {
		t.Fatalf("unix load against a correct echo: %+v", rep)
	}
	if rep.WarmupS != 0.01 { // a tenth of the run
		t.Fatalf("unix load's warm-up: %+v", rep.Warmup)
	}
	bad := serveUnix(t, true)
	rep = runLoad(serverUnix, bad, 2, 5*time.Second, 64, 0)
	if !strings.Contains(rep.Error, "byte 20") {
		t.Fatalf("unix load against a corrupting echo: %+v", rep)
	}
	// goipc: a corrupting in-process echo (the CLI's pong is tested in cmd/goipc).
	rep = runLoad(serverGoipc, serveCorruptGoipc(t), 2, 5*time.Second, 64, 0)
	if !strings.Contains(rep.Error, "byte 20") {
		t.Fatalf("goipc load against a corrupting echo: %+v", rep)
	}
	if rep := runLoad(serverUnix, good, 1, time.Millisecond, 4, 0); rep.Error == "" {
		t.Fatal("a 4-byte message has no room for the sequence number, and was accepted")
	}
	if rep := runLoad(serverUnix, filepath.Join(t.TempDir(), "none"), 1, time.Millisecond, 64, 0); !strings.Contains(rep.Error, "dial producer 1 of 1") {
		t.Fatalf("dial to nothing: %+v", rep)
	}
}

// echoLoadConn answers every round trip at once with the message itself.
type echoLoadConn struct{}

func (echoLoadConn) roundTrip(msg, reply []byte) error { copy(reply, msg); return nil }
func (echoLoadConn) payload(buf []byte) []byte         { return buf }
func (echoLoadConn) Close() error                      { return nil }

// TestProduceCountsTheWarmupApart: round trips that begin before the
// measured part are counted as the warm-up's, not in the measured
// percentiles and total, and the other way round.
func TestProduceCountsTheWarmupApart(t *testing.T) {
	end := time.Now().Add(20 * time.Millisecond)
	warmOnly := &loadRecord{hist: newShardedHist()}
	if err := produce(0, echoLoadConn{}, 64, end.Add(time.Hour), end, warmOnly); err != nil {
		t.Fatal(err)
	}
	if warmOnly.warmTotal.Load() == 0 || warmOnly.warmMax.Load() <= 0 || warmOnly.total.Load() != 0 || warmOnly.hist.merged().TotalCount() != 0 {
		t.Fatalf("all warm-up: %d warm-up round trips (worst %d ns), %d measured, %d recorded",
			warmOnly.warmTotal.Load(), warmOnly.warmMax.Load(), warmOnly.total.Load(), warmOnly.hist.merged().TotalCount())
	}
	end = time.Now().Add(20 * time.Millisecond)
	measuredOnly := &loadRecord{hist: newShardedHist()}
	if err := produce(0, echoLoadConn{}, 64, time.Now().Add(-time.Second), end, measuredOnly); err != nil {
		t.Fatal(err)
	}
	if n := measuredOnly.total.Load(); measuredOnly.warmTotal.Load() != 0 || measuredOnly.warmMax.Load() != 0 || n == 0 || measuredOnly.hist.merged().TotalCount() != n {
		t.Fatalf("no warm-up: %d warm-up round trips, %d measured, %d recorded",
			measuredOnly.warmTotal.Load(), n, measuredOnly.hist.merged().TotalCount())
	}
}

func TestUnixEchoRefusesOversizedMessages(t *testing.T) {
	path := serveUnix(t, false)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg, reply := make([]byte, 4+10), make([]byte, 4+10)
	copy(msg[4:], "0123456789")
	if err := unixEchoRoundTrip(c, msg, reply); err != nil || string(reply[4:]) != "0123456789" {
		t.Fatalf("echo: %q %v", reply, err)
	}
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], UnixEchoMaxMessage+1)
	c.Write(hdr[:])
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(reply); err != io.EOF {
		t.Fatalf("after an oversized header: read %d, %v; want the server to hang up", n, err)
	}
}

func TestShardedHistMergesEveryRecord(t *testing.T) {
	h := newShardedHist()
	for i := 0; i < 1000; i += 10 { // batches of 10 round trips, as producers record them
		batch := make([]time.Duration, 10)
		for j := range batch {
			batch[j] = time.Duration(i+j+1) * time.Microsecond
		}
		h.record(i/10, batch)
	}
	m := h.merged()
	if m.TotalCount() != 1000 || m.Max() < 999000 || m.Min() > 1001 {
		t.Fatalf("merged: count %d, min %d, max %d", m.TotalCount(), m.Min(), m.Max())
	}
}

func TestGoalsAreNotMeasuredWithoutRows(t *testing.T) {
	o := ServerOptions{}
	o.fill()
	rep := &ServerReport{Load: []RoundTripResult{{Server: serverGoipc, Mode: "default", Producers: 1, Error: "boom"}}}
	goals := checkGoals(rep, &o)
	if len(goals) == 0 {
		t.Fatal("no goals")
	}
	for _, g := range goals {
		if g.Met != nil && *g.Met {
			t.Errorf("goal %q met without numbers", g.Goal)
		}
	}
	if !rep.HasErrors() {
		t.Error("a row with an error is not reported by HasErrors")
	}
}

// The idle scenario's descriptor warning counts what each process holds:
// one descriptor per accepted connection in the server, two per dialed
// connection in each client process.
func TestFDWarningCountsEachProcess(t *testing.T) {
	limit := FDLimit{After: 20000}
	for _, c := range []struct {
		idle, procs int
		warn        bool
	}{
		{10000, 4, false}, // server 11,024, clients 6,024 each
		{19900, 4, true},  // server 20,924
		{18000, 4, false}, // server 19,024, clients 10,024
		{10000, 1, true},  // the one client 21,024
		{10000, 2, false}, // clients 11,024
	} {
		if got := fdWarning(limit, c.idle, c.procs) != ""; got != c.warn {
			t.Errorf("%d idle connections over %d client processes, limit 20000: warning %v, want %v", c.idle, c.procs, got, c.warn)
		}
	}
}

// CacheLineRoundTrip measures a positive median with two Ps, and nothing
// with one (its two spinners would take turns at preemption).
func TestCacheLineRoundTrip(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	if d := CacheLineRoundTrip(1000); d <= 0 {
		t.Fatalf("cache-line round trip with 2 Ps: %v", d)
	}
	runtime.GOMAXPROCS(1)
	if d := CacheLineRoundTrip(1000); d != 0 {
		t.Fatalf("cache-line round trip with 1 P: %v, want 0", d)
	}
}

// The one-producer goal in nanoseconds states the run's cache-line round
// trip next to the measured p50, and the report's header shows it.
func TestOneProducerGoalStatesTheFloor(t *testing.T) {
	o := ServerOptions{Scenarios: []string{ScenarioLoad}, Producers: []int{1}}
	o.fill()
	rep := &ServerReport{CacheLineRoundTrip: 400,
		Load: []RoundTripResult{{Server: serverGoipc, Mode: "default", Producers: 1, Percentiles: Percentiles{P50: 900}}}}
	var detail string
	for _, g := range checkGoals(rep, &o) {
		if strings.HasPrefix(g.Goal, "one producer") {
			detail = g.Detail
		}
	}
	if !strings.Contains(detail, "900ns") || !strings.Contains(detail, "cache-line round trip: 400ns") {
		t.Fatalf("one-producer goal detail %q: want the p50 and the floor", detail)
	}
	var b strings.Builder
	rep.WriteTable(&b)
	if !strings.Contains(b.String(), "floor:   400ns") {
		t.Fatalf("report header without the floor:\n%s", b.String())
	}
}
