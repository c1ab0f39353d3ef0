package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/internal/layout"
	"github.com/goipc/goipc/internal/statread"
)

// statOutput is `goipc stat --json`.
type statOutput struct {
	Connections []statRecord       `json:"connections"`
	Unreadable  []unreadableRecord `json:"unreadable"`
}

// statJSON runs cmd (a `goipc stat --json ...`) and decodes its output.
func statJSON(t *testing.T, cmd *exec.Cmd) statOutput {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, stderr.Bytes())
	}
	var s statOutput
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("%v printed invalid JSON: %v\n%s", cmd.Args, err, out)
	}
	if s.Connections == nil || s.Unreadable == nil {
		t.Fatalf("connections or unreadable missing (must be [] when empty): %s", out)
	}
	return s
}

// endsOn returns the records with this socket path, by pid and role.
func endsOn(s statOutput, path string) map[string]statRecord {
	m := map[string]statRecord{}
	for _, r := range s.Connections {
		if r.Path == path {
			m[strconv.Itoa(r.PID)+"/"+r.Role] = r
		}
	}
	return m
}

func key(pid int, role string) string { return strconv.Itoa(pid) + "/" + role }

// endsByPeer is endsOn for a listener with several clients: its ends are
// keyed "PID/listener/PEER".
func endsByPeer(s statOutput, path string) map[string]statRecord {
	m := map[string]statRecord{}
	for _, r := range s.Connections {
		if r.Path != path {
			continue
		}
		k := key(r.PID, r.Role)
		if r.Role == "listener" {
			k += "/" + strconv.Itoa(r.PeerPID)
		}
		m[k] = r
	}
	return m
}

// waitUntil polls cond (a check of another process's state) until it
// holds, failing the test after a generous bound.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// dialPong starts `goipc pong` and connects this process to it; both end
// with the test.
func dialPong(t *testing.T) (path string, pong *exec.Cmd, c *goipc.Conn) {
	t.Helper()
	path, pong, _ = startPong(t)
	c, err := goipc.Dial(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return path, pong, c
}

// TestStatCountsWhatATestSent: a test process sends known messages to
// `goipc pong`; `goipc stat --json` reports exactly those numbers for both
// ends, and the same numbers as Conn.Stats.
func TestStatCountsWhatATestSent(t *testing.T) {
	path, pong, c := dialPong(t)
	const n = 500
	var total uint64
	for i := range n {
		msg := bytes.Repeat([]byte{'x'}, i*7%1000) // never starts with the FlatBuffers identifier
		total += uint64(len(msg))
		if err := c.Send(msg); err != nil {
			t.Fatal(err)
		}
		if got, err := c.RecvTimeout(10 * time.Second); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo %d: %d bytes, %v", i, len(got), err)
		}
	}
	self, pongPID := os.Getpid(), pong.Process.Pid
	var ends map[string]statRecord
	// pong releases each message after committing its echo: its received
	// counter may trail by one for a moment.
	waitUntil(t, "pong has released every message", func() bool {
		ends = endsOn(statJSON(t, cli("stat", "--json")), path)
		return ends[key(pongPID, "listener")].MessagesReceived == n
	})
	mine, theirs := ends[key(self, "dialer")], ends[key(pongPID, "listener")]
	if len(ends) != 2 || mine.PeerPID != pongPID || theirs.PeerPID != self {
		t.Fatalf("ends on %s: %+v", path, ends)
	}
	for _, r := range []statRecord{mine, theirs} {
		if r.MessagesSent != n || r.MessagesReceived != n || r.BytesSent != total || r.BytesReceived != total ||
			r.SendInUse != 0 || r.RecvInUse != 0 || r.LayoutVersion != goipc.LayoutVersion || r.ProtocolVersion != goipc.ProtocolVersion ||
			r.SendCapacity != r.RecvCapacity || r.SendCapacity < goipc.DefaultRingSize || r.MaxMessageSize != goipc.DefaultMaxMessageSize ||
			r.AgeSeconds < 0 || r.CreatedUnixNs <= 0 || r.CreatedUnixNs > time.Now().UnixNano() || r.Segment != mine.Segment || r.Name == "" {
			t.Errorf("pid %d: %+v, want %d messages and %d bytes each way", r.PID, r, n, total)
		}
	}
	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Sent.Messages != mine.MessagesSent || st.Sent.Bytes != mine.BytesSent || st.Received.Messages != mine.MessagesReceived ||
		st.Received.Bytes != mine.BytesReceived || st.Sent.Parks != mine.SendParks || st.Received.Parks != mine.RecvParks ||
		st.Sent.Wakeups != mine.SendWakeups || st.Received.Wakeups != mine.RecvWakeups || st.PeerPID != mine.PeerPID {
		t.Fatalf("Stats %+v\ngoipc stat %+v", st, mine)
	}
	// --pid shows that process's ends only; the table names both.
	only := statJSON(t, cli("stat", "--json", "--pid", strconv.Itoa(pongPID)))
	for _, r := range only.Connections {
		if r.PID != pongPID {
			t.Fatalf("--pid %d listed pid %d", pongPID, r.PID)
		}
	}
	if _, ok := endsOn(only, path)[key(pongPID, "listener")]; !ok {
		t.Fatalf("--pid %d lost its end: %+v", pongPID, only)
	}
	out, err := cli("stat", "--pid", strconv.Itoa(self)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "TX_MSGS") || !strings.Contains(string(out), path) || !strings.Contains(string(out), " 500 ") {
		t.Fatalf("goipc stat: %v\n%s", err, out)
	}
}

