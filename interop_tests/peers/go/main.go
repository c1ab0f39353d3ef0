// Command peer is the Go peer of the interop matrix (interop_tests/run.py):
// a consumer written with the Go library, the Go producer of the test-only
// scenarios and the capture listener of the layout scenario. Every
// language has a peer with the same command line and the same JSON lines;
// docs/INTEROP.md describes them.
//
//	peer consumer --listen PATH [--protocol-version V] [--once]
//	peer producer --dial PATH --scenario NAME [--n N] [--size B]
//	              [--rounds R] [--ring-size BYTES] [--max-message BYTES]
//	              [--protocol-version V]
//	              [--snapshot FILE]
//	peer capture  --listen PATH --snapshot FILE
//
// Only what is test-only lives here: the scenarios sizes, burst, stream
// (the kill points), version and layout, the capture, and a consumer that
// reports each connection's end. The pingpong and calls scenarios run the
// ping-pong example, examples/ping-pong/go (`ping`), the program users
// read.
//
// Output: one JSON object per line on stdout. A consumer prints
// {"event":"ready"} once it listens, then one "conn_end" or "accept_error"
// line per client. A producer prints {"event":"streaming"} during the
// stream scenario and ends with one {"event":"result","ok":...} line; its
// exit status is 0 exactly when ok is true.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"

	"github.com/goipc/goipc/goipc"
)

const lang = "go"

var outMu sync.Mutex

// emit prints one JSON line on stdout (the driver reads them as they come).
func emit(fields map[string]any) {
	b, err := json.Marshal(fields)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"event":"internal_error","error":%q}`, err.Error()))
	}
	outMu.Lock()
	os.Stdout.Write(append(b, '\n'))
	outMu.Unlock()
}

// statusName maps an error to the status names every peer uses (the C
// status codes of include/goipc.h, in lower case without GOIPC_ERR_).
func statusName(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, goipc.ErrPeerClosed):
		return "peer_closed"
	case errors.Is(err, goipc.ErrProtocol): // ErrVersionMismatch wraps it
		return "protocol"
	case errors.Is(err, goipc.ErrTimeout):
		return "timeout"
	case errors.Is(err, goipc.ErrClosed):
		return "closed"
	case errors.Is(err, goipc.ErrMessageTooLarge):
		return "message_too_large"
	case errors.Is(err, goipc.ErrBufferTooSmall):
		return "buffer_too_small"
	case errors.Is(err, goipc.ErrPermission):
		return "permission"
	case errors.Is(err, goipc.ErrAddressInUse):
		return "address_in_use"
	case errors.Is(err, goipc.ErrInvalidArgument):
		return "invalid_argument"
	case errors.Is(err, goipc.ErrNotSupported):
		return "not_supported"
	case errors.Is(err, goipc.ErrLimit):
		return "limit"
	}
	return "system"
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: peer consumer|producer|capture [flags] (see docs/INTEROP.md)")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet("peer "+os.Args[1], flag.ExitOnError)
	listen := fs.String("listen", "", "Unix socket path to listen on")
	dial := fs.String("dial", "", "Unix socket path to dial")
	scenario := fs.String("scenario", "", "producer scenario")
	n := fs.Int("n", 100000, "round trips before the stream scenario reports streaming")
	size := fs.Int("size", 32, "payload bytes")
	rounds := fs.Int("rounds", 20, "bursts (burst scenario)")
	ringSize := fs.Int("ring-size", 0, "ring capacity in bytes for the dialer (0: default)")
	maxMsg := fs.Int("max-message", 0, "largest message in bytes for the dialer (0: default)")
	proto := fs.Uint("protocol-version", 0, "announce another protocol version (testing)")
	once := fs.Bool("once", false, "consumer: exit after the first connection ends")
	snapshot := fs.String("snapshot", "", "layout: the capture snapshot file")
	fs.Parse(os.Args[2:])

	switch os.Args[1] {
	case "consumer":
		os.Exit(runConsumer(*listen, uint32(*proto), *once))
	case "producer":
		p := producer{
			path: *dial, scenario: *scenario, n: *n, size: *size,
			rounds: *rounds, ringSize: *ringSize, maxMsg: *maxMsg, proto: uint32(*proto), snapshot: *snapshot,
		}
		os.Exit(p.run())
	case "capture":
		os.Exit(runCapture(*listen, *snapshot))
	default:
		usage()
	}
}
