package bench

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// quickOpts is a short, fully verified run for correctness tests.
func quickOpts(t testing.TB, ms []Mechanism, sizes ...int) Options {
	return Options{Mechanisms: ms, Sizes: sizes, Child: testChild(t), Runs: 1, RunTime: 3 * time.Millisecond,
		Warmup: time.Millisecond, MinIters: 20, Verify: true, Syscalls: "off", Timeout: 60 * time.Second}
}

func mustLookup(t testing.TB, id string) []Mechanism {
	t.Helper()
	ms, err := Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestMechanisms runs every mechanism between two processes: pingpong and
// stream, every payload verified (sequence number and pattern), at sizes
// that exercise a tiny message, a partial read or chunk, and a message
// larger than every kernel buffer.
func TestMechanisms(t *testing.T) {
	sizes := []int{1, 64, 100003, 1 << 20}
	if testing.Short() {
		sizes = []int{1, 64, 100003}
	}
	for _, m := range All() {
		t.Run(strings.ReplaceAll(ID(m), ":", "_"), func(t *testing.T) {
			t.Logf("%s: %s", ID(m), m.Design().Note)
			rep, err := Run(quickOpts(t, []Mechanism{m}, sizes...))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(rep.Results), 2*len(sizes); got != want {
				t.Fatalf("%d results, want %d", got, want)
			}
			for _, r := range rep.Results {
				name := fmt.Sprintf("%s %s %d B", r.Label(), r.Workload, r.Size)
				if r.Error != "" {
					t.Errorf("%s: %s", name, r.Error)
					continue
				}
				if r.Skipped != "" {
					if m.MaxSize() == 0 || r.Size <= m.MaxSize() {
						t.Errorf("%s skipped: %s", name, r.Skipped)
					}
					continue
				}
				if r.P50 <= 0 || r.P99 < r.P50 || r.P999 < r.P99 || r.Max < r.P999 {
					t.Errorf("%s: percentiles out of order: %d %d %d %d", name, r.P50, r.P99, r.P999, r.Max)
				}
				if r.MsgsPerS <= 0 || r.GBPerS <= 0 || r.Iters < 20 || r.Runs != 1 {
					t.Errorf("%s: msgs/s %v GB/s %v iters %d runs %d", name, r.MsgsPerS, r.GBPerS, r.Iters, r.Runs)
				}
				if r.CtxSwPerMsg < 0 || r.VolCtxSwPerMsg > r.CtxSwPerMsg {
					t.Errorf("%s: context switches %v (voluntary %v)", name, r.CtxSwPerMsg, r.VolCtxSwPerMsg)
				}
			}
		})
	}
}

func TestMechanismNames(t *testing.T) {
	all := strings.Join(IDs(), " ")
	for _, w := range []string{"pipe", "fifo", "unix", "seqpacket", "tcp", "udp", "mq", "eventfd", "goipc"} {
		if !strings.Contains(all, w) {
			t.Errorf("no mechanism name contains %q: %s", w, all)
		}
	}
	for _, id := range []string{"goipc:default", "goipc:spin", "goipc:park", "goipc:pieces", "tcp:nodelay", "tcp:default", "pipe"} {
		if ms, err := Lookup(id); err != nil || len(ms) != 1 {
			t.Errorf("Lookup(%q) = %d mechanisms, %v", id, len(ms), err)
		}
	}
	if ms, _ := Lookup("goipc"); len(ms) != 4 {
		t.Errorf("Lookup(goipc) = %d modes, want 4", len(ms))
	}
	if _, err := Lookup("carrier-pigeon"); !errors.Is(err, ErrUnknownMechanism) {
		t.Errorf("Lookup(carrier-pigeon) = %v", err)
	}
}

// corruptMech is a pipe whose child flips one byte of every reply: the
// parent's verification must catch it.
type corruptMech struct{ pipeMech }

func (corruptMech) Name() string { return "test-corrupt" }
func (c corruptMech) Open(args map[string]string, files []*os.File) (Endpoint, error) {
	ep, err := c.pipeMech.Open(args, files)
	return corruptEndpoint{ep}, err
}

type corruptEndpoint struct{ Endpoint }

func (e corruptEndpoint) Send(msg []byte) error {
	msg[len(msg)-1] ^= 0xff
	return e.Endpoint.Send(msg)
}

// muteMech is a pipe whose child receives but never answers: the watchdog
// must end the run.
type muteMech struct{ pipeMech }

func (muteMech) Name() string { return "test-mute" }
func (c muteMech) Open(args map[string]string, files []*os.File) (Endpoint, error) {
	ep, err := c.pipeMech.Open(args, files)
	return muteEndpoint{ep}, err
}

type muteEndpoint struct{ Endpoint }

func (muteEndpoint) Send([]byte) error { select {} }

func init() {
	// Registered in every test binary, so the re-executed child knows them;
	// All() is not affected because tests select them explicitly.
	hidden = append(hidden, corruptMech{}, muteMech{})
}

func TestVerificationCatchesCorruption(t *testing.T) {
	rep, err := Run(quickOpts(t, []Mechanism{corruptMech{}}, 64))
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[0]; !strings.Contains(r.Error, "payload") {
		t.Errorf("%s %s: error %q, want a payload mismatch", r.Label(), r.Workload, r.Error)
	}
	for _, r := range rep.Results[1:] {
		if r.Error == "" {
			t.Errorf("%s %s: no error after a failed point", r.Label(), r.Workload)
		}
	}
}

func TestWatchdogEndsAHungRun(t *testing.T) {
	o := quickOpts(t, []Mechanism{muteMech{}}, 64)
	o.Workloads = []string{PingPong}
	o.Timeout = 2 * time.Second
	start := time.Now()
	rep, err := Run(o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Results[0].Error == "" {
		t.Fatal("a mute child did not fail the run")
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the watchdog took %v", d)
	}
}
