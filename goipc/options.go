package goipc

import (
	"fmt"
	"log"
	"math"
	"time"
)

// Spin budgets for Options.Spin.
const (
	// SpinDefault spins for DefaultSpin, then parks on a futex. A direction
	// whose last 64 waits all ended while it spun (a pair answering each
	// other at memory speed) spins up to 1 ms instead, while no other call
	// of the process is parked; its first wait that ends otherwise returns
	// it to DefaultSpin.
	SpinDefault time.Duration = 0
	// SpinNever parks on the futex at once: lowest CPU use, highest latency.
	SpinNever time.Duration = -1
	// SpinForever never parks: pure polling, lowest latency, one core busy
	// per waiting side. Deadlines and peer death are still honoured.
	SpinForever time.Duration = math.MaxInt64

	// DefaultSpin is the spin budget used for SpinDefault: long enough to
	// catch a peer that answers at memory speed, short enough that an idle
	// connection costs no CPU.
	DefaultSpin = 50 * time.Microsecond

	// DefaultHandshakeTimeout bounds the handshake of Dial and Accept.
	DefaultHandshakeTimeout = 5 * time.Second
)

// Listener limits, used when the corresponding Options field is 0. They
// bound what dialers can make a listener hold; each can be raised.
const (
	// DefaultMaxConns bounds a listener's open connections (accepted or
	// waiting for Accept).
	DefaultMaxConns = 4096
	// DefaultMaxSegmentSize is the largest segment a listener maps: two
	// rings of 32 MiB.
	DefaultMaxSegmentSize = controlSize + 2*(32<<20)
	// DefaultMaxMappedBytes bounds the segment bytes a listener maps over
	// all its connections (address space; the memory itself is allocated,
	// and paid for, by the dialers).
	DefaultMaxMappedBytes = 16 << 30
	// DefaultMaxPendingHandshakes bounds the handshakes in progress. When
	// it is reached the oldest pending handshake is dropped: a legitimate
	// client says hello within microseconds of connecting, so only silent
	// or slow clients lose their place.
	DefaultMaxPendingHandshakes = 64
)

// Call limits (Options.MaxInflightCalls).
const (
	// DefaultMaxInflightCalls is enough to keep a peer busy from many
	// goroutines; each slot costs about 100 bytes, allocated on the first
	// call.
	DefaultMaxInflightCalls = 64
	// MaxInflightCallsLimit is the most slots a connection can have: a
	// slot's index is the low 16 bits of its calls' ids.
	MaxInflightCallsLimit = 1 << 16
)

// Options configure a connection. A nil *Options means all defaults. The
// dialer's RingSize and MaxMessageSize define the segment; a listener
// accepts a segment only if its maximum message size is within the
// listener's own MaxMessageSize.
type Options struct {
	// RingSize is the capacity in bytes of each of the two rings, a power of
	// two in [MinRingSize, MaxRingSize]. 0 means DefaultRingSize, raised to
	// hold at least four maximum-size messages.
	RingSize int

	// MaxMessageSize is the largest message, in bytes. 0 means
	// DefaultMaxMessageSize. It must leave room for its frame in the ring.
	MaxMessageSize int

	// Spin is how long a waiting call polls before it parks on a futex.
	// SpinDefault, SpinNever, SpinForever, or any positive duration. A
	// finite budget adapts per direction: it halves (down to 1/16) when a
	// spin loses to CPU contention — the peer answered soon after we gave
	// up, so it was waiting for our core — and doubles back after a spin
	// that catches the peer. SpinDefault also extends on a winning streak
	// (see SpinDefault); an explicit duration never does. A wait right
	// after our send woke the parked peer spins even at an adapted budget
	// of 0, and up to 4 times the budget once the peer runs again
	// (docs/PROTOCOL.md, "Adaptive spinning").
	Spin time.Duration

	// AllowUIDs lists the peer uids accepted besides this process's own
	// uid. AllowAnyUID accepts every peer. By default only the same uid is
	// accepted, checked with SO_PEERCRED on both sides.
	AllowUIDs   []uint32
	AllowAnyUID bool

	// HandshakeTimeout bounds the handshake. 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration

	// ProtocolVersionOverride, when non-zero, makes this side announce
	// another protocol version. For testing version-mismatch handling only.
	ProtocolVersionOverride uint32

	// Listener limits (Dial ignores them). 0 means the Default* value,
	// a negative value means no limit. A client over a limit is refused
	// with an error wrapping ErrLimit that names the limit; the listener
	// logs the first refusal of each kind through Logf.
	MaxConns             int   // open connections
	MaxSegmentSize       int64 // bytes of one connection's segment
	MaxMappedBytes       int64 // segment bytes over all connections
	MaxPendingHandshakes int   // handshakes in progress (the oldest is dropped)

	// MaxInflightCalls bounds the calls (Call, CallInto, StartCall) in
	// flight at once on one connection; a call beyond it waits for one to
	// end (backpressure). 0 means DefaultMaxInflightCalls; at most
	// MaxInflightCallsLimit. Each side sets its own.
	MaxInflightCalls int

	// Logf receives the listener's rare operational messages (a limit
	// reached, descriptors exhausted). nil means the standard log package;
	// use func(string, ...any) {} to silence them.
	Logf func(format string, args ...any)

	// ThreadLocked says that the connection's calls run on goroutines
	// locked to their OS threads (runtime.LockOSThread), as every call
	// through the C ABI does (libgoipc sets it). Its waits then never
	// hand their P to the process's other waiting calls: on a locked
	// goroutine that costs two context switches (docs/PERFORMANCE.md,
	// sections 6 and 24). For a listener, it applies to the connections
	// it accepts.
	ThreadLocked bool

	// FreeSpaceInPieces makes this side, as a receiver, return the space
	// of the messages it has read to the sender a sixteenth of the ring at
	// a time while it has more messages to read, and all of it once it
	// has read every message it has seen. Off (the default), every
	// receive returns its message's space at once: a sender whose send
	// found the ring full is told after one receive. On, a one-way stream
	// whose ring stays full moves 1.1-1.5x the messages per second
	// (docs/PERFORMANCE.md section 28), but a sender may wait for up to a
	// sixteenth of the ring that this side has already read from, until
	// this side receives again: use it only where this side keeps
	// receiving while messages are queued. It changes nothing on the
	// wire (docs/PROTOCOL.md, "Freed space in pieces (opt-in)"). For a
	// listener, it applies to the connections it accepts. In C:
	// goipc_options.free_space_in_pieces; Python and Rust:
	// free_space_in_pieces.
	FreeSpaceInPieces bool
}

