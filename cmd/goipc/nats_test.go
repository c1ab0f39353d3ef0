package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/goipc/goipc/goipc/natsbridge/natstest"
)

// One pong serves a Unix socket and a NATS subject at once; ping reaches
// it through both, with round trips and with calls. With --loop, the NATS
// connections (Pipe ends, with a NotifyFD like any other) are served by
// the event loop too.
func TestPongListensOnUnixAndNATS(t *testing.T) {
	srv := natstest.Start(t, natstest.Config{})
	for i, mode := range pongModes {
		t.Run(mode.name, func(t *testing.T) {
			testPongListensOnUnixAndNATS(t, srv.URL()+"/cli.pong"+strconv.Itoa(i), mode.flags)
		})
	}
}

func testPongListensOnUnixAndNATS(t *testing.T, natsAddr string, flags []string) {
	path, _, stderr := startPong(t, append([]string{"--listen", natsAddr}, flags...)...)
	for _, addr := range []string{path, natsAddr} {
		for _, mode := range [][]string{nil, {"--call"}} {
			args := append([]string{"ping", "--dial", addr, "-n", "300", "--warmup", "10"}, mode...)
			out, err := cli(args...).CombinedOutput()
			if err != nil {
				t.Fatalf("ping %s %v: %v\n%s\npong: %s", addr, mode, err, out, stderr)
			}
			if !strings.Contains(string(out), "p50") {
				t.Fatalf("ping %s %v printed no latencies:\n%s", addr, mode, out)
			}
		}
	}
}
