// Package natstest starts real nats-server processes on loopback ports
// for tests: one node, or a cluster whose routes are on 127.0.0.1. It
// never binds anything but 127.0.0.1.
package natstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// Server is one running nats-server node.
type Server struct {
	Port, ClusterPort, MonitorPort int
	cmd                            *exec.Cmd
	exited                         chan struct{}
	log                            string
}

// URL is the node's client URL.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.Port) }

// Kill sends SIGKILL and waits for the process to exit.
func (s *Server) Kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// Config holds what a test may change.
type Config struct {
	MaxPayload int    // 0: the server's default (1 MiB)
	Extra      string // more configuration lines
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the nats-server to run: $GOIPC_NATS_SERVER when that
// file exists (make sets it to build/bin/nats-server), else the pinned
// module (go.mod's tool directive) as `go tool -n` builds it: into Go's
// build cache, once per test process, so that nothing is left behind in
// the temporary directory and later runs reuse the same executable.
func Binary(t testing.TB) string {
	buildOnce.Do(func() {
		if p := os.Getenv("GOIPC_NATS_SERVER"); p != "" {
			if _, err := os.Stat(p); err == nil {
				binPath = p
				return
			}
		}
		out, err := exec.Command("go", "tool", "-n", "nats-server").Output()
		if err != nil {
			var stderr []byte
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				stderr = ee.Stderr
			}
			buildErr = fmt.Errorf("building nats-server (go tool -n nats-server): %v\n%s", err, stderr)
			return
		}
		binPath = strings.TrimSpace(string(out))
		if _, err := os.Stat(binPath); err != nil {
			buildErr = fmt.Errorf("go tool -n nats-server printed %q: %v", binPath, err)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start runs one node; it is killed when the test ends.
func Start(t testing.TB, cfg Config) *Server {
	return Cluster(t, 1, cfg)[0]
}

// Cluster runs n nodes, fully routed on 127.0.0.1 when n > 1, and waits
// until every node has a route to every other. A port taken between
// FreePort and the server's bind (other processes share the machine)
// makes it start again on new ports, up to three times.
func Cluster(t testing.TB, n int, cfg Config) []*Server {
	bin := Binary(t)
	for attempt := 1; ; attempt++ {
		nodes, err := startCluster(t, bin, n, cfg)
		if err == nil {
			if n > 1 {
				waitInterest(t, nodes)
			}
			return nodes
		}
		for _, s := range nodes {
			s.Kill()
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
	}
}

var errPortTaken = errors.New("natstest: a port was taken before nats-server bound it")

func startCluster(t testing.TB, bin string, n int, cfg Config) ([]*Server, error) {
	dir := t.TempDir()
	nodes := make([]*Server, n)
	for i := range nodes {
		nodes[i] = &Server{Port: FreePort(t), ClusterPort: FreePort(t), MonitorPort: FreePort(t), exited: make(chan struct{})}
	}
	for i, s := range nodes {
		var conf strings.Builder
		fmt.Fprintf(&conf, "server_name: node%d\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n", i, s.Port, s.MonitorPort)
		if cfg.MaxPayload > 0 {
			fmt.Fprintf(&conf, "max_payload: %d\n", cfg.MaxPayload)
		}
		if n > 1 {
			// Each node routes to the nodes before it; gossip completes
			// the mesh. Nodes that all dial each other at once sometimes
			// settle with a route missing (duplicate-route resolution).
			var routes []string
			for _, o := range nodes[:i] {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", o.ClusterPort))
			}
			fmt.Fprintf(&conf, "cluster {\n  name: goipc-test\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n", s.ClusterPort, strings.Join(routes, ", "))
		}
		conf.WriteString(cfg.Extra)
		path := filepath.Join(dir, fmt.Sprintf("node%d.conf", i))
		if err := os.WriteFile(path, []byte(conf.String()), 0o600); err != nil {
			return nodes[:i], err
		}
		s.log = filepath.Join(dir, fmt.Sprintf("node%d.log", i))
		logf, err := os.Create(s.log)
		if err != nil {
			return nodes[:i], err
		}
		s.cmd = exec.Command(bin, "-c", path)
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
		if err := s.cmd.Start(); err != nil {
			logf.Close()
			return nodes[:i], err
		}
		logf.Close()
		go func() { s.cmd.Wait(); close(s.exited) }()
		t.Cleanup(s.Kill)
	}
	return nodes, waitReady(nodes)
}

// waitInterest waits until a subscription on each node is seen from
// every other node. A route counted by /routez is not enough: with route
// pooling, the connection that carries an account's interest may come up
// a second later than the first one to a peer.
func waitInterest(t testing.TB, nodes []*Server) {
	conns := make([]*nats.Conn, len(nodes))
	for i, s := range nodes {
		nc, err := nats.Connect(s.URL())
		if err != nil {
			t.Fatalf("natstest: connect to node %d: %v", i, err)
		}
		defer nc.Close()
		conns[i] = nc
		subject := fmt.Sprintf("natstest.probe.%d", i)
		if _, err := nc.Subscribe(subject, func(m *nats.Msg) { m.Respond(nil) }); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := range nodes {
		for j, nc := range conns {
			if i == j {
				continue
			}
			for {
				_, err := nc.Request(fmt.Sprintf("natstest.probe.%d", i), nil, time.Second)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("natstest: node %d does not see a subscription on node %d within 30 s: %v", j, i, err)
				}
				time.Sleep(10 * time.Millisecond) // polling, bounded by the deadline
			}
		}
	}
}

// waitReady polls the nodes' monitoring endpoints until each serves and
// has a route to every other node (a poll with a deadline, not a sleep).
// A node that exits fails it at once: errPortTaken when it could not bind.
func waitReady(nodes []*Server) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := 0
		var last error
		for _, s := range nodes {
			select {
			case <-s.exited:
				log, _ := os.ReadFile(s.log)
				if strings.Contains(string(log), "address already in use") {
					return fmt.Errorf("%w: %s", errPortTaken, log)
				}
				return fmt.Errorf("nats-server on port %d exited: %s", s.Port, log)
			default:
			}
			got, err := s.routes()
			if err == nil && got >= len(nodes)-1 {
				ready++
			} else if err != nil {
				last = err
			}
		}
		if ready == len(nodes) {
			return nil
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, s := range nodes {
				log, _ := os.ReadFile(s.log)
				fmt.Fprintf(&logs, "\n--- node on port %d:\n%s", s.Port, log)
			}
			return fmt.Errorf("nats-server nodes not routed to each other within 30 s (%v):%s", last, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) routes() (int, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/routez", s.MonitorPort))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var rz struct {
		NumRoutes int `json:"num_routes"`
		Routes    []struct {
			RemoteName string `json:"remote_name"`
		} `json:"routes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rz); err != nil {
		return 0, err
	}
	// With route pooling a peer has several route connections: count peers.
	peers := map[string]bool{}
	for _, r := range rz.Routes {
		peers[r.RemoteName] = true
	}
	return len(peers), nil
}
