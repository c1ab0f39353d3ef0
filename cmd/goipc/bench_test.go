package main

import (
	"slices"
	"testing"
)

func TestParseSizes(t *testing.T) {
	got, err := parseSizes("64, 1K,64KiB,1M,100B")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{64, 1024, 65536, 1 << 20, 100}; !slices.Equal(got, want) {
		t.Errorf("parseSizes = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "0", "-1", "1G", "abc", "2048M"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) succeeded", bad)
		}
	}
}

func TestRunBenchFlags(t *testing.T) {
	for _, args := range [][]string{{"--sizes", "x"}, {"--workloads", "sideways"}, {"--mechanisms", "pigeon"}, {"--syscalls", "perf"}, {"extra"}} {
		if code := runBench(args); code != 2 {
			t.Errorf("runBench(%v) = %d, want 2", args, code)
		}
	}
	if code := runBench([]string{"--peers", "c", "--root", t.TempDir(), "-q"}); code != 1 {
		t.Errorf("--peers c without its peer program = %d, want 1", code)
	}
	if code := runBench([]string{"--list"}); code != 0 {
		t.Errorf("--list = %d", code)
	}
	if code := runBenchChild(nil); code != 2 {
		t.Errorf("bench-child outside a bench = %d, want 2", code)
	}
}
