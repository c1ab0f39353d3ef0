package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The server benchmark (`goipc bench-server`, docs/BENCHMARKS.md "Serving
// many producers"): one Go consumer, `goipc pong`, started as a separate
// process and measured from outside (/proc) and from client processes,
// each scenario next to a baseline in the same run: `goipc unix-echo`, a
// Unix-socket echo server written the way a Go service would (the net
// package, a goroutine per connection).

// Scenarios of the server benchmark, in the order they run.
const (
	ScenarioIdle      = "idle"
	ScenarioSlowloris = "slowloris"
	ScenarioLoad      = "load"
	ScenarioHogs      = "hogs"
	ScenarioPark      = "park"
)

// LoopIdle is the --loop idle of the load scenario's "goipc (loop)" rows:
// the pong loop sweeps this long after its last answer before it sleeps,
// as long as the ring poller of the producers' process (1 ms).
const LoopIdle = time.Millisecond

// cacheLineRoundTrips is how many round trips CacheLineRoundTrip makes at
// the start of a load run: 80 ms at 400 ns.
const cacheLineRoundTrips = 200_000

// ServerScenarios lists every scenario in run order.
var ServerScenarios = []string{ScenarioIdle, ScenarioSlowloris, ScenarioLoad, ScenarioHogs, ScenarioPark}

// ServerOptions configures RunServer. The zero value of a field means its
// default.
type ServerOptions struct {
	// CLI is the argv prefix that runs the goipc command (pong, ping,
	// unix-echo, bench-server-client). Default: this executable.
	CLI       []string
	Scenarios []string // default: ServerScenarios

	Idle          int           // idle connections per server; default 10,000
	IdleWindow    time.Duration // measurement window; default 10 s
	IdleProcs     int           // client processes holding them; default 4
	IdleThreadCap int           // stop opening when the server has more threads; default 1000, < 0: no cap

	Silent, HalfHello int           // slowloris clients; default 1000 each
	PingN             int           // round trips of the timed goipc ping; default 1000
	PingRuns          int           // timed pings with and without; default 3
	PingTimeout       time.Duration // goipc ping --timeout; default 10 s

	Producers []int         // load: producer counts; default 1, 8, 64, 256, 1024
	LoadTime  time.Duration // per count and server; default 2 s
	Size      int           // message size of load, hogs and park; default 64

	Hogs     int           // busy-loop processes; default 4
	HogTime  time.Duration // per row; default 2 s
	ParkTime time.Duration // per row; default 2 s

	// PongFlags are added to every `goipc pong` command line.
	PongFlags []string

	Log io.Writer // progress lines; nil: quiet
}

func (o *ServerOptions) fill() {
	if len(o.CLI) == 0 {
		exe, err := os.Executable()
		if err != nil {
			exe = os.Args[0]
		}
		o.CLI = []string{exe}
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = ServerScenarios
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Idle, 10000)
	defD(&o.IdleWindow, 10*time.Second)
	def(&o.IdleProcs, 4)
	def(&o.IdleThreadCap, 1000)
	def(&o.Silent, 1000)
	def(&o.HalfHello, 1000)
	def(&o.PingN, 1000)
	def(&o.PingRuns, 3)
	defD(&o.PingTimeout, 10*time.Second)
	if len(o.Producers) == 0 {
		o.Producers = []int{1, 8, 64, 256, 1024}
	}
	defD(&o.LoadTime, 2*time.Second)
	def(&o.Size, 64)
	def(&o.Hogs, 4)
	defD(&o.HogTime, 2*time.Second)
	defD(&o.ParkTime, 2*time.Second)
}

func (o *ServerOptions) logf(format string, a ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "bench-server: "+format+"\n", a...)
	}
}

func (o *ServerOptions) has(s string) bool { return slices.Contains(o.Scenarios, s) }

// ServerReport is everything RunServer measured.
type ServerReport struct {
	Machine Machine `json:"machine"`
	// CacheLineRoundTrip (ns) is the median of CacheLineRoundTrip at the
	// start of a run with the load scenario, 0 otherwise.
	CacheLineRoundTrip int64             `json:"cache_line_round_trip_ns,omitempty"`
	Config             ServerConfig      `json:"config"`
	FDLimit            FDLimit           `json:"fd_limit"`
	Idle               []IdleResult      `json:"idle"`
	Slowloris          *SlowlorisResult  `json:"slowloris,omitempty"`
	Load               []RoundTripResult `json:"load"`
	Hogs               []RoundTripResult `json:"hogs"`
	Park               []RoundTripResult `json:"park"`
	Goals              []Goal            `json:"goals"`
	Warnings           []string          `json:"warnings,omitempty"`
}

