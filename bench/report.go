package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode/utf8"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error { return writeIndentedJSON(w, r) }

func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteJSONFile writes the report to path.
func (r *Report) WriteJSONFile(path string) error {
	return writeFile(path, r.WriteJSON)
}

func writeFile(path string, f func(io.Writer) error) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f(out); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// FormatNs prints a duration in ns with a unit that keeps 3 digits.
func FormatNs(ns float64) string {
	switch {
	case ns <= 0:
		return "-"
	case ns < 1e3:
		return fmt.Sprintf("%.0fns", ns)
	case ns < 1e4:
		return fmt.Sprintf("%.2fus", ns/1e3)
	case ns < 1e5:
		return fmt.Sprintf("%.1fus", ns/1e3)
	case ns < 1e6:
		return fmt.Sprintf("%.0fus", ns/1e3)
	case ns < 1e7:
		return fmt.Sprintf("%.2fms", ns/1e6)
	case ns < 1e9:
		return fmt.Sprintf("%.1fms", ns/1e6)
	}
	return fmt.Sprintf("%.2fs", ns/1e9)
}

// FormatSize prints a message size the way --sizes takes it.
func FormatSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%d", n)
}

func formatRate(v float64) string {
	switch {
	case v <= 0:
		return "-"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fK", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func formatRatio(v float64) string {
	if v <= 0 {
		return "-"
	}
	if v < 10 {
		return fmt.Sprintf("%.2fx", v)
	}
	return fmt.Sprintf("%.1fx", v)
}

func formatSyscalls(r *Result) string {
	if r.SyscallsPerMsg == nil {
		return "-"
	}
	if r.TimingDependent {
		return fmt.Sprintf("<=%.2f*", *r.SyscallsPerMsg)
	}
	return fmt.Sprintf("%.2f", *r.SyscallsPerMsg)
}

func formatSpread(r *Result) string {
	if r.Runs < 2 {
		return "-"
	}
	return formatPct(r.SpreadPct)
}

func formatPct(v float64) string {
	if v >= 1000 {
		return ">1000%"
	}
	return fmt.Sprintf("%.1f%%", v)
}

// Label is the row's name in the table and charts: mechanism, plus the
// mode when there is more than one.
func (r *Result) Label() string {
	if r.Mode == "default" || r.Mode == "" {
		return r.Mechanism
	}
	return r.Mechanism + " (" + r.Mode + ")"
}

// alignTable prints rows with columns padded to the same width; the first
// `left` columns are left-aligned, the others right-aligned.
func alignTable(w io.Writer, rows [][]string, left int) {
	var widths []int
	for _, row := range rows {
		for i, c := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for ri, row := range rows {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if i < left {
				b.WriteString(c + pad)
			} else {
				b.WriteString(pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if ri == 0 {
			total := 0
			for _, wd := range widths {
				total += wd + 2
			}
			fmt.Fprintln(w, strings.Repeat("-", total-2))
		}
	}
}

// writeLine prints the "machine:" line of a table.
func (m *Machine) writeLine(w io.Writer) {
	virt := ""
	if m.Hypervisor {
		virt = ", virtualized"
	}
	fmt.Fprintf(w, "machine: %s, %d cores (GOMAXPROCS %d%s), %s, %s, %s\n", m.CPUModel, m.Cores, m.GOMAXPROCS, virt, m.Kernel, m.Arch, m.GoVersion)
}

// resultsFor returns the results of one workload in table order.
func (r *Report) resultsFor(workload string) []Result {
	var out []Result
	for _, x := range r.Results {
		if x.Workload == workload {
			out = append(out, x)
		}
	}
	slices.SortStableFunc(out, func(a, b Result) int { return a.Size - b.Size })
	return out
}

// WriteTable prints the human-readable report.
func (r *Report) WriteTable(w io.Writer) {
	m := r.Machine
	m.writeLine(w)
	fmt.Fprintf(w, "noise:   %d timed runs per point of ~%.0f ms each after %.0f ms of warm-up; median run-to-run spread %s (max %s);\n"+
		"         other processes used %.2f cores, steal %.2f cores on average; load average %s at start, %s at end\n",
		r.Config.Runs, r.Config.RunTimeMs, r.Config.WarmupMs, formatPct(r.medianSpread()), formatPct(r.maxSpread()),
		m.OtherCPU, m.StealCPU, m.LoadAvgStart, m.LoadAvgEnd)
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warn)
	}
	fmt.Fprintf(w, "per message = one one-way message (a round trip is two); syscalls: %s; context switches: getrusage, both processes\n\n", r.syscallNote())

	if pp := r.resultsFor(PingPong); len(pp) > 0 {
		fmt.Fprintln(w, "Round trip (pingpong), time compared to goipc:")
		rows := [][]string{{"mechanism", "size", "p50", "p90", "p99", "p99.9", "max", "spread", "ctxsw/msg", "syscalls/msg", "kcopies", "vs goipc"}}
		for i := range pp {
			x := &pp[i]
			if row := skipRow(x, 12); row != nil {
				rows = append(rows, row)
				continue
			}
			rows = append(rows, []string{x.Label(), FormatSize(x.Size), FormatNs(float64(x.P50)), FormatNs(float64(x.P90)),
				FormatNs(float64(x.P99)), FormatNs(float64(x.P999)), FormatNs(float64(x.Max)), formatSpread(x),
				ctxsw(x), formatSyscalls(x), fmt.Sprint(x.KernelCopies), formatRatio(x.Ratio)})
		}
		alignTable(w, rows, 1)
		fmt.Fprintln(w)
	}
	if st := r.resultsFor(Stream); len(st) > 0 {
		fmt.Fprintln(w, "One-way throughput (stream), time per message compared to goipc:")
		rows := [][]string{{"mechanism", "size", "msgs/s", "GB/s", "per msg", "spread", "ctxsw/msg", "syscalls/msg", "kcopies", "vs goipc"}}
		for i := range st {
			x := &st[i]
			if row := skipRow(x, 10); row != nil {
				rows = append(rows, row)
				continue
			}
			rows = append(rows, []string{x.Label(), FormatSize(x.Size), formatRate(x.MsgsPerS), fmt.Sprintf("%.3f", x.GBPerS),
				FormatNs(timePerMsg(x)), formatSpread(x), ctxsw(x), formatSyscalls(x),
				fmt.Sprint(x.KernelCopies), formatRatio(x.Ratio)})
		}
		alignTable(w, rows, 1)
		fmt.Fprintln(w)
	}
	var notes []string
	for _, x := range r.Results {
		if x.Error != "" {
			notes = append(notes, fmt.Sprintf("  %s %s %s: error: %s", x.Label(), x.Workload, FormatSize(x.Size), x.Error))
		} else if x.Skipped != "" {
			notes = append(notes, fmt.Sprintf("  %s %s %s: %s", x.Label(), x.Workload, FormatSize(x.Size), x.Skipped))
		}
	}
	if r.Config.Syscalls == "strace" && r.hasTimingDependent() {
		fmt.Fprintln(w, "* spin-then-park design: strace slows every system call, so it parks more often under strace than in the")
		fmt.Fprintln(w, "  timed runs; the count is an upper bound, and ctxsw/msg (measured in the timed runs) shows how often it really slept.")
		fmt.Fprintln(w)
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "Not measured:")
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
		fmt.Fprintln(w)
	}
}

func ctxsw(x *Result) string {
	if x.SyscallMethod == "not measured (peer row)" {
		return "-"
	}
	return fmt.Sprintf("%.2f", x.CtxSwPerMsg)
}

func skipRow(x *Result, cols int) []string {
	mark := "n/a"
	if x.Error != "" {
		mark = "error"
	} else if x.Skipped == "" {
		return nil
	}
	row := []string{x.Label(), FormatSize(x.Size), mark}
	for len(row) < cols {
		row = append(row, "-")
	}
	return row
}

func (r *Report) spreads() []float64 {
	var v []float64
	for _, x := range r.Results {
		if x.Error == "" && x.Skipped == "" && x.Runs > 1 {
			v = append(v, x.SpreadPct)
		}
	}
	return v
}

func (r *Report) medianSpread() float64 { return median(r.spreads()) }

func (r *Report) maxSpread() float64 {
	v := r.spreads()
	if len(v) == 0 {
		return 0
	}
	return slices.Max(v)
}

func (r *Report) syscallNote() string {
	if r.Config.Syscalls == "strace" {
		return "measured with strace -f on the two benchmark threads (difference of two runs, see docs/BENCHMARKS.md)"
	}
	return "not measured (strace not installed or --syscalls=off)"
}

func (r *Report) hasTimingDependent() bool {
	for _, x := range r.Results {
		if x.TimingDependent && x.SyscallsPerMsg != nil {
			return true
		}
	}
	return false
}
