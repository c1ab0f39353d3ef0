package goipc

// Microbenchmarks of the hot path, one per hypothesis of
// docs/PERFORMANCE.md. They run in one process (both ends of a pair), so
// they are cheap enough for valgrind --tool=callgrind, whose instruction
// counts do not depend on the machine's load (callgrind trips over Go's
// preemption signal: turn it off; and with more than one P the
// benchmark's start-up GC spins for minutes under valgrind, which runs
// one thread at a time):
//
//	go test -c -o /tmp/goipc.test ./goipc/
//	GOMAXPROCS=1 GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind /tmp/goipc.test \
//	    -test.run '^$' -test.bench 'HotPathOneGoroutine' -test.benchtime 100000x
//
// The cross-goroutine ones (two Ps, so two cores when the machine has
// them) report round-trip percentiles next to ns/op. In one process two
// goroutines share the heap, so keep what each side writes on cache lines
// of its own (rawSide's padding), or the benchmark measures false sharing.

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BenchmarkHotPathOneGoroutine is one 64 B round trip through the public
// API with both ends in one goroutine: Send, RecvView, Reserve/Commit,
// ReleaseView, RecvInto. Nothing ever waits, so this is the instruction
// cost of the calls (run it under callgrind for the breakdown). The
// timeout=10s case passes the timeouts that goipc ping passes: what a
// deadline costs a call that does not wait.
func BenchmarkHotPathOneGoroutine(b *testing.B) {
	for _, timeout := range []time.Duration{-1, 10 * time.Second} {
		b.Run(fmt.Sprintf("timeout=%v", timeout), func(b *testing.B) {
			client, server := pair(b, nil, nil)
			msg := make([]byte, 64)
			buf := make([]byte, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := client.SendTimeout(msg, timeout); err != nil {
					b.Fatal(err)
				}
				v, err := server.RecvView(-1)
				if err != nil {
					b.Fatal(err)
				}
				out, err := server.Reserve(len(v), -1)
				if err != nil {
					b.Fatal(err)
				}
				copy(out, v)
				server.Commit(len(v))
				server.ReleaseView()
				if _, err := client.RecvInto(buf, timeout); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reportPercentiles sorts lat and reports p50, p99 and p99.9 in ns.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) }
	b.ReportMetric(at(0.50), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
	b.ReportMetric(at(0.999), "p99.9-ns")
}

// BenchmarkPingPongGoroutines: 64 B round trips between two goroutines
// of one process through the public API (Send + RecvInto against a
// RecvView + Reserve/Commit echo), so between two cores when GOMAXPROCS
// allows. The same code path as two processes, without the process
// boundary; quicker to A/B.
//
// The procs=1 case runs both goroutines on one P: the waiting one must
// yield its P for the other to answer at all, which is what spinFor's
// runtime.Gosched at every look is for when GOMAXPROCS is 1.
func BenchmarkPingPongGoroutines(b *testing.B) {
	for _, procs := range []int{2, 1} {
		b.Run(fmt.Sprintf("procs=%d", procs), func(b *testing.B) {
			if runtime.NumCPU() < procs {
				b.Skip("needs more CPUs")
			}
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			pingPongGoroutines(b)
		})
	}
}

func pingPongGoroutines(b *testing.B) {
	client, server := pair(b, nil, nil)
	go func() {
		for {
			v, err := server.RecvView(-1)
			if err != nil {
				return
			}
			out, err := server.Reserve(len(v), -1)
			if err != nil {
				return
			}
			copy(out, v)
			server.Commit(len(v))
			server.ReleaseView()
		}
	}()
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	for i := 0; i < 10000; i++ {
		client.Send(msg)
		client.RecvInto(buf, -1)
	}
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range lat {
		t0 := time.Now()
		if err := client.Send(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := client.RecvInto(buf, -1); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkSpinRecoveryAfterFall: 64 B round trips between two
// goroutines (Send + RecvInto against goipc pong's echo) where, every fallEvery
// round trips, both ends drop their receive budget to 0 at once, as a
// host hiccup that preempts both spins does. Reports the waits that
// parked per fall (both ends) and the p50: a pair that locks in after a
// fall, each end answering the other only after a wakeup, parks for
// thousands of waits and shows a p50 of several µs (docs/PERFORMANCE.md,
// section 22).
func BenchmarkSpinRecoveryAfterFall(b *testing.B) {
	const fallEvery = 5000
	client, server := pair(b, nil, nil)
	var serverParks0 uint64 // the server's parks at the first fall
	stop := echoInBackground(b, client, server, func(n int) {
		if n%fallEvery == 0 {
			server.spinNow[dirRecv] = 0 // its own receive side: no race
		}
		if n == fallEvery {
			serverParks0 = server.cons.n.parks
		}
	})
	msg, buf := make([]byte, 64), make([]byte, 64)
	roundTrip := func() {
		if err := client.Send(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := client.RecvInto(buf, -1); err != nil {
			b.Fatal(err)
		}
	}
	for range fallEvery - 1 { // warm up to just before the first fall
		roundTrip()
	}
	parks0 := client.cons.n.parks
	n := max(b.N, 4*fallEvery)
	lat := make([]time.Duration, n)
	b.ResetTimer()
	for i := range lat {
		if i%fallEvery == 0 {
			client.spinNow[dirRecv] = 0
		}
		t0 := time.Now()
		roundTrip()
		lat[i] = time.Since(t0)
	}
	b.StopTimer()
	stop() // the server's goroutine has ended: its counters may be read
	parks := client.cons.n.parks - parks0 + server.cons.n.parks - serverParks0
	b.ReportMetric(float64(parks)/float64(n/fallEvery), "parks/fall")
	reportPercentiles(b, lat)
}

// sharedWords is two positions on separate 128-byte blocks, as in a ring's
// control block.
type sharedWords struct {
	ping uint64
	_    [cacheBlock - 8]byte
	pong uint64
	_    [cacheBlock - 8]byte
	ec   uint64 // an eventcount nobody waits on, on ping's side in goipc
	_    [cacheBlock - 8]byte
}

// BenchmarkPublishStore: the cost of the publish store alone. Two
// goroutines bounce a counter: each waits for the other's word to change
// and answers with a store of its own, optionally followed by a load of
// an eventcount word (notify's load). "xchg" is atomic.StoreUint64 (a
// sequentially consistent store, XCHG on amd64), "plain" is an ordinary
// store (a release store under x86-TSO, which the compiler keeps because
// a call follows).
func BenchmarkPublishStore(b *testing.B) {
	if runtime.GOMAXPROCS(0) < 2 {
		b.Skip("needs two Ps")
	}
	for _, mode := range []string{"xchg", "plain", "plain+mfence"} {
		b.Run(mode, func(b *testing.B) {
			w := new(sharedWords)
			store := func(p *uint64, v uint64) { atomic.StoreUint64(p, v) }
			switch mode {
			case "plain":
				store = plainStore
			case "plain+mfence":
				store = func(p *uint64, v uint64) { plainStore(p, v); fullFence() }
			}
			n := uint64(b.N)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := uint64(1); i <= n; i++ {
					for atomic.LoadUint64(&w.ping) != i {
					}
					store(&w.pong, i)
					_ = atomic.LoadUint64(&w.ec)
				}
			}()
			b.ResetTimer()
			for i := uint64(1); i <= n; i++ {
				store(&w.ping, i)
				_ = atomic.LoadUint64(&w.ec)
				for atomic.LoadUint64(&w.pong) != i {
				}
			}
			<-done
		})
	}
}

//go:noinline
func plainStore(p *uint64, v uint64) { *p = v }

// fullFence is a sequentially consistent RMW on a private word: on amd64 a
// LOCK-prefixed instruction, a full fence like MFENCE.
var fenceWord uint64

//go:noinline
func fullFence() { atomic.AddUint64(&fenceWord, 0) }

// BenchmarkLockedOps: what the atomic read-modify-writes a call makes,
// a clock read and a yield cost on one core with nothing shared.
func BenchmarkLockedOps(b *testing.B) {
	var x atomic.Int64
	b.Run("add", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			x.Add(1)
		}
	})
	b.Run("load", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = x.Load()
		}
	})
	b.Run("time.Now", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = time.Now()
		}
	})
	epoch := time.Now()
	b.Run("time.Since", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = time.Since(epoch)
		}
	})
}