// resolved is Options with defaults applied and values checked.
type resolved struct {
	ringSize         uint64
	maxMessage       uint64
	spin             time.Duration
	spinStreaks      bool // SpinDefault: a direction on a winning streak spins up to spinExtended
	allowUIDs        []uint32
	allowAnyUID      bool
	handshakeTimeout time.Duration
	protocolVersion  uint32

	maxConns   int64 // math.MaxInt64: no limit
	maxSegment int64
	maxMapped  int64
	maxPending int
	logf       func(format string, args ...any)

	maxInflightCalls  int
	threadLocked      bool
	freeSpaceInPieces bool
}

// limitOrDefault applies the 0 = default, negative = none convention.
func limitOrDefault(v, def int64) int64 {
	switch {
	case v == 0:
		return def
	case v < 0:
		return math.MaxInt64
	}
	return v
}

func (o *Options) resolve() (resolved, error) {
	var in Options
	if o != nil {
		in = *o
	}
	r := resolved{
		spin:             in.Spin,
		allowUIDs:        in.AllowUIDs,
		allowAnyUID:      in.AllowAnyUID,
		handshakeTimeout: in.HandshakeTimeout,
		protocolVersion:  in.ProtocolVersionOverride,
		threadLocked:     in.ThreadLocked,

		freeSpaceInPieces: in.FreeSpaceInPieces,
	}
	if r.protocolVersion == 0 {
		r.protocolVersion = ProtocolVersion
	}
	r.maxConns = limitOrDefault(int64(in.MaxConns), DefaultMaxConns)
	r.maxSegment = limitOrDefault(in.MaxSegmentSize, DefaultMaxSegmentSize)
	r.maxMapped = limitOrDefault(in.MaxMappedBytes, DefaultMaxMappedBytes)
	r.maxPending = int(min(limitOrDefault(int64(in.MaxPendingHandshakes), DefaultMaxPendingHandshakes), math.MaxInt32))
	r.logf = in.Logf
	if r.logf == nil {
		r.logf = log.Printf
	}
	if r.handshakeTimeout <= 0 {
		r.handshakeTimeout = DefaultHandshakeTimeout
	}
	switch {
	case r.spin == SpinDefault:
		r.spin, r.spinStreaks = DefaultSpin, true
	case r.spin < 0:
		r.spin = 0
	}
	switch {
	case in.MaxInflightCalls == 0:
		r.maxInflightCalls = DefaultMaxInflightCalls
	case in.MaxInflightCalls < 0 || in.MaxInflightCalls > MaxInflightCallsLimit:
		return r, fmt.Errorf("%w: MaxInflightCalls %d outside [0, %d]", ErrInvalidArgument, in.MaxInflightCalls, MaxInflightCallsLimit)
	default:
		r.maxInflightCalls = in.MaxInflightCalls
	}
	if in.MaxMessageSize < 0 || in.MaxMessageSize > MaxRingSize/2 {
		return r, fmt.Errorf("%w: MaxMessageSize %d outside [0, %d]", ErrInvalidArgument, in.MaxMessageSize, MaxRingSize/2)
	}
	r.maxMessage = uint64(in.MaxMessageSize)
	if r.maxMessage == 0 {
		r.maxMessage = DefaultMaxMessageSize
	}
	switch {
	case in.RingSize == 0:
		r.ringSize = DefaultRingSize
		for r.ringSize < 4*frameSize(r.maxMessage) && r.ringSize < MaxRingSize {
			r.ringSize *= 2
		}
	case in.RingSize < MinRingSize || in.RingSize > MaxRingSize || in.RingSize&(in.RingSize-1) != 0:
		return r, fmt.Errorf("%w: RingSize %d is not a power of two in [%d, %d]", ErrInvalidArgument, in.RingSize, MinRingSize, MaxRingSize)
	default:
		r.ringSize = uint64(in.RingSize)
	}
	if frameSize(r.maxMessage) > r.ringSize {
		return r, fmt.Errorf("%w: MaxMessageSize %d does not fit a ring of %d bytes (frames take %d header bytes)",
			ErrInvalidArgument, r.maxMessage, r.ringSize, frameHeaderSize)
	}
	return r, nil
}
