package goipc

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/goipc/goipc/goipc/internal/sys"
	"github.com/goipc/goipc/internal/layout"
)

// segment is a mapped goipc segment whose header has been validated. The
// header is read once, when the segment is opened; afterwards only these
// cached values are used, so a peer rewriting the header cannot change our
// bounds.
type segment struct {
	mem []byte
	// fd is the dialer's memfd, kept open for the life of the connection
	// so that goipc stat can read the segment through /proc/PID/fd. The
	// accepting side holds none (-1): it closes its copy once the segment
	// is mapped, leaving one descriptor (the socket) per accepted
	// connection, and stat finds its end through /proc/PID/maps.
	fd         int
	maxMessage uint64
	rings      [2]ringView
}

// segmentSize is the size of a segment with two rings of ringSize bytes.
func segmentSize(ringSize uint64) uint64 { return controlSize + 2*ringSize }

// initSegment writes a fresh header into mem (zeroed, of segmentSize
// bytes) and publishes it by writing the ready word last. path and
// protocol are informational (goipc stat shows them).
func initSegment(mem []byte, ringSize, maxMessage uint64, path string, protocol uint32) {
	le := binary.LittleEndian
	le.PutUint64(mem[layout.OffMagic:], layout.Magic)
	le.PutUint32(mem[layout.OffLayoutVersion:], LayoutVersion)
	le.PutUint32(mem[layout.OffControlSize:], controlSize)
	le.PutUint64(mem[layout.OffSegmentSize:], uint64(len(mem)))
	le.PutUint32(mem[layout.OffMaxMessage:], uint32(maxMessage))
	le.PutUint32(mem[layout.OffFlags:], 0)
	le.PutUint32(mem[layout.OffCreatorPID:], uint32(sys.Getpid()))
	le.PutUint64(mem[layout.OffRing0DataOff:], controlSize)
	le.PutUint64(mem[layout.OffRing0Cap:], ringSize)
	le.PutUint64(mem[layout.OffRing1DataOff:], controlSize+ringSize)
	le.PutUint64(mem[layout.OffRing1Cap:], ringSize)
	le.PutUint64(mem[layout.OffCreatedNs:], uint64(time.Now().UnixNano()))
	le.PutUint32(mem[layout.OffProtoVersion:], protocol)
	n := copy(mem[layout.OffPath:layout.OffPath+layout.MaxPathBytes], path)
	le.PutUint32(mem[layout.OffPathLen:], uint32(n))
	// SYNC POINT: the ready word is written last; pairs with the atomic
	// load in parseSegment. (The peer maps the segment only after receiving
	// its fd, which already orders these writes, but a reader that maps a
	// half-initialised segment by other means must see "not ready".)
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[layout.OffReady])), layout.Ready)
}

// parseSegment validates the header of a mapped segment and returns the
// segment. maxAllowed bounds the maximum message size the peer may ask for.
func parseSegment(mem []byte, maxAllowed uint64) (*segment, error) {
	le := binary.LittleEndian
	if len(mem) < controlSize {
		return nil, protocolErrorf("segment is %d bytes, smaller than its %d-byte header", len(mem), controlSize)
	}
	if m := le.Uint64(mem[layout.OffMagic:]); m != layout.Magic {
		return nil, protocolErrorf("segment magic %#x is not goipc's %#x", m, uint64(layout.Magic))
	}
	if v := le.Uint32(mem[layout.OffLayoutVersion:]); v != LayoutVersion {
		return nil, fmt.Errorf("%w: segment layout version %d, this side reads version %d", ErrVersionMismatch, v, LayoutVersion)
	}
	if r := atomic.LoadUint32((*uint32)(unsafe.Pointer(&mem[layout.OffReady]))); r != layout.Ready {
		return nil, protocolErrorf("segment not ready (ready word %#x)", r)
	}
	ctl := le.Uint32(mem[layout.OffControlSize:])
	size := le.Uint64(mem[layout.OffSegmentSize:])
	maxMsg := uint64(le.Uint32(mem[layout.OffMaxMessage:]))
	flags := le.Uint32(mem[layout.OffFlags:])
	off0, cap0 := le.Uint64(mem[layout.OffRing0DataOff:]), le.Uint64(mem[layout.OffRing0Cap:])
	off1, cap1 := le.Uint64(mem[layout.OffRing1DataOff:]), le.Uint64(mem[layout.OffRing1Cap:])
	switch {
	case ctl != controlSize:
		return nil, protocolErrorf("segment control size %d, expected %d", ctl, controlSize)
	case size != uint64(len(mem)):
		return nil, protocolErrorf("segment header says %d bytes, mapping is %d", size, len(mem))
	case flags != 0:
		return nil, protocolErrorf("segment flags %#x unknown to layout version %d", flags, LayoutVersion)
	case !layout.ValidRingSize(cap0) || !layout.ValidRingSize(cap1):
		return nil, protocolErrorf("ring capacities %d and %d must be powers of two in [%d, %d]", cap0, cap1, MinRingSize, MaxRingSize)
	case off0 != controlSize || off1 != off0+cap0 || off1+cap1 != size:
		return nil, protocolErrorf("ring offsets %d+%d and %d+%d do not tile a %d-byte segment", off0, cap0, off1, cap1, size)
	case frameSize(maxMsg) > cap0 || frameSize(maxMsg) > cap1:
		return nil, protocolErrorf("max message size %d does not fit rings of %d and %d bytes", maxMsg, cap0, cap1)
	case maxMsg > maxAllowed:
		return nil, fmt.Errorf("%w: peer asks for messages up to %d bytes, this side allows %d (raise MaxMessageSize)", ErrInvalidArgument, maxMsg, maxAllowed)
	}
	s := &segment{mem: mem, maxMessage: maxMsg}
	s.rings[0] = newRingView(mem, layout.OffRing0Control, off0, cap0, maxMsg)
	s.rings[1] = newRingView(mem, layout.OffRing1Control, off1, cap1, maxMsg)
	return s, nil
}