// processContextSwitches is this process's voluntary plus involuntary context
// switches so far.
func processContextSwitches() int64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Nvcsw + ru.Nivcsw
}

// BenchmarkGosched: what the spin loop's runtime.Gosched costs, in time
// and in context switches (ctxsw/op). With an idle P, Gosched wakes a
// thread to look for work (runtime.wakep); in a goroutine locked to its
// thread, as every call from C through libgoipc is, it also hands the P
// to another thread and parks its own until the goroutine is scheduled
// again.
func BenchmarkGosched(b *testing.B) {
	for _, locked := range []bool{false, true} {
		b.Run(fmt.Sprintf("locked=%v", locked), func(b *testing.B) {
			done := make(chan struct{})
			go func() {
				defer close(done)
				if locked {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
				}
				cs := processContextSwitches()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					runtime.Gosched()
				}
				b.StopTimer()
				b.ReportMetric(float64(processContextSwitches()-cs)/float64(b.N), "ctxsw/op")
			}()
			<-done
		})
	}
}

// rawSide is the bare minimum of one end of a ring pair, for
// BenchmarkRawRingPingPong: no validation, no locks, no counters.
type rawSide struct {
	_      [cacheBlock]byte // the two sides are written by different cores: no shared line
	tx, rx ringView
	txHead uint64
	rxTail uint64
	stride uint64
	seqCst bool
	pause  bool
	split  bool // copy in pieces that never cross a ring cache line
	words  bool // the consumer copies in 8-byte words
	// framePoll publishes each frame through its own header word (the
	// frame's end position, stored last) and the consumer polls that
	// word instead of the head: it waits for the frame's first line
	// rather than the head's line and then the frame's (a 64 B frame's
	// second line still follows). Not goipc's layout: a measured
	// hypothesis (docs/PERFORMANCE.md section 26).
	framePoll bool
	// warm: the consumer's poll also loads the next frame's two lines, as
	// a spinning receive does (docs/PERFORMANCE.md section 29).
	warm bool
	// locks: each call also makes the locked instructions a goipc call
	// makes besides its position store, on words of its own side (the
	// in-flight counter in and out, the direction's lock and unlock):
	// what they cost a round trip on its critical path
	// (docs/PERFORMANCE.md section 31).
	locks    bool
	lockWord [2]atomic.Uint64 // [0]: the in-flight counter, [1]: the lock
	scratchB []byte
	_        [cacheBlock]byte
}

