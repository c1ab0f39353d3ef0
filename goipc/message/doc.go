// Package message builds, verifies and reads goipc's FlatBuffers messages
// (schema/goipc.fbs: a Message whose Body is a Ping or a Pong).
//
// # Building
//
// The fast path lays the bytes out by hand for the two fixed-shape
// messages: PingSize/PongSize give the exact size for a payload length,
// and WritePing/WritePong fill a caller-supplied slice (for example space
// reserved in a ring) without allocating. AppendPing/AppendPong append to a
// slice. Builder does the same through the official flatbuffers.Builder
// and the generated code, reusing its memory (no allocation once warm).
// For the same non-zero field values all of them produce the same bytes;
// the layout is drawn in layout.go and in docs/MESSAGES.md.
//
// # Reading untrusted buffers
//
// The Go FlatBuffers runtime has no verifier: the generated accessors index
// the buffer with whatever offsets it holds and panic on a bad one. Every
// message from a peer must go through Verify (or Identify, ParsePing,
// ParsePong, IsPing, IsPong) first. Verify checks everything our tables
// reach (see verify.go) and returns one of the sentinel errors in errors.go,
// wrapped with detail; it never panics, and it does not allocate on success.
//
// # Lifetimes: views alias the buffer
//
// PingView and PongView read in place: Payload returns a sub-slice of the
// buffer, not a copy, and the scalar accessors read the buffer on each
// call. They are valid only while the buffer is: when the buffer is a ring
// slot, copy what you keep (bytes.Clone(v.Payload())) before the slot is
// released, because the peer will overwrite it. The same holds for the
// generated accessors (Table.String and ByteVector alias the buffer).
//
// Views also resolve every offset once, during verification, and read only
// at those checked positions afterwards. The generated accessors instead
// re-read offsets from the buffer on every call: on shared memory that a
// peer can still write after Verify, prefer the views, which stay in bounds
// whatever the peer writes (the values may change, the positions cannot).
package message
