package bench

import "golang.org/x/sys/unix"

// usage is the part of getrusage(RUSAGE_SELF) the bench reports: context
// switches of the whole process (every thread, the Go runtime's included),
// voluntary (the thread blocked) and involuntary (it was preempted).
type usage struct {
	Nvcsw  int64 `json:"nvcsw"`
	Nivcsw int64 `json:"nivcsw"`
}

func getUsage() usage {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return usage{}
	}
	return usage{Nvcsw: ru.Nvcsw, Nivcsw: ru.Nivcsw}
}

func (u usage) sub(v usage) usage { return usage{u.Nvcsw - v.Nvcsw, u.Nivcsw - v.Nivcsw} }
func (u usage) add(v usage) usage { return usage{u.Nvcsw + v.Nvcsw, u.Nivcsw + v.Nivcsw} }
