// Package bench runs the same workloads over every Linux IPC mechanism that
// goipc competes with, between two separate processes, and reports them side
// by side: `goipc bench` is its command-line front end.
//
// # Processes
//
// The parent process prepares each mechanism's resources (sockets, FIFOs,
// pipes, queues, shared memory), then re-executes its own binary as the
// child (see [ChildMain]): the CLI re-runs `goipc bench-child`, tests re-run
// the test binary, whose TestMain calls [ChildMain]. The child gets its
// half of the resources as inherited file descriptors or names, plus a
// control socket (fd 3) on which the parent sends one command per run and
// the child answers with its own resource usage. Control traffic never
// happens inside a timed region.
//
// # Workloads
//
//   - pingpong: the parent sends a message of N bytes, the child receives it
//     in full and sends it back, the parent receives it in full. Each round
//     trip is timed (monotonic clock) and recorded in an HdrHistogram.
//   - stream: the parent sends messages back to back; the child receives
//     them; one final 1-byte acknowledgement ends the timed region.
//
// A "message" in per-message figures is one one-way transfer: a round trip
// is two messages.
//
// # Fairness
//
// Every kernel mechanism uses blocking file descriptors and raw system calls
// (golang.org/x/sys/unix), never Go's netpoller, so no mechanism pays for
// Go's runtime scheduler when another does not. The benchmark goroutine is
// locked to its OS thread on both sides for every mechanism.
//
// See docs/BENCHMARKS.md for the method (warm-up, iteration counts, how
// system calls and context switches are measured, kernel copies by design).
package bench
