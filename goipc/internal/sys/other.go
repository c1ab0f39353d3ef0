//go:build !linux

package sys

import (
	"errors"
	"time"
)

// Supported reports whether this system has what goipc needs.
const Supported = false

var errNotSupported = errors.New("goipc needs Linux (memfd, futex, SCM_RIGHTS)")

func FutexWait(addr *uint32, val uint32, timeout time.Duration) error { return errNotSupported }
func FutexWake(addr *uint32)                                          {}
func Yield()                                                          {}
func CreateSealedMemfd(name string, size int64) (int, error)          { return -1, errNotSupported }
func CheckSealedSize(fd int, size int64) error                        { return errNotSupported }
func MapShared(fd int, size int) ([]byte, error)                      { return nil, errNotSupported }
func Unmap(mem []byte) error                                          { return errNotSupported }
func Close(fd int) error                                              { return errNotSupported }
func Getpid() int                                                     { return -1 }

var ErrSparse = errors.New("segment is not fully backed by its creator (sparse)")

func IsFdExhaustion(err error) bool { return false }

func Write(fd int, b []byte) error { return errNotSupported }
func NewEventFD() (int, error)     { return -1, errNotSupported }
func SignalEventFD(fd int)         {}
func DrainEventFD(fd int)          {}
