package main

/*
#include "goipc.h"
*/
import "C"

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/goipc/goipc/goipc"
)

// Status codes, from the header (the header is the source of truth).
const (
	statusOK                 = int32(C.GOIPC_OK)
	statusInvalidArgument    = int32(C.GOIPC_ERR_INVALID_ARGUMENT)
	statusTimeout            = int32(C.GOIPC_ERR_TIMEOUT)
	statusClosed             = int32(C.GOIPC_ERR_CLOSED)
	statusPeerClosed         = int32(C.GOIPC_ERR_PEER_CLOSED)
	statusMessageTooLarge    = int32(C.GOIPC_ERR_MESSAGE_TOO_LARGE)
	statusBufferTooSmall     = int32(C.GOIPC_ERR_BUFFER_TOO_SMALL)
	statusProtocol           = int32(C.GOIPC_ERR_PROTOCOL)
	statusPermission         = int32(C.GOIPC_ERR_PERMISSION)
	statusSystem             = int32(C.GOIPC_ERR_SYSTEM)
	statusAddressInUse       = int32(C.GOIPC_ERR_ADDRESS_IN_USE)
	statusNotSupported       = int32(C.GOIPC_ERR_NOT_SUPPORTED)
	statusLimit              = int32(C.GOIPC_ERR_LIMIT)
	statusMax                = statusLimit // highest code defined
	statusUnknownDescription = "goipc: unknown status code"
)

// statusTable is the one mapping from errors to C status codes. The first
// entry that errors.Is matches wins, so a more specific sentinel comes
// before the one it wraps (ErrVersionMismatch before ErrProtocol). Every
// sentinel of package goipc must appear here (status_test.go parses
// goipc/errors.go to check), then a few errors of the standard library that
// can surface without a goipc sentinel. Anything else is GOIPC_ERR_SYSTEM,
// with the errno if the chain holds a syscall.Errno.
var statusTable = []struct {
	name string // "goipc.ErrX" for sentinels of package goipc
	err  error
	code int32
}{
	{"goipc.ErrTimeout", goipc.ErrTimeout, statusTimeout}, // first: the common failure of polling calls
	{"goipc.ErrVersionMismatch", goipc.ErrVersionMismatch, statusProtocol},
	{"goipc.ErrProtocol", goipc.ErrProtocol, statusProtocol},
	{"goipc.ErrClosed", goipc.ErrClosed, statusClosed},
	{"goipc.ErrPeerClosed", goipc.ErrPeerClosed, statusPeerClosed},
	{"goipc.ErrMessageTooLarge", goipc.ErrMessageTooLarge, statusMessageTooLarge},
	{"goipc.ErrBufferTooSmall", goipc.ErrBufferTooSmall, statusBufferTooSmall},
	{"goipc.ErrPermission", goipc.ErrPermission, statusPermission},
	{"goipc.ErrAddressInUse", goipc.ErrAddressInUse, statusAddressInUse},
	{"goipc.ErrInvalidArgument", goipc.ErrInvalidArgument, statusInvalidArgument},
	{"goipc.ErrNotSupported", goipc.ErrNotSupported, statusNotSupported},
	{"goipc.ErrLimit", goipc.ErrLimit, statusLimit},

	{"context.DeadlineExceeded", context.DeadlineExceeded, statusTimeout},
	{"os.ErrDeadlineExceeded", os.ErrDeadlineExceeded, statusTimeout},
	{"net.ErrClosed", net.ErrClosed, statusClosed},
	{"os.ErrPermission", os.ErrPermission, statusPermission},
	// EOF on the socket during a handshake: the other side went away
	// (a client that died, or the liveness probe of a second Listen).
	{"io.EOF", io.EOF, statusPeerClosed},
	{"io.ErrUnexpectedEOF", io.ErrUnexpectedEOF, statusPeerClosed},
	// The other side hung up while we wrote during a handshake (the errno
	// is still reported by goipc_last_errno).
	{"syscall.EPIPE", syscall.EPIPE, statusPeerClosed},
	{"syscall.ECONNRESET", syscall.ECONNRESET, statusPeerClosed},
}

// errInternal marks a recovered panic (GOIPC_ERR_SYSTEM, errno 0).
var errInternal = errors.New("goipc: internal error (recovered Go panic)")

// statusOf returns the status code for err and the errno behind it (0 if
// the chain holds none).
func statusOf(err error) (code int32, errno int32) {
	if err == nil {
		return statusOK, 0
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		errno = int32(en)
	}
	for _, e := range statusTable {
		if errors.Is(err, e.err) {
			return e.code, errno
		}
	}
	return statusSystem, errno
}

// strerror is goipc_strerror from Go (for status_test.go: test files
// cannot use cgo).
func strerror(code int32) string { return C.GoString(C.goipc_strerror(C.int32_t(code))) }
