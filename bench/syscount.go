package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// System calls per message are measured, not estimated: the point is run
// twice more, outside the timed runs, as a separate process tree under
// `strace -f` (every thread of the parent and of the child), once with n1
// and once with n2 iterations. Start-up, set-up, warm-up and exit make the
// same calls in both runs, so (calls(n2) - calls(n1)) / messages(n2 - n1)
// is the cost of one message.
//
// The headline figure counts the calls of the two benchmark threads (the
// locked OS threads that run the message loops; each process reports its
// thread id), which is where every mechanism, goipc included, makes its
// calls. The Go runtime's background threads (sysmon's nanosleep, futex
// hand-offs of a P while a thread blocks in a call) are counted apart, in
// all_threads: their rate depends on time, and strace slows every call, so
// under strace they are inflated. strace also changes timing-dependent
// paths (how often a spinning waiter gives up and sleeps): the figure is
// exact for mechanisms whose calls do not depend on timing and an upper
// bound for spin-then-sleep designs.

// countSpec is the syscount role's point.
type countSpec struct {
	Workload string   `json:"workload"`
	Size     int      `json:"size"`
	Iters    int      `json:"iters"`
	Window   int      `json:"window,omitempty"`
	Child    []string `json:"child"`
	TidFile  string   `json:"tid_file"` // where the run writes its two benchmark thread ids
}

// syscountMethod names the method in results.
const syscountMethod = "strace -f, benchmark threads, difference of two runs"

func countSyscalls(opts *Options, m Mechanism, r *Result) {
	n1, n2 := 100, 600
	perIter := 2.0 // pingpong: two messages per iteration
	if r.Workload == Stream {
		n1, n2, perIter = 200, 1200, 1
	}
	if r.Size >= 256<<10 {
		n1, n2 = n1/2, n2/2
	}
	c1, err := straceRun(opts, m, r, n1)
	if err == nil {
		var c2 *straceCounts
		c2, err = straceRun(opts, m, r, n2)
		if err == nil {
			// Per system call name, a count cannot fall with more
			// messages: a negative difference is noise (the Go runtime's
			// timing-dependent calls on the benchmark thread) and counts
			// as zero rather than cancelling real calls of another name.
			msgs := float64(n2-n1) * perIter
			bench := 0.0
			r.SyscallDetail = map[string]float64{}
			for name, v := range c2.byName {
				d := float64(v-c1.byName[name]) / msgs
				if d > 0 {
					bench += d
				}
				if d >= 0.05 {
					r.SyscallDetail[name] = roundTo(d, 2)
				}
			}
			all := max(0, float64(c2.all-c1.all)/msgs)
			r.SyscallsPerMsg = &bench
			r.SyscallsAllThreads = &all
			r.SyscallMethod = fmt.Sprintf("%s (%d and %d iterations)", syscountMethod, n1, n2)
			return
		}
	}
	opts.logf("bench: syscall count %s %s %d B: %v", ID(m), r.Workload, r.Size, err)
	r.SyscallMethod = "failed: " + err.Error()
}

func roundTo(v float64, digits int) float64 {
	s := strconv.FormatFloat(v, 'f', digits, 64)
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// straceCounts is what one strace run counted.
type straceCounts struct {
	bench  int            // calls of the two benchmark threads
	all    int            // calls of every thread
	byName map[string]int // benchmark threads' calls per system call
}

// straceRun runs one point with iters iterations under strace.
func straceRun(opts *Options, m Mechanism, r *Result, iters int) (*straceCounts, error) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		return nil, errNoStrace
	}
	dir, err := os.MkdirTemp("", "goipc-bench-strace-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	trace, tids := filepath.Join(dir, "trace.txt"), filepath.Join(dir, "tids.txt")
	spec, _ := json.Marshal(childSpec{Role: "syscount", Mech: m.Name(), Mode: m.Mode(),
		Count: &countSpec{Workload: r.Workload, Size: r.Size, Iters: iters, Window: m.StreamWindow(r.Size), Child: opts.Child, TidFile: tids}})
	args := append([]string{"-f", "-qq", "-s", "0", "-o", trace, "--"}, opts.Child...)
	cmd := exec.Command(strace, args...)
	cmd.Env = append(os.Environ(), EnvChild+"="+string(spec))
	cmd.Stderr = os.Stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(opts.Timeout):
		cmd.Process.Kill()
		<-done
		err = fmt.Errorf("strace run did not finish within %v", opts.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("strace run: %w", err)
	}
	tb, err := os.ReadFile(tids)
	if err != nil {
		return nil, fmt.Errorf("benchmark thread ids: %w", err)
	}
	want := map[string]bool{}
	for _, f := range strings.Fields(string(tb)) {
		want[f] = true
	}
	if len(want) != 2 {
		return nil, fmt.Errorf("benchmark thread ids: %q", tb)
	}
	return parseStraceTrace(trace, want)
}

// parseStraceTrace counts the calls in a `strace -f` trace. Lines look like
//
//	1234  write(5, ""..., 64) = 64
//	1234  read(4,  <unfinished ...>
//	1235  <... read resumed>""..., 64) = 64
//	1234  --- SIGURG {si_signo=SIGURG, ...} ---
//	1234  +++ exited with 0 +++
//
// A call counts once, on the line that starts it.
func parseStraceTrace(path string, benchTids map[string]bool) (*straceCounts, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c := &straceCounts{byName: map[string]int{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		tid, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "<...") || strings.HasPrefix(rest, "---") || strings.HasPrefix(rest, "+++") {
			continue
		}
		name, _, ok := strings.Cut(rest, "(")
		if !ok || name == "" || strings.ContainsAny(name, " <>") {
			continue
		}
		c.all++
		if benchTids[tid] {
			c.bench++
			c.byName[name]++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if c.all == 0 {
		return nil, fmt.Errorf("empty strace trace %s", path)
	}
	return c, nil
}

// runSyscountParent is the syscount role: a parent that runs one point
// with a fixed number of iterations, without timing it.
func runSyscountParent(spec *childSpec) error {
	c := spec.Count
	if c == nil {
		return fmt.Errorf("syscount role without a point")
	}
	m, err := lookupExact(spec.Mech, spec.Mode)
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	opts := &Options{Child: c.Child, Timeout: 5 * time.Minute}
	s, err := startSession(opts, m, c.Size)
	if err != nil {
		return err
	}
	tids := fmt.Sprintf("%d %d\n", unix.Gettid(), s.tid)
	if err := os.WriteFile(c.TidFile, []byte(tids), 0o600); err != nil {
		s.kill()
		s.close()
		return err
	}
	// A short warm-up, the same in both runs.
	if _, err := s.exec(command{Op: c.Workload, Size: c.Size, Iters: 8, Window: c.Window}, nil); err == nil {
		_, err = s.exec(command{Op: c.Workload, Size: c.Size, Iters: c.Iters, Window: c.Window}, nil)
	}
	if cerr := s.close(); err == nil {
		err = cerr
	}
	return err
}
