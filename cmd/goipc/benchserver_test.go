package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goipc/goipc/bench"
	"github.com/goipc/goipc/internal/testsock"
)

// TestBenchServerSmoke runs every scenario of goipc bench-server with tiny
// counts and checks that the JSON has every row with sane counts. Speed is
// never checked: the goals may be met or not.
func TestBenchServerSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts some 20 processes")
	}
	out := filepath.Join(t.TempDir(), "server.json")
	cmd := cli("bench-server", "-q", "--json", out, "--idle", "24", "--idle-procs", "2", "--idle-window", "300ms",
		"--silent", "5", "--half-hello", "4", "--ping-n", "50", "--ping-runs", "1", "--ping-timeout", "2s",
		"--producers", "1,3", "--load-time", "100ms", "--hogs", "1", "--hog-time", "100ms", "--park-time", "100ms")
	table, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench-server: %v\n%s", err, table)
	}
	for _, want := range []string{"1. Idle connections", "2. Slowloris", "3. Load", "4. With 1 busy-loop", "5. Park at once", "Goals of issue 11"} {
		if !strings.Contains(string(table), want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.ServerReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Machine.Cores < 1 || rep.Machine.LoadAvgStart == "" || rep.FDLimit.After == 0 {
		t.Errorf("machine/fd limit: %+v %+v", rep.Machine, rep.FDLimit)
	}

	if len(rep.Idle) != 2 {
		t.Fatalf("idle rows: %+v", rep.Idle)
	}
	for i, srv := range []string{"goipc", "unix"} {
		x := rep.Idle[i]
		if x.Server != srv || x.Error != "" || x.Requested != 24 || x.Opened != 24 || x.WindowS < 0.3 ||
			x.Threads < 1 || x.ThreadsBefore < 1 || x.RSSAfterKiB <= 0 || x.PSSAfterKiB <= 0 || x.CPUPct < 0 || x.FDs < 24 {
			t.Errorf("idle %s: %+v", srv, x)
		}
	}

	s := rep.Slowloris
	if s == nil || s.Error != "" || s.Silent != 5 || s.HalfHello != 4 || len(s.WithoutMs) != 1 || s.WithoutMs[0] <= 0 ||
		len(s.WithMs)+len(s.Failures) != 1 {
		t.Errorf("slowloris: %+v", s)
	}

	checkRow := func(what string, x bench.RoundTripResult, producers int) {
		t.Helper()
		if x.Error != "" || x.Producers != producers || x.Size != 64 || x.RoundTrips < int64(producers) || x.ElapsedS <= 0 || x.PerS <= 0 ||
			x.P50 <= 0 || x.P50 > x.P90 || x.P90 > x.P99 || x.P99 > x.P999 || x.P999 > x.Max {
			t.Errorf("%s: %+v", what, x)
		}
	}
	if len(rep.Load) != 6 {
		t.Fatalf("load rows: %+v", rep.Load)
	}
	i := 0
	for _, server := range [][2]string{{"goipc", "default"}, {"goipc", "loop"}, {"unix", "default"}} {
		for _, n := range []int{1, 3} {
			x := rep.Load[i]
			if x.Server != server[0] || x.Mode != server[1] {
				t.Errorf("load row %d: %s (%s), want %s (%s)", i, x.Server, x.Mode, server[0], server[1])
			}
			checkRow("load", x, n)
			i++
		}
	}
	wantRows := func(what string, rows []bench.RoundTripResult, labels ...string) {
		t.Helper()
		if len(rows) != len(labels) {
			t.Fatalf("%s rows: %+v", what, rows)
		}
		for i, l := range labels {
			if rows[i].Label() != l {
				t.Errorf("%s row %d is %q, want %q", what, i, rows[i].Label(), l)
			}
			checkRow(what, rows[i], 1)
		}
	}
	wantRows("hogs", rep.Hogs, "goipc", "goipc (park)", "unix")
	wantRows("park", rep.Park, "goipc (park)", "unix")

	scenarios := map[string]int{}
	for _, g := range rep.Goals {
		scenarios[g.Scenario]++
		if g.Met == nil {
			t.Errorf("goal %q not measured: %s", g.Goal, g.Detail)
		}
	}
	for _, sc := range bench.ServerScenarios {
		if scenarios[sc] == 0 {
			t.Errorf("no goal for scenario %s: %+v", sc, rep.Goals)
		}
	}
}

// TestBenchServerThreadCap: the idle scenario stops opening connections
// when the server has more threads than the cap, and says so. With a cap
// of 1 every server is over it at once.
func TestBenchServerThreadCap(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several processes")
	}
	out := filepath.Join(t.TempDir(), "cap.json")
	if b, err := cli("bench-server", "-q", "--json", out, "--scenarios", "idle", "--idle", "20000", "--idle-procs", "1",
		"--idle-window", "100ms", "--idle-thread-cap", "1").CombinedOutput(); err != nil {
		t.Fatalf("bench-server: %v\n%s", err, b)
	}
	b, _ := os.ReadFile(out)
	var rep bench.ServerReport
	if err := json.Unmarshal(b, &rep); err != nil || len(rep.Idle) != 2 {
		t.Fatalf("%v: %s", err, b)
	}
	for _, x := range rep.Idle {
		if x.Error != "" || x.Opened >= x.Requested || !x.Capped || !strings.Contains(x.Note, "stopped opening") {
			t.Errorf("idle %s with a thread cap of 1: %+v", x.Server, x)
		}
	}
}

func TestBenchServerFlags(t *testing.T) {
	for _, args := range [][]string{{"--producers", "0"}, {"--producers", "x"}, {"--size", "4"}, {"--size", "2048"},
		{"--ping-n", "0"}, {"--scenarios", "sideways"}, {"extra"}} {
		if code := runBenchServer(append([]string{"-q"}, args...)); code != 2 {
			t.Errorf("bench-server %v = %d, want 2", args, code)
		}
	}
	for _, args := range [][]string{{}, {"--max-message", "0", "--listen", "/x"}} {
		if code := runUnixEcho(args); code != 2 {
			t.Errorf("unix-echo %v = %d, want 2", args, code)
		}
	}
	if code := bench.ServerClientMain(nil); code != 2 {
		t.Errorf("bench-server-client without a role = %d, want 2", code)
	}
}

// TestUnixEchoCommand: goipc unix-echo echoes length-prefixed messages and
// removes its socket on SIGTERM.
func TestUnixEchoCommand(t *testing.T) {
	path := testsock.Path(t, "echo.sock")
	cmd := cli("unix-echo", "--listen", path)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || !strings.Contains(line, "listening on") {
		t.Fatalf("ready line: %q %v", line, err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := append([]byte{5, 0, 0, 0}, "hello"...)
	c.Write(msg)
	reply := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, reply); err != nil || string(reply) != string(msg) {
		t.Fatalf("echo %q %v", reply, err)
	}
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("unix-echo exit after SIGINT: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}
