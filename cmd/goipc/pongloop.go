package main

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/goipc/goipc/goipc"
)

// pongLoop serves many connections from one goroutine (goipc pong
// --loop): an event loop over a goipc.Sweeper and an epoll set of the
// connections' NotifyFDs, instead of a goroutine per connection. While
// answers keep coming it sweeps (no system call, and the clients ring no
// doorbell); after its idle time without work it arms the doorbells and
// sleeps in Go's netpoller on the epoll descriptor, holding no thread.
//
// Why: with a goroutine per connection, every message costs the server a
// goroutine wakeup, and with few busy connections (8 producers on 2
// cores) each wakeup often starts an idle thread of the runtime (a
// futex_wake), which is what a Unix socket server pays too
// (docs/PERFORMANCE.md, sections 10 and 17). The loop answers every
// connection on its own goroutine.
//
// Nothing blocks the loop: a receive or a reservation that cannot
// proceed at once (timeout 0) lists its wait on the sweeper; a client
// that does not read its answers keeps only its own message (held, its
// view unreleased) until its ring has room again.
type pongLoop struct {
	s    *pongServer
	idle time.Duration
	sw   *goipc.Sweeper
	ep   int      // epoll set: the connections' NotifyFDs and wake
	epf  *os.File // ep, registered in the netpoller
	wake int      // eventfd: add or stop has something for the loop

	mu      sync.Mutex
	newc    []*goipc.Conn // handed over by add; guarded by mu
	stopped bool          // guarded by mu
	// news says newc or stopped changed; set by add and stop, cleared by
	// the loop before it takes them (both under mu). Read without the
	// lock on every idle sweep, so that picking up a connection needs no
	// system call.
	news atomic.Bool
	done chan struct{} // closed when run returns
	oneP bool          // GOMAXPROCS was 1 when the loop started

	// The loop goroutine's own state.
	conns  []*loopConn // indexed by sweeper token; nil slots are free
	free   []int
	again  []int // connections left with work after a full batch
	spare  []int
	tokens []uint64
	events []unix.EpollEvent
}

// loopConn is a connection of the loop.
type loopConn struct {
	c    *goipc.Conn
	fd   int
	r    *replier
	held bool // r.in is received and not answered yet: its ring was full
	// retry says the answer to r.in was tried and found the ring full:
	// what answering it reports (a malformed Ping) was reported then.
	retry  bool
	queued bool // on l.again: a second full batch does not queue it twice
	start  time.Time
	n      int
}

const (
	wakeToken  = -1 // the epoll data of the wake eventfd
	loopBatch  = 64 // messages answered per connection per visit
	loopEpollK = 16 // sweeps, busy or not, between two looks at the epoll set
	loopYieldK = 4  // idle sweeps between two sched_yields
	loopTokens = 1024
)

func newPongLoop(s *pongServer, idle time.Duration) (*pongLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err == nil {
		err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeToken})
	}
	if err == nil {
		// Non-blocking, so that os.NewFile registers it with the netpoller.
		err = unix.SetNonblock(ep, true)
	}
	if err != nil {
		unix.Close(ep)
		if wake >= 0 {
			unix.Close(wake)
		}
		return nil, err
	}
	return &pongLoop{s: s, idle: idle, sw: goipc.NewSweeper(), ep: ep, epf: os.NewFile(uintptr(ep), "goipc-pong-loop"),
		wake: wake, done: make(chan struct{}), tokens: make([]uint64, loopTokens), events: make([]unix.EpollEvent, 256)}, nil
}

// add hands c to the loop; called by the accepting goroutine, which has
// counted c in s.wg. After stop, c is closed at once.
func (l *pongLoop) add(c *goipc.Conn) {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		l.s.forget(c)
		return
	}
	l.newc = append(l.newc, c)
	l.news.Store(true)
	l.kickLocked()
	l.mu.Unlock()
}

