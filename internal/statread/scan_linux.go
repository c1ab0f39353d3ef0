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

// segmentKey identifies a segment: its memfd's device and inode, as both
// stat(2) and /proc/PID/maps report them.
type segmentKey struct{ dev, ino uint64 }

// process is what one process holds: descriptors on segments, read
// through them, and mappings of segments.
type process struct {
	pid  int
	dir  string
	name string // its comm, read once it is needed

	read  map[segmentKey]*heldSegment // segments read through a descriptor of this process
	order []segmentKey                // read's keys, in descriptor order
	held  map[segmentKey]bool         // every segment with a descriptor here, readable or not

	mapped   map[segmentKey]int // mappings per segment
	mapOrder []segmentKey       // mapped's keys, in address order
}

type heldSegment struct {
	fds    int
	header Header
}

func (p *process) procName() string {
	if p.name == "" {
		p.name = readComm(p.dir)
	}
	return p.name
}

// Scan lists the goipc connection ends of every process the caller may
// inspect: its own uid's processes, or every process for root. Processes
// it may not inspect, and processes that exit during the scan, are
// skipped without a word: /proc permission errors are the normal case.
// Descriptors named like a segment that cannot be read or validated are
// returned as Unreadable. Scan fails only when /proc itself is unreadable.
//
// A dialing end holds a descriptor on its segment and is read through it.
// An accepting end holds only a mapping (its process closes its copy of
// the memfd, to cost one descriptor per connection): it is found in
// /proc/PID/maps and read through a descriptor that another process (its
// dialer) holds on the same segment. With a PID filter, the other
// processes are searched for those descriptors only when the process
// maps segments it holds no descriptor on.
func Scan(opts Options) (Snapshot, error) {
	snap := Snapshot{Taken: time.Now()}
	euid := os.Geteuid()
	headers := map[segmentKey]Header{} // every segment read, whoever holds it
	if opts.PID != 0 {
		p := scanProcess(&snap, opts.PID, euid, headers)
		if p == nil {
			return snap, nil
		}
		if missing := p.unread(headers); len(missing) > 0 {
			pids, err := listPIDs()
			if err != nil {
				return snap, err
			}
			for _, pid := range pids {
				if pid != opts.PID && len(missing) > 0 {
					readSegmentsOf(pid, euid, missing, headers)
				}
			}
		}
		p.addEnds(&snap, headers)
		return snap, nil
	}
	pids, err := listPIDs()
	if err != nil {
		return snap, err
	}
	var procs []*process
	for _, pid := range pids {
		if p := scanProcess(&snap, pid, euid, headers); p != nil {
			procs = append(procs, p)
		}
	}
	for _, p := range procs {
		p.addEnds(&snap, headers)
	}
	return snap, nil
}

func listPIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// segmentDescriptors lists, in order, the descriptors of the process at
// dir (/proc/PID) whose link names a goipc segment; readable is false
// when the process is gone or not the caller's to inspect.
func segmentDescriptors(dir string, euid int) (fds []int, readable bool) {
	if euid != 0 {
		// The kernel refuses another uid's /proc/PID/fd anyway; checking
		// first keeps the rule visible here and spares the syscalls. The
		// directory is owned by the process's effective uid (root when
		// the process is not dumpable).
		var st unix.Stat_t
		if unix.Stat(dir, &st) != nil || int(st.Uid) != euid {
			return nil, false
		}
	}
	ents, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return nil, false // gone, or not ours to inspect
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink(dir + "/fd/" + e.Name()); err == nil && target == segmentLink {
			fds = append(fds, fd)
		}
	}
	slices.Sort(fds)
	return fds, true
}

// scanProcess reads the segments process pid holds descriptors on
// (recording their headers in headers) and lists its segment mappings.
// It returns nil when the process is gone or not the caller's to inspect.
func scanProcess(snap *Snapshot, pid, euid int, headers map[segmentKey]Header) *process {
	p := &process{pid: pid, dir: "/proc/" + strconv.Itoa(pid)}
	fds, ok := segmentDescriptors(p.dir, euid)
	if !ok {
		return nil
	}
	p.read, p.held = map[segmentKey]*heldSegment{}, map[segmentKey]bool{}
	for _, fd := range fds {
		link := p.dir + "/fd/" + strconv.Itoa(fd)
		key, h, err := readSegment(link, func(k segmentKey) bool { _, seen := p.read[k]; return seen })
		if key != (segmentKey{}) {
			p.held[key] = true
		}
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue // closed since we listed it
		case errors.Is(err, errSkipped):
			p.read[key].fds++
			continue
		case err != nil:
			snap.Unreadable = append(snap.Unreadable, Unreadable{PID: pid, Name: p.procName(), FD: fd, Reason: err.Error()})
			continue
		}
		p.read[key] = &heldSegment{fds: 1, header: h}
		p.order = append(p.order, key)
		if _, known := headers[key]; !known {
			headers[key] = h
		}
	}
	p.mapped, p.mapOrder = readMappings(p.dir)
	return p
}

// readSegmentsOf reads, through process pid's descriptors, the segments
// in missing that headers does not hold yet, and deletes them from
// missing. It reports nothing: the caller asked about another process.
func readSegmentsOf(pid, euid int, missing map[segmentKey]bool, headers map[segmentKey]Header) {
	dir := "/proc/" + strconv.Itoa(pid)
	fds, _ := segmentDescriptors(dir, euid)
	for _, fd := range fds {
		key, h, err := readSegment(dir+"/fd/"+strconv.Itoa(fd), func(k segmentKey) bool { return !missing[k] })
		if err == nil {
			headers[key] = h
			delete(missing, key)
		}
	}
}

