//go:build linux

package sys

import "golang.org/x/sys/unix"

// RunnableThreads reports how many threads of the machine are runnable
// or running right now (the fourth field of /proc/loadavg, before its
// slash), and false if it cannot be read. Three system calls (open, read,
// close): the library keeps no descriptor open for it.
func RunnableThreads() (int, bool) {
	fd, err := unix.Open("/proc/loadavg", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	var buf [128]byte
	n, err := unix.Read(fd, buf[:])
	unix.Close(fd)
	if err != nil {
		return 0, false
	}
	return parseRunnable(buf[:n])
}

// parseRunnable reads the "R/T" field of a /proc/loadavg line
// ("0.42 0.88 1.32 1/79 2502").
func parseRunnable(line []byte) (int, bool) {
	spaces := 0
	for i, b := range line {
		if b != ' ' {
			continue
		}
		if spaces++; spaces < 3 {
			continue
		}
		v, digits := 0, 0
		for _, d := range line[i+1:] {
			if d == '/' && digits > 0 {
				return v, true
			}
			if d < '0' || d > '9' || digits == 9 {
				break
			}
			v, digits = v*10+int(d-'0'), digits+1
		}
		return 0, false
	}
	return 0, false
}