// lockedIn and lockedOut are the locked instructions a goipc call makes
// as it starts and ends (rawSide.locks).
func (s *rawSide) lockedIn() {
	if s.locks {
		s.lockWord[0].Add(1)
		s.lockWord[1].CompareAndSwap(0, 1)
	}
}

func (s *rawSide) lockedOut() {
	if s.locks {
		s.lockWord[1].Add(^uint64(0))
		s.lockWord[0].Add(^uint64(0))
	}
}

// copyWithinLines copies src to dst in pieces that end at dst's (when
// toRing) or src's cache line boundaries.
func copyWithinLines(dst, src []byte, ringAddr uintptr) {
	for len(src) > 0 {
		k := int(64 - ringAddr%64)
		if k > len(src) {
			k = len(src)
		}
		copy(dst[:k], src[:k])
		dst, src, ringAddr = dst[k:], src[k:], ringAddr+uintptr(k)
	}
}

//go:linkname procyield runtime.procyield
func procyield(cycles uint32)

func (s *rawSide) send(msg []byte) {
	s.lockedIn()
	s.sendFrame(msg)
	s.lockedOut()
}

func (s *rawSide) sendFrame(msg []byte) {
	off := s.txHead & s.tx.mask
	if off+s.stride > s.tx.cap { // no room before the end: start over at 0
		s.txHead += s.tx.cap - off
		off = 0
	}
	if s.framePoll {
		copy(s.tx.data[off+frameHeaderSize:], msg)
		s.txHead += s.stride
		atomic.StoreUint64((*uint64)(unsafe.Pointer(&s.tx.data[off])), s.txHead)
		plainStore(s.tx.head, s.txHead) // for space and waiters, off the fast path
		_ = atomic.LoadUint64(s.tx.dataEC.word)
		return
	}
	binary.LittleEndian.PutUint64(s.tx.data[off:], uint64(len(msg)))
	if s.split {
		copyWithinLines(s.tx.data[off+frameHeaderSize:], msg, uintptr(unsafe.Pointer(&s.tx.data[off+frameHeaderSize])))
	} else {
		copy(s.tx.data[off+frameHeaderSize:], msg)
	}
	s.txHead += s.stride
	if s.seqCst {
		atomic.StoreUint64(s.tx.head, s.txHead)
	} else {
		plainStore(s.tx.head, s.txHead)
	}
	_ = atomic.LoadUint64(s.tx.dataEC.word)
}

func (s *rawSide) recv() {
	s.lockedIn()
	s.recvFrame()
	s.lockedOut()
}

