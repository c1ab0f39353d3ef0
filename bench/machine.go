package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Machine describes where the numbers were measured.
type Machine struct {
	CPUModel     string `json:"cpu_model"`
	Cores        int    `json:"cores"`
	GOMAXPROCS   int    `json:"gomaxprocs"`
	Hypervisor   bool   `json:"virtualized"`
	Kernel       string `json:"kernel"`
	KernelBuild  string `json:"kernel_build"`
	Arch         string `json:"arch"`
	GoVersion    string `json:"go_version"`
	MemTotal     string `json:"mem_total"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
	Date         string `json:"date"`
	// OtherCPU is how many cores other processes (not the bench, its
	// children or strace) kept busy on average during the run; StealCPU how
	// many the hypervisor took (steal time). Both come from /proc/stat
	// minus the bench's own getrusage.
	OtherCPU float64 `json:"other_cpu_cores"`
	StealCPU float64 `json:"steal_cpu_cores"`
}

// cpuSample is the machine's busy and steal time and the bench's own CPU
// time (itself and its waited-for children) at one instant.
type cpuSample struct {
	at          time.Time
	busy, steal float64 // seconds, all CPUs (from /proc/stat)
	ours        float64 // seconds (getrusage SELF + CHILDREN)
}

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		if len(f) >= 9 && f[0] == "cpu" {
			var v [8]float64
			for i := range v {
				fmt.Sscan(f[1+i], &v[i])
			}
			// user nice system idle iowait irq softirq steal, in USER_HZ (100).
			s.busy = (v[0] + v[1] + v[2] + v[5] + v[6]) / 100
			s.steal = v[7] / 100
		}
	}
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		if unix.Getrusage(who, &ru) == nil {
			s.ours += float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
		}
	}
	return s
}

// othersSince returns the cores used by other processes and stolen by the
// hypervisor, on average, between s0 and s.
func (s cpuSample) othersSince(s0 cpuSample) (other, steal float64) {
	wall := s.at.Sub(s0.at).Seconds()
	if wall <= 0 {
		return 0, 0
	}
	other = max(0, (s.busy-s0.busy)-(s.ours-s0.ours)) / wall
	steal = max(0, s.steal-s0.steal) / wall
	return other, steal
}

// DescribeMachine reads the CPU, kernel and load of this machine.
func DescribeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Arch: runtime.GOARCH,
		GoVersion: runtime.Version(), LoadAvgStart: loadAvg(), Date: time.Now().UTC().Format(time.RFC3339)}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			switch k {
			case "model name":
				if m.CPUModel == "" {
					m.CPUModel = v
				}
			case "flags":
				m.Hypervisor = m.Hypervisor || strings.Contains(" "+v+" ", " hypervisor ")
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				var kb float64
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%f kB", &kb); err == nil {
					m.MemTotal = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
				break
			}
		}
		f.Close()
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
		m.KernelBuild = unix.ByteSliceToString(u.Version[:])
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// CacheLineRoundTrip measures the machine's floor for any shared-memory
// round trip between two threads: two goroutines, each locked to its OS
// thread, bounce a counter through two cache lines (one written by each
// side) n times, and it returns the median round trip, clock reads
// included. A 64 B message round trip moves at least this (goipc's, a
// frame and a position each way, more), so a goal stated in nanoseconds
// is read against it: on this project's 2-vCPU guest it measured 390-450
// ns, where the goal of 500 ns was set on a host whose two vCPUs shared a
// core's cache (docs/PERFORMANCE.md section 25). It
// returns 0 with fewer than 2 Ps, where the two spinners would take turns
// at preemption.
func CacheLineRoundTrip(n int) time.Duration {
	if runtime.GOMAXPROCS(0) < 2 || n <= 0 {
		return 0
	}
	var lines struct {
		ping atomic.Int64
		_    [120]byte // ping and pong on lines of their own
		pong atomic.Int64
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for i := int64(1); i <= int64(n); i++ {
			for lines.ping.Load() != i {
			}
			lines.pong.Store(i)
		}
	}()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rtts := make([]time.Duration, n)
	origin := time.Now()
	for i := int64(1); i <= int64(n); i++ {
		t0 := time.Since(origin)
		lines.ping.Store(i)
		for lines.pong.Load() != i {
		}
		rtts[i-1] = time.Since(origin) - t0
	}
	<-done
	slices.Sort(rtts)
	return rtts[n/2]
}
