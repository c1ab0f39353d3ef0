package message

import "errors"

// The errors of this package. Functions return them wrapped with detail
// (the offset or value at fault): test with errors.Is.
var (
	// ErrTruncated is returned when a buffer is shorter than the 8 bytes
	// every message starts with (root offset and file identifier).
	ErrTruncated = errors.New("message: buffer shorter than a message header")

	// ErrTooLarge is returned when a buffer is longer than MaxSize, the
	// largest buffer 32-bit FlatBuffers offsets can address.
	ErrTooLarge = errors.New("message: buffer larger than MaxSize")

	// ErrBadIdentifier is returned when bytes 4..8 are not the file
	// identifier "GIPC": the buffer is not a goipc message.
	ErrBadIdentifier = errors.New("message: file identifier is not GIPC")

	// ErrOutOfRange is returned when an offset or a length points outside
	// the buffer (as in a buffer cut short after its header), a table's
	// field lies outside the table's inline size, or a field offset points
	// into the table's own vtable offset.
	ErrOutOfRange = errors.New("message: offset or length out of range")

	// ErrMisaligned is returned when a table, vtable, field or vector is
	// not aligned to its size relative to the start of the buffer, as the
	// FlatBuffers format requires (and Rust's verifier checks).
	ErrMisaligned = errors.New("message: misaligned offset")

	// ErrBadVTable is returned when a vtable's own sizes are impossible:
	// a vtable shorter than 4 bytes or of odd length, or a table whose
	// inline size cannot hold its vtable offset.
	ErrBadVTable = errors.New("message: malformed vtable")

	// ErrUnknownBody is returned when the body type is not one this
	// version knows (Ping, Pong). A newer peer may send body types added to
	// the schema later: a reader should skip such a message, not fail.
	ErrUnknownBody = errors.New("message: unknown body type")

	// ErrBadUnion is returned when the body's type and value disagree (a
	// type without a body, a body with type NONE) or there is no body.
	ErrBadUnion = errors.New("message: body type and body disagree")

	// ErrWrongBody is returned by ParsePing for a valid message whose body
	// is not a Ping, and by ParsePong for one whose body is not a Pong.
	ErrWrongBody = errors.New("message: body is of another type")

	// ErrShortBuffer is returned by WritePing and WritePong when the
	// destination is shorter than PingSize or PongSize.
	ErrShortBuffer = errors.New("message: destination buffer too small")

	// ErrPayloadTooLarge is returned when a payload is longer than
	// MaxPayload.
	ErrPayloadTooLarge = errors.New("message: payload larger than MaxPayload")
)
