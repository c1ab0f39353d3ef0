package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// What the server bench reads about a process it started, from /proc.

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports (the kernel exports 100 whatever
// its internal HZ).
const clockTicks = 100

// procSample is one reading of a process.
type procSample struct {
	cpuTicks         int64 // utime + stime, every thread, dead ones included
	threads          int
	volCtxSw         int64 // voluntary context switches, summed over live threads
	involCtxSw       int64
	rssKiB, pssKiB   int64 // smaps_rollup
	rssAnonKiB       int64
	rssShmemKiB      int64
	vmSizeKiB        int64
	ctxSwUnavailable bool
}

// readProc samples pid. Any field it cannot read stays 0; the error says
// the process is gone (or /proc is not there).
func readProc(pid int) (procSample, error) {
	var s procSample
	dir := fmt.Sprintf("/proc/%d", pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted after the last ')'. utime and stime are fields
	// 14 and 15 of the line, the 12th and 13th after the name.
	if i := strings.LastIndex(string(stat), ") "); i >= 0 {
		if f := strings.Fields(string(stat)[i+2:]); len(f) > 12 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			s.cpuTicks = ut + st
		}
	}
	status := readKV(dir + "/status")
	s.threads = int(status["Threads"])
	s.vmSizeKiB = status["VmSize"]
	roll := readKV(dir + "/smaps_rollup")
	s.rssKiB, s.pssKiB = roll["Rss"], roll["Pss"]
	s.rssAnonKiB, s.rssShmemKiB = roll["Anonymous"], roll["Shared_Clean"]+roll["Shared_Dirty"]
	// /proc/PID/status counts the switches of the main thread only: sum
	// every thread's.
	tasks, err := os.ReadDir(dir + "/task")
	if err != nil {
		s.ctxSwUnavailable = true
		return s, nil
	}
	for _, t := range tasks {
		kv := readKV(filepath.Join(dir, "task", t.Name(), "status"))
		s.volCtxSw += kv["voluntary_ctxt_switches"]
		s.involCtxSw += kv["nonvoluntary_ctxt_switches"]
	}
	return s, nil
}

// readKV reads "Key:   123 kB" lines into Key -> 123. Missing file: empty.
func readKV(path string) map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// countFDs is the number of descriptors pid has open (0 when unreadable).
func countFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

// threadCount is the number of threads of pid (0 when unreadable): the
// cheap part of readProc, for polling.
func threadCount(pid int) int {
	return int(readKV(fmt.Sprintf("/proc/%d/status", pid))["Threads"])
}
