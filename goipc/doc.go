// Package goipc is a message channel between two processes on one Linux
// host, through shared memory.
//
// A Listener serves a Unix-socket path; Dial connects to it. The dialer
// creates a sealed memfd segment holding two single-producer,
// single-consumer rings (one per direction), passes it over the socket with
// SCM_RIGHTS, and both sides map it. From then on messages move through the
// rings with no system call while the peer is awake; a side that has to
// wait spins briefly, then sleeps on a futex in the segment. The socket
// stays open: its EOF tells a side that its peer closed or died.
//
// # Messages
//
// A message is a byte slice of 0 to Conn.MaxMessageSize bytes, delivered
// whole, in order, exactly once. Send copies in; Reserve/Commit lets the
// caller build the message in the ring. Recv and RecvInto copy out;
// RecvView/ReleaseView reads in place.
//
// # Waiting
//
// Every blocking call comes in forms with no limit, a timeout (< 0 waits
// forever, 0 never waits) or a context. A full ring makes Send wait
// (backpressure); nothing is dropped or overwritten.
//
// # Lifetimes
//
// A slice from Reserve is valid until Commit or AbortReserve; a slice from
// RecvView until ReleaseView. Close may be called at any time; the
// mapping is released once no call is running and no view or reservation
// is open. Do not keep a view past ReleaseView: the peer reuses the space.
//
// # Trust
//
// The peer is not trusted: every position and length read from shared
// memory is checked, and a bad one fails the connection with ErrProtocol.
// The peer can still change the bytes of a message while it is being read,
// as with any shared memory: copy before validating if that matters.
//
// See docs/LAYOUT.md for the bytes and docs/PROTOCOL.md for the wakeup
// argument.
package goipc
