package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Cross-language rows (`goipc bench --peers c,python,rust`).
//
// A peer is a program written in another language that measures a round
// trip from its side. This process is the consumer: it listens, starts the
// peer with
//
//	<peer command> --transport goipc|unix --path PATH --size N --iters N --warmup N
//
// echoes every message back (goipc: RecvInto then Send; unix: a SOCK_STREAM
// socket, read the N bytes then write them back), and reads one JSON line
// from the peer's standard output:
//
//	{"lang":"c","transport":"goipc","size":64,"iters":20000,
//	 "p50_ns":1200,"p90_ns":1500,"p99_ns":3000,"p999_ns":9000,"max_ns":40000}
//
// The peer times each round trip with a monotonic clock, after its warm-up
// round trips, and checks that every reply equals what it sent. With
// transport goipc it goes through libgoipc (the C ABI) from its language;
// with transport unix it uses that language's own socket API, which gives
// the language's baseline next to it. The Go reference peer (`--peers go`,
// runPeerGo below) is this binary itself and shows the protocol in full.

// Peer is one language's peer program.
type Peer struct {
	Lang    string
	Command []string // empty for "go": this binary, re-executed
}

// peerSpec is the Go reference peer's point.
type peerSpec struct {
	Transport string `json:"transport"`
	Path      string `json:"path"`
	Size      int    `json:"size"`
	Iters     int    `json:"iters"`
	Warmup    int    `json:"warmup"`
}

// peerLine is what a peer prints.
type peerLine struct {
	Lang      string `json:"lang"`
	Transport string `json:"transport"`
	Size      int    `json:"size"`
	Iters     int    `json:"iters"`
	Percentiles
	Error string `json:"error,omitempty"`
}

// ErrPeerNotBuilt is returned by ResolvePeers for a language whose peer
// program is not there (its binding is not built yet).
var ErrPeerNotBuilt = errors.New("bench: peer program not built")

// peerCandidates are the places each language's peer program is looked for,
// relative to the repository root; GOIPC_BENCH_PEER_<LANG> (a command line,
// split on spaces) overrides them. They are the ping-pong examples
// (examples/ping-pong/<lang>), which `make bench-peers` builds:
// examples/ping-pong/c/ping.c, examples/ping-pong/python/ping.py (run with
// the venv's python: it imports the binding from bindings/python/src) and
// examples/ping-pong/rust/ping.rs (the crate's example ping_pong: cargo
// build --release --example ping_pong in bindings/rust).
var peerCandidates = map[string][][]string{
	"c":      {{"build/bin/goipc-ping-c"}},
	"python": {{"build/venv/bin/python", "examples/ping-pong/python/ping.py"}},
	"rust":   {{"bindings/rust/target/release/examples/ping_pong"}},
}

// PeerLangs lists the languages --peers accepts.
func PeerLangs() []string { return []string{"c", "python", "rust", "go"} }

// ResolvePeers finds the peer program of each language. root is the
// repository root (where build/ and bindings/ are).
func ResolvePeers(langs []string, root string) ([]Peer, error) {
	var out []Peer
	for _, lang := range langs {
		lang = strings.ToLower(strings.TrimSpace(lang))
		if lang == "" {
			continue
		}
		if lang == "go" {
			out = append(out, Peer{Lang: "go"})
			continue
		}
		env := "GOIPC_BENCH_PEER_" + strings.ToUpper(lang)
		if v := strings.Fields(os.Getenv(env)); len(v) > 0 {
			out = append(out, Peer{Lang: lang, Command: v})
			continue
		}
		cands, ok := peerCandidates[lang]
		if !ok {
			return nil, fmt.Errorf("bench: --peers: unknown language %q (known: %s)", lang, strings.Join(PeerLangs(), ", "))
		}
		var found []string
		var looked []string
		for _, c := range cands {
			abs := make([]string, len(c))
			ok := true
			for i, p := range c {
				abs[i] = filepath.Join(root, p)
				if _, err := os.Stat(abs[i]); err != nil {
					ok = false
				}
			}
			looked = append(looked, strings.Join(c, " "))
			if ok {
				found = abs
				break
			}
		}
		if found == nil {
			return nil, fmt.Errorf("%w: --peers %s: the %s binding's bench peer is not built yet (looked for %s under %s; "+
				"build it, or set %s to its command; see docs/BENCHMARKS.md, \"Cross-language rows\")",
				ErrPeerNotBuilt, lang, lang, strings.Join(looked, ", "), root, env)
		}
		out = append(out, Peer{Lang: lang, Command: found})
	}
	return out, nil
}

