package natsbridge

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/goipc/goipc/goipc"
	"github.com/goipc/goipc/goipc/natsbridge/natstest"
)

// A 3-node cluster (routes on 127.0.0.1) with the listener on node 1 and
// the dialer on node 0; one node is killed mid-stream. Killing a node
// that carries the connection ends it on both sides with ErrPeerClosed
// within the heartbeat bound; killing the third node changes nothing.
func TestClusterNodeKilled(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kill   int
		breaks bool
	}{
		{"dialer-node", 0, true},
		{"listener-node", 1, true},
		{"other-node", 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := natstest.Cluster(t, 3, natstest.Config{})
			subject := "/t.cluster." + tc.name
			// The listener knows every node (it reconnects to a survivor);
			// the dialer is pinned to node 0.
			ln, err := goipc.Listen(fmt.Sprintf("%s,127.0.0.1:%d,127.0.0.1:%d%s", nodes[1].URL(), nodes[0].Port, nodes[2].Port, subject), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			d, err := dialWithin(nodes[0].URL()+subject+"?"+fastBeat, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			a, err := ln.AcceptTimeout(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			go echo(a)
			const before, after = 500, 500
			for i := range before {
				if err := d.Send(seqMsg(i, 100)); err != nil {
					t.Fatal(err)
				}
				if got, err := d.RecvTimeout(10 * time.Second); err != nil || string(got) != string(seqMsg(i, 100)) {
					t.Fatalf("round trip %d: %v", i, err)
				}
			}
			killed := time.Now()
			nodes[tc.kill].Kill()
			if !tc.breaks {
				for i := before; i < before+after; i++ {
					if err := d.Send(seqMsg(i, 100)); err != nil {
						t.Fatalf("round trip %d after the kill: %v", i, err)
					}
					if got, err := d.RecvTimeout(10 * time.Second); err != nil || string(got) != string(seqMsg(i, 100)) {
						t.Fatalf("round trip %d after the kill: %v", i, err)
					}
				}
				return
			}
			err, n, at := pingUntilError(d, -1)
			took := at.Sub(killed)
			t.Logf("dialer: %v %v after the kill (%d more round trips)", err, took.Round(time.Millisecond), n)
			if !errors.Is(err, goipc.ErrPeerClosed) {
				t.Fatalf("dialer after the kill: %v, want ErrPeerClosed", err)
			}
			if took > deathSlack {
				t.Fatalf("ErrPeerClosed %v after the kill (bound 350 ms, allowed %v)", took, deathSlack)
			}
			// The accepted end ends too (the echo goroutine's Recv fails).
			if _, err := a.RecvTimeout(deathSlack); !errors.Is(err, goipc.ErrPeerClosed) && !errors.Is(err, goipc.ErrClosed) {
				t.Fatalf("accepted end after the kill: %v", err)
			}
			if tc.kill == 1 {
				// The listener reconnected to a survivor and accepts again.
				d2, err := dialWithin(nodes[2].URL()+subject, 15*time.Second)
				if err != nil {
					t.Fatalf("dial after the listener's node died: %v", err)
				}
				defer d2.Close()
				a2, err := ln.AcceptTimeout(10 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer a2.Close()
				if err := d2.Send([]byte("again")); err != nil {
					t.Fatal(err)
				}
				if got, err := a2.RecvTimeout(10 * time.Second); err != nil || string(got) != "again" {
					t.Fatalf("after reconnecting: %q %v", got, err)
				}
			}
		})
	}
}
