package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteJSON writes the report as indented JSON.
func (r *ServerReport) WriteJSON(w io.Writer) error { return writeIndentedJSON(w, r) }

// WriteJSONFile writes the report to path.
func (r *ServerReport) WriteJSONFile(path string) error { return writeFile(path, r.WriteJSON) }

// WriteTable prints the human-readable report.
func (r *ServerReport) WriteTable(w io.Writer) {
	m := r.Machine
	m.writeLine(w)
	fmt.Fprintf(w, "noise:   load average %s at start, %s at end; other processes used %.2f cores, steal %.2f cores on average (%.0f s)\n",
		m.LoadAvgStart, m.LoadAvgEnd, m.OtherCPU, m.StealCPU, r.Config.Elapsed)
	if r.CacheLineRoundTrip > 0 {
		fmt.Fprintf(w, "floor:   %s: the median round trip of two threads bouncing a cache line each way, the least any shared-memory round trip here costs\n",
			FormatNs(float64(r.CacheLineRoundTrip)))
	}
	fl := r.FDLimit
	fmt.Fprintf(w, "fds:     RLIMIT_NOFILE %d at start, %d for the processes of this run (fs.nr_open %d)", fl.Before, fl.After, fl.NrOpen)
	if fl.Note != "" {
		fmt.Fprintf(w, ": %s", fl.Note)
	}
	fmt.Fprintln(w)
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", warn)
	}
	fmt.Fprintln(w, "servers: goipc = goipc pong; unix = goipc unix-echo (net package, a goroutine per connection), each a separate process")
	fmt.Fprintln(w)

	if len(r.Idle) > 0 {
		fmt.Fprintf(w, "1. Idle connections: %d requested per server, measured over %s (server process, /proc)\n", r.Config.Idle, secs(r.Config.IdleWindowS))
		rows := [][]string{{"server", "conns", "cpu", "threads", "volcs/s", "RSS", "PSS", "RSS/conn", "PSS/conn", "client PSS/conn", "VmSize", "fds"}}
		var notes []string
		for _, x := range r.Idle {
			if x.Error != "" {
				rows = append(rows, padRow([]string{x.Server, fmt.Sprint(x.Opened), "error"}, 12))
				notes = append(notes, fmt.Sprintf("  %s: error: %s", x.Server, x.Error))
				continue
			}
			rows = append(rows, []string{x.Server, fmt.Sprint(x.Opened), fmt.Sprintf("%.2f%%", x.CPUPct),
				fmt.Sprintf("%d->%d", x.ThreadsBefore, x.Threads), fmt.Sprintf("%.0f", x.VolCtxSwPerS),
				kib(x.RSSBeforeKiB) + "->" + kib(x.RSSAfterKiB), kib(x.PSSBeforeKiB) + "->" + kib(x.PSSAfterKiB),
				bytesStr(x.RSSPerConnB), bytesStr(x.PSSPerConnB), bytesStr(x.ClientPSSPerConnB), kib(x.VmSizeAfterKiB), fmt.Sprint(x.FDs)})
			if x.Note != "" {
				notes = append(notes, fmt.Sprintf("  %s: %s", x.Server, x.Note))
			}
		}
		alignTable(w, rows, 1)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
		fmt.Fprintln(w, "  cpu: % of one core; volcs/s: voluntary context switches per second, all threads; memory before -> after")
		fmt.Fprintln(w)
	}

	if s := r.Slowloris; s != nil {
		fmt.Fprintf(w, "2. Slowloris: wall time of `goipc ping -n %d` against goipc pong (median of %d runs)\n", r.Config.PingN, r.Config.PingRuns)
		if s.Error != "" {
			fmt.Fprintf(w, "  error: %s\n\n", s.Error)
		} else {
			rows := [][]string{{"clients open", "runs ok", "median", "runs"}}
			rows = append(rows, []string{"none", fmt.Sprint(len(s.WithoutMs)), msStr(s.WithoutMedMs), msList(s.WithoutMs)})
			rows = append(rows, []string{fmt.Sprintf("%d silent + %d half-hello", s.Silent, s.HalfHello), fmt.Sprint(len(s.WithMs)), msStr(s.WithMedMs), msList(s.WithMs)})
			alignTable(w, rows, 1)
			if len(s.WithMs) > 0 && len(s.WithoutMs) > 0 {
				fmt.Fprintf(w, "  difference: %+.1f ms\n", s.DiffMs)
			}
			if s.OpenNote != "" {
				fmt.Fprintf(w, "  opening the clients: %s\n", s.OpenNote)
			}
			for _, f := range s.Failures {
				fmt.Fprintf(w, "  failed: %s\n", f)
			}
			fmt.Fprintln(w)
		}
	}

	if len(r.Load) > 0 {
		fmt.Fprintf(w, "3. Load: N producers, each on its own connection, %d B round trips for %s per row after a warm-up of %s, every reply checked\n",
			r.Config.Size, secs(r.Config.LoadTimeS), secs(loadWarmup(time.Duration(r.Config.LoadTimeS*float64(time.Second))).Seconds()))
		fmt.Fprintln(w, "   (warm-up max: the worst round trip of the warm-up, every connection starting idle and all at once)")
		rows := [][]string{{"producers", "server", "round trips/s", "p50", "p99", "max", "warm-up max", "goipc/unix rt/s"}}
		var notes []string
		for _, n := range r.Config.Producers {
			u := findRow(r.Load, serverUnix, "default", n)
			for _, row := range [][2]string{{serverGoipc, "default"}, {serverGoipc, "loop"}, {serverUnix, "default"}} {
				srv := row[0]
				x := findRow(r.Load, srv, row[1], n)
				if x == nil {
					continue
				}
				if x.Error != "" {
					rows = append(rows, padRow([]string{fmt.Sprint(n), x.Label(), "error"}, 8))
					notes = append(notes, fmt.Sprintf("  N=%d %s: error: %s", n, x.Label(), x.Error))
					continue
				}
				ratio := "-"
				if srv == serverGoipc && u != nil && u.Error == "" && u.PerS > 0 {
					ratio = formatRatio(x.PerS / u.PerS)
				}
				rows = append(rows, []string{fmt.Sprint(n), x.Label(), formatRate(x.PerS), FormatNs(float64(x.P50)),
					FormatNs(float64(x.P99)), FormatNs(float64(x.Max)), FormatNs(float64(x.WarmupMax)), ratio})
			}
		}
		alignTable(w, rows, 2)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
		fmt.Fprintln(w)
	}

	writeOneProducer := func(title string, rows []RoundTripResult) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintln(w, title)
		t := [][]string{{"server", "round trips/s", "p50", "p90", "p99", "max"}}
		var notes []string
		for _, x := range rows {
			if x.Error != "" {
				t = append(t, padRow([]string{x.Label(), "error"}, 6))
				notes = append(notes, fmt.Sprintf("  %s: error: %s", x.Label(), x.Error))
				continue
			}
			t = append(t, []string{x.Label(), formatRate(x.PerS), FormatNs(float64(x.P50)), FormatNs(float64(x.P90)),
				FormatNs(float64(x.P99)), FormatNs(float64(x.Max))})
		}
		alignTable(w, t, 1)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
		fmt.Fprintln(w)
	}
	writeOneProducer(fmt.Sprintf("4. With %d busy-loop CPU hogs: one producer, %d B round trips for %s per row (park: --spin -1ns on both sides)",
		r.Config.Hogs, r.Config.Size, secs(r.Config.HogTimeS)), r.Hogs)
	writeOneProducer(fmt.Sprintf("5. Park at once (--spin -1ns on both sides) vs unix, no hogs: one producer, %d B for %s per row",
		r.Config.Size, secs(r.Config.ParkTimeS)), r.Park)

	if len(r.Goals) > 0 {
		fmt.Fprintln(w, "Goals of issue 11 in this run (benchmarks, not tests: a noisy machine moves them):")
		for _, g := range r.Goals {
			mark := "n/a "
			if g.Met != nil {
				mark = map[bool]string{true: "met ", false: "NOT "}[*g.Met]
			}
			fmt.Fprintf(w, "  %s %-9s %s: %s\n", mark, g.Scenario, g.Goal, g.Detail)
		}
	}
}

func secs(s float64) string { return time.Duration(s * float64(time.Second)).String() }

func padRow(row []string, cols int) []string {
	for len(row) < cols {
		row = append(row, "-")
	}
	return row
}

func kib(v int64) string {
	switch {
	case v >= 10<<20:
		return fmt.Sprintf("%.1fG", float64(v)/(1<<20))
	case v >= 10<<10:
		return fmt.Sprintf("%.0fM", float64(v)/(1<<10))
	case v >= 1<<10:
		return fmt.Sprintf("%.1fM", float64(v)/(1<<10))
	}
	return fmt.Sprintf("%dK", v)
}

func bytesStr(b float64) string {
	switch {
	case b >= 1<<20 || b <= -(1<<20):
		return fmt.Sprintf("%.1fMiB", b/(1<<20))
	case b >= 10<<10 || b <= -(10<<10):
		return fmt.Sprintf("%.0fKiB", b/(1<<10))
	case b >= 1<<10 || b <= -(1<<10):
		return fmt.Sprintf("%.1fKiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0fB", b)
}

func msStr(ms float64) string {
	if ms <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", ms)
}

func msList(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%.1f", x))
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, " ")
}