// peerIters picks a fixed iteration count per size, scaled by RunTime.
func peerIters(opts *Options, size int) (iters, warmup int) {
	base := 20000
	switch {
	case size > 64<<10:
		base = 1000
	case size > 4<<10:
		base = 5000
	}
	scale := float64(opts.RunTime) / float64(200*time.Millisecond)
	iters = max(opts.MinIters, int(float64(base)*scale))
	return iters, max(10, iters/10)
}

// goipcEcho and goipcDial are the goipc transport's two ends; they are set
// by goipc.go once the core package exists.
var (
	goipcEcho func(path string, size, n int, ready chan<- error) error
	goipcDial func(path string) (Endpoint, error)
)

func runPeer(opts *Options, p Peer) []Result {
	var out []Result
	for _, size := range opts.Sizes {
		for _, transport := range []string{"goipc", "unix"} {
			r := Result{Mechanism: "unix-stream", Mode: "peer-" + p.Lang, Workload: PingPong, Size: size,
				KernelCopies: 2, DesignSyscalls: "2 (write + read)", SyscallMethod: "not measured (peer row)", Runs: 1}
			if transport == "goipc" {
				r.Mechanism, r.KernelCopies, r.UserCopies, r.DesignSyscalls = "goipc", 0, 2, "0 when the peer spins, 2 (futex wake + wait) when it sleeps"
			}
			line, err := peerPoint(opts, p, transport, size)
			if err != nil {
				r.Error = err.Error()
				opts.logf("bench: peer %s %s %d B: %v", p.Lang, transport, size, err)
			} else {
				r.P50, r.P90, r.P99, r.P999, r.Max = line.P50, line.P90, line.P99, line.P999, line.Max
				r.Iters = line.Iters
				if r.P50 > 0 {
					r.MsgsPerS = 2e9 / float64(r.P50)
				}
				r.GBPerS = r.MsgsPerS * float64(size) / 1e9
			}
			out = append(out, r)
		}
	}
	return out
}

// peerPoint runs one peer measurement: listen, start the peer, echo, read
// its line.
func peerPoint(opts *Options, p Peer, transport string, size int) (*peerLine, error) {
	if transport == "goipc" && goipcEcho == nil {
		return nil, errors.New("the goipc core package is not built into this binary")
	}
	dir, err := os.MkdirTemp("", "goipc-bench-peer-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "peer.sock")
	iters, warmup := peerIters(opts, size)
	args := []string{"--transport", transport, "--path", path, "--size", strconv.Itoa(size),
		"--iters", strconv.Itoa(iters), "--warmup", strconv.Itoa(warmup)}
	var cmd *exec.Cmd
	if p.Lang == "go" && len(p.Command) == 0 {
		spec, _ := json.Marshal(childSpec{Role: "peer", Peer: &peerSpec{Transport: transport, Path: path, Size: size, Iters: iters, Warmup: warmup}})
		cmd = exec.Command(opts.Child[0], opts.Child[1:]...)
		cmd.Env = append(os.Environ(), EnvChild+"="+string(spec))
	} else {
		cmd = exec.Command(p.Command[0], append(append([]string{}, p.Command[1:]...), args...)...)
	}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}

	// Listen first, then start the peer, then serve.
	ready := make(chan error, 1)
	served := make(chan error, 1)
	n := iters + warmup
	if transport == "goipc" {
		go func() { served <- goipcEcho(path, size, n, ready) }()
	} else {
		go func() { served <- unixEcho(path, size, n, ready) }()
	}
	if err := <-ready; err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start peer %v: %w", cmd.Args, err)
	}
	lines := make(chan *peerLine, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var last *peerLine
		for sc.Scan() {
			var l peerLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				last = &l
			}
		}
		lines <- last
	}()
	waitc := make(chan error, 1)
	go func() { line := <-lines; lines <- line; waitc <- cmd.Wait() }()
	select {
	case err = <-waitc:
	case <-time.After(opts.Timeout):
		cmd.Process.Kill()
		<-waitc
		return nil, fmt.Errorf("peer did not finish within %v", opts.Timeout)
	}
	line := <-lines
	select {
	case serr := <-served:
		if serr != nil && err == nil {
			err = fmt.Errorf("consumer: %w", serr)
		}
	case <-time.After(5 * time.Second):
		if err == nil {
			err = errors.New("consumer did not finish after the peer exited")
		}
	}
	if line != nil && line.Error != "" {
		return nil, fmt.Errorf("peer: %s", line.Error)
	}
	if err != nil {
		return nil, fmt.Errorf("peer %v: %w", cmd.Args, err)
	}
	if line == nil {
		return nil, fmt.Errorf("peer %v printed no JSON line", cmd.Args)
	}
	return line, nil
}