func TestStatWatchPrintsRates(t *testing.T) {
	path, _, _ := dialPong(t)
	out, err := cli("stat", "--watch", "--interval", "20ms", "--count", "3", "--pid", strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if n := strings.Count(string(out), "goipc stat at"); n != 3 {
		t.Fatalf("%d refreshes, want 3:\n%s", n, out)
	}
	if !strings.Contains(string(out), "TX_MSG/S") || !strings.Contains(string(out), path) || strings.Contains(string(out), "\x1b") {
		t.Fatalf("watch output (not a terminal: no escape sequences):\n%s", out)
	}
}

func TestStatUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"stat", "extra"}, {"stat", "--watch", "--json"}, {"stat", "--count", "2"},
		{"stat", "--watch", "--interval", "0s"}, {"stat", "--pid", "-1"}} {
		err := cli(args...).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("goipc %v: %v, want exit code 2", args, err)
		}
	}
	// A process without connections (or no such process) is no error.
	s := statJSON(t, cli("stat", "--json", "--pid", "999999999"))
	if len(s.Connections) != 0 || len(s.Unreadable) != 0 {
		t.Fatalf("nonexistent pid: %+v", s)
	}
}

// hostileCases are the memfds named "goipc" runHostile creates, and what
// `goipc stat` must say about each ("" for: anything but a crash).
var hostileCases = []struct{ name, reason string }{
	{"garbage", "not a goipc segment"},
	{"empty", "not a goipc segment"},
	{"short", "segment truncated"},
	{"version", "unsupported segment layout version"},
	{"unready", "segment not initialised"},
	{"header-only", "segment truncated"},
	{"huge-sparse", "segment header inconsistent"},
	{"flapping", ""},
}

// hostileName is the process name the hostile process gives itself: an
// escape sequence, which goipc stat must not print raw.
const hostileName = "ev\x1b[2Jil"

// hostilePath is the socket path of a forged but well-formed segment.
const hostilePath = "/tmp/\x1b[31mfake\nline"

// runHostile plays a hostile process: it holds a genuine connection and
// forged memfds named "goipc", prints "ready FD=name ..." and keeps them
// (and one of them changing size) until stdin closes.
func runHostile() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "hostile:", err); return 1 }
	if err := os.WriteFile("/proc/self/comm", []byte(hostileName), 0); err != nil {
		return fail(err)
	}
	dir, err := os.MkdirTemp("", "goipc-hostile")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	ln, err := goipc.Listen(filepath.Join(dir, "s.sock"), nil)
	if err != nil {
		return fail(err)
	}
	defer ln.Close()
	go ln.Accept()
	c, err := goipc.Dial(filepath.Join(dir, "s.sock"), &goipc.Options{RingSize: goipc.MinRingSize, MaxMessageSize: 1000})
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	genuine, size, err := ownSegmentControl()
	if err != nil {
		return fail(err)
	}
	patched := func(off int, v uint32) []byte {
		b := bytes.Clone(genuine)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	garbage := make([]byte, statread.ControlSize)
	rand.Read(garbage)
	evil := patched(layout.OffPathLen, uint32(len(hostilePath)))
	copy(evil[layout.OffPath:], hostilePath)
	contents := map[string]struct {
		data []byte
		size int64
	}{
		"garbage":     {garbage, int64(len(garbage))},
		"empty":       {nil, 0},
		"short":       {genuine[:100], 100},
		"version":     {patched(layout.OffLayoutVersion, 1), size},
		"unready":     {patched(layout.OffReady, 0), size},
		"header-only": {genuine, int64(len(genuine))},
		"huge-sparse": {genuine, 1 << 40},
		"flapping":    {genuine, size},
		"evil-path":   {evil, size},
	}
	line := "ready"
	for _, name := range append([]string{"evil-path"}, caseNames()...) {
		fd, err := unix.MemfdCreate("goipc", unix.MFD_CLOEXEC)
		if err != nil {
			return fail(err)
		}
		c := contents[name]
		if _, err := unix.Pwrite(fd, c.data, 0); err != nil {
			return fail(err)
		}
		if err := unix.Ftruncate(fd, c.size); err != nil {
			return fail(err)
		}
		if name == "flapping" {
			// Shrink and regrow the segment for as long as we live: a
			// reader that mapped it would take a SIGBUS.
			go func() {
				for {
					unix.Ftruncate(fd, 0)
					unix.Ftruncate(fd, size)
					unix.Pwrite(fd, genuine, 0)
				}
			}()
		}
		line += fmt.Sprintf(" %d=%s", fd, name)
	}
	fmt.Println(line)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

func caseNames() []string {
	var names []string
	for _, c := range hostileCases {
		names = append(names, c.name)
	}
	return names
}

// ownSegmentControl reads the control area and size of a segment this
// process holds.
func ownSegmentControl() ([]byte, int64, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, 0, err
	}
	for _, e := range ents {
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); link != "/memfd:goipc (deleted)" {
			continue
		}
		f, err := os.Open("/proc/self/fd/" + e.Name())
		if err != nil {
			return nil, 0, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, 0, err
		}
		b := make([]byte, statread.ControlSize)
		_, err = f.ReadAt(b, 0)
		return b, st.Size(), err
	}
	return nil, 0, errors.New("no goipc segment in this process")
}

