package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// The HTML report is one self-contained page: inline CSS, inline SVG
// charts, no script, no external asset. Charts:
//
//   - svg.chart[data-chart=latency] (one per size): round-trip percentiles
//     p50, p90, p99, p99.9 and max per mechanism on a log time axis;
//   - svg.chart[data-chart=throughput]: stream GB/s by message size per
//     mechanism on a log axis (lines for several sizes, bars for one).

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
	"#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#843c39", "#5254a3", "#6b6ecf"}

// WriteHTMLFile writes the HTML report to path.
func (r *Report) WriteHTMLFile(path string) error { return writeFile(path, r.WriteHTML) }

// WriteHTML writes the HTML report.
func (r *Report) WriteHTML(w io.Writer) error {
	var b strings.Builder
	esc := html.EscapeString
	m := r.Machine
	b.WriteString(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>goipc bench: IPC mechanisms side by side</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
tr.goipc td{background:#eef6ff}
.note{color:#555;font-size:.9em}
svg.chart{display:block;margin:.5em 0 1.5em;background:#fff;border:1px solid #e5e5e5}
svg text{font-family:system-ui,"DejaVu Sans",sans-serif}
code{background:#f3f3f3;padding:0 .2em}
</style></head><body>
<h1>goipc bench: IPC mechanisms side by side</h1>
`)
	virt := ""
	if m.Hypervisor {
		virt = ", virtualized"
	}
	fmt.Fprintf(&b, `<p id="machine"><b>Machine:</b> %s, %d cores (GOMAXPROCS %d%s), %s, %s, %s, memory %s. Measured %s UTC.</p>
`, esc(m.CPUModel), m.Cores, m.GOMAXPROCS, virt, esc(m.Kernel), esc(m.Arch), esc(m.GoVersion), esc(m.MemTotal), esc(m.Date))
	fmt.Fprintf(&b, `<p id="noise"><b>Noise:</b> %d timed runs per point of about %.0f ms each, after %.0f ms or more of verified warm-up; `+
		`run-to-run spread (max&minus;min)/median: median %s, worst %s; other processes used %.2f cores and the hypervisor stole %.2f cores on average; load average %s at start, %s at end. `+
		`Compare ratios within one run, not absolute times across runs.</p>
`, r.Config.Runs, r.Config.RunTimeMs, r.Config.WarmupMs, formatPct(r.medianSpread()), formatPct(r.maxSpread()), m.OtherCPU, m.StealCPU, esc(m.LoadAvgStart), esc(m.LoadAvgEnd))
	for _, warn := range r.Warnings {
		fmt.Fprintf(&b, `<p class="warning" style="color:#a00"><b>Warning:</b> %s.</p>`+"\n", esc(warn))
	}
	fmt.Fprintf(&b, `<p class="note">Two separate processes. A message is one one-way transfer (a round trip is two). `+
		`Context switches: getrusage of both processes during the timed runs. System calls: %s. See docs/BENCHMARKS.md for the method.</p>
`, esc(r.syscallNote()))

	colors := map[string]string{}
	for _, x := range r.Results {
		if _, ok := colors[x.Label()]; !ok {
			colors[x.Label()] = palette[len(colors)%len(palette)]
		}
	}

	pp := r.resultsFor(PingPong)
	if len(pp) > 0 {
		b.WriteString("<h2>Round-trip latency (pingpong)</h2>\n")
		for _, size := range sizesOf(pp) {
			var rows []Result
			for _, x := range pp {
				if x.Size == size && x.Error == "" && x.Skipped == "" && x.P50 > 0 {
					rows = append(rows, x)
				}
			}
			if len(rows) > 0 {
				latencySVG(&b, rows, size, colors)
			}
		}
		b.WriteString(`<table id="pingpong"><tr><th>mechanism</th><th>size</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th>` +
			`<th>spread</th><th>ctxsw/msg</th><th>syscalls/msg</th><th>kernel copies</th><th>time vs goipc</th></tr>` + "\n")
		for i := range pp {
			x := &pp[i]
			fmt.Fprintf(&b, "<tr%s><td>%s</td><td>%s</td>", rowClass(x), esc(x.Label()), FormatSize(x.Size))
			if x.Error != "" || x.Skipped != "" {
				fmt.Fprintf(&b, `<td colspan="10" style="text-align:left">%s</td></tr>`+"\n", esc(x.Error+x.Skipped))
				continue
			}
			fmt.Fprintf(&b, "<td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td><td>%s</td></tr>\n",
				FormatNs(float64(x.P50)), FormatNs(float64(x.P90)), FormatNs(float64(x.P99)), FormatNs(float64(x.P999)), FormatNs(float64(x.Max)),
				formatSpread(x), ctxsw(x), esc(formatSyscalls(x)), x.KernelCopies, formatRatio(x.Ratio))
		}
		b.WriteString("</table>\n")
	}
	st := r.resultsFor(Stream)
	if len(st) > 0 {
		b.WriteString("<h2>One-way throughput (stream)</h2>\n")
		throughputSVG(&b, st, colors)
		b.WriteString(`<table id="stream"><tr><th>mechanism</th><th>size</th><th>msgs/s</th><th>GB/s</th><th>per msg</th>` +
			`<th>spread</th><th>ctxsw/msg</th><th>syscalls/msg</th><th>kernel copies</th><th>time vs goipc</th></tr>` + "\n")
		for i := range st {
			x := &st[i]
			fmt.Fprintf(&b, "<tr%s><td>%s</td><td>%s</td>", rowClass(x), esc(x.Label()), FormatSize(x.Size))
			if x.Error != "" || x.Skipped != "" {
				fmt.Fprintf(&b, `<td colspan="8" style="text-align:left">%s</td></tr>`+"\n", esc(x.Error+x.Skipped))
				continue
			}
			fmt.Fprintf(&b, "<td>%s</td><td>%.3f</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td><td>%s</td></tr>\n",
				formatRate(x.MsgsPerS), x.GBPerS, FormatNs(timePerMsg(x)), formatSpread(x), ctxsw(x), esc(formatSyscalls(x)), x.KernelCopies, formatRatio(x.Ratio))
		}
		b.WriteString("</table>\n")
	}
	b.WriteString(`<h2>By design</h2><table id="design"><tr><th>mechanism</th><th>kernel copies</th><th>user copies</th><th>system calls per message</th><th style="text-align:left">notes</th></tr>` + "\n")
	for _, d := range r.Designs {
		label := d.Mechanism
		if d.Mode != "default" {
			label += " (" + d.Mode + ")"
		}
		fmt.Fprintf(&b, `<tr><td>%s</td><td>%d</td><td>%d</td><td>%s</td><td style="text-align:left;white-space:normal">%s</td></tr>`+"\n",
			esc(label), d.KernelCopies, d.UserCopies, esc(d.Syscalls), esc(d.Note))
	}
	b.WriteString("</table>\n")
	if r.Config.Syscalls == "strace" && r.hasTimingDependent() {
		b.WriteString(`<p class="note">&lt;=N* : a spin-then-park design; strace slows every system call, so it parks more often under strace than in the timed runs. The count is an upper bound; ctxsw/msg, from the timed runs, shows how often it really slept.</p>` + "\n")
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func rowClass(x *Result) string {
	if x.Mechanism == "goipc" {
		return ` class="goipc"`
	}
	return ""
}

func sizesOf(rs []Result) []int {
	var out []int
	for _, x := range rs {
		if len(out) == 0 || out[len(out)-1] != x.Size {
			out = append(out, x.Size)
		}
	}
	return out
}

// logAxis maps [lo, hi] (decades) onto [x0, x1] on a log10 scale.
type logAxis struct {
	lo, hi float64 // log10 of the ends
	x0, x1 float64
}

func newLogAxis(minV, maxV, x0, x1 float64) logAxis {
	lo := math.Floor(math.Log10(math.Max(minV, 1e-9)))
	hi := math.Ceil(math.Log10(math.Max(maxV, 1e-9)))
	if hi <= lo {
		hi = lo + 1
	}
	return logAxis{lo, hi, x0, x1}
}

func (a logAxis) pos(v float64) float64 {
	l := math.Log10(math.Max(v, math.Pow(10, a.lo)))
	return a.x0 + (l-a.lo)/(a.hi-a.lo)*(a.x1-a.x0)
}

var pctMarks = []struct {
	name  string
	get   func(*Result) int64
	shape string
}{
	{"p50", func(r *Result) int64 { return r.P50 }, "circle"},
	{"p90", func(r *Result) int64 { return r.P90 }, "square"},
	{"p99", func(r *Result) int64 { return r.P99 }, "diamond"},
	{"p99.9", func(r *Result) int64 { return r.P999 }, "triangle"},
	{"max", func(r *Result) int64 { return r.Max }, "cross"},
}

func marker(b *strings.Builder, shape string, x, y float64, color, title string) {
	const s = 5.0
	fmt.Fprintf(b, `<g class="mark"><title>%s</title>`, html.EscapeString(title))
	switch shape {
	case "circle":
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s"/>`, x, y, s, color)
	case "square":
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#fff" stroke="%s" stroke-width="2"/>`, x-s+1, y-s+1, 2*s-2, 2*s-2, color)
	case "diamond":
		fmt.Fprintf(b, `<path d="M%.1f %.1fL%.1f %.1fL%.1f %.1fL%.1f %.1fZ" fill="%s"/>`, x, y-s-1, x+s+1, y, x, y+s+1, x-s-1, y, color)
	case "triangle":
		fmt.Fprintf(b, `<path d="M%.1f %.1fL%.1f %.1fL%.1f %.1fZ" fill="#fff" stroke="%s" stroke-width="2"/>`, x, y-s, x+s, y+s-1, x-s, y+s-1, color)
	default:
		fmt.Fprintf(b, `<path d="M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f" stroke="%s" stroke-width="2"/>`, x-s, y-s, x+s, y+s, x-s, y+s, x+s, y-s, color)
	}
	b.WriteString("</g>")
}

// latencySVG draws one row per mechanism with its percentiles on a log
// time axis.
func latencySVG(b *strings.Builder, rows []Result, size int, colors map[string]string) {
	const width, left, right, top, rowH = 1000.0, 210.0, 30.0, 50.0, 26.0
	height := top + rowH*float64(len(rows)) + 60
	minV, maxV := math.Inf(1), 0.0
	for i := range rows {
		minV = math.Min(minV, float64(rows[i].P50))
		maxV = math.Max(maxV, float64(rows[i].Max))
	}
	ax := newLogAxis(minV, maxV, left, width-right)
	fmt.Fprintf(b, `<svg class="chart" data-chart="latency" id="latency-%d" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="Round-trip latency percentiles, %s messages, log scale">`+"\n",
		size, width, height, width, height, FormatSize(size))
	fmt.Fprintf(b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">Round trip, %s B messages: p50, p90, p99, p99.9, max (log scale)</text>`+"\n", left, FormatSize(size))
	bottom := top + rowH*float64(len(rows))
	for d := ax.lo; d <= ax.hi; d++ {
		for _, k := range []float64{1, 2, 5} {
			v := k * math.Pow(10, d)
			if math.Log10(v) > ax.hi+1e-9 {
				continue
			}
			x := ax.pos(v)
			stroke, dash := "#ccc", ""
			if k != 1 {
				stroke, dash = "#eee", ` stroke-dasharray="3,3"`
			}
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="%s"%s/>`, x, top-8, x, bottom, stroke, dash)
			if k == 1 {
				fmt.Fprintf(b, `<text x="%.1f" y="%.0f" font-size="12" text-anchor="middle">%s</text>`, x, bottom+18, formatDecade(v))
			}
		}
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="12" text-anchor="middle" fill="#555">round-trip time</text>`+"\n", (left+width-right)/2, bottom+36)
	for i := range rows {
		r := &rows[i]
		y := top + rowH*float64(i) + rowH/2
		c := colors[r.Label()]
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" font-size="13" text-anchor="end" dominant-baseline="middle">%s</text>`, left-12, y, html.EscapeString(r.Label()))
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" opacity="0.5"/>`, ax.pos(float64(r.P50)), y, ax.pos(float64(r.Max)), y, c)
		// Largest first, so that p50 stays on top where marks overlap.
		for i := len(pctMarks) - 1; i >= 0; i-- {
			pm := pctMarks[i]
			v := float64(pm.get(r))
			marker(b, pm.shape, ax.pos(v), y, c, fmt.Sprintf("%s %s: %s", r.Label(), pm.name, FormatNs(v)))
		}
		b.WriteString("\n")
	}
	// Legend of the marks.
	lx := left
	for _, pm := range pctMarks {
		marker(b, pm.shape, lx, 38, "#444", pm.name)
		fmt.Fprintf(b, `<text x="%.0f" y="42" font-size="12">%s</text>`, lx+9, pm.name)
		lx += 70
	}
	b.WriteString("\n</svg>\n")
}

// throughputSVG draws stream GB/s by size: one line per mechanism across
// sizes, or horizontal bars when there is one size.
func throughputSVG(b *strings.Builder, rs []Result, colors map[string]string) {
	sizes := sizesOf(rs)
	var ok []Result
	minV, maxV := math.Inf(1), 0.0
	for _, x := range rs {
		if x.Error == "" && x.Skipped == "" && x.GBPerS > 0 {
			ok = append(ok, x)
			minV = math.Min(minV, x.GBPerS)
			maxV = math.Max(maxV, x.GBPerS)
		}
	}
	if len(ok) == 0 {
		return
	}
	var labels []string
	seen := map[string]bool{}
	for _, x := range ok {
		if !seen[x.Label()] {
			seen[x.Label()] = true
			labels = append(labels, x.Label())
		}
	}
	if len(sizes) == 1 {
		const width, left, right, top, rowH = 1000.0, 210.0, 90.0, 40.0, 24.0
		height := top + rowH*float64(len(ok)) + 50
		ax := newLogAxis(minV, maxV, left, width-right)
		fmt.Fprintf(b, `<svg class="chart" data-chart="throughput" id="throughput" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="Stream throughput by message size, log scale">`+"\n", width, height, width, height)
		fmt.Fprintf(b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">One-way throughput, %s B messages, GB/s (log scale)</text>`+"\n", left, FormatSize(sizes[0]))
		bottom := top + rowH*float64(len(ok))
		for d := ax.lo; d <= ax.hi; d++ {
			x := ax.pos(math.Pow(10, d))
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ccc"/><text x="%.1f" y="%.0f" font-size="12" text-anchor="middle">%s</text>`,
				x, top-6, x, bottom, x, bottom+18, formatGB(math.Pow(10, d)))
		}
		for i, x := range ok {
			y := top + rowH*float64(i)
			w := ax.pos(x.GBPerS) - left
			fmt.Fprintf(b, `<text x="%.0f" y="%.1f" font-size="13" text-anchor="end" dominant-baseline="middle">%s</text>`, left-12, y+rowH/2, html.EscapeString(x.Label()))
			fmt.Fprintf(b, `<rect class="bar" x="%.0f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %.3f GB/s, %s msgs/s</title></rect>`,
				left, y+3, math.Max(w, 1), rowH-6, colors[x.Label()], html.EscapeString(x.Label()), x.GBPerS, formatRate(x.MsgsPerS))
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="12" dominant-baseline="middle">%s</text>`+"\n", left+math.Max(w, 1)+6, y+rowH/2, formatRate(x.MsgsPerS)+" msg/s")
		}
		b.WriteString("</svg>\n")
		return
	}
	const width, left, right, top, bottomPad = 1000.0, 80.0, 230.0, 40.0, 60.0
	height := 460.0
	bottom := height - bottomPad
	// y: log GB/s, bottom to top.
	ay := newLogAxis(minV, maxV, 0, 1)
	ypos := func(v float64) float64 { return bottom - ay.pos(v)*(bottom-top) }
	xpos := func(i int) float64 {
		return left + 30 + float64(i)*(width-left-right-60)/float64(max(1, len(sizes)-1))
	}
	fmt.Fprintf(b, `<svg class="chart" data-chart="throughput" id="throughput" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="Stream throughput by message size, log scale">`+"\n", width, height, width, height)
	fmt.Fprintf(b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">One-way throughput by message size, GB/s (log scale)</text>`+"\n", left)
	for d := ay.lo; d <= ay.hi; d++ {
		y := ypos(math.Pow(10, d))
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ccc"/><text x="%.0f" y="%.1f" font-size="12" text-anchor="end" dominant-baseline="middle">%s</text>`,
			left, y, width-right, y, left-8, y, formatGB(math.Pow(10, d)))
	}
	for i, s := range sizes {
		fmt.Fprintf(b, `<text x="%.1f" y="%.0f" font-size="12" text-anchor="middle">%s B</text>`, xpos(i), bottom+20, FormatSize(s))
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="12" text-anchor="middle" fill="#555">message size</text>`+"\n", (left+width-right)/2, bottom+42)
	for li, label := range labels {
		c := colors[label]
		var pts []string
		for i, s := range sizes {
			for _, x := range ok {
				if x.Label() == label && x.Size == s {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", xpos(i), ypos(x.GBPerS)))
				}
			}
		}
		fmt.Fprintf(b, `<polyline class="series" points="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.Join(pts, " "), c)
		for i, s := range sizes {
			for _, x := range ok {
				if x.Label() == label && x.Size == s {
					marker(b, "circle", xpos(i), ypos(x.GBPerS), c, fmt.Sprintf("%s, %s B: %.3f GB/s", label, FormatSize(s), x.GBPerS))
				}
			}
		}
		ly := top + 10 + float64(li)*20
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="3"/><text x="%.0f" y="%.0f" font-size="12" dominant-baseline="middle">%s</text>`+"\n",
			width-right+15, ly, width-right+40, ly, c, width-right+46, ly, html.EscapeString(label))
	}
	b.WriteString("</svg>\n")
}

func formatGB(v float64) string {
	if v >= 1 {
		return fmt.Sprintf("%g GB/s", v)
	}
	if v >= 1e-3 {
		return fmt.Sprintf("%g MB/s", v*1e3)
	}
	return fmt.Sprintf("%g KB/s", v*1e6)
}

// formatDecade labels a power of ten of nanoseconds: 100ns, 1us, 10ms, 1s.
func formatDecade(ns float64) string {
	switch {
	case ns < 1e3:
		return fmt.Sprintf("%gns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%gus", ns/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%gms", ns/1e6)
	}
	return fmt.Sprintf("%gs", ns/1e9)
}

// WriteLatencySVG writes the round-trip latency chart of one size as a
// standalone SVG document (for a README). It writes nothing useful if the
// report has no pingpong row of that size.
func (r *Report) WriteLatencySVG(w io.Writer, size int) error {
	colors := map[string]string{}
	var rows []Result
	for _, x := range r.Results {
		if _, ok := colors[x.Label()]; !ok {
			colors[x.Label()] = palette[len(colors)%len(palette)]
		}
		if x.Workload == PingPong && x.Size == size && x.Error == "" && x.Skipped == "" && x.P50 > 0 {
			rows = append(rows, x)
		}
	}
	if len(rows) == 0 {
		return fmt.Errorf("bench: no round-trip results of %d B to chart", size)
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	latencySVG(&b, rows, size, colors)
	// A standalone document needs its own background and font.
	out := strings.Replace(b.String(), `role="img"`, `role="img" style="background:#fff;font-family:'DejaVu Sans',Verdana,sans-serif"`, 1)
	_, err := io.WriteString(w, out)
	return err
}

// WriteLatencySVGFile writes the latency chart of the smallest size to path.
func (r *Report) WriteLatencySVGFile(path string) error {
	if len(r.Config.Sizes) == 0 {
		return fmt.Errorf("bench: no sizes")
	}
	return writeFile(path, func(w io.Writer) error { return r.WriteLatencySVG(w, r.Config.Sizes[0]) })
}
