//go:build linux

package statread

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// segmentLink is what /proc/PID/fd/N reads for a goipc segment: goipc
// names its memfds "goipc", and a memfd is always "deleted".
const segmentLink = "/memfd:goipc (deleted)"

// Options narrow a Scan.
type Options struct {
	PID int // only this process's ends; 0 for every process
}

// Scan lists the goipc connection ends of every process the caller may
// inspect: its own uid's processes, or every process for root. Processes
// it may not inspect, and processes that exit during the scan, are
// skipped without a word: /proc permission errors are the normal case.
// Descriptors named like a segment that cannot be read or validated are
// returned as Unreadable. Scan fails only when /proc itself is unreadable.
func Scan(opts Options) (Snapshot, error) {
	snap := Snapshot{Taken: time.Now()}
	var pids []int
	if opts.PID != 0 {
		pids = []int{opts.PID}
	} else {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return snap, fmt.Errorf("listing processes: %w", err)
		}
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
		slices.Sort(pids)
	}
	euid := os.Geteuid()
	for _, pid := range pids {
		scanProcess(&snap, pid, euid)
	}
	return snap, nil
}

// scanProcess adds the ends process pid holds.
func scanProcess(snap *Snapshot, pid, euid int) {
	dir := "/proc/" + strconv.Itoa(pid)
	if euid != 0 {
		// The kernel refuses another uid's /proc/PID/fd anyway; checking
		// first keeps the rule visible here and spares the syscalls. The
		// directory is owned by the process's effective uid (root when
		// the process is not dumpable).
		var st unix.Stat_t
		if unix.Stat(dir, &st) != nil || int(st.Uid) != euid {
			return
		}
	}
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return // gone, or not ours to inspect
	}
	type segmentFDs struct {
		fds    []int
		header Header
	}
	var (
		segments = map[uint64]*segmentFDs{} // by inode
		order    []uint64
		name     string
		nameRead bool
	)
	procName := func() string {
		if !nameRead {
			name, nameRead = readComm(dir), true
		}
		return name
	}
	numbers := make([]int, 0, len(fds))
	for _, e := range fds {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			numbers = append(numbers, n)
		}
	}
	slices.Sort(numbers)
	for _, fd := range numbers {
		link := dir + "/fd/" + strconv.Itoa(fd)
		if target, err := os.Readlink(link); err != nil || target != segmentLink {
			continue
		}
		ino, h, err := readSegment(link, func(ino uint64) bool { _, seen := segments[ino]; return seen })
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue // closed since we listed it
		case errors.Is(err, errSeen):
			segments[ino].fds = append(segments[ino].fds, fd)
			continue
		case err != nil:
			snap.Unreadable = append(snap.Unreadable, Unreadable{PID: pid, Name: procName(), FD: fd, Reason: err.Error()})
			continue
		}
		segments[ino] = &segmentFDs{fds: []int{fd}, header: h}
		order = append(order, ino)
	}
	if len(order) == 0 {
		return
	}
	self := namespacePID(dir, pid)
	for _, ino := range order {
		s := segments[ino]
		h := s.header
		switch {
		case uint32(self) == h.CreatorPID && h.AcceptorPID == h.CreatorPID && len(s.fds) >= 2:
			// Both ends in one process (a test, or a process talking to
			// itself): one descriptor each, on the same inode.
			snap.Ends = append(snap.Ends,
				newEnd(pid, procName(), ino, h, true),
				newEnd(pid, procName(), ino, h, false))
		default:
			snap.Ends = append(snap.Ends, newEnd(pid, procName(), ino, h, uint32(self) == h.CreatorPID))
		}
	}
}

// errSeen reports a descriptor on a segment already read from another
// descriptor of the same process.
var errSeen = errors.New("segment already read")

// readSegment opens the segment behind link (a /proc/PID/fd entry) for
// reading, checks that it is the regular file it was a moment ago, and
// reads and validates its control area with pread. It never maps it:
// a hostile process's memfd may be unsealed and shrink under a mapping.
// seen(inode) true skips the read (errSeen).
func readSegment(link string, seen func(uint64) bool) (uint64, Header, error) {
	var before unix.Stat_t
	if err := unix.Stat(link, &before); err != nil {
		return 0, Header{}, statErr(err)
	}
	if before.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, Header{}, fmt.Errorf("%w: not a regular file (mode %#o)", ErrNotSegment, before.Mode)
	}
	if seen(before.Ino) {
		return before.Ino, Header{}, errSeen
	}
	// O_NONBLOCK and O_NOCTTY: should the descriptor have been swapped for
	// a FIFO or a terminal since the stat, opening it must neither block
	// nor adopt it; the fstat below then refuses it.
	fd, err := unix.Open(link, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, Header{}, statErr(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, Header{}, fmt.Errorf("fstat: %w", err)
	}
	if st.Dev != before.Dev || st.Ino != before.Ino || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, Header{}, fmt.Errorf("%w: the descriptor changed while it was opened", os.ErrNotExist)
	}
	buf := make([]byte, ControlSize)
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, Header{}, fmt.Errorf("pread: %w", err)
		}
		if m == 0 {
			break // end of file: ParseControl reports the truncation
		}
		n += m
	}
	h, err := ParseControl(buf[:n], st.Size)
	return st.Ino, h, err
}

// statErr maps "the process or descriptor went away" to os.ErrNotExist
// and keeps the rest.
func statErr(err error) error {
	if err == unix.ENOENT || err == unix.ESRCH {
		return os.ErrNotExist
	}
	return fmt.Errorf("open: %w", err)
}

// readComm returns the process's name, or "?" when it is gone.
func readComm(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "comm"))
	if err != nil {
		return "?"
	}
	return strings.TrimSuffix(string(b), "\n")
}

// namespacePID is the process's pid in its own pid namespace (the last
// NSpid entry of /proc/PID/status): what the process itself wrote into the
// segment header. Falls back to pid (no namespaces, or an old kernel).
func namespacePID(dir string, pid int) int {
	b, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return pid
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return pid
			}
			if n, err := strconv.Atoi(f[len(f)-1]); err == nil {
				return n
			}
			return pid
		}
	}
	return pid
}