// TestStatSurvivesHostileSegments: forged, truncated, wrongly versioned and
// resizing memfds named "goipc" are reported as unreadable with their
// reason, a forged path or process name reaches the terminal escaped, and
// the genuine connection of the same process is still listed.
func TestStatSurvivesHostileSegments(t *testing.T) {
	exe, _ := os.Executable()
	hostile := exec.Command(exe)
	hostile.Env = append(os.Environ(), "GOIPC_STAT_TEST_ROLE=hostile")
	hostile.Stderr = os.Stderr
	stdin, _ := hostile.StdinPipe()
	stdout, _ := hostile.StdoutPipe()
	if err := hostile.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); hostile.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("hostile process: %q %v", line, err)
	}
	fds := map[int]string{}
	for _, f := range strings.Fields(line)[1:] {
		fd, name, _ := strings.Cut(f, "=")
		n, _ := strconv.Atoi(fd)
		fds[n] = name
	}
	pid := strconv.Itoa(hostile.Process.Pid)

	for i := 0; i < 10; i++ { // the flapping segment changes under each run
		s := statJSON(t, cli("stat", "--json", "--pid", pid))
		reasons := map[string]string{}
		for _, u := range s.Unreadable {
			if u.Name != hostileName {
				t.Fatalf("unreadable entry names %q, want %q", u.Name, hostileName)
			}
			reasons[fds[u.FD]] = u.Reason
		}
		for _, c := range hostileCases {
			if r, ok := reasons[c.name]; c.reason != "" && (!ok || !strings.Contains(r, c.reason)) {
				t.Fatalf("%s: reason %q (listed: %v), want %q", c.name, r, ok, c.reason)
			}
		}
		// The genuine connection: both ends, on one segment. (The flapping
		// copy of its header is listed too whenever a read catches it whole.)
		ends, forged := map[uint64][]string{}, 0
		for _, r := range s.Connections {
			switch {
			case r.Path == hostilePath:
				forged++
			case strings.HasSuffix(r.Path, "/s.sock"):
				ends[r.Segment] = append(ends[r.Segment], r.Role)
			}
		}
		pairs := 0
		for _, roles := range ends {
			if len(roles) == 2 && roles[0] == "dialer" && roles[1] == "listener" {
				pairs++
			}
		}
		if pairs != 1 || forged != 1 || len(ends) > 2 {
			t.Fatalf("listed %d genuine connections (want 1) and %d forged ends (want 1): %+v", pairs, forged, s.Connections)
		}
	}
	out, err := cli("stat", "--pid", pid).CombinedOutput()
	if err != nil {
		t.Fatalf("goipc stat: %v\n%s", err, out)
	}
	if bytes.ContainsAny(out, "\x1b") || !strings.Contains(string(out), strconv.QuoteToASCII(hostilePath)) ||
		!strings.Contains(string(out), strconv.QuoteToASCII(hostileName)) || !strings.Contains(string(out), "unsupported segment layout version") {
		t.Fatalf("table:\n%q", out)
	}
	// The library itself, many times against the resizing segment.
	for i := 0; i < 300; i++ {
		if _, err := statread.Scan(statread.Options{PID: hostile.Process.Pid}); err != nil {
			t.Fatal(err)
		}
	}
}

