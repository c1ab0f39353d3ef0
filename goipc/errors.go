package goipc

import "errors"

// Sentinel errors. Every error returned by this package either is one of
// these or wraps one (test with errors.Is); the wrapping adds what happened.
// capi maps each to one C status code, and errors_test.go checks that
// mapping is complete.
var (
	// ErrClosed is returned when the Conn or Listener was closed by this
	// process. Open a new connection.
	ErrClosed = errors.New("goipc: use of closed connection or listener")

	// ErrPeerClosed is returned when the peer closed the connection or its
	// process died. Messages it had fully published were delivered first.
	// Reconnect to continue.
	ErrPeerClosed = errors.New("goipc: peer closed the connection or exited")

	// ErrTimeout is returned when a deadline, timeout or zero-timeout
	// ("try") call would have had to wait longer. The connection stays usable.
	ErrTimeout = errors.New("goipc: timed out")

	// ErrMessageTooLarge is returned when a message exceeds the
	// connection's maximum message size. Nothing was written; the
	// connection stays usable. Raise Options.MaxMessageSize on the dialer.
	ErrMessageTooLarge = errors.New("goipc: message larger than the connection's maximum message size")

	// ErrBufferTooSmall is returned by RecvInto when the next message does
	// not fit the buffer. The message stays queued; retry with a buffer of
	// the size returned.
	ErrBufferTooSmall = errors.New("goipc: receive buffer too small for the next message")

	// ErrProtocol is returned when the peer broke the protocol: a corrupt
	// segment, an invalid position or length in shared memory, a bad
	// handshake. The connection is unusable; close it.
	ErrProtocol = errors.New("goipc: protocol error")

	// ErrVersionMismatch is returned when the peer speaks another protocol
	// or layout version. It wraps ErrProtocol. Upgrade one side.
	ErrVersionMismatch = &wrapped{msg: "goipc: protocol or layout version mismatch", base: ErrProtocol}

	// ErrPermission is returned when peer credentials do not satisfy the
	// policy (by default the peer must run as the same uid), or a socket
	// path cannot be used. See Options.AllowUIDs.
	ErrPermission = errors.New("goipc: permission denied")

	// ErrAddressInUse is returned by Listen when the path is taken: a live
	// listener serves it, or something other than a socket (a directory,
	// a regular file) is there. The message says which.
	ErrAddressInUse = errors.New("goipc: socket path in use")

	// ErrInvalidArgument is returned for misuse: a negative size, Commit
	// without Reserve, a second RecvView before ReleaseView, bad options.
	ErrInvalidArgument = errors.New("goipc: invalid argument")

	// ErrLimit is returned when a listener refuses a client because one of
	// its limits is reached: Options.MaxConns, MaxSegmentSize,
	// MaxMappedBytes, or the listener ran out of file descriptors. The
	// message names the limit and its value. Other connections are not
	// affected; retry later or ask the operator to raise the limit.
	ErrLimit = errors.New("goipc: listener limit reached")

	// ErrNotSupported is returned on systems other than Linux.
	ErrNotSupported = errors.New("goipc: not supported on this system (needs Linux)")
)

// wrapped is a sentinel that is also another sentinel (errors.Is matches both).
type wrapped struct {
	msg  string
	base error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.base }