// unixEcho is the Go consumer of the unix transport.
func unixEcho(path string, size, n int, ready chan<- error) error {
	lfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		err = unix.Bind(lfd, &unix.SockaddrUnix{Name: path})
		if err == nil {
			err = unix.Listen(lfd, 1)
		}
	}
	ready <- err
	if err != nil {
		return err
	}
	fd, _, err := acceptRetry(lfd)
	unix.Close(lfd)
	if err != nil {
		return err
	}
	ep := &fdEndpoint{rfd: fd, wfd: fd, sock: true}
	defer ep.Close()
	return echo(ep, size, n)
}

func echo(ep Endpoint, size, n int) error {
	buf := newRecvBuf(size)
	for i := 0; i < n; i++ {
		if err := ep.Recv(buf); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if err := ep.Send(buf); err != nil {
			return fmt.Errorf("reply %d: %w", i, err)
		}
	}
	return nil
}

// runGoPeer is the Go reference peer: what a C, Python or Rust peer does.
func runGoPeer(spec *childSpec) error {
	ps := spec.Peer
	if ps == nil {
		return errors.New("peer role without a point")
	}
	line := peerLine{Lang: "go", Transport: ps.Transport, Size: ps.Size, Iters: ps.Iters}
	err := func() error {
		var ep Endpoint
		switch ps.Transport {
		case "unix":
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			if err := connectRetry(fd, &unix.SockaddrUnix{Name: ps.Path}); err != nil {
				unix.Close(fd)
				return err
			}
			ep = &fdEndpoint{rfd: fd, wfd: fd, sock: true}
		case "goipc":
			if goipcDial == nil {
				return errors.New("the goipc core package is not built into this binary")
			}
			var err error
			if ep, err = goipcDial(ps.Path); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown transport %q", ps.Transport)
		}
		defer ep.Close()
		msg := newPayload(ps.Size)
		buf := newRecvBuf(ps.Size)
		h := newHist()
		for i := 0; i < ps.Warmup+ps.Iters; i++ {
			stamp(msg, uint64(i))
			t0 := time.Now()
			if err := ep.Send(msg); err != nil {
				return err
			}
			if err := ep.Recv(buf); err != nil {
				return err
			}
			d := time.Since(t0)
			if i >= ps.Warmup {
				h.RecordValue(int64(d))
			}
			if err := verify(buf, uint64(i)); err != nil {
				return err
			}
		}
		line.Percentiles = percentilesOf(h)
		return nil
	}()
	if err != nil {
		line.Error = err.Error()
	}
	b, _ := json.Marshal(line)
	fmt.Println(string(b))
	return err
}
