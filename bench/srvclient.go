package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/goipc/goipc/goipc"
)

// The client processes of `goipc bench-server`, run as
// `goipc bench-server-client ROLE flags` (ServerClientMain). Each writes
// JSON lines on stdout and reads its stdin: a line "stop" ends the opening
// of connections, end of file ends the process. The harness holds the
// other end of stdin, so a client never outlives it.

// Client roles.
const (
	roleIdle      = "idle"      // open connections and hold them, doing nothing
	roleSlowloris = "slowloris" // open raw sockets: silent ones and ones that stop mid-hello
	roleLoad      = "load"      // N producers, each on its own connection, round trips
	roleHog       = "hog"       // a busy loop on one core
)

// Servers under test.
const (
	serverGoipc = "goipc" // goipc pong
	serverUnix  = "unix"  // goipc unix-echo (net package, a goroutine per connection)
)

// openReport is the progress and final line of the idle and slowloris roles.
type openReport struct {
	Opened int    `json:"opened"`
	Half   int    `json:"half_hello,omitempty"` // slowloris: of Opened, those that sent part of a hello
	Done   bool   `json:"done,omitempty"`
	Error  string `json:"error,omitempty"`
}

// loadReport is the load role's line, written when its run ends.
// RoundTrips, ElapsedS and the percentiles cover the measured run, after
// the warm-up; the warm-up's round trips are counted and their worst
// reported on their own.
type loadReport struct {
	Producers  int     `json:"producers"`
	RoundTrips int64   `json:"round_trips"`
	ElapsedS   float64 `json:"elapsed_s"`
	Percentiles
	Warmup
	Error string `json:"error,omitempty"`
}

// Warmup is what a load run measured before its measured part: every
// producer's round trips that began within the first WarmupS seconds.
// Every connection starts idle and all producers start at once (their
// first stacks, buffers and timers, the servers' calls leaving their
// doorbells): the first round trips measure that start, not the load.
type Warmup struct {
	WarmupS          float64 `json:"warmup_s"`
	WarmupRoundTrips int64   `json:"warmup_round_trips"`
	WarmupMax        int64   `json:"warmup_max_ns"`
}

// loadWarmup is the warm-up before a load run of d: a tenth of it, at
// most 200 ms.
func loadWarmup(d time.Duration) time.Duration { return min(d/10, 200*time.Millisecond) }

// Segment of the idle role's goipc connections: the smallest ring, so
// that thousands of segments stay small (the server maps every one).
const (
	idleRingSize   = 4096
	idleMaxMessage = 1024
	// Load connections carry 64 B messages: a 64 KiB ring is plenty and
	// keeps a thousand connections' segments at 128 MiB of address space.
	loadRingSize   = 64 << 10
	loadMaxMessage = 1024
)

// ServerClientMain runs one client role and returns the exit status.
func ServerClientMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "goipc bench-server-client: a role is required (idle, slowloris, load, hog)")
		return 2
	}
	role := args[0]
	fs := flag.NewFlagSet("goipc bench-server-client "+role, flag.ContinueOnError)
	server := fs.String("server", serverGoipc, "goipc or unix")
	path := fs.String("path", "", "socket path of the server")
	conns := fs.Int("conns", 0, "idle: connections to open")
	silent := fs.Int("silent", 0, "slowloris: clients that connect and send nothing")
	half := fs.Int("half", 0, "slowloris: clients that send the first bytes of a hello, then nothing")
	producers := fs.Int("producers", 1, "load: producers, each on its own connection")
	duration := fs.Duration("duration", time.Second, "load: how long the producers run")
	size := fs.Int("size", 64, "load: message size in bytes")
	spin := fs.Duration("spin", 0, "load: goipc spin budget (0: default, -1ns: park at once)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if role != roleHog && *path == "" {
		fmt.Fprintln(os.Stderr, "goipc bench-server-client: --path is required")
		return 2
	}
	out := json.NewEncoder(os.Stdout)
	stop := make(chan struct{}) // "stop" on stdin: open no more
	eof := make(chan struct{})  // stdin closed: exit
	go watchStdin(os.Stdin, stop, eof)
	switch role {
	case roleIdle:
		holdIdle(out, *server, *path, *conns, stop, eof)
	case roleSlowloris:
		holdSlowloris(out, *path, *silent, *half, stop, eof)
	case roleLoad:
		rep := runLoad(*server, *path, *producers, *duration, *size, *spin)
		out.Encode(rep)
	case roleHog:
		out.Encode(map[string]bool{"hog": true})
		runHog(eof)
	default:
		fmt.Fprintf(os.Stderr, "goipc bench-server-client: unknown role %q\n", role)
		return 2
	}
	return 0
}

