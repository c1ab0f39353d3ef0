package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
)

// Workloads.
const (
	PingPong = "pingpong"
	Stream   = "stream"
)

// Options configures a bench run. The zero value of each field means its
// default.
type Options struct {
	Mechanisms []Mechanism   // default: All()
	Sizes      []int         // default: 64
	Workloads  []string      // default: pingpong, stream
	Runs       int           // timed runs per point; default 5
	RunTime    time.Duration // target duration of one timed run; default 200ms
	Warmup     time.Duration // warm-up per point (untimed, verified); default 100ms
	MinIters   int           // lower bound of iterations per run; default 50
	MaxIters   int           // upper bound of iterations per run; default 2,000,000
	Verify     bool          // verify every payload in timed runs too (tests)
	Syscalls   string        // "strace" (default when strace is installed) or "off"
	Timeout    time.Duration // watchdog per run and per setup; default 60s
	Child      []string      // argv that re-executes this binary as a child; default DefaultChild()
	Peers      []Peer        // cross-language rows (see peers.go)
	Log        io.Writer     // progress lines; nil: quiet
}

// DefaultChild is how the goipc CLI re-executes itself: `goipc bench-child`.
func DefaultChild() []string {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return []string{exe, "bench-child"}
}

func (o *Options) fill() {
	if o.Mechanisms == nil {
		o.Mechanisms = All()
	}
	if len(o.Sizes) == 0 {
		o.Sizes = []int{64}
	}
	if len(o.Workloads) == 0 {
		o.Workloads = []string{PingPong, Stream}
	}
	if o.Runs <= 0 {
		o.Runs = 5
	}
	if o.RunTime <= 0 {
		o.RunTime = 200 * time.Millisecond
	}
	if o.Warmup <= 0 {
		o.Warmup = 100 * time.Millisecond
	}
	if o.MinIters <= 0 {
		o.MinIters = 50
	}
	if o.MaxIters <= 0 {
		o.MaxIters = 2_000_000
	}
	if o.Syscalls == "" {
		if _, err := exec.LookPath("strace"); err == nil {
			o.Syscalls = "strace"
		} else {
			o.Syscalls = "off"
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if len(o.Child) == 0 {
		o.Child = DefaultChild()
	}
	sort.Ints(o.Sizes)
}

func (o *Options) logf(format string, a ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", a...)
	}
}

// Result is one measured point: a mechanism in a mode, a workload, a size.
// Per-message figures count one one-way message (a round trip is two).
type Result struct {
	Mechanism string `json:"mechanism"`
	Mode      string `json:"mode"`
	Workload  string `json:"workload"`
	Size      int    `json:"size"`
	// Latency: a pingpong round trip; for stream, the time per message
	// averaged over batches of messages (see docs/BENCHMARKS.md).
	P50  int64   `json:"p50_ns"`
	P90  int64   `json:"p90_ns"`
	P99  int64   `json:"p99_ns"`
	P999 int64   `json:"p999_ns"`
	Max  int64   `json:"max_ns"`
	Mean float64 `json:"mean_ns"`
	// Throughput in one-way messages per second and payload GB/s (1e9).
	MsgsPerS float64 `json:"msgs_per_s"`
	GBPerS   float64 `json:"gb_per_s"`
	// Noise: how many timed runs, iterations per run, and the spread of
	// the per-run figure (p50 for pingpong, msgs/s for stream):
	// (max - min) / median, in percent.
	Runs      int     `json:"runs"`
	Iters     int     `json:"iters_per_run"`
	SpreadPct float64 `json:"spread_pct"`
	// Context switches per message, both processes (getrusage).
	CtxSwPerMsg    float64 `json:"ctxsw_per_msg"`
	VolCtxSwPerMsg float64 `json:"vol_ctxsw_per_msg"`
	// System calls per message, both processes, measured by
	// SyscallMethod (nil when not measured).
	SyscallsPerMsg     *float64           `json:"syscalls_per_msg"`
	SyscallsAllThreads *float64           `json:"syscalls_all_threads_per_msg"`
	SyscallDetail      map[string]float64 `json:"syscall_detail,omitempty"`
	SyscallMethod      string             `json:"syscall_method"`
	// By design.
	KernelCopies   int    `json:"kernel_copies"`
	UserCopies     int    `json:"user_copies"`
	DesignSyscalls string `json:"design_syscalls"`
	// TimingDependent: the strace count is an upper bound (see Design).
	TimingDependent bool `json:"timing_dependent,omitempty"`
	// Ratio is the time per message against goipc (default mode) at the
	// same workload and size: > 1 means slower than goipc. 0: no goipc row.
	Ratio float64 `json:"ratio_vs_goipc"`
	// Skipped or failed points carry a reason and no figures.
	Skipped string `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Report is everything a run produced.
type Report struct {
	Machine Machine  `json:"machine"`
	Config  Config   `json:"config"`
	Results []Result `json:"results"`
	// Warnings say when the numbers are less trustworthy (a busy machine).
	Warnings []string    `json:"warnings,omitempty"`
	Designs  []DesignRow `json:"designs"`
}

// Config records how the run was made.
type Config struct {
	Sizes      []int    `json:"sizes"`
	Workloads  []string `json:"workloads"`
	Runs       int      `json:"runs"`
	RunTimeMs  float64  `json:"run_time_ms"`
	WarmupMs   float64  `json:"warmup_ms"`
	Syscalls   string   `json:"syscall_method"`
	Mechanisms []string `json:"mechanisms"`
	Peers      []string `json:"peers,omitempty"`
	Elapsed    float64  `json:"elapsed_s"`
}

// DesignRow is a mechanism's by-design description, for the report.
type DesignRow struct {
	Mechanism string `json:"mechanism"`
	Mode      string `json:"mode"`
	Design
	MaxSize int `json:"max_size,omitempty"`
}

// Run measures every point of opts and returns the report. A mechanism that
// fails records an error in its results and does not stop the others.
func Run(opts Options) (*Report, error) {
	opts.fill()
	start := time.Now()
	rep := &Report{Machine: DescribeMachine()}
	cpu0 := sampleCPU()
	rep.Config = Config{Sizes: opts.Sizes, Workloads: opts.Workloads, Runs: opts.Runs,
		RunTimeMs: ms(opts.RunTime), WarmupMs: ms(opts.Warmup), Syscalls: opts.Syscalls}
	for _, m := range opts.Mechanisms {
		rep.Config.Mechanisms = append(rep.Config.Mechanisms, ID(m))
		rep.Designs = append(rep.Designs, DesignRow{Mechanism: m.Name(), Mode: m.Mode(), Design: m.Design(), MaxSize: m.MaxSize()})
	}
	for _, m := range opts.Mechanisms {
		opts.logf("bench: %s", ID(m))
		res := runMechanism(&opts, m)
		if opts.Syscalls == "strace" {
			for i := range res {
				if res[i].Skipped == "" && res[i].Error == "" {
					countSyscalls(&opts, m, &res[i])
				}
			}
		}
		rep.Results = append(rep.Results, res...)
	}
	for _, p := range opts.Peers {
		rep.Config.Peers = append(rep.Config.Peers, p.Lang)
		opts.logf("bench: peer %s", p.Lang)
		rep.Results = append(rep.Results, runPeer(&opts, p)...)
	}
	rep.Machine.LoadAvgEnd = loadAvg()
	rep.Machine.OtherCPU, rep.Machine.StealCPU = sampleCPU().othersSince(cpu0)
	rep.Warnings = busyWarnings(rep.Machine)
	rep.Config.Elapsed = time.Since(start).Seconds()
	computeRatios(rep.Results)
	return rep, nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func baseResult(m Mechanism, workload string, size int) Result {
	d := m.Design()
	return Result{Mechanism: m.Name(), Mode: m.Mode(), Workload: workload, Size: size,
		KernelCopies: d.KernelCopies, UserCopies: d.UserCopies, DesignSyscalls: d.Syscalls, SyscallMethod: "none",
		TimingDependent: d.TimingDependent}
}

// session is one child process with an open channel to it.
type session struct {
	opts  *Options
	m     Mechanism
	cmd   *exec.Cmd
	ctl   *os.File
	enc   *json.Encoder
	dec   *json.Decoder
	ep    Endpoint
	setup *Setup
	dir   string
	seq   uint64
	dead  atomic.Bool
	tid   int // the child's benchmark thread
}

// startSession prepares m, starts the child and opens both endpoints.
func startSession(opts *Options, m Mechanism, maxSize int) (*session, error) {
	dir, err := os.MkdirTemp("", "goipc-bench-")
	if err != nil {
		return nil, err
	}
	s := &session{opts: opts, m: m, dir: dir}
	s.setup, err = m.Prepare(dir, maxSize)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("prepare: %w", err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	s.ctl = os.NewFile(uintptr(pair[0]), "ctl")
	childCtl := os.NewFile(uintptr(pair[1]), "ctl-child")
	spec, _ := json.Marshal(childSpec{Role: "child", Mech: m.Name(), Mode: m.Mode(), Args: s.setup.Args, NFiles: len(s.setup.Files)})
	s.cmd = exec.Command(opts.Child[0], opts.Child[1:]...)
	s.cmd.Env = append(os.Environ(), EnvChild+"="+string(spec))
	s.cmd.Stdout = os.Stderr
	s.cmd.Stderr = os.Stderr
	s.cmd.ExtraFiles = append([]*os.File{childCtl}, s.setup.Files...)
	err = s.cmd.Start()
	childCtl.Close()
	for _, f := range s.setup.Files {
		f.Close()
	}
	if err != nil {
		s.cmd = nil
		s.close()
		return nil, fmt.Errorf("start child: %w", err)
	}
	s.enc = json.NewEncoder(s.ctl)
	s.dec = json.NewDecoder(bufio.NewReader(s.ctl))

	type epResult struct {
		ep  Endpoint
		err error
	}
	epc := make(chan epResult, 1)
	go func() {
		ep, err := s.setup.Parent()
		epc <- epResult{ep, err}
	}()
	repc := make(chan error, 1)
	go func() {
		var r childReport
		if err := s.dec.Decode(&r); err != nil {
			repc <- fmt.Errorf("child did not report: %w", err)
			return
		}
		if r.Err != "" {
			repc <- fmt.Errorf("child: %s", r.Err)
			return
		}
		s.tid = r.Tid
		repc <- nil
	}()
	timeout := time.After(opts.Timeout)
	var epDone, repDone bool
	for !epDone || !repDone {
		select {
		case r := <-epc:
			epDone = true
			if r.err != nil {
				s.kill()
				s.close()
				return nil, fmt.Errorf("parent endpoint: %w", r.err)
			}
			s.ep = r.ep
		case err := <-repc:
			repDone = true
			if err != nil {
				s.kill()
				s.close()
				return nil, err
			}
		case <-timeout:
			s.kill()
			s.close()
			return nil, fmt.Errorf("setup did not finish within %v", opts.Timeout)
		}
	}
	return s, nil
}

func (s *session) kill() {
	s.dead.Store(true)
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	if s.ep != nil {
		s.ep.Abort()
	}
}

// close ends the child (EOF on its control socket) and frees everything.
func (s *session) close() error {
	var err error
	if s.ctl != nil {
		s.ctl.Close()
	}
	if s.cmd != nil {
		done := make(chan error, 1)
		go func() { done <- s.cmd.Wait() }()
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			err = <-done
		}
		if s.dead.Load() {
			err = nil
		}
	}
	if s.ep != nil {
		s.ep.Close()
	}
	if s.setup != nil && s.setup.Cleanup != nil {
		s.setup.Cleanup()
	}
	os.RemoveAll(s.dir)
	return err
}

// runStats is what one command measured in the parent.
type runStats struct {
	elapsed time.Duration
	usage   usage // both processes
	msgs    int   // one-way messages, acks excluded
}

// exec runs one command: the child's half via the control socket, the
// parent's half here, under a watchdog.
func (s *session) exec(c command, h *hdrhistogram.Histogram) (runStats, error) {
	c.Seq0 = s.seq
	s.seq += uint64(c.Iters)
	if err := s.enc.Encode(c); err != nil {
		return runStats{}, fmt.Errorf("control: %w", err)
	}
	// The watchdog covers the run and the child's report; it kills the
	// child and unblocks our endpoint.
	var timedOut atomic.Bool
	wd := time.AfterFunc(s.opts.Timeout, func() { timedOut.Store(true); s.kill() })
	defer wd.Stop()
	u0 := getUsage()
	st, err := parentRun(s.ep, &c, h)
	u1 := getUsage()
	if err != nil {
		// The child may be blocked waiting for us: end it.
		s.kill()
		if timedOut.Load() {
			err = fmt.Errorf("run did not finish within %v: %w", s.opts.Timeout, err)
		}
		return st, err
	}
	var r childReport
	if derr := s.dec.Decode(&r); derr != nil {
		s.kill()
		return st, fmt.Errorf("child report: %w", derr)
	}
	if r.Err != "" {
		s.kill()
		return st, fmt.Errorf("child: %s", r.Err)
	}
	st.usage = u1.sub(u0).add(r.Usage)
	return st, nil
}

// batches is how many latency samples a stream run records.
const streamBatches = 200

// parentRun is the parent's half of one command.
func parentRun(ep Endpoint, c *command, h *hdrhistogram.Histogram) (runStats, error) {
	msg := newPayload(c.Size)
	buf := newRecvBuf(c.Size)
	ack := newRecvBuf(1)
	st := runStats{}
	switch c.Op {
	case PingPong:
		start := time.Now()
		for i := 0; i < c.Iters; i++ {
			seq := c.Seq0 + uint64(i)
			stamp(msg, seq)
			t0 := time.Now()
			if err := ep.Send(msg); err != nil {
				return st, fmt.Errorf("pingpong %d B, message %d: %w", c.Size, i, err)
			}
			if err := ep.Recv(buf); err != nil {
				return st, fmt.Errorf("pingpong %d B, reply %d: %w", c.Size, i, err)
			}
			d := time.Since(t0)
			if h != nil {
				h.RecordValue(int64(d))
			}
			if c.Verify {
				if err := verify(buf, seq); err != nil {
					return st, fmt.Errorf("reply: %w", err)
				}
			}
		}
		st.elapsed = time.Since(start)
		st.msgs = 2 * c.Iters
	case Stream:
		batch := max(1, c.Iters/streamBatches)
		start := time.Now()
		bt := start
		for i := 0; i < c.Iters; i++ {
			stamp(msg, c.Seq0+uint64(i))
			if err := ep.Send(msg); err != nil {
				return st, fmt.Errorf("stream %d B, message %d: %w", c.Size, i, err)
			}
			if c.Window > 0 && (i+1)%c.Window == 0 && i+1 < c.Iters {
				if err := ep.Recv(ack); err != nil {
					return st, fmt.Errorf("stream window ack: %w", err)
				}
			}
			if h != nil && (i+1)%batch == 0 {
				now := time.Now()
				h.RecordValue(int64(now.Sub(bt)) / int64(batch))
				bt = now
			}
		}
		if err := ep.Recv(ack); err != nil {
			return st, fmt.Errorf("stream final ack: %w", err)
		}
		st.elapsed = time.Since(start)
		st.msgs = c.Iters
	default:
		return st, fmt.Errorf("unknown op %q", c.Op)
	}
	return st, nil
}

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 600e9, 3) }

// runMechanism starts one child for m and measures every point.
func runMechanism(opts *Options, m Mechanism) []Result {
	var out []Result
	maxSize := 0
	for _, sz := range opts.Sizes {
		if m.MaxSize() == 0 || sz <= m.MaxSize() {
			maxSize = max(maxSize, sz)
		}
	}
	var s *session
	var serr error
	if maxSize > 0 {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		s, serr = startSession(opts, m, maxSize)
	}
	for _, sz := range opts.Sizes {
		for _, wl := range opts.Workloads {
			r := baseResult(m, wl, sz)
			switch {
			case m.MaxSize() > 0 && sz > m.MaxSize():
				r.Skipped = fmt.Sprintf("n/a: %s carries at most %d B per message", m.Name(), m.MaxSize())
			case serr != nil:
				r.Error = serr.Error()
			case s.dead.Load():
				r.Error = "not run: an earlier point of this mechanism failed"
			default:
				if err := s.measure(&r); err != nil {
					r.Error = err.Error()
					opts.logf("bench: %s %s %d B: %v", ID(m), wl, sz, err)
				}
			}
			out = append(out, r)
		}
	}
	if s != nil {
		if err := s.close(); err != nil && !s.dead.Load() {
			opts.logf("bench: %s: child exit: %v", ID(m), err)
		}
	}
	return out
}

// measure warms up (verified, untimed), picks the iteration count from the
// warm-up's speed, then makes opts.Runs timed runs.
func (s *session) measure(r *Result) error {
	opts := s.opts
	c := command{Op: r.Workload, Size: r.Size, Window: s.m.StreamWindow(r.Size), Verify: true}
	// Warm-up: doubling rounds, verified and untimed, until the warm-up
	// time is spent and one round lasts a whole timed run, so that a fixed
	// cost per run (a delayed ACK at the end of a burst, a wake-up) weighs
	// little against the per-message cost. A budget of Warmup + 4 RunTime
	// bounds it. The last round gives the time per iteration.
	c.Iters = 16
	var last, spent time.Duration
	budget := opts.Warmup + 4*opts.RunTime
	for {
		st, err := s.exec(c, nil)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		spent += st.elapsed
		last = st.elapsed
		if (spent >= opts.Warmup && last >= opts.RunTime) || spent >= budget || c.Iters >= opts.MaxIters {
			break
		}
		c.Iters = min(opts.MaxIters, c.Iters*2)
	}
	iters := opts.MaxIters
	if last > 0 {
		iters = int(float64(c.Iters) * float64(opts.RunTime) / float64(last))
	}
	iters = min(opts.MaxIters, max(opts.MinIters, iters))
	c.Iters = iters
	c.Verify = opts.Verify

	h := newHist()
	var perRun []float64
	var total runStats
	for i := 0; i < opts.Runs; i++ {
		rh := newHist()
		st, err := s.exec(c, rh)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		h.Merge(rh)
		total.elapsed += st.elapsed
		total.msgs += st.msgs
		total.usage = total.usage.add(st.usage)
		if r.Workload == PingPong {
			perRun = append(perRun, float64(rh.ValueAtQuantile(50)))
		} else {
			perRun = append(perRun, float64(st.msgs)/st.elapsed.Seconds())
		}
	}
	fillLatency(r, h)
	r.Runs = opts.Runs
	r.Iters = iters
	r.SpreadPct = spread(perRun)
	if r.Workload == PingPong {
		// Median round trip time gives the rate; two messages each.
		r.MsgsPerS = 2e9 / float64(r.P50)
	} else {
		r.MsgsPerS = median(perRun)
	}
	r.GBPerS = r.MsgsPerS * float64(r.Size) / 1e9
	r.CtxSwPerMsg = float64(total.usage.Nvcsw+total.usage.Nivcsw) / float64(total.msgs)
	r.VolCtxSwPerMsg = float64(total.usage.Nvcsw) / float64(total.msgs)
	return nil
}

// Percentiles are the round-trip figures of a row, in ns.
type Percentiles struct {
	P50  int64 `json:"p50_ns"`
	P90  int64 `json:"p90_ns"`
	P99  int64 `json:"p99_ns"`
	P999 int64 `json:"p999_ns"`
	Max  int64 `json:"max_ns"`
}

func percentilesOf(h *hdrhistogram.Histogram) Percentiles {
	return Percentiles{P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9), Max: h.Max()}
}

func fillLatency(r *Result, h *hdrhistogram.Histogram) {
	r.P50 = h.ValueAtQuantile(50)
	r.P90 = h.ValueAtQuantile(90)
	r.P99 = h.ValueAtQuantile(99)
	r.P999 = h.ValueAtQuantile(99.9)
	r.Max = h.Max()
	r.Mean = h.Mean()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is (max - min) / median in percent.
func spread(v []float64) float64 {
	if len(v) < 2 {
		return 0
	}
	md := median(v)
	if md == 0 {
		return 0
	}
	return (slices.Max(v) - slices.Min(v)) / md * 100
}

// timePerMsg is what the ratio compares: the median round trip for
// pingpong, the inverse throughput for stream.
func timePerMsg(r *Result) float64 {
	if r.Workload == PingPong {
		return float64(r.P50)
	}
	if r.MsgsPerS == 0 {
		return 0
	}
	return 1e9 / r.MsgsPerS
}

// computeRatios fills Ratio against goipc's default mode (Go to Go).
func computeRatios(rs []Result) {
	for i := range rs {
		r := &rs[i]
		if r.Skipped != "" || r.Error != "" {
			continue
		}
		for j := range rs {
			g := &rs[j]
			if g.Mechanism == "goipc" && g.Mode == "default" && g.Workload == r.Workload && g.Size == r.Size && g.Error == "" && g.Skipped == "" {
				if t := timePerMsg(g); t > 0 {
					r.Ratio = timePerMsg(r) / t
				}
			}
		}
	}
}

var errNoStrace = errors.New("bench: strace not found")

// busyWarnings flags a machine that was busy with other work while the
// bench ran: other processes competed for the CPUs, which hurts spinning
// designs most (a spinner holds a core its peer needs).
func busyWarnings(m Machine) []string {
	var out []string
	if m.OtherCPU > 0.25 {
		out = append(out, fmt.Sprintf("the machine was busy: other processes used %.2f of the %d cores on average while the bench ran, which hurts spinning modes most", m.OtherCPU, m.Cores))
	}
	if m.StealCPU > 0.1 {
		out = append(out, fmt.Sprintf("the hypervisor took (steal time) %.2f of the %d cores on average while the bench ran", m.StealCPU, m.Cores))
	}
	return out
}
