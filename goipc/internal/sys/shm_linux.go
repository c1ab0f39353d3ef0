//go:build linux

package sys

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Supported reports whether this system has what goipc needs.
const Supported = true

// RequiredSeals are the seals a segment must carry before a peer maps it.
// Without F_SEAL_SHRINK a peer could truncate the file under our mapping and
// turn our next access into SIGBUS; without F_SEAL_SEAL it could later add
// F_SEAL_WRITE and make our stores fault.
const RequiredSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// CreateSealedMemfd creates an anonymous shared-memory file of the given
// size, sealed against resizing and against further seals.
func CreateSealedMemfd(name string, size int64) (fd int, err error) {
	fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	if err = unix.Ftruncate(fd, size); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("ftruncate memfd to %d bytes: %w", size, err)
	}
	// Back every page now: the creator pays for the memory it shares, and
	// a listener refuses segments with holes (reading a hole would make
	// the reader allocate, and be charged for, the page).
	if err = unix.Fallocate(fd, 0, 0, size); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("fallocate memfd of %d bytes: %w", size, err)
	}
	if _, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, RequiredSeals); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("seal memfd: %w", err)
	}
	return fd, nil
}

// CheckSealedSize verifies, before any mmap, that fd carries RequiredSeals,
// is not write-sealed, and has exactly the expected size.
func CheckSealedSize(fd int, size int64) error {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return fmt.Errorf("F_GET_SEALS: %w (is the fd a memfd?)", err)
	}
	if seals&RequiredSeals != RequiredSeals {
		return fmt.Errorf("segment seals %#x lack required %#x", seals, RequiredSeals)
	}
	if seals&(unix.F_SEAL_WRITE|unix.F_SEAL_FUTURE_WRITE) != 0 {
		return fmt.Errorf("segment is write-sealed (%#x)", seals)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("fstat segment: %w", err)
	}
	if st.Size != size {
		return fmt.Errorf("segment is %d bytes, peer announced %d", st.Size, size)
	}
	// st_blocks counts 512-byte units actually allocated: fewer than the
	// size means holes, whose pages we would allocate by reading them.
	if st.Blocks*512 < size {
		return fmt.Errorf("%w: %d of %d bytes allocated", ErrSparse, st.Blocks*512, size)
	}
	return nil
}

// ErrSparse is returned by CheckSealedSize for a segment with holes.
var ErrSparse = errors.New("segment is not fully backed by its creator (sparse)")

// IsFdExhaustion reports whether err means this process (EMFILE) or the
// system (ENFILE) has run out of file descriptors.
func IsFdExhaustion(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)
}

// MapShared maps size bytes of fd read-write and shared, with its page
// tables filled in (MAP_POPULATE): the pages are already allocated (the
// creator fallocates them), and mapping them now costs a fraction of a
// microsecond per page, where a fault on first touch costs one to two
// microseconds inside a send or a receive, once per page for the first
// lap of each ring (docs/PERFORMANCE.md).
func MapShared(fd int, size int) ([]byte, error) {
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes: %w", size, err)
	}
	return mem, nil
}

// Unmap releases a mapping made by MapShared.
func Unmap(mem []byte) error { return unix.Munmap(mem) }

// Close closes a file descriptor.
func Close(fd int) error { return unix.Close(fd) }

// Getpid returns the process id.
func Getpid() int { return unix.Getpid() }

// Write writes b to fd once; errors (EAGAIN on a full non-blocking socket
// among them) are for the caller to ignore or not.
func Write(fd int, b []byte) error {
	_, err := unix.Write(fd, b)
	return err
}

// NewEventFD returns a non-blocking, close-on-exec eventfd.
func NewEventFD() (int, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, fmt.Errorf("eventfd: %w", err)
	}
	return fd, nil
}

// SignalEventFD adds 1 to an eventfd's counter, making it readable.
func SignalEventFD(fd int) {
	one := [8]byte{1}
	unix.Write(fd, one[:])
}

// DrainEventFD resets a non-blocking eventfd's counter to 0.
func DrainEventFD(fd int) {
	var b [8]byte
	unix.Read(fd, b[:])
}