func watchStdin(r io.Reader, stop, eof chan struct{}) {
	sc := bufio.NewScanner(r)
	stopped := false
	for sc.Scan() {
		if sc.Text() == "stop" && !stopped {
			stopped = true
			close(stop)
		}
	}
	if !stopped {
		close(stop)
	}
	close(eof)
}

func stopped(stop chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// holdIdle opens n connections one after another, reporting progress, then
// holds them until stdin closes. A failed dial ends the opening (the
// connections already open stay); the error is reported.
func holdIdle(out *json.Encoder, server, path string, n int, stop, eof chan struct{}) {
	var held []io.Closer
	rep := openReport{}
	opts := &goipc.Options{RingSize: idleRingSize, MaxMessageSize: idleMaxMessage}
	for i := 0; i < n && !stopped(stop); i++ {
		var c io.Closer
		var err error
		if server == serverGoipc {
			c, err = dialRetry(func() (*goipc.Conn, error) { return goipc.DialTimeout(path, dialTimeout, opts) })
		} else {
			c, err = dialUnix(path)
		}
		if err != nil {
			rep.Error = fmt.Sprintf("connection %d: %v", i+1, err)
			break
		}
		held = append(held, c)
		rep.Opened++
		if rep.Opened%200 == 0 {
			out.Encode(rep)
		}
	}
	rep.Done = true
	out.Encode(rep)
	<-eof
	for _, c := range held {
		c.Close()
	}
}

// holdSlowloris opens silent connections (connect, send nothing) and
// half-hello ones (connect, send the first bytes of a goipc hello, the
// magic, then nothing), interleaved, then holds them until stdin closes.
func holdSlowloris(out *json.Encoder, path string, silent, half int, stop, eof chan struct{}) {
	var held []net.Conn
	rep := openReport{}
	magic := []byte("GOIPC-HS") // the hello's first 8 bytes (of 32)
	for i := 0; i < silent+half && !stopped(stop); i++ {
		// Alternate while both kinds remain, so that the server meets both.
		sendHalf := rep.Half < half && (i%2 == 1 || rep.Opened-rep.Half >= silent)
		c, err := dialUnix(path)
		if err == nil && sendHalf {
			_, err = c.Write(magic)
		}
		if err != nil {
			rep.Error = fmt.Sprintf("client %d: %v", i+1, err)
			if c != nil {
				c.Close()
			}
			break
		}
		held = append(held, c)
		rep.Opened++
		if sendHalf {
			rep.Half++
		}
	}
	rep.Done = true
	out.Encode(rep)
	<-eof
	for _, c := range held {
		c.Close()
	}
}

// histShards spreads the load producers' latency records over a few
// locked histograms: one 3-digit HdrHistogram per producer would take
// ~240 KB each (a quarter of a GB at 1024 producers); with more shards than
// cores, two running producers rarely share a lock. Each producer records
// histBatch round trips at a time, so that it takes a lock that rarely:
// a producer blocked on a lock waits in a run queue until whoever runs
// there yields, which a goipc producer whose waits end spinning does
// only every few dozen round trips (docs/PERFORMANCE.md section 24).
const (
	histShards = 16
	histBatch  = 64
)

type shardedHist struct {
	shards [histShards]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
	}
}

