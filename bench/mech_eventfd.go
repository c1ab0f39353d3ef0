package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The eventfd mechanism keeps the payload in a shared memory segment (a
// memfd mapped by both processes) and uses eventfds only as doorbells:
//
//	segment: [ p2c slots: K x slot bytes ][ c2p slots: K x slot bytes ]
//	per direction two eventfds:
//	  data   - the producer adds 1 per message written into a slot;
//	           the consumer's read(2) returns (and clears) the count
//	  credit - the consumer gives slots back in batches of K/2
//
// Copies: the producer copies the message into its slot, the consumer copies
// it out; the kernel copies only the 8-byte counters. The eventfd write and
// read are full barriers, so plain copies are enough around them.
type eventfdMech struct{}

var errAborted = errors.New("bench: aborted")

func (eventfdMech) Name() string { return "eventfd-shm" }
func (eventfdMech) Mode() string { return "default" }
func (eventfdMech) Design() Design {
	return Design{KernelCopies: 0, UserCopies: 2, Syscalls: "2 (eventfd write + read), plus 2 per K/2 messages for slot credits",
		Note: "payload in a shared memfd ring of K slots; eventfd doorbells (data and credit per direction)"}
}
func (eventfdMech) MaxSize() int         { return 0 }
func (eventfdMech) StreamWindow(int) int { return 0 }

// eventfdGeometry returns the slot size and count for messages up to maxSize:
// about 1 MiB of slots per direction, between 4 and 256 slots.
func eventfdGeometry(maxSize int) (slot, k int) {
	slot = (maxSize + 63) &^ 63
	k = min(256, max(4, (1<<20)/slot))
	return slot, k
}

type efdRing struct {
	mem      []byte
	slot, k  int
	data     int // eventfd: messages published
	credit   int // eventfd: slots given back
	idx      uint64
	have     uint64 // producer: free slots; consumer: published slots not read
	returned int    // consumer: slots read but not yet given back
}

type eventfdEndpoint struct {
	tx, rx  efdRing
	mapping []byte
	fds     []int
	aborted atomic.Bool
}

func efdRead(fd int) (uint64, error) {
	var b [8]byte
	for {
		n, err := unix.Read(fd, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("eventfd read: %w", err)
		}
		if n != 8 {
			return 0, fmt.Errorf("eventfd read: %d bytes", n)
		}
		return binary.NativeEndian.Uint64(b[:]), nil
	}
}

func efdWrite(fd int, v uint64) error {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], v)
	for {
		_, err := unix.Write(fd, b[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("eventfd write: %w", err)
		}
		return nil
	}
}

func (e *eventfdEndpoint) Send(msg []byte) error {
	r := &e.tx
	if len(msg) > r.slot {
		return fmt.Errorf("bench: message of %d B exceeds the %d B slot", len(msg), r.slot)
	}
	for r.have == 0 {
		n, err := efdRead(r.credit)
		if err != nil {
			return err
		}
		if e.aborted.Load() {
			return errAborted
		}
		r.have += n
	}
	off := int(r.idx%uint64(r.k)) * r.slot
	copy(r.mem[off:off+r.slot], msg)
	r.idx++
	r.have--
	return efdWrite(r.data, 1)
}

func (e *eventfdEndpoint) Recv(buf []byte) error {
	r := &e.rx
	if len(buf) > r.slot {
		return fmt.Errorf("bench: message of %d B exceeds the %d B slot", len(buf), r.slot)
	}
	for r.have == 0 {
		n, err := efdRead(r.data)
		if err != nil {
			return err
		}
		if e.aborted.Load() {
			return errAborted
		}
		r.have += n
	}
	off := int(r.idx%uint64(r.k)) * r.slot
	copy(buf, r.mem[off:off+len(buf)])
	r.idx++
	r.have--
	r.returned++
	if r.returned >= r.k/2 {
		if err := efdWrite(r.credit, uint64(r.returned)); err != nil {
			return err
		}
		r.returned = 0
	}
	return nil
}

// Abort rings our own doorbells: a dead peer never does.
func (e *eventfdEndpoint) Abort() {
	e.aborted.Store(true)
	efdWrite(e.rx.data, 1)
	efdWrite(e.tx.credit, 1)
}

func (e *eventfdEndpoint) Close() error {
	for _, fd := range e.fds {
		unix.Close(fd)
	}
	return unix.Munmap(e.mapping)
}

// newEventfdEndpoint maps the segment; fds are p2c-data, p2c-credit,
// c2p-data, c2p-credit.
func newEventfdEndpoint(memfd int, fds [4]int, slot, k int, parent bool) (*eventfdEndpoint, error) {
	size := 2 * slot * k
	mem, err := unix.Mmap(memfd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	p2c := efdRing{mem: mem[:slot*k], slot: slot, k: k, data: fds[0], credit: fds[1]}
	c2p := efdRing{mem: mem[slot*k:], slot: slot, k: k, data: fds[2], credit: fds[3]}
	e := &eventfdEndpoint{mapping: mem, fds: fds[:]}
	if parent {
		e.tx, e.rx = p2c, c2p
	} else {
		e.tx, e.rx = c2p, p2c
	}
	e.tx.have = uint64(k)
	return e, nil
}

func (eventfdMech) Prepare(dir string, maxSize int) (*Setup, error) {
	slot, k := eventfdGeometry(maxSize)
	memfd, err := unix.MemfdCreate("goipc-bench-eventfd", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	if err := unix.Ftruncate(memfd, int64(2*slot*k)); err != nil {
		unix.Close(memfd)
		return nil, fmt.Errorf("ftruncate: %w", err)
	}
	var fds [4]int
	files := []*os.File{os.NewFile(uintptr(memfd), "memfd")}
	for i := range fds {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("eventfd: %w", err)
		}
		fds[i] = fd
		// The child gets its own descriptors for the same eventfds.
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("dup: %w", err)
		}
		files = append(files, os.NewFile(uintptr(dup), "eventfd"))
	}
	ep, err := newEventfdEndpoint(memfd, fds, slot, k, true)
	if err != nil {
		return nil, err
	}
	return &Setup{
		Args:   map[string]string{"slot": strconv.Itoa(slot), "k": strconv.Itoa(k)},
		Files:  files,
		Parent: func() (Endpoint, error) { return ep, nil },
	}, nil
}

func (eventfdMech) Open(args map[string]string, files []*os.File) (Endpoint, error) {
	if err := needFiles(files, 5); err != nil {
		return nil, err
	}
	slot, err1 := strconv.Atoi(args["slot"])
	k, err2 := strconv.Atoi(args["k"])
	if err1 != nil || err2 != nil || slot <= 0 || k < 2 {
		return nil, fmt.Errorf("bench: bad eventfd geometry %v", args)
	}
	memfd, err := fileFD(files[0])
	if err != nil {
		return nil, err
	}
	defer unix.Close(memfd)
	var fds [4]int
	for i := range fds {
		if fds[i], err = fileFD(files[1+i]); err != nil {
			return nil, err
		}
	}
	return newEventfdEndpoint(memfd, fds, slot, k, false)
}

func init() { register(eventfdMech{}) }
