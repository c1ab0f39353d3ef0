package main

import (
	"strings"
	"testing"

	"github.com/goipc/goipc/goipc/natsbridge/natstest"
)

// One pong serves a Unix socket and a NATS subject at once; ping reaches
// it through both.
func TestPongListensOnUnixAndNATS(t *testing.T) {
	srv := natstest.Start(t, natstest.Config{})
	natsAddr := srv.URL() + "/cli.pong"
	path, _, stderr := startPong(t, "--listen", natsAddr)
	for _, addr := range []string{path, natsAddr} {
		out, err := cli("ping", "--dial", addr, "-n", "300", "--warmup", "10").CombinedOutput()
		if err != nil {
			t.Fatalf("ping %s: %v\n%s\npong: %s", addr, err, out, stderr)
		}
		if !strings.Contains(string(out), "p50") {
			t.Fatalf("ping %s printed no latencies:\n%s", addr, out)
		}
	}
}
