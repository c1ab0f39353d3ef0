package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/goipc/goipc/bench"
)

func init() {
	commands["bench"] = command{summary: "compare goipc with pipes, FIFOs, sockets, TCP, UDP, message queues, eventfd", run: runBench}
	commands["bench-child"] = command{summary: "the other process of goipc bench (internal)", run: runBenchChild, hidden: true}
}

// runBenchChild is the child process that `goipc bench` re-executes.
func runBenchChild(args []string) int {
	if !bench.IsChild() {
		fmt.Fprintf(os.Stderr, "goipc bench-child: internal command, run by goipc bench (%s is not set)\n", bench.EnvChild)
		return 2
	}
	return bench.ChildMain()
}

// parseSizes reads "64,1K,64K,1M" (K = 1024, M = 1024*1024).
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		mult := 1
		u := strings.ToUpper(f)
		u = strings.TrimSuffix(strings.TrimSuffix(u, "IB"), "B")
		switch {
		case strings.HasSuffix(u, "K"):
			mult, u = 1<<10, strings.TrimSuffix(u, "K")
		case strings.HasSuffix(u, "M"):
			mult, u = 1<<20, strings.TrimSuffix(u, "M")
		}
		n, err := strconv.Atoi(u)
		if err != nil || n <= 0 || n > (1<<30)/mult {
			return nil, fmt.Errorf("bad size %q (want e.g. 64, 1K, 64K, 1M)", f)
		}
		out = append(out, n*mult)
	}
	if len(out) == 0 {
		return nil, errors.New("no sizes")
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// writeOutput writes a report file asked for by flag (nothing when path is
// empty) and says so on stderr; false when it failed.
func writeOutput(cmd, flag, path string, write func(string) error) bool {
	if path == "" {
		return true
	}
	if err := write(path); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %s: %v\n", cmd, flag, err)
		return false
	}
	fmt.Fprintf(os.Stderr, "%s: wrote %s\n", cmd, path)
	return true
}

func runBench(args []string) int {
	fs := flag.NewFlagSet("goipc bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: goipc bench [flags]\n\n"+
			"Runs the same round-trip (pingpong) and one-way (stream) workloads between two processes over\n"+
			"every IPC mechanism and prints them side by side, with the time compared to goipc.\n"+
			"Method: docs/BENCHMARKS.md.\n\nflags:\n")
		fs.PrintDefaults()
	}
	sizes := fs.String("sizes", "64", "message `sizes`, comma-separated (K = 1024, M = 1024*1024), e.g. 64,1K,64K,1M")
	jsonOut := fs.String("json", "", "write the results as JSON to `file`")
	htmlOut := fs.String("html", "", "write a self-contained HTML page with charts to `file`")
	svgOut := fs.String("svg", "", "write the round-trip latency chart of the first size as a standalone SVG to `file`")
	peers := fs.String("peers", "", "cross-language rows: comma-separated `languages` among c, python, rust, go")
	mechs := fs.String("mechanisms", "", "comma-separated mechanism `ids` (default: all; see --list)")
	workloads := fs.String("workloads", "pingpong,stream", "comma-separated `workloads`: pingpong, stream")
	runs := fs.Int("runs", 5, "timed runs per point")
	duration := fs.Duration("duration", 200*time.Millisecond, "target length of one timed run")
	warmup := fs.Duration("warmup", 100*time.Millisecond, "warm-up per point (untimed, payloads verified)")
	quick := fs.Bool("quick", false, "a fast smoke run: 1 run of 20ms per point, no syscall counting")
	syscalls := fs.String("syscalls", "", "how to count system calls: strace (default when installed) or off")
	verify := fs.Bool("verify", false, "verify every payload in the timed runs too (slower)")
	root := fs.String("root", ".", "repository `dir` where the peers' programs are built (build/, bindings/)")
	list := fs.Bool("list", false, "list the mechanisms and what they cost by design, then exit")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "goipc bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *list {
		for _, m := range bench.All() {
			d := m.Design()
			fmt.Printf("%-22s kernel copies %d, user copies %d, syscalls/msg %s\n%-22s %s\n", bench.ID(m), d.KernelCopies, d.UserCopies, d.Syscalls, "", d.Note)
		}
		return 0
	}
	opts := bench.Options{Runs: *runs, RunTime: *duration, Warmup: *warmup, Syscalls: *syscalls, Verify: *verify}
	var err error
	if opts.Sizes, err = parseSizes(*sizes); err != nil {
		fmt.Fprintln(os.Stderr, "goipc bench: --sizes:", err)
		return 2
	}
	for _, w := range splitList(*workloads) {
		if w != bench.PingPong && w != bench.Stream {
			fmt.Fprintf(os.Stderr, "goipc bench: --workloads: unknown workload %q (pingpong, stream)\n", w)
			return 2
		}
		opts.Workloads = append(opts.Workloads, w)
	}
	for _, id := range splitList(*mechs) {
		ms, err := bench.Lookup(id)
		if err != nil {
			fmt.Fprintln(os.Stderr, "goipc bench: --mechanisms:", err)
			return 2
		}
		opts.Mechanisms = append(opts.Mechanisms, ms...)
	}
	if *syscalls != "" && *syscalls != "strace" && *syscalls != "off" {
		fmt.Fprintf(os.Stderr, "goipc bench: --syscalls: %q is not strace or off\n", *syscalls)
		return 2
	}
	if *quick {
		opts.Runs, opts.RunTime, opts.Warmup = 1, 20*time.Millisecond, 5*time.Millisecond
		if *syscalls == "" {
			opts.Syscalls = "off"
		}
	}
	if langs := splitList(*peers); len(langs) > 0 {
		if opts.Peers, err = bench.ResolvePeers(langs, *root); err != nil {
			fmt.Fprintln(os.Stderr, "goipc bench:", err)
			return 1
		}
	}
	if !*quiet {
		opts.Log = os.Stderr
	}
	rep, err := bench.Run(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goipc bench:", err)
		return 1
	}
	rep.WriteTable(os.Stdout)
	if !writeOutput("goipc bench", "--json", *jsonOut, rep.WriteJSONFile) ||
		!writeOutput("goipc bench", "--html", *htmlOut, rep.WriteHTMLFile) ||
		!writeOutput("goipc bench", "--svg", *svgOut, rep.WriteLatencySVGFile) {
		return 1
	}
	for _, r := range rep.Results {
		if r.Error != "" {
			return 1
		}
	}
	return 0
}