// ServerConfig records how the run was made.
type ServerConfig struct {
	Scenarios     []string `json:"scenarios"`
	Idle          int      `json:"idle_conns"`
	IdleWindowS   float64  `json:"idle_window_s"`
	IdleProcs     int      `json:"idle_client_procs"`
	IdleThreadCap int      `json:"idle_thread_cap"`
	Silent        int      `json:"slowloris_silent"`
	HalfHello     int      `json:"slowloris_half_hello"`
	PingN         int      `json:"ping_n"`
	PingRuns      int      `json:"ping_runs"`
	Producers     []int    `json:"producers"`
	LoadTimeS     float64  `json:"load_time_s"`
	Size          int      `json:"size"`
	Hogs          int      `json:"hogs"`
	HogTimeS      float64  `json:"hog_time_s"`
	ParkTimeS     float64  `json:"park_time_s"`
	PongFlags     []string `json:"pong_flags,omitempty"`
	Elapsed       float64  `json:"elapsed_s"`
}

// FDLimit is RLIMIT_NOFILE before and after the harness raised it (its
// children inherit it).
type FDLimit struct {
	Before uint64 `json:"before"`
	After  uint64 `json:"after"`
	NrOpen uint64 `json:"nr_open"`
	Note   string `json:"note,omitempty"`
}

// IdleResult is one server holding idle connections.
type IdleResult struct {
	Server    string `json:"server"`
	Requested int    `json:"requested"`
	Opened    int    `json:"opened"` // connections the clients held during the window
	// Note says why Opened < Requested (the thread cap, a dial error);
	// Capped is set when the thread cap stopped the opening.
	Note    string  `json:"note,omitempty"`
	Capped  bool    `json:"thread_capped,omitempty"`
	WindowS float64 `json:"window_s"`
	// Server CPU over the window, in percent of one core (utime+stime).
	CPUPct float64 `json:"cpu_pct_of_core"`
	// OS threads before the clients connected and at the end of the window.
	ThreadsBefore int `json:"threads_before"`
	Threads       int `json:"threads"`
	// Voluntary and involuntary context switches of the server's threads
	// during the window, per second.
	VolCtxSwPerS   float64 `json:"vol_ctxsw_per_s"`
	InvolCtxSwPerS float64 `json:"invol_ctxsw_per_s"`
	// Memory (smaps_rollup) before the clients connected and after the
	// window, and the difference per connection held.
	RSSBeforeKiB   int64   `json:"rss_before_kib"`
	RSSAfterKiB    int64   `json:"rss_after_kib"`
	PSSBeforeKiB   int64   `json:"pss_before_kib"`
	PSSAfterKiB    int64   `json:"pss_after_kib"`
	VmSizeAfterKiB int64   `json:"vmsize_after_kib"`
	FDs            int     `json:"fds"` // the server's open descriptors after the window
	RSSPerConnB    float64 `json:"rss_per_conn_bytes"`
	PSSPerConnB    float64 `json:"pss_per_conn_bytes"`
	// The client processes' PSS per connection they hold (their side).
	ClientPSSPerConnB float64 `json:"client_pss_per_conn_bytes"`
	Error             string  `json:"error,omitempty"`
}