// runHold dials path, exchanges one message and holds the connection
// until stdin closes.
func runHold(path string) int {
	c, err := goipc.Dial(path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hold:", err)
		return 1
	}
	defer c.Close()
	if err := c.Send([]byte("hello")); err != nil {
		fmt.Fprintln(os.Stderr, "hold:", err)
		return 1
	}
	if _, err := c.RecvTimeout(10 * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "hold:", err)
		return 1
	}
	fmt.Println("connected")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// TestStatShowsOtherUsersOnlyToRoot: with a root-owned connection live in
// this process, `goipc stat` run as nobody lists nobody's connection and
// not root's; run as root it lists both.
func TestStatShowsOtherUsersOnlyToRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test runs processes as user nobody and needs root; CI runs as root")
		}
		t.Skip("needs root to run processes as user nobody (CI runs it)")
	}
	const nobody = 65534
	// A copy of this binary that nobody may run, and a directory nobody
	// may create its socket in.
	dir, err := os.MkdirTemp("", "goipc-stat-uid")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sockDir := filepath.Join(dir, "sock")
	exe := filepath.Join(dir, "goipc")
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{os.Chmod(dir, 0o755), os.WriteFile(exe, data, 0o755), os.Mkdir(sockDir, 0o755), os.Chown(sockDir, nobody, nobody)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	asNobody := func(env string, args ...string) *exec.Cmd {
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), env)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		return cmd
	}
	start := func(cmd *exec.Cmd, ready string) {
		t.Helper()
		cmd.Stderr = os.Stderr
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || !strings.Contains(line, ready) {
			t.Fatalf("%v: %q %v", cmd.Args, line, err)
		}
	}
	// nobody's connection: a pong and a client holding a connection to it.
	nobodyPath := filepath.Join(sockDir, "pong.sock")
	pong := asNobody("GOIPC_CLI=1", "pong", "--listen", nobodyPath)
	start(pong, "listening")
	holder := asNobody("GOIPC_STAT_TEST_ROLE=hold", nobodyPath)
	start(holder, "connected")
	// root's connection, in this process.
	rootPath, rootPong, _ := dialPong(t)

	seen := statJSON(t, asNobody("GOIPC_CLI=1", "stat", "--json"))
	nobodyEnds := endsOn(seen, nobodyPath)
	if _, ok := nobodyEnds[key(pong.Process.Pid, "listener")]; !ok {
		t.Fatalf("nobody does not see its own pong: %+v", seen)
	}
	if r, ok := nobodyEnds[key(holder.Process.Pid, "dialer")]; !ok || r.MessagesSent != 1 || r.PeerPID != pong.Process.Pid {
		t.Fatalf("nobody does not see its own client: %+v", seen)
	}
	for _, r := range seen.Connections {
		var st unix.Stat_t
		if err := unix.Stat("/proc/"+strconv.Itoa(r.PID), &st); err == nil && st.Uid != nobody {
			t.Errorf("nobody sees pid %d of uid %d: %+v", r.PID, st.Uid, r)
		}
		if r.PID == os.Getpid() || r.PID == rootPong.Process.Pid || r.Path == rootPath {
			t.Errorf("nobody sees root's connection: %+v", r)
		}
	}
	for _, u := range seen.Unreadable {
		t.Errorf("nobody's view lists an unreadable segment (of another user?): %+v", u)
	}

	all := statJSON(t, cli("stat", "--json"))
	if _, ok := endsOn(all, rootPath)[key(os.Getpid(), "dialer")]; !ok {
		t.Fatalf("root does not see its own connection: %+v", all)
	}
	if _, ok := endsOn(all, nobodyPath)[key(holder.Process.Pid, "dialer")]; !ok {
		t.Fatalf("root does not see nobody's connection: %+v", all)
	}
}

