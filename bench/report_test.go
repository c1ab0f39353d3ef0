package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestJSONSchema runs a short real suite and checks the JSON document's
// shape: the machine, and per result the fields the issue names.
func TestJSONSchema(t *testing.T) {
	ms := append(mustLookup(t, "pipe"), mustLookup(t, "goipc:default")...)
	ms = append(ms, mustLookup(t, "udp")...)
	rep, err := Run(quickOpts(t, ms, 64, 70000))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Machine map[string]any   `json:"machine"`
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"cpu_model", "cores", "kernel", "go_version", "loadavg_start"} {
		if _, ok := doc.Machine[k]; !ok {
			t.Errorf("machine has no %q: %v", k, doc.Machine)
		}
	}
	if len(doc.Results) != 3*2*2 {
		t.Fatalf("%d results, want 12", len(doc.Results))
	}
	for _, r := range doc.Results {
		for _, k := range []string{"mechanism", "mode", "workload", "size", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns",
			"msgs_per_s", "gb_per_s", "runs", "spread_pct", "ctxsw_per_msg", "syscalls_per_msg", "kernel_copies", "ratio_vs_goipc"} {
			if _, ok := r[k]; !ok {
				t.Errorf("result has no %q: %v", k, r)
			}
		}
		if w := r["workload"]; w != "pingpong" && w != "stream" {
			t.Errorf("workload %v", w)
		}
		if r["skipped"] != nil || r["error"] != nil {
			if !(r["mechanism"] == "udp" && r["size"] == 70000.0 && r["skipped"] != nil) {
				t.Errorf("unexpected skip or error: %v", r)
			}
			continue
		}
		for _, k := range []string{"p50_ns", "p99_ns", "p999_ns", "msgs_per_s", "gb_per_s"} {
			if v, _ := r[k].(float64); v <= 0 {
				t.Errorf("%v %v %v: %s = %v", r["mechanism"], r["workload"], r["size"], k, r[k])
			}
		}
		if r["mechanism"] == "goipc" && r["ratio_vs_goipc"] != 1.0 {
			t.Errorf("goipc's own ratio is %v", r["ratio_vs_goipc"])
		}
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	for _, want := range []string{"machine:", "noise:", "vs goipc", "1.00x", "pipe", "goipc", "n/a"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	// Columns are aligned: every row of the pingpong table has the header's length or less.
	t.Logf("\n%s", table.String())
}

// TestSyscallCount measures a pipe's calls with strace: one write and one
// read per message, exactly, on the benchmark threads.
func TestSyscallCount(t *testing.T) {
	// make test-bench installs strace and CI must run this test; elsewhere
	// (go test alone) a machine without strace or ptrace skips it, saying why.
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	if _, err := exec.LookPath("strace"); err != nil {
		skip("strace not installed (make test-bench installs it)")
	}
	if out, err := exec.Command("strace", "-f", "-o", "/dev/null", "true").CombinedOutput(); err != nil {
		skip("strace cannot trace here (ptrace not permitted?): %v %s", err, out)
	}
	o := quickOpts(t, mustLookup(t, "pipe"), 64)
	o.Syscalls = "strace"
	rep, err := Run(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.SyscallsPerMsg == nil {
			t.Fatalf("%s %s: not counted: %s", r.Label(), r.Workload, r.SyscallMethod)
		}
		// Exactly one write and one read per message; the Go runtime may
		// add a timing-dependent futex on a busy machine, so the total is
		// only bounded below.
		if got := *r.SyscallsPerMsg; got < 1.95 {
			t.Errorf("%s %s: %.3f calls per message, want at least 2 (%v)", r.Label(), r.Workload, got, r.SyscallDetail)
		}
		for _, name := range []string{"read", "write"} {
			if v := r.SyscallDetail[name]; v < 0.95 || v > 1.05 {
				t.Errorf("%s %s: %s %.2f per message, want 1 (%v)", r.Label(), r.Workload, name, v, r.SyscallDetail)
			}
		}
	}
}

func TestParseStraceTrace(t *testing.T) {
	trace := `100   execve("/x", ["x"], 0x0 /* 3 vars */) = 0
101   write(5, ""..., 64) = 64
101   read(4,  <unfinished ...>
102   futex(0x1, FUTEX_WAKE_PRIVATE, 1) = 1
101   <... read resumed>""..., 64) = 64
101   --- SIGURG {si_signo=SIGURG, si_code=SI_TKILL} ---
101   rt_sigreturn({mask=[]}) = 64
200   read(3, ""..., 64) = 64
100   +++ exited with 0 +++
`
	p := filepath.Join(t.TempDir(), "trace")
	os.WriteFile(p, []byte(trace), 0o600)
	c, err := parseStraceTrace(p, map[string]bool{"101": true, "200": true})
	if err != nil {
		t.Fatal(err)
	}
	if c.all != 6 || c.bench != 4 || c.byName["read"] != 2 || c.byName["write"] != 1 {
		t.Errorf("counts %+v", c)
	}
}

// TestPeers runs the cross-language hook: the Go reference peer over both
// transports, and an external program (a Python script) over unix.
func TestPeers(t *testing.T) {
	if _, err := ResolvePeers([]string{"c"}, t.TempDir()); !errors.Is(err, ErrPeerNotBuilt) || !strings.Contains(err.Error(), "not built yet") {
		t.Errorf("ResolvePeers(c) in an empty tree = %v", err)
	}
	if _, err := ResolvePeers([]string{"cobol"}, t.TempDir()); err == nil {
		t.Error("ResolvePeers(cobol) succeeded")
	}
	peers, err := ResolvePeers([]string{"go"}, ".")
	if err != nil {
		t.Fatal(err)
	}
	if py, err := exec.LookPath("python3"); err == nil {
		t.Setenv("GOIPC_BENCH_PEER_PYTHON", py+" testdata/peer_unix.py")
		pp, err := ResolvePeers([]string{"python"}, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, pp...)
	}
	o := quickOpts(t, []Mechanism{}, 64)
	o.Peers = peers
	rep, err := Run(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2*len(peers) {
		t.Fatalf("%d peer results, want %d", len(rep.Results), 2*len(peers))
	}
	for _, r := range rep.Results {
		python := r.Mode == "peer-python"
		if python && r.Mechanism == "goipc" {
			if !strings.Contains(r.Error, "no goipc transport") {
				t.Errorf("python goipc row: error %q", r.Error)
			}
			continue
		}
		if r.Error != "" || r.P50 <= 0 || r.P999 < r.P50 || r.Workload != PingPong {
			t.Errorf("%s: p50 %d p99.9 %d error %q", r.Label(), r.P50, r.P999, r.Error)
		}
	}
}

// chromium finds Debian's chromium, which make test-bench installs before
// it runs the tests. In CI (CI=true) a missing chromium fails the test; it
// never skips there.
func chromium(t *testing.T) string {
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (CI=true, so this fails rather than skips): make test-bench installs it")
	}
	t.Skip("chromium is not installed: make test-bench (or make chromium) installs it")
	return ""
}

func runChromium(t *testing.T, bin string, args ...string) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// sampleReport is a report with every mechanism at three sizes, made up:
// the HTML test checks the page, not a measurement.
func sampleReport(sizes ...int) *Report {
	rep := &Report{Machine: DescribeMachine(), Config: Config{Runs: 5, RunTimeMs: 200, WarmupMs: 100, Sizes: sizes}}
	for i, m := range All() {
		rep.Designs = append(rep.Designs, DesignRow{Mechanism: m.Name(), Mode: m.Mode(), Design: m.Design()})
		for _, size := range sizes {
			for _, wl := range []string{PingPong, Stream} {
				r := baseResult(m, wl, size)
				if m.MaxSize() > 0 && size > m.MaxSize() {
					r.Skipped = "n/a"
					rep.Results = append(rep.Results, r)
					continue
				}
				base := int64(1000 * (i + 1) * (1 + size/4096))
				r.P50, r.P90, r.P99, r.P999, r.Max = base, base*2, base*5, base*10, base*40
				r.MsgsPerS = 1e9 / float64(base)
				r.GBPerS = r.MsgsPerS * float64(size) / 1e9
				r.Runs, r.SpreadPct = 5, 3
				rep.Results = append(rep.Results, r)
			}
		}
	}
	computeRatios(rep.Results)
	return rep
}

// TestHTMLRendersInChromium renders the HTML report in headless Chromium:
// the parsed DOM must hold the SVG charts with a mark per percentile and
// mechanism, and the screenshot must show them in colour.
func TestHTMLRendersInChromium(t *testing.T) {
	bin := chromium(t)
	for _, tc := range []struct {
		name  string
		sizes []int
	}{{"one-size", []int{64}}, {"sizes", []int{64, 4096, 1 << 20}}} {
		t.Run(tc.name, func(t *testing.T) {
			rep := sampleReport(tc.sizes...)
			dir := t.TempDir()
			page := filepath.Join(dir, "report.html")
			if err := rep.WriteHTMLFile(page); err != nil {
				t.Fatal(err)
			}
			raw, _ := os.ReadFile(page)
			if regexp.MustCompile(`(?i)(src|href)\s*=\s*"(https?:|//)`).Match(raw) {
				t.Error("the page references an external asset")
			}
			dom := string(runChromium(t, bin, "--dump-dom", "file://"+page))
			latency := regexp.MustCompile(`<svg[^>]*class="chart"[^>]*data-chart="latency"`).FindAllString(dom, -1)
			if len(latency) != len(tc.sizes) {
				t.Errorf("%d latency charts in the DOM, want %d", len(latency), len(tc.sizes))
			}
			if n := len(regexp.MustCompile(`<svg[^>]*data-chart="throughput"`).FindAllString(dom, -1)); n != 1 {
				t.Errorf("%d throughput charts in the DOM, want 1", n)
			}
			rows := 0
			for _, r := range rep.Results {
				if r.Workload == PingPong && r.Skipped == "" {
					rows++
				}
			}
			// Every row has 5 marks, each with a <title>, plus the legend's 5.
			if n := strings.Count(dom, `<g class="mark">`); n < 5*rows {
				t.Errorf("%d percentile marks in the DOM, want at least %d", n, 5*rows)
			}
			for _, want := range []string{`id="machine"`, `id="noise"`, "AMD", "goipc", "eventfd-shm", "time vs goipc"} {
				if want == "AMD" {
					want = rep.Machine.CPUModel
				}
				if !strings.Contains(dom, want) {
					t.Errorf("the DOM lacks %q", want)
				}
			}

			shot := filepath.Join(dir, "shot.png")
			runChromium(t, bin, "--hide-scrollbars", "--window-size=1200,2400", "--screenshot="+shot, "file://"+page)
			f, err := os.Open(shot)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			// Count pixels in the palette's first colours (chart marks and bars).
			colored := 0
			bnd := img.Bounds()
			for y := bnd.Min.Y; y < bnd.Max.Y; y += 2 {
				for x := bnd.Min.X; x < bnd.Max.X; x += 2 {
					r, g, b, _ := img.At(x, y).RGBA()
					r, g, b = r>>8, g>>8, b>>8
					if (near(r, 0x1f) && near(g, 0x77) && near(b, 0xb4)) || (near(r, 0xff) && near(g, 0x7f) && near(b, 0x0e)) || (near(r, 0x2c) && near(g, 0xa0) && near(b, 0x2c)) {
						colored++
					}
				}
			}
			if colored < 50 {
				t.Errorf("the screenshot has %d chart-coloured pixels: the charts did not render", colored)
			}
			if os.Getenv("GOIPC_BENCH_KEEP_SHOT") != "" {
				data, _ := os.ReadFile(shot)
				os.WriteFile(os.Getenv("GOIPC_BENCH_KEEP_SHOT")+"-"+tc.name+".png", data, 0o644)
			}
		})
	}
}

func near(a, b uint32) bool { return a+6 >= b && b+6 >= a }