// SlowlorisResult times a legitimate `goipc ping` against `goipc pong`
// without and with hostile clients open.
type SlowlorisResult struct {
	Silent       int       `json:"silent"`     // silent clients open during the "with" runs
	HalfHello    int       `json:"half_hello"` // half-hello clients open
	OpenNote     string    `json:"open_note,omitempty"`
	WithoutMs    []float64 `json:"without_ms"` // wall time of each successful ping run
	WithMs       []float64 `json:"with_ms"`
	WithoutMedMs float64   `json:"without_median_ms"`
	WithMedMs    float64   `json:"with_median_ms"`
	DiffMs       float64   `json:"diff_ms"` // with - without (medians); 0 when a side has no success
	// Failures are ping runs that did not succeed (a dial that timed out
	// behind the hostile clients): outcomes, not harness errors.
	Failures []string `json:"failures,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// RoundTripResult is one row of the load, hogs and park scenarios.
type RoundTripResult struct {
	Server     string  `json:"server"` // goipc or unix
	Mode       string  `json:"mode"`   // default or park (goipc)
	Producers  int     `json:"producers"`
	Size       int     `json:"size"`
	RoundTrips int64   `json:"round_trips"`
	ElapsedS   float64 `json:"elapsed_s"`
	PerS       float64 `json:"round_trips_per_s"`
	Percentiles
	Warmup
	Error string `json:"error,omitempty"`
}

// Label names a row: server, plus the mode when not the default.
func (r *RoundTripResult) Label() string {
	if r.Mode == "" || r.Mode == "default" {
		return r.Server
	}
	return r.Server + " (" + r.Mode + ")"
}

// Goal is one target of issue 11, checked against this run's numbers.
type Goal struct {
	Scenario string `json:"scenario"`
	Goal     string `json:"goal"`
	Met      *bool  `json:"met"` // nil: not measured in this run
	Detail   string `json:"detail"`
}

// HasErrors reports whether the harness failed to measure something
// (a server or client that would not start, a wrong reply). Outcomes of
// the server under test (a timed-out ping, the thread cap) are not errors.
func (r *ServerReport) HasErrors() bool {
	for _, x := range r.Idle {
		if x.Error != "" {
			return true
		}
	}
	if r.Slowloris != nil && r.Slowloris.Error != "" {
		return true
	}
	for _, rows := range [][]RoundTripResult{r.Load, r.Hogs, r.Park} {
		for _, x := range rows {
			if x.Error != "" {
				return true
			}
		}
	}
	return false
}

// RunServer runs the server benchmark.
func RunServer(opts ServerOptions) (*ServerReport, error) {
	opts.fill()
	for _, s := range opts.Scenarios {
		if !slices.Contains(ServerScenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q (%s)", s, strings.Join(ServerScenarios, ", "))
		}
	}
	start := time.Now()
	rep := &ServerReport{Machine: DescribeMachine()}
	opts.logf("load average %s at start on %d cores (other processes share this machine: the report says how busy it was)",
		rep.Machine.LoadAvgStart, rep.Machine.Cores)
	if opts.has(ScenarioLoad) {
		// The floor the one-producer goal in nanoseconds is read against.
		rep.CacheLineRoundTrip = int64(CacheLineRoundTrip(cacheLineRoundTrips))
	}
	cpu0 := sampleCPU()
	rep.Config = ServerConfig{Scenarios: opts.Scenarios, Idle: opts.Idle, IdleWindowS: opts.IdleWindow.Seconds(),
		IdleProcs: opts.IdleProcs, IdleThreadCap: opts.IdleThreadCap, Silent: opts.Silent, HalfHello: opts.HalfHello,
		PingN: opts.PingN, PingRuns: opts.PingRuns, Producers: opts.Producers, LoadTimeS: opts.LoadTime.Seconds(),
		Size: opts.Size, Hogs: opts.Hogs, HogTimeS: opts.HogTime.Seconds(), ParkTimeS: opts.ParkTime.Seconds(),
		PongFlags: opts.PongFlags}
	rep.FDLimit = raiseFDLimit()
	if rep.FDLimit.Note != "" {
		opts.logf("%s", rep.FDLimit.Note)
	}
	dir, err := os.MkdirTemp("", "goipc-bench-server-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	h := &harness{opts: &opts, dir: dir, fdLimit: rep.FDLimit.After}
	if opts.has(ScenarioIdle) {
		for _, srv := range []string{serverGoipc, serverUnix} {
			opts.logf("idle: %d connections to %s", opts.Idle, srv)
			rep.Idle = append(rep.Idle, h.idle(srv))
		}
	}
	if opts.has(ScenarioSlowloris) {
		opts.logf("slowloris: goipc ping -n %d without and with %d silent + %d half-hello clients", opts.PingN, opts.Silent, opts.HalfHello)
		rep.Slowloris = h.slowloris()
	}
	if opts.has(ScenarioLoad) {
		rep.Load = append(rep.Load, h.load(serverGoipc, "default")...)
		rep.Load = append(rep.Load, h.load(serverGoipc, "loop")...)
		rep.Load = append(rep.Load, h.load(serverUnix, "default")...)
	}
	if opts.has(ScenarioHogs) {
		opts.logf("hogs: %d busy-loop processes, one producer", opts.Hogs)
		rep.Hogs = h.hogs()
	}
	if opts.has(ScenarioPark) {
		opts.logf("park: one producer, goipc parking at once on both sides, and unix")
		rep.Park = h.park()
	}
	rep.Machine.LoadAvgEnd = loadAvg()
	rep.Machine.OtherCPU, rep.Machine.StealCPU = sampleCPU().othersSince(cpu0)
	rep.Warnings = busyWarnings(rep.Machine)
	if la := loadAvgFloat(rep.Machine.LoadAvgStart); la > float64(rep.Machine.Cores) {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the 1-minute load average was %.2f at the start, above the %d cores: other work competed with the bench", la, rep.Machine.Cores))
	}
	if w := fdWarning(rep.FDLimit, opts.Idle, opts.IdleProcs); w != "" && opts.has(ScenarioIdle) {
		rep.Warnings = append(rep.Warnings, w)
	}
	rep.Goals = checkGoals(rep, &opts)
	rep.Config.Elapsed = time.Since(start).Seconds()
	return rep, nil
}

func loadAvgFloat(s string) float64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// raiseFDLimit raises RLIMIT_NOFILE, soft and hard, to the kernel's
// maximum (fs.nr_open) when this process may (root may raise the hard
// limit). syscall.Setrlimit also tells os/exec to pass the raised limit
// to children instead of restoring the original soft one.
func raiseFDLimit() FDLimit {
	var lim syscall.Rlimit
	out := FDLimit{}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		out.Note = fmt.Sprintf("cannot read RLIMIT_NOFILE: %v", err)
		return out
	}
	out.Before = lim.Cur
	out.NrOpen = 1 << 20
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			out.NrOpen = v
		}
	}
	want := max(lim.Max, out.NrOpen)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err != nil {
		// Without CAP_SYS_RESOURCE (not root, or a container that drops
		// it) the soft limit can still go up to the hard one.
		if err2 := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: lim.Max, Max: lim.Max}); err2 != nil {
			out.Note = fmt.Sprintf("could not raise RLIMIT_NOFILE (%d): %v", lim.Cur, err2)
		} else {
			out.Note = fmt.Sprintf("could not raise the hard RLIMIT_NOFILE above %d to fs.nr_open (%v; it needs CAP_SYS_RESOURCE)", lim.Max, err)
		}
	}
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	out.After = lim.Cur
	return out
}

// fdWarning says when the idle scenario may run out of descriptors: a
// server holds one per accepted connection (its socket: it closes the
// segment's memfd once mapped), a client two per dialed connection (its
// socket and the segment it created), spread over procs processes; each
// process needs some of its own besides.
func fdWarning(l FDLimit, idle, procs int) string {
	procs = max(1, min(procs, idle))
	perClient := 2 * ((idle + procs - 1) / procs)
	if need := uint64(max(idle, perClient) + 1024); l.After < need {
		return fmt.Sprintf("RLIMIT_NOFILE is %d: %d idle connections need about %d descriptors in the server (1 per connection) and %d in each of %d client processes (2 per connection); a process that runs out refuses or fails connections and the idle rows say so (%s)",
			l.After, idle, idle+1024, perClient+1024, procs, l.Note)
	}
	return ""
}

// harness runs the scenarios.
type harness struct {
	opts    *ServerOptions
	dir     string
	seq     int
	fdLimit uint64 // RLIMIT_NOFILE of the processes it starts
}

func (h *harness) sockPath(name string) string {
	h.seq++
	return filepath.Join(h.dir, fmt.Sprintf("%s-%d.sock", name, h.seq))
}

// startServer starts `goipc pong` (mode default, park, or loop: every
// connection served by one event-loop goroutine) or `goipc unix-echo` on
// a fresh socket path and waits for its ready line.
func (h *harness) startServer(server, mode string, extra ...string) (*proc, string, error) {
	path := h.sockPath(server + "-" + mode)
	var args []string
	if server == serverGoipc {
		args = append([]string{"pong", "--listen", path}, h.opts.PongFlags...)
		switch mode {
		case "park":
			args = append(args, "--spin", "-1ns")
		case "loop":
			args = append(args, "--loop", LoopIdle.String())
		}
	} else {
		args = []string{"unix-echo", "--listen", path}
	}
	args = append(args, extra...)
	p, err := h.start("goipc "+args[0], args...)
	if err != nil {
		return nil, "", err
	}
	l, err := p.line(30 * time.Second)
	if err != nil || !strings.Contains(string(l), "listening on") {
		p.kill()
		return nil, "", fmt.Errorf("%s did not start: %q %v", strings.Join(args, " "), l, err)
	}
	return p, path, nil
}

// ---- scenario 1: idle connections ----------------------------------------

func (h *harness) idle(server string) IdleResult {
	o := h.opts
	r := IdleResult{Server: server, Requested: o.Idle}
	var extra []string
	if server == serverGoipc {
		// The listener's limits must admit the run: K connections, and
		// K small segments (12 KiB each with the idle clients' 4 KiB rings;
		// 64 KiB each leaves room for a larger control block).
		extra = []string{"--max-conns", strconv.Itoa(o.Idle), "--max-mapped", strconv.Itoa(o.Idle * 64 << 10)}
	}
	srv, path, err := h.startServer(server, "default", extra...)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer srv.stop(30 * time.Second)
	before, err := readProc(srv.pid())
	if err != nil {
		r.Error = fmt.Sprintf("read /proc of the server: %v", err)
		return r
	}
	r.ThreadsBefore, r.RSSBeforeKiB, r.PSSBeforeKiB = before.threads, before.rssKiB, before.pssKiB

	nprocs := max(1, min(o.IdleProcs, o.Idle))
	clients := make([]*proc, 0, nprocs)
	defer func() {
		for _, c := range clients {
			c.stop(30 * time.Second)
		}
	}()
	for i := 0; i < nprocs; i++ {
		n := o.Idle / nprocs
		if i < o.Idle%nprocs {
			n++
		}
		c, err := h.start(fmt.Sprintf("idle client %d", i+1), "bench-server-client", roleIdle,
			"--server", server, "--path", path, "--conns", strconv.Itoa(n))
		if err != nil {
			r.Error = err.Error()
			return r
		}
		clients = append(clients, c)
	}
	opened, capped, notes, err := h.waitOpened(srv, clients)
	r.Opened, r.Capped = opened, capped
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Note = notes
	if n := countFDs(srv.pid()); opened < o.Idle && h.fdLimit > 0 && uint64(n)+8 >= h.fdLimit {
		r.Note = fmt.Sprintf("the server ran out of descriptors: it holds %d, RLIMIT_NOFILE is %d; %s", n, h.fdLimit, r.Note)
	}
	// Let the connections settle (spinning receivers give up and park)
	// before the window.
	time.Sleep(time.Second)
	s0, err := readProc(srv.pid())
	if err != nil {
		r.Error = "the server exited before the window: " + srv.why()
		return r
	}
	t0 := time.Now()
	time.Sleep(o.IdleWindow)
	s1, err := readProc(srv.pid())
	window := time.Since(t0).Seconds()
	if err != nil || !srv.alive() {
		r.Error = "the server exited during the window: " + srv.why()
		return r
	}
	r.WindowS = window
	r.CPUPct = float64(s1.cpuTicks-s0.cpuTicks) / clockTicks / window * 100
	r.Threads = s1.threads
	r.VolCtxSwPerS = float64(s1.volCtxSw-s0.volCtxSw) / window
	r.InvolCtxSwPerS = float64(s1.involCtxSw-s0.involCtxSw) / window
	r.RSSAfterKiB, r.PSSAfterKiB, r.VmSizeAfterKiB = s1.rssKiB, s1.pssKiB, s1.vmSizeKiB
	r.FDs = countFDs(srv.pid())
	if r.Opened > 0 {
		r.RSSPerConnB = float64(s1.rssKiB-before.rssKiB) * 1024 / float64(r.Opened)
		r.PSSPerConnB = float64(s1.pssKiB-before.pssKiB) * 1024 / float64(r.Opened)
		var clientPSS int64
		for _, c := range clients {
			if s, err := readProc(c.pid()); err == nil {
				clientPSS += s.pssKiB
			}
		}
		r.ClientPSSPerConnB = float64(clientPSS) * 1024 / float64(r.Opened)
	}
	return r
}

// waitOpened follows the idle clients' progress until each is done,
// telling them to stop when the server exceeds the thread cap (a thread
// per connection would take the machine down long before 10,000). It
// returns the connections held and notes on why fewer than asked.
func (h *harness) waitOpened(srv *proc, clients []*proc) (opened int, capped bool, notes string, err error) {
	o := h.opts
	type update struct {
		i   int
		rep openReport
		err error
	}
	updates := make(chan update, 16)
	quit := make(chan struct{})
	defer close(quit)
	send := func(u update) bool {
		select {
		case updates <- u:
			return true
		case <-quit:
			return false
		}
	}
	for i, c := range clients {
		go func() {
			for {
				l, err := c.line(5 * time.Minute)
				if err != nil {
					send(update{i: i, err: err})
					return
				}
				var rep openReport
				if err := json.Unmarshal(l, &rep); err != nil {
					send(update{i: i, err: fmt.Errorf("%s: bad line %q", c.name, l)})
					return
				}
				if !send(update{i: i, rep: rep}) || rep.Done {
					return
				}
			}
		}()
	}
	held := make([]int, len(clients))
	done := 0
	var why []string
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for done < len(clients) {
		select {
		case u := <-updates:
			if u.err != nil {
				return sum(held), capped, "", u.err
			}
			held[u.i] = u.rep.Opened
			if u.rep.Done {
				done++
				if u.rep.Error != "" {
					why = append(why, clients[u.i].name+": "+u.rep.Error)
				}
			}
		case <-tick.C:
			if !srv.alive() {
				return sum(held), capped, "", fmt.Errorf("the server exited with %d connections open: %s", sum(held), srv.why())
			}
			if n := threadCount(srv.pid()); o.IdleThreadCap > 0 && n > o.IdleThreadCap && !capped {
				capped = true
				why = append(why, fmt.Sprintf("stopped opening at about %d connections: the server had %d OS threads (cap %d, --idle-thread-cap)", sum(held), n, o.IdleThreadCap))
				for _, c := range clients {
					io.WriteString(c.stdin, "stop\n")
				}
			}
		}
	}
	return sum(held), capped, strings.Join(why, "; "), nil
}

func sum(v []int) int {
	t := 0
	for _, x := range v {
		t += x
	}
	return t
}

// ---- scenario 2: slowloris -------------------------------------------------

func (h *harness) slowloris() *SlowlorisResult {
	o := h.opts
	r := &SlowlorisResult{}
	srv, path, err := h.startServer(serverGoipc, "default")
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer srv.stop(30 * time.Second)
	ping := func(into *[]float64, label string) {
		for i := 0; i < o.PingRuns; i++ {
			ms, err := h.timePing(path)
			if err != nil {
				r.Failures = append(r.Failures, fmt.Sprintf("%s, run %d: %v", label, i+1, err))
				// A ping that timed out behind the hostile clients would
				// time out again: one is enough to know.
				return
			}
			*into = append(*into, ms)
		}
	}
	ping(&r.WithoutMs, "without")
	cl, err := h.start("slowloris client", "bench-server-client", roleSlowloris, "--path", path,
		"--silent", strconv.Itoa(o.Silent), "--half", strconv.Itoa(o.HalfHello))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer cl.stop(30 * time.Second)
	l, err := cl.line(5 * time.Minute)
	var open openReport
	if err == nil {
		err = json.Unmarshal(l, &open)
	}
	if err != nil {
		r.Error = fmt.Sprintf("slowloris client: %v", err)
		return r
	}
	r.Silent, r.HalfHello, r.OpenNote = open.Opened-open.Half, open.Half, open.Error
	if !srv.alive() {
		r.Error = "the server exited: " + srv.why()
		return r
	}
	ping(&r.WithMs, "with")
	r.WithoutMedMs, r.WithMedMs = median(r.WithoutMs), median(r.WithMs)
	if len(r.WithoutMs) > 0 && len(r.WithMs) > 0 {
		r.DiffMs = r.WithMedMs - r.WithoutMedMs
	}
	return r
}

// timePing runs `goipc ping -n PingN` and returns its wall time in ms,
// process start to exit.
func (h *harness) timePing(path string) (float64, error) {
	o := h.opts
	argv := append(slices.Clone(o.CLI), "ping", "--dial", path, "-n", strconv.Itoa(o.PingN), "--warmup", "0",
		"--timeout", o.PingTimeout.String())
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	ms := float64(time.Since(t0)) / 1e6
	if err != nil {
		return ms, fmt.Errorf("goipc ping failed after %.0f ms: %v: %s", ms, err, lastLines(strings.TrimSpace(string(out)), 2))
	}
	return ms, nil
}

// ---- scenarios 3-5: round trips --------------------------------------------

// roundTrips runs one load client against path and returns its row.
func (h *harness) roundTrips(server, mode, path string, producers int, d time.Duration) RoundTripResult {
	o := h.opts
	r := RoundTripResult{Server: server, Mode: mode, Producers: producers, Size: o.Size}
	args := []string{"bench-server-client", roleLoad, "--server", server, "--path", path,
		"--producers", strconv.Itoa(producers), "--duration", d.String(), "--size", strconv.Itoa(o.Size)}
	if mode == "park" {
		args = append(args, "--spin", "-1ns")
	}
	c, err := h.start(fmt.Sprintf("load client (%s, %d producers)", r.Label(), producers), args...)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer c.stop(10 * time.Second)
	// Dialing a thousand connections on a busy machine, then the run,
	// then a round trip stuck for the client's own timeout at most.
	l, err := c.line(d + 5*time.Minute)
	var lr loadReport
	if err == nil {
		err = json.Unmarshal(l, &lr)
	}
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.RoundTrips, r.ElapsedS, r.Error, r.Percentiles, r.Warmup = lr.RoundTrips, lr.ElapsedS, lr.Error, lr.Percentiles, lr.Warmup
	if lr.ElapsedS > 0 {
		r.PerS = float64(lr.RoundTrips) / lr.ElapsedS
	}
	return r
}

func (h *harness) load(server, mode string) []RoundTripResult {
	o := h.opts
	var out []RoundTripResult
	srv, path, err := h.startServer(server, mode)
	if err != nil {
		for _, n := range o.Producers {
			out = append(out, RoundTripResult{Server: server, Mode: mode, Producers: n, Size: o.Size, Error: err.Error()})
		}
		return out
	}
	defer srv.stop(30 * time.Second)
	for _, n := range o.Producers {
		o.logf("load: %d producers on %s (%s) for %v", n, server, mode, o.LoadTime)
		r := h.roundTrips(server, mode, path, n, o.LoadTime)
		if r.Error != "" && !srv.alive() {
			r.Error += "; the server exited: " + srv.why()
		}
		out = append(out, r)
	}
	return out
}

// oneProducerRows measures one producer against goipc in each mode and
// against unix, each with its own server.
func (h *harness) oneProducerRows(modes []string, d time.Duration) []RoundTripResult {
	var out []RoundTripResult
	type row struct{ server, mode string }
	var rows []row
	for _, m := range modes {
		rows = append(rows, row{serverGoipc, m})
	}
	rows = append(rows, row{serverUnix, "default"})
	for _, x := range rows {
		srv, path, err := h.startServer(x.server, x.mode)
		if err != nil {
			out = append(out, RoundTripResult{Server: x.server, Mode: x.mode, Producers: 1, Size: h.opts.Size, Error: err.Error()})
			continue
		}
		out = append(out, h.roundTrips(x.server, x.mode, path, 1, d))
		srv.stop(30 * time.Second)
	}
	return out
}

func (h *harness) hogs() []RoundTripResult {
	o := h.opts
	var hogs []*proc
	defer func() {
		for _, p := range hogs {
			p.kill()
		}
	}()
	for i := 0; i < o.Hogs; i++ {
		p, err := h.start(fmt.Sprintf("hog %d", i+1), "bench-server-client", roleHog)
		if err == nil {
			_, err = p.line(30 * time.Second)
		}
		if err != nil {
			return []RoundTripResult{{Server: serverGoipc, Mode: "default", Producers: 1, Size: o.Size, Error: fmt.Sprintf("start hog: %v", err)}}
		}
		hogs = append(hogs, p)
	}
	return h.oneProducerRows([]string{"default", "park"}, o.HogTime)
}

func (h *harness) park() []RoundTripResult {
	return h.oneProducerRows([]string{"park"}, h.opts.ParkTime)
}