// stop makes the loop close its connections and return, and waits for it.
func (l *pongLoop) stop() {
	l.mu.Lock()
	if !l.stopped { // else the loop has returned, or is returning, by itself
		l.stopped = true
		l.news.Store(true)
		l.kickLocked()
	}
	l.mu.Unlock()
	<-l.done
}

// kickLocked wakes the loop. l.mu is held and l.stopped is false: closeAll
// sets stopped under l.mu before it closes wake, so the write can never
// reach a closed descriptor, or another one that took its number.
func (l *pongLoop) kickLocked() {
	one := [8]byte{1}
	unix.Write(l.wake, one[:])
}

// takeNews registers the connections handed over since the last time,
// and reports whether the loop was stopped.
func (l *pongLoop) takeNews() (stopped bool) {
	var buf [8]byte
	unix.Read(l.wake, buf[:])
	l.mu.Lock()
	l.news.Store(false)
	newc, stopped := l.newc, l.stopped
	l.newc = nil
	l.mu.Unlock()
	for _, c := range newc {
		l.register(c)
	}
	return stopped
}

func (l *pongLoop) register(c *goipc.Conn) {
	idx := len(l.conns)
	if n := len(l.free); n > 0 {
		idx, l.free = l.free[n-1], l.free[:n-1]
	} else {
		l.conns = append(l.conns, nil)
	}
	fd, err := c.NotifyFD()
	if err == nil {
		err = c.SetSweeper(l.sw, uint64(idx))
	}
	if err == nil {
		err = unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(idx)})
	}
	if err != nil {
		// No descriptor or no room in the epoll set (EMFILE, ENOMEM,
		// max_user_watches): it gets a goroutine of its own. Every
		// connection has a NotifyFD otherwise, NATS ones too (they are
		// Pipe ends), so this is the exception.
		c.SetSweeper(nil, 0)
		l.free = append(l.free, idx)
		go l.s.handle(c)
		return
	}
	l.s.logConnected(c)
	l.conns[idx] = &loopConn{c: c, fd: fd, r: &replier{Conn: c}, start: time.Now()}
	l.serve(idx)
}

// serve answers what connection idx has, up to loopBatch messages, and
// returns once a call finds nothing to do (its wait is then listed on the
// sweeper) or the batch is full (the connection goes on l.again).
func (l *pongLoop) serve(idx int) {
	if idx < 0 || idx >= len(l.conns) || l.conns[idx] == nil {
		return // a report for a connection dropped earlier in this round
	}
	lc := l.conns[idx]
	for range loopBatch {
		if !lc.held {
			in, err := lc.c.RecvNextView(0)
			if errors.Is(err, goipc.ErrTimeout) {
				return
			}
			if err != nil {
				l.drop(idx, err)
				return
			}
			lc.r.in, lc.held = in, true
		}
		err := answer(nowaitAnswerer{lc.r}, lc.r.in.Data, func(err error) {
			if !lc.retry {
				l.s.logAnswer(lc.c, err)
			}
		})
		if errors.Is(err, goipc.ErrTimeout) {
			lc.retry = true
			return // the client's ring is full: the send wait is listed
		}
		lc.c.ReleaseView()
		lc.held, lc.retry = false, false
		if err != nil {
			l.drop(idx, err)
			return
		}
		lc.n++
	}
	if !lc.queued {
		lc.queued = true
		l.again = append(l.again, idx)
	}
}

// drop ends connection idx: logged as handle does, closed, forgotten.
func (l *pongLoop) drop(idx int, err error) {
	lc := l.conns[idx]
	l.conns[idx] = nil
	l.free = append(l.free, idx)
	l.s.logEnded(lc.c, lc.n, lc.start, err)
	// Out of the epoll set before Close closes the descriptor.
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, lc.fd, nil)
	// Off the sweeper: Close would only mark its listed waits ended, and
	// the next Sweep would report them under idx, which may be another
	// connection's by then.
	lc.c.SetSweeper(nil, 0)
	if lc.held {
		// Close releases the mapping (and the NotifyFD) only once the
		// view is released too.
		lc.c.ReleaseView()
		lc.held = false
	}
	l.s.forget(lc.c)
}