func (s *rawSide) recvFrame() {
	if s.framePoll {
		off := s.rxTail & s.rx.mask
		if off+s.stride > s.rx.cap {
			s.rxTail += s.rx.cap - off
			off = 0
		}
		end := s.rxTail + s.stride
		second := (*uint64)(unsafe.Pointer(&s.rx.data[(off+64)&s.rx.mask]))
		for atomic.LoadUint64((*uint64)(unsafe.Pointer(&s.rx.data[off]))) != end {
			if s.warm {
				atomic.LoadUint64(second)
			}
		}
		copy(s.scratchB, s.rx.data[off+frameHeaderSize:off+frameHeaderSize+uint64(len(s.scratchB))])
		s.rxTail = end
		atomic.StoreUint64(s.rx.tail, s.rxTail)
		return
	}
	var warm1, warm2 *uint64
	if s.warm {
		off := s.rxTail & s.rx.mask
		warm1, warm2 = (*uint64)(unsafe.Pointer(&s.rx.data[off])), (*uint64)(unsafe.Pointer(&s.rx.data[(off+64)&s.rx.mask]))
	}
	for atomic.LoadUint64(s.rx.head) == s.rxTail {
		if s.pause {
			procyield(1)
		}
		if s.warm {
			atomic.LoadUint64(warm1)
			atomic.LoadUint64(warm2)
		}
	}
	off := s.rxTail & s.rx.mask
	if off+s.stride > s.rx.cap {
		s.rxTail += s.rx.cap - off
		off = 0
	}
	n := binary.LittleEndian.Uint64(s.rx.data[off:])
	if s.words {
		src := s.rx.data[off+frameHeaderSize : off+frameHeaderSize+n]
		dst := s.scratchB[:n]
		for i := 0; i+8 <= len(src); i += 8 {
			binary.LittleEndian.PutUint64(dst[i:], binary.LittleEndian.Uint64(src[i:]))
		}
	} else if s.split {
		copyWithinLines(s.scratchB, s.rx.data[off+frameHeaderSize:off+frameHeaderSize+n], uintptr(unsafe.Pointer(&s.rx.data[off+frameHeaderSize])))
	} else {
		copy(s.scratchB, s.rx.data[off+frameHeaderSize:off+frameHeaderSize+n])
	}
	s.rxTail += s.stride
	if s.seqCst {
		atomic.StoreUint64(s.rx.tail, s.rxTail)
	} else {
		plainStore(s.rx.tail, s.rxTail)
	}
}

// BenchmarkRawRingPingPong: the floor of a 64 B round trip over goipc's
// segment layout between two goroutines (two cores), with nothing but
// the frame write, the position stores and the polls: what the hardware
// and the memory layout cost, without goipc's code. stride 72 is goipc's
// frame (8-byte header + 64 B, so frames share cache lines); 128 gives
// every frame its own two lines, as a 64-byte-aligned layout would.
func BenchmarkRawRingPingPong(b *testing.B) {
	if runtime.GOMAXPROCS(0) < 2 {
		b.Skip("needs two Ps")
	}
	for _, stride := range []uint64{72, 128} {
		for _, mode := range []string{"seqcst", "plain", "seqcst+pause", "seqcst+noclock", "seqcst+split", "seqcst+words", "framepoll", "seqcst+warm", "framepoll+warm", "seqcst+warm+locks"} {
			framePoll := strings.HasPrefix(mode, "framepoll")
			seqCst := mode != "plain"
			pause := mode == "seqcst+pause"
			split := mode == "seqcst+split"
			words := mode == "seqcst+words"
			warm := strings.Contains(mode, "+warm")
			locks := strings.HasSuffix(mode, "+locks")
			clock := mode != "seqcst+noclock"
			name := fmt.Sprintf("stride=%d/%s", stride, mode)
			b.Run(name, func(b *testing.B) {
				seg := anonSegment(b, 1<<20, 1<<10)
				ping := &rawSide{tx: seg.rings[0], rx: seg.rings[1], stride: stride, seqCst: seqCst, pause: pause, split: split, words: words, framePoll: framePoll, warm: warm, locks: locks, scratchB: make([]byte, 64)}
				pong := &rawSide{tx: seg.rings[1], rx: seg.rings[0], stride: stride, seqCst: seqCst, pause: pause, split: split, words: words, framePoll: framePoll, warm: warm, locks: locks, scratchB: make([]byte, 64)}
				msg := make([]byte, 64)
				n := b.N + 10000
				done := make(chan struct{})
				go func() {
					runtime.LockOSThread()
					defer close(done)
					for i := 0; i < n; i++ {
						pong.recv()
						pong.send(pong.scratchB)
					}
				}()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				for i := 0; i < 10000; i++ {
					ping.send(msg)
					ping.recv()
				}
				lat := make([]time.Duration, b.N)
				b.ResetTimer()
				if !clock {
					for range lat {
						ping.send(msg)
						ping.recv()
					}
					b.StopTimer()
					<-done
					return
				}
				for i := range lat {
					t0 := time.Now()
					ping.send(msg)
					ping.recv()
					lat[i] = time.Since(t0)
				}
				b.StopTimer()
				<-done
				reportPercentiles(b, lat)
			})
		}
	}
}