func newShardedHist() *shardedHist {
	s := &shardedHist{}
	for i := range s.shards {
		s.shards[i].h = newHist()
	}
	return s
}

// record adds a producer's round trips.
func (s *shardedHist) record(producer int, ds []time.Duration) {
	sh := &s.shards[producer%histShards]
	sh.mu.Lock()
	for _, d := range ds {
		sh.h.RecordValue(int64(d))
	}
	sh.mu.Unlock()
}

func (s *shardedHist) merged() *hdrhistogram.Histogram {
	h := newHist()
	for i := range s.shards {
		h.Merge(s.shards[i].h)
	}
	return h
}

// loadConn is one producer's connection: a round trip of msg, the reply
// read into reply (for unix, both carry the 4-byte length prefix).
type loadConn interface {
	roundTrip(msg, reply []byte) error
	payload(buf []byte) []byte // the payload part of a message buffer
	Close() error
}

type goipcLoadConn struct{ c *goipc.Conn }

func (g goipcLoadConn) roundTrip(msg, reply []byte) error {
	if err := g.c.SendTimeout(msg, loadOpTimeout); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	n, err := g.c.RecvInto(reply, loadOpTimeout)
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if n != len(msg) {
		return fmt.Errorf("reply of %d B, want %d", n, len(msg))
	}
	return nil
}
func (g goipcLoadConn) payload(buf []byte) []byte { return buf }
func (g goipcLoadConn) Close() error              { return g.c.Close() }

type unixLoadConn struct{ c net.Conn }

func (u unixLoadConn) roundTrip(msg, reply []byte) error {
	u.c.SetDeadline(time.Now().Add(loadOpTimeout))
	return unixEchoRoundTrip(u.c, msg, reply)
}
func (u unixLoadConn) payload(buf []byte) []byte { return buf[4:] }
func (u unixLoadConn) Close() error              { return u.c.Close() }

// dialTimeout bounds one connection attempt: far above a handshake on a
// slow machine.
const dialTimeout = 60 * time.Second

// dialRetry calls dial again while it fails with EAGAIN: a Unix socket's
// connect fails so when the listener's backlog is full (the server has
// not caught up with accepting), which a client of a busy server meets and
// retries, within dialTimeout overall.
func dialRetry[C any](dial func() (C, error)) (C, error) {
	deadline := time.Now().Add(dialTimeout)
	backoff := time.Millisecond
	for {
		c, err := dial()
		if err == nil || !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

func dialUnix(path string) (net.Conn, error) {
	return dialRetry(func() (net.Conn, error) { return net.DialTimeout("unix", path, dialTimeout) })
}

// loadOpTimeout bounds one send or receive: far above any round trip on a
// slow machine, it only ends a run whose server stopped answering.
const loadOpTimeout = 60 * time.Second

func dialLoad(server, path string, spin time.Duration) (loadConn, error) {
	if server == serverGoipc {
		opts := &goipc.Options{RingSize: loadRingSize, MaxMessageSize: loadMaxMessage, Spin: spin}
		c, err := dialRetry(func() (*goipc.Conn, error) { return goipc.DialTimeout(path, dialTimeout, opts) })
		if err != nil {
			return nil, err
		}
		return goipcLoadConn{c}, nil
	}
	c, err := dialUnix(path)
	if err != nil {
		return nil, err
	}
	return unixLoadConn{c}, nil
}

// runLoad dials n connections, then runs n producers at once for d: each
// sends a size-byte message stamped with its sequence number, waits for
// the reply and checks every byte of it, and records the round trip.
func runLoad(server, path string, n int, d time.Duration, size int, spin time.Duration) loadReport {
	rep := loadReport{Producers: n}
	if size < 8 {
		rep.Error = fmt.Sprintf("size %d B: at least 8 B are needed for the sequence number", size)
		return rep
	}
	conns := make([]loadConn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := dialLoad(server, path, spin)
		if err != nil {
			rep.Error = fmt.Sprintf("dial producer %d of %d: %v", i+1, n, err)
			return rep
		}
		conns = append(conns, c)
	}
	warm := loadWarmup(d)
	rec := &loadRecord{hist: newShardedHist()}
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	measured, end := start.Add(warm), start.Add(warm+d)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := produce(i, c, size, measured, end, rec); err != nil {
				err = fmt.Errorf("producer %d: %w", i, err)
				firstErr.CompareAndSwap(nil, &err)
			}
		}()
	}
	wg.Wait()
	rep.ElapsedS = time.Since(measured).Seconds()
	rep.RoundTrips = rec.total.Load()
	rep.WarmupS, rep.WarmupRoundTrips, rep.WarmupMax = warm.Seconds(), rec.warmTotal.Load(), rec.warmMax.Load()
	if e := firstErr.Load(); e != nil {
		rep.Error = (*e).Error()
	}
	rep.Percentiles = percentilesOf(rec.hist.merged())
	return rep
}