func newRingView(mem []byte, ctlOff, dataOff, capacity, maxMsg uint64) ringView {
	word := func(off uint64) *uint64 { return (*uint64)(unsafe.Pointer(&mem[ctlOff+off])) }
	return ringView{
		data:    mem[dataOff : dataOff+capacity : dataOff+capacity],
		cap:     capacity,
		mask:    capacity - 1,
		maxMsg:  maxMsg,
		head:    word(layout.OffCtlHead),
		tail:    word(layout.OffCtlTail),
		dataEC:  eventCount{word(layout.OffCtlDataEC)},
		spaceEC: eventCount{word(layout.OffCtlSpaceEC)},

		prodMsgs:  word(layout.OffCtlProdMsgs),
		prodBytes: word(layout.OffCtlProdBytes),
		prodParks: word(layout.OffCtlProdParks),
		prodWakes: word(layout.OffCtlProdWakes),
		consMsgs:  word(layout.OffCtlConsMsgs),
		consBytes: word(layout.OffCtlConsBytes),
		consParks: word(layout.OffCtlConsParks),
		consWakes: word(layout.OffCtlConsWakes),
	}
}

// createSegment makes a sealed, fully allocated memfd holding an
// initialised segment and maps it. The segment owns the fd; unmap releases
// both.
func createSegment(ringSize, maxMessage uint64, path string, protocol uint32) (*segment, error) {
	size := segmentSize(ringSize)
	fd, err := sys.CreateSealedMemfd("goipc", int64(size))
	if err != nil {
		return nil, err
	}
	mem, err := sys.MapShared(fd, int(size))
	if err != nil {
		sys.Close(fd)
		return nil, err
	}
	initSegment(mem, ringSize, maxMessage, path, protocol)
	seg, err := parseSegment(mem, maxMessage)
	if err != nil { // cannot happen: we just wrote a valid header
		sys.Unmap(mem)
		sys.Close(fd)
		return nil, err
	}
	seg.fd = fd
	return seg, nil
}

// openSegment checks a received segment fd (seals, size and allocation,
// before mapping it) and maps and validates it. The caller keeps fd and
// closes it when it likes: the mapping holds the memory on its own, and
// the segment records no fd (see segment.fd).
func openSegment(fd int, size uint64, maxAllowed uint64) (*segment, error) {
	if size < controlSize || size > segmentSize(MaxRingSize) {
		return nil, protocolErrorf("peer announced a %d-byte segment", size)
	}
	if err := sys.CheckSealedSize(fd, int64(size)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	mem, err := sys.MapShared(fd, int(size))
	if err != nil {
		return nil, err
	}
	seg, err := parseSegment(mem, maxAllowed)
	if err != nil {
		sys.Unmap(mem)
		return nil, err
	}
	seg.fd = -1
	return seg, nil
}

// setAcceptorPID records the listener's pid in the header (informational).
func (s *segment) setAcceptorPID(pid int) {
	binary.LittleEndian.PutUint32(s.mem[layout.OffAcceptorPID:], uint32(pid))
}

func (s *segment) unmap() error {
	err := sys.Unmap(s.mem)
	if s.fd >= 0 {
		sys.Close(s.fd)
	}
	return err
}