// unread returns the segments p maps but holds no descriptor on, whose
// header no descriptor read so far gave.
func (p *process) unread(headers map[segmentKey]Header) map[segmentKey]bool {
	missing := map[segmentKey]bool{}
	for _, k := range p.mapOrder {
		if _, known := headers[k]; !known && !p.held[k] {
			missing[k] = true
		}
	}
	return missing
}

// addEnds appends p's ends: one per segment it holds a descriptor on (two
// when it dialed itself), then one accepting end per segment it only maps
// and whose header a descriptor of some process gave.
func (p *process) addEnds(snap *Snapshot, headers map[segmentKey]Header) {
	if len(p.order) == 0 && len(p.mapOrder) == 0 {
		return
	}
	self := namespacePID(p.dir, p.pid)
	for _, key := range p.order {
		s := p.read[key]
		h := s.header
		switch {
		case uint32(self) == h.CreatorPID && h.AcceptorPID == h.CreatorPID && max(s.fds, p.mapped[key]) >= 2:
			// Both ends in one process (a test, a Pipe, or a process
			// talking to itself): the dialer's descriptor and two
			// mappings (an older goipc: two descriptors).
			snap.Ends = append(snap.Ends,
				newEnd(p.pid, p.procName(), key.ino, h, true),
				newEnd(p.pid, p.procName(), key.ino, h, false))
		default:
			snap.Ends = append(snap.Ends, newEnd(p.pid, p.procName(), key.ino, h, uint32(self) == h.CreatorPID))
		}
	}
	for _, key := range p.mapOrder {
		if p.held[key] {
			continue // listed above, or reported unreadable
		}
		// A dialer holds its descriptor for as long as it maps the
		// segment: a mapping without one is an accepting end.
		if h, ok := headers[key]; ok {
			snap.Ends = append(snap.Ends, newEnd(p.pid, p.procName(), key.ino, h, false))
		}
	}
}

// readMappings counts the process's mappings of goipc segments, by
// segment, from /proc/PID/maps: a line "address perms offset
// major:minor inode /memfd:goipc (deleted)".
func readMappings(dir string) (map[segmentKey]int, []segmentKey) {
	// The kernel checks the same right (ptrace read access) for
	// /proc/PID/maps as for the links in /proc/PID/fd; a process that
	// exited since is simply without mappings.
	b, err := os.ReadFile(dir + "/maps")
	if err != nil {
		return nil, nil
	}
	counts := map[segmentKey]int{}
	var order []segmentKey
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSuffix(line, "\n")
		if !strings.HasSuffix(line, segmentLink) {
			continue
		}
		var f [5]string
		rest := line
		for i := range f {
			f[i], rest, _ = strings.Cut(strings.TrimLeft(rest, " "), " ")
		}
		if strings.TrimLeft(rest, " ") != segmentLink {
			continue
		}
		majorHex, minorHex, _ := strings.Cut(f[3], ":")
		major, err1 := strconv.ParseUint(majorHex, 16, 32)
		minor, err2 := strconv.ParseUint(minorHex, 16, 32)
		ino, err3 := strconv.ParseUint(f[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		key := segmentKey{unix.Mkdev(uint32(major), uint32(minor)), ino}
		if counts[key] == 0 {
			order = append(order, key)
		}
		counts[key]++
	}
	return counts, order
}

// errSkipped reports a descriptor on a segment the caller did not want
// read (already read through another descriptor, or not asked for).
var errSkipped = errors.New("segment skipped")

// readSegment opens the segment behind link (a /proc/PID/fd entry) for
// reading, checks that it is the regular file it was a moment ago, and
// reads and validates its control area with pread. It never maps it:
// a hostile process's memfd may be unsealed and shrink under a mapping.
// skip(segment) true skips the read (errSkipped). The segment's key is
// returned whenever its stat succeeded.
func readSegment(link string, skip func(segmentKey) bool) (segmentKey, Header, error) {
	var before unix.Stat_t
	if err := unix.Stat(link, &before); err != nil {
		return segmentKey{}, Header{}, statErr(err)
	}
	key := segmentKey{before.Dev, before.Ino}
	if before.Mode&unix.S_IFMT != unix.S_IFREG {
		return key, Header{}, fmt.Errorf("%w: not a regular file (mode %#o)", ErrNotSegment, before.Mode)
	}
	if skip(key) {
		return key, Header{}, errSkipped
	}
	// O_NONBLOCK and O_NOCTTY: should the descriptor have been swapped for
	// a FIFO or a terminal since the stat, opening it must neither block
	// nor adopt it; the fstat below then refuses it.
	fd, err := unix.Open(link, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return key, Header{}, statErr(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return key, Header{}, fmt.Errorf("fstat: %w", err)
	}
	if st.Dev != before.Dev || st.Ino != before.Ino || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return key, Header{}, fmt.Errorf("%w: the descriptor changed while it was opened", os.ErrNotExist)
	}
	buf := make([]byte, ControlSize)
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(fd, buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return key, Header{}, fmt.Errorf("pread: %w", err)
		}
		if m == 0 {
			break // end of file: ParseControl reports the truncation
		}
		n += m
	}
	h, err := ParseControl(buf[:n], st.Size)
	return key, h, err
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
