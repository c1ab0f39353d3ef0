package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Log rate limit of a server (goipc pong): per listener, not per
// connection, so that a client reconnecting in a loop, or many clients
// failing at once, cannot flood the log.
const (
	logBurst        = 10              // lines written at once before the limit applies
	logRate         = 2.0             // lines per second after the burst
	logSummaryDelay = 1 * time.Second // a suppression is counted at most this long before it is said
)

// logLimiter writes log lines through a token bucket (logBurst lines, then
// logRate lines per second) and counts the lines it drops. The count is
// written as one summary line before the next line that passes, or
// logSummaryDelay after the first dropped line, whichever comes first, so
// that a flood that stops is still reported. Safe for concurrent use.
type logLimiter struct {
	w         io.Writer
	program   string // names the writer in the summary line
	unlimited bool
	burst     float64
	rate      float64 // tokens per second
	delay     time.Duration

	mu         sync.Mutex
	tokens     float64
	last       time.Time // last refill
	suppressed int
	firstDrop  time.Time
	timer      *time.Timer // pending summary, nil when none
}

// newLogLimiter returns a limiter writing to w for program (the summary
// line's prefix); unlimited writes every line.
func newLogLimiter(w io.Writer, program string, unlimited bool) *logLimiter {
	return &logLimiter{w: w, program: program, unlimited: unlimited, burst: logBurst, rate: logRate, delay: logSummaryDelay,
		tokens: logBurst, last: time.Now()}
}

// printf writes one line (a newline is added) unless the rate is exceeded.
func (l *logLimiter) printf(format string, args ...any) { l.printfFor(1, format, args...) }

// printfFor is printf for a line that stands for n lines (a count of
// events that each would have had its own): suppressed, it counts as n.
func (l *logLimiter) printfFor(n int, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unlimited {
		fmt.Fprintf(l.w, format+"\n", args...)
		return
	}
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens < 1 {
		if l.suppressed == 0 {
			l.firstDrop = now
			l.timer = time.AfterFunc(l.delay, l.flush)
		}
		l.suppressed += n
		return
	}
	l.tokens--
	l.summaryLocked()
	fmt.Fprintf(l.w, format+"\n", args...)
}

// flush writes the pending summary, if any.
func (l *logLimiter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.summaryLocked()
}

func (l *logLimiter) summaryLocked() {
	if l.suppressed == 0 {
		return
	}
	fmt.Fprintf(l.w, "%s: %d log lines suppressed in the last %v (at most %d lines at once, then %g per second, per listener)\n",
		l.program, l.suppressed, time.Since(l.firstDrop).Round(time.Millisecond), int(l.burst), l.rate)
	l.suppressed = 0
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}