func (l *pongLoop) serveTokens(n int) {
	for _, t := range l.tokens[:n] {
		l.serve(int(t >> 1))
	}
}

// serveEvents serves the connections of k epoll events; it reports
// whether the loop was stopped.
func (l *pongLoop) serveEvents(k int) (stopped bool) {
	for _, ev := range l.events[:max(k, 0)] {
		if ev.Fd == wakeToken {
			stopped = l.takeNews() || stopped
			continue
		}
		l.serve(int(ev.Fd))
	}
	return stopped
}

// pollNow returns the epoll events ready now (0 on an error), with a raw
// system call: a zero timeout never blocks.
func (l *pongLoop) pollNow() int {
	n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.ep), uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
	if errno != 0 {
		return 0
	}
	return int(n)
}

// run is the loop. It returns after stop, having closed its connections.
func (l *pongLoop) run() {
	defer close(l.done)
	defer l.closeAll()
	l.oneP = runtime.GOMAXPROCS(0) == 1
	rc, err := l.epf.SyscallConn()
	if err != nil {
		l.s.log.printf("goipc pong: loop: %v", err)
		return
	}
	lastWork := time.Now()
	for sweeps := 1; ; sweeps++ {
		worked := false
		if len(l.again) > 0 {
			l.again, l.spare = l.spare[:0], l.again
			for _, idx := range l.spare {
				if lc := l.conns[idx]; lc != nil {
					lc.queued = false
				}
				l.serve(idx)
			}
			worked = true
		}
		if n := l.sw.Sweep(l.tokens); n > 0 {
			l.serveTokens(n)
			worked = true
		}
		if sweeps%loopEpollK == 0 {
			// Waits that Arm handed to their descriptors, and that no
			// call has listed again since, end there: look, busy or not,
			// or a busy loop would never see them.
			if k := l.pollNow(); k > 0 {
				if l.serveEvents(k) {
					return
				}
				worked = true
			}
			if l.oneP {
				// The connections' watchers and the accepting goroutine
				// need the only P now and then. With more, they have
				// another: a Gosched would only make the runtime wake an
				// idle thread to look for work (a futex_wake each time).
				runtime.Gosched()
			}
		}
		if l.news.Load() && l.takeNews() {
			return
		}
		if worked {
			lastWork = time.Now()
			continue
		}
		if time.Since(lastWork) < l.idle {
			if sweeps%loopYieldK == 0 {
				// Other processes (the clients) get the CPU first. A raw
				// system call: it never blocks, and the runtime's syscall
				// bookkeeping would cost more than the yield.
				unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			}
			continue
		}
		if n := l.sw.Arm(l.tokens); n > 0 {
			l.serveTokens(n)
			lastWork = time.Now()
			continue
		}
		k := 0
		err := rc.Read(func(uintptr) bool {
			k = l.pollNow()
			return k > 0
		})
		if err != nil {
			l.s.log.printf("goipc pong: loop: %v", err)
			return
		}
		if l.serveEvents(k) {
			return
		}
		lastWork = time.Now()
	}
}

// closeAll drops every connection of the loop, those not yet registered
// too, and releases the loop's descriptors.
func (l *pongLoop) closeAll() {
	l.mu.Lock()
	l.stopped = true // no kick after this: wake is closed below
	newc := l.newc
	l.newc = nil
	l.mu.Unlock()
	for _, c := range newc {
		l.s.forget(c)
	}
	for idx, lc := range l.conns {
		if lc != nil {
			l.drop(idx, goipc.ErrClosed)
		}
	}
	l.sw.Free(l.tokens)
	l.epf.Close()
	unix.Close(l.wake)
}

// nowaitAnswerer makes answer's reservations fail at once on a full ring
// (goipc.ErrTimeout) instead of waiting: the loop must never block.
type nowaitAnswerer struct{ *replier }

func (a nowaitAnswerer) Reserve(n int, _ time.Duration) ([]byte, error) {
	return a.replier.Reserve(n, 0)
}
