package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/goipc/goipc/bench"
)

func init() {
	commands["bench-server"] = command{summary: "goipc pong as a server: idle connections, slowloris, N producers, CPU hogs, against a Unix-socket echo server", run: runBenchServer}
	commands["unix-echo"] = command{summary: "a Unix-socket echo server (net package, a goroutine per connection): bench-server's baseline", run: runUnixEcho}
	commands["bench-server-client"] = command{summary: "the client processes of goipc bench-server (internal)", run: bench.ServerClientMain, hidden: true}
}

func runBenchServer(args []string) int {
	fs := flag.NewFlagSet("goipc bench-server", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: goipc bench-server [flags]\n\n"+
			"Starts goipc pong and, as the baseline, goipc unix-echo as separate processes and measures them as servers:\n"+
			"idle connections (CPU, threads, context switches, memory), a legitimate ping with slowloris clients open,\n"+
			"N producers each on its own connection, one producer next to busy-loop CPU hogs, and park-at-once round trips.\n"+
			"Method: docs/BENCHMARKS.md, \"Serving many producers\".\n\nflags:\n")
		fs.PrintDefaults()
	}
	var o bench.ServerOptions
	scenarios := fs.String("scenarios", "", "comma-separated `scenarios` among idle, slowloris, load, hogs, park (default: all)")
	fs.IntVar(&o.Idle, "idle", 10000, "idle connections per server")
	fs.DurationVar(&o.IdleWindow, "idle-window", 10*time.Second, "how long the idle servers are measured")
	fs.IntVar(&o.IdleProcs, "idle-procs", 4, "client processes that hold the idle connections")
	fs.IntVar(&o.IdleThreadCap, "idle-thread-cap", 1000, "stop opening idle connections when the server has more OS threads than this (-1: no cap)")
	fs.IntVar(&o.Silent, "silent", 1000, "slowloris: clients that connect and send nothing")
	fs.IntVar(&o.HalfHello, "half-hello", 1000, "slowloris: clients that send the first bytes of a hello, then nothing")
	fs.IntVar(&o.PingN, "ping-n", 1000, "slowloris: round trips of the timed goipc ping")
	fs.IntVar(&o.PingRuns, "ping-runs", 3, "slowloris: timed pings without and with the clients")
	fs.DurationVar(&o.PingTimeout, "ping-timeout", 10*time.Second, "slowloris: goipc ping --timeout")
	producers := fs.String("producers", "1,8,64,256,1024", "load: comma-separated producer `counts`")
	fs.DurationVar(&o.LoadTime, "load-time", 2*time.Second, "load: run time per producer count and server")
	fs.IntVar(&o.Size, "size", 64, "message size in bytes of load, hogs and park (>= 8)")
	fs.IntVar(&o.Hogs, "hogs", 4, "hogs: busy-loop processes")
	fs.DurationVar(&o.HogTime, "hog-time", 2*time.Second, "hogs: run time per row")
	fs.DurationVar(&o.ParkTime, "park-time", 2*time.Second, "park: run time per row")
	quick := fs.Bool("quick", false, "a smoke run: 200 idle connections for 1 s, 20+20 slowloris clients, N = 1 and 8, 200 ms rows, 1 hog")
	jsonOut := fs.String("json", "", "write the results as JSON to `file`")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	pongFlags := fs.String("pong-flags", "", "space-separated `flags` added to every goipc pong command line, before a row's own (--spin -1ns for park, --loop 1ms for loop), which win; for example \"--max-conns -1\"")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "goipc bench-server: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *quick {
		o.Idle, o.IdleWindow, o.Silent, o.HalfHello = 200, time.Second, 20, 20
		o.PingN, o.PingRuns = 100, 1
		*producers = "1,8"
		o.LoadTime, o.Hogs, o.HogTime, o.ParkTime = 200*time.Millisecond, 1, 200*time.Millisecond, 200*time.Millisecond
	}
	o.Scenarios = splitList(*scenarios)
	o.PongFlags = strings.Fields(*pongFlags)
	for _, f := range splitList(*producers) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "goipc bench-server: --producers: %q is not a positive count\n", f)
			return 2
		}
		o.Producers = append(o.Producers, n)
	}
	if o.Size < 8 || o.Size > 1024 {
		fmt.Fprintln(os.Stderr, "goipc bench-server: --size must be in [8, 1024] (a sequence number; the load connections' maximum message)")
		return 2
	}
	if o.Idle < 0 || o.Silent < 0 || o.HalfHello < 0 || o.PingN <= 0 || o.PingRuns <= 0 || o.Hogs < 0 {
		fmt.Fprintln(os.Stderr, "goipc bench-server: counts must be >= 0 (--ping-n and --ping-runs > 0)")
		return 2
	}
	if !*quiet {
		o.Log = os.Stderr
	}
	rep, err := bench.RunServer(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goipc bench-server:", err)
		return 2
	}
	rep.WriteTable(os.Stdout)
	if !writeOutput("goipc bench-server", "--json", *jsonOut, rep.WriteJSONFile) || rep.HasErrors() {
		return 1
	}
	return 0
}

func runUnixEcho(args []string) int {
	fs := flag.NewFlagSet("goipc unix-echo", flag.ContinueOnError)
	path := fs.String("listen", "", "Unix socket `path` to listen on (required)")
	maxMsg := fs.Int("max-message", bench.UnixEchoMaxMessage, "largest message in `bytes`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" || *maxMsg <= 0 {
		fmt.Fprintln(os.Stderr, "goipc unix-echo: --listen PATH is required, --max-message must be > 0")
		return 2
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: *path, Net: "unix"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "goipc unix-echo:", err)
		return 1
	}
	ln.SetUnlinkOnClose(true)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		ln.Close()
	}()
	log := newLogLimiter(os.Stderr, "goipc unix-echo", false)
	fmt.Printf("goipc unix-echo: listening on %s (messages: u32 little-endian length, then the payload)\n", *path)
	if err := bench.ServeUnixEcho(ln, *maxMsg, log.printf); err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintln(os.Stderr, "goipc unix-echo:", err)
		return 1
	}
	return 0
}
