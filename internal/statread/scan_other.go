//go:build !linux

package statread

import "errors"

// Options narrow a Scan.
type Options struct {
	PID int
}

// Scan is Linux only: goipc segments are memfds found through /proc.
func Scan(opts Options) (Snapshot, error) {
	return Snapshot{}, errors.New("goipc stat: supported on Linux only")
}