// TestStatListsGoCAndPythonProducers: one `goipc pong`, three producers
// (`goipc ping`, the C example build/c/ping, `python -m goipc.ping`), each
// stopped mid-run with SIGSTOP; `goipc stat --json` lists every producer
// with its pid, pong as its peer, and counts that agree exactly with
// pong's side of the same connection. `make test-stat` builds the C and
// Python producers and runs it (GOIPC_STAT_PEERS=1).
func TestStatListsGoCAndPythonProducers(t *testing.T) {
	if os.Getenv("GOIPC_STAT_PEERS") != "1" {
		t.Skip("needs the C and Python producers: `make test-stat` builds them and runs this test")
	}
	cBin, python, pyPath, libDir := os.Getenv("GOIPC_C_BIN"), os.Getenv("GOIPC_PYTHON"), os.Getenv("GOIPC_PYTHONPATH"), os.Getenv("GOIPC_LIBRARY_DIR")
	for _, p := range []string{filepath.Join(cBin, "ping"), python, filepath.Join(pyPath, "goipc", "ping.py"), filepath.Join(libDir, "libgoipc.so")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("producer missing (make test-stat builds it): %v", err)
		}
	}
	path, pong, _ := startPong(t)
	// Large messages and many round trips: a producer must still be
	// running when the test stops it.
	const size, rounds = 65536, "1000000"
	sz := strconv.Itoa(size)
	py := exec.Command(python, "-m", "goipc.ping", "--dial", path, "--size", sz, "-n", rounds, "--warmup", "0")
	py.Env = append(os.Environ(), "PYTHONPATH="+pyPath, "GOIPC_LIBRARY_DIR="+libDir, "PYTHONDONTWRITEBYTECODE=1")
	producers := []struct {
		lang string
		cmd  *exec.Cmd
	}{
		{"go", cli("ping", "--dial", path, "--raw", "--size", sz, "-n", rounds, "--warmup", "0")},
		{"c", exec.Command(filepath.Join(cBin, "ping"), "--dial", path, "--size", sz, "-n", rounds, "--warmup", "0")},
		{"python", py},
	}
	for _, p := range producers {
		var stderr syncBuffer
		p.cmd.Stderr = &stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("%s producer: %v", p.lang, err)
		}
		t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
		pid := p.cmd.Process.Pid
		waitUntil(t, p.lang+" producer has sent messages", func() bool {
			snap, err := statread.Scan(statread.Options{PID: pid})
			if err != nil {
				t.Fatal(err)
			}
			if p.cmd.ProcessState != nil || syscall.Kill(pid, 0) != nil {
				t.Fatalf("%s producer exited before it was stopped: %s", p.lang, stderr.String())
			}
			return len(snap.Ends) == 1 && snap.Ends[0].Sent.Messages >= 10
		})
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	// The producers are frozen; pong answers what they sent and parks.
	pongPID := pong.Process.Pid
	frame := uint64(8 + size)
	var ends map[string]statRecord
	settled := func() bool {
		ends = endsByPeer(statJSON(t, cli("stat", "--json")), path)
		for _, p := range producers {
			prod, srv := ends[key(p.cmd.Process.Pid, "dialer")], ends[key(pongPID, "listener/"+strconv.Itoa(p.cmd.Process.Pid))]
			if prod.MessagesSent == 0 || srv.MessagesReceived != prod.MessagesSent || srv.MessagesSent != srv.MessagesReceived ||
				prod.MessagesReceived+prod.RecvInUse/frame != srv.MessagesSent {
				return false
			}
		}
		return true
	}
	waitUntil(t, "pong has answered everything the stopped producers sent", settled)
	if len(ends) != 6 {
		t.Fatalf("%d ends on %s, want 3 producers and 3 pong ends: %+v", len(ends), path, ends)
	}
	for _, p := range producers {
		pid := p.cmd.Process.Pid
		prod, srv := ends[key(pid, "dialer")], ends[key(pongPID, "listener/"+strconv.Itoa(pid))]
		t.Logf("%s producer pid %d (%s): sent %d, received %d; pong received %d, sent %d",
			p.lang, pid, prod.Name, prod.MessagesSent, prod.MessagesReceived, srv.MessagesReceived, srv.MessagesSent)
		if prod.PeerPID != pongPID || srv.PeerPID != pid || prod.Segment != srv.Segment ||
			prod.BytesSent != prod.MessagesSent*size || prod.BytesReceived != prod.MessagesReceived*size ||
			srv.BytesReceived != prod.BytesSent || srv.BytesSent != srv.MessagesSent*size ||
			prod.MessagesSent-prod.MessagesReceived > 1 || prod.SendInUse != 0 {
			t.Errorf("%s producer %+v\npong's end %+v", p.lang, prod, srv)
		}
	}
	names := map[string]string{}
	for _, p := range producers {
		names[p.lang] = ends[key(p.cmd.Process.Pid, "dialer")].Name
	}
	if names["c"] != "ping" || !strings.HasPrefix(names["python"], "python") || names["go"] != ends[key(pongPID, "listener/"+strconv.Itoa(producers[0].cmd.Process.Pid))].Name {
		t.Errorf("process names %v", names)
	}
}