// loadRecord collects a load run's round trips: the measured ones in
// hist and total, the warm-up's in warmTotal and warmMax (ns).
type loadRecord struct {
	hist                      *shardedHist
	total, warmTotal, warmMax atomic.Int64
}

// addWarmup counts a producer's warm-up round trips and their worst.
func (r *loadRecord) addWarmup(n int64, worst time.Duration) {
	r.warmTotal.Add(n)
	for {
		old := r.warmMax.Load()
		if int64(worst) <= old || r.warmMax.CompareAndSwap(old, int64(worst)) {
			return
		}
	}
}

// produce is one producer's loop until end; round trips that begin
// before measured are the warm-up's.
func produce(id int, c loadConn, size int, measured, end time.Time, rec *loadRecord) error {
	prefix := 0
	if _, ok := c.(unixLoadConn); ok {
		prefix = 4
	}
	msg := make([]byte, prefix+size)
	// The shared reference pattern: newPayload's buffer carries 64 KiB of
	// receive slack, and 1024 producers allocating one each at the start
	// made the client collect its heap 7 times in its first 60 ms.
	copy(msg[prefix:], patternOf(size))
	reply := make([]byte, prefix+size)
	var done, warmDone int64
	var warmWorst time.Duration
	pending := make([]time.Duration, 0, histBatch)
	defer func() {
		if len(pending) > 0 {
			rec.hist.record(id, pending)
		}
		rec.total.Add(done)
		rec.addWarmup(warmDone, warmWorst)
	}()
	// Two monotonic clock reads per round trip (time.Since of a fixed
	// origin reads one clock; time.Now reads two): the harness's own cost
	// is paid by both servers, and with three time.Now a round trip it
	// was a tenth of the client's CPU at 1024 goipc producers (perf).
	origin := time.Now()
	warm, stop, last := measured.Sub(origin), end.Sub(origin), time.Duration(0)
	for seq := uint64(0); last < stop; seq++ {
		stamp(c.payload(msg), seq)
		t0 := time.Since(origin)
		if err := c.roundTrip(msg, reply); err != nil {
			return fmt.Errorf("round trip %d: %w", seq, err)
		}
		last = time.Since(origin)
		rtt := last - t0
		if err := verify(c.payload(reply), seq); err != nil {
			return err
		}
		if t0 < warm {
			warmDone++
			warmWorst = max(warmWorst, rtt)
			continue
		}
		if pending = append(pending, rtt); len(pending) == histBatch {
			rec.hist.record(id, pending)
			pending = pending[:0]
		}
		done++
	}
	return nil
}

// runHog keeps one core busy until stdin closes (or the harness kills it).
func runHog(eof chan struct{}) {
	runtime.GOMAXPROCS(1)
	var x uint64
	for {
		for i := 0; i < 1<<20; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		select {
		case <-eof:
			if x == 0 { // keep the loop from being optimised away
				fmt.Fprint(io.Discard, x)
			}
			return
		default:
		}
	}
}
