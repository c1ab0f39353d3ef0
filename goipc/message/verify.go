package message

import (
	"fmt"

	"github.com/goipc/goipc/schema/gen/go/goipc/fb"
)

// Verify checks that buf is a well-formed goipc message whose body is a
// type this version knows (Ping or Pong), so that the generated accessors
// and this package's views can read every field without going out of
// bounds. It checks, in order:
//
//   - size: at least 8 bytes (ErrTruncated), at most MaxSize (ErrTooLarge);
//   - bytes 4..8 are the file identifier "GIPC" (ErrBadIdentifier);
//   - for the root Message table and the body table: the table is
//     4-aligned and its soffset, the vtable it points to, the vtable's
//     length and the table's inline size all lie in the buffer
//     (ErrOutOfRange, ErrMisaligned); the vtable is 2-aligned, at least 4
//     bytes long and of even length, and the inline size holds the soffset
//     (ErrBadVTable);
//   - for every field this version reads: its offset lies past the soffset
//     and inside the table's inline size, and its position is aligned to
//     its size (ErrOutOfRange, ErrMisaligned). Vtable entries of fields
//     this version does not know (a newer writer's) are not looked at;
//   - the union: a known body type (ErrUnknownBody), present exactly when
//     the body offset is (ErrBadUnion);
//   - every uoffset (root, body, payload) lands inside the buffer on a
//     4-aligned position, and the payload vector's length prefix and bytes
//     fit in the buffer (ErrOutOfRange, ErrMisaligned).
//
// The schema has no recursion, so the work is constant: Verify reads a
// fixed number of words whatever the buffer holds, and does not allocate
// unless it fails. It never panics.
func Verify(buf []byte) error {
	var m parsed
	return parse(buf, &m)
}

// Identify verifies buf as Verify does and returns its body type
// (fb.BodyPing or fb.BodyPong).
func Identify(buf []byte) (fb.Body, error) {
	var m parsed
	err := parse(buf, &m)
	return m.kind, err
}

// IsPing reports whether buf is a valid message (Verify returns nil) whose
// body is a Ping.
func IsPing(buf []byte) bool {
	var m parsed
	return parse(buf, &m) == nil && m.kind == fb.BodyPing
}

// IsPong reports whether buf is a valid message whose body is a Pong.
func IsPong(buf []byte) bool {
	var m parsed
	return parse(buf, &m) == nil && m.kind == fb.BodyPong
}

// parsed is a verified message: the body type and the checked positions of
// every field (0 for an absent field, which reads as its default; no field
// can be at 0, where the root offset is).
type parsed struct {
	kind    fb.Body
	seq     int
	sentNs  int // Ping.sent_ns or Pong.ping_sent_ns
	recvNs  int // Pong.received_ns
	payload []byte
}

// table is a table whose header has been checked: its position, its
// vtable's position and length, and its inline size.
type table struct {
	pos    int
	vt     int
	vtLen  int
	inline int
}

// fail builds the error for a failed check: sentinel wrapped with what
// failed and where. It is kept out of line, with int arguments only, so
// that the checks' fast path carries no fmt argument arrays in its frame.
//
//go:noinline
func fail(sentinel error, what, format string, args ...int64) error {
	a := make([]any, 0, len(args)+1)
	a = append(a, what)
	for _, x := range args {
		a = append(a, x)
	}
	return fmt.Errorf("%w: %s "+format, append([]any{sentinel}, a...)...)
}

// parse verifies buf into *m (an out parameter: returning the struct
// costs a copy per call on the hot path). m.kind is set only on success.
func parse(buf []byte, m *parsed) error {
	if len(buf) < headerSize {
		return fail(ErrTruncated, "buffer", "of %d bytes", int64(len(buf)))
	}
	if len(buf) > MaxSize {
		return fail(ErrTooLarge, "buffer", "of %d bytes", int64(len(buf)))
	}
	if [4]byte(buf[4:8]) != identifier {
		return fail(ErrBadIdentifier, "identifier", "is %02x %02x %02x %02x, want 47 49 50 43", int64(buf[4]), int64(buf[5]), int64(buf[6]), int64(buf[7]))
	}
	root, err := deref(buf, 0, "root offset")
	if err != nil {
		return err
	}
	msg, err := loadTable(buf, root, "Message")
	if err != nil {
		return err
	}
	typePos, err := msg.field(buf, fieldBodyType, 1, "Message.body_type")
	if err != nil {
		return err
	}
	bodyPos, err := msg.field(buf, fieldBody, sizeUOffset, "Message.body")
	if err != nil {
		return err
	}
	kind := fb.BodyNONE
	if typePos != 0 {
		kind = fb.Body(buf[typePos])
	}
	switch {
	case kind != fb.BodyNONE && kind != fb.BodyPing && kind != fb.BodyPong:
		return fail(ErrUnknownBody, "Message.body_type", "is %d", int64(kind))
	case kind == fb.BodyNONE && bodyPos == 0:
		return fail(ErrBadUnion, "Message.body", "is absent")
	case kind == fb.BodyNONE:
		return fail(ErrBadUnion, "Message.body", "at offset %d with body_type NONE", int64(bodyPos))
	case bodyPos == 0:
		return fail(ErrBadUnion, "Message.body", "absent with body_type %d", int64(kind))
	}
	bodyTab, err := deref(buf, bodyPos, "Message.body")
	if err != nil {
		return err
	}
	if kind == fb.BodyPing {
		t, err := loadTable(buf, bodyTab, "Ping")
		if err != nil {
			return err
		}
		if m.seq, err = t.field(buf, fieldPingSeq, sizeU64, "Ping.seq"); err != nil {
			return err
		}
		if m.sentNs, err = t.field(buf, fieldPingSentNs, sizeU64, "Ping.sent_ns"); err != nil {
			return err
		}
		if m.payload, err = t.byteVector(buf, fieldPingPayload, "Ping.payload"); err != nil {
			return err
		}
		m.kind = kind
		return nil
	}
	t, err := loadTable(buf, bodyTab, "Pong")
	if err != nil {
		return err
	}
	if m.seq, err = t.field(buf, fieldPongSeq, sizeU64, "Pong.seq"); err != nil {
		return err
	}
	if m.sentNs, err = t.field(buf, fieldPongPingSentNs, sizeU64, "Pong.ping_sent_ns"); err != nil {
		return err
	}
	if m.recvNs, err = t.field(buf, fieldPongReceivedNs, sizeU64, "Pong.received_ns"); err != nil {
		return err
	}
	if m.payload, err = t.byteVector(buf, fieldPongPayload, "Pong.payload"); err != nil {
		return err
	}
	m.kind = kind
	return nil
}

// deref follows the uoffset at p (p is in range and 4-aligned: the root
// offset at 0, or a checked field) and returns the position it points to,
// which is in the buffer and 4-aligned. Sums are done in uint64 so that
// nothing wraps, whatever int's size.
func deref(buf []byte, p int, what string) (int, error) {
	u := le.Uint32(buf[p:])
	target := uint64(p) + uint64(u)
	if target >= uint64(len(buf)) {
		return 0, fail(ErrOutOfRange, what, "at offset %d points to %d, past the end (%d)",
			int64(p), int64(target), int64(len(buf)))
	}
	if target%sizeUOffset != 0 {
		return 0, fail(ErrMisaligned, what, "at offset %d points to %d, not 4-aligned", int64(p), int64(target))
	}
	return int(target), nil
}

// loadTable checks the table at pos (in the buffer, 4-aligned) and its
// vtable; name is the table's type, for errors.
func loadTable(buf []byte, pos int, name string) (table, error) {
	var t table
	if pos > len(buf)-4 {
		return t, fail(ErrOutOfRange, name, "table at %d past the end (%d)", int64(pos), int64(len(buf)))
	}
	t.pos = pos
	// The soffset is signed and subtracted: the vtable may be before or
	// after the table.
	vt := int64(pos) - int64(int32(le.Uint32(buf[pos:])))
	if vt < 0 || vt > int64(len(buf))-4 {
		return t, fail(ErrOutOfRange, name, "vtable at %d (table at %d, buffer %d bytes)",
			vt, int64(pos), int64(len(buf)))
	}
	t.vt = int(vt)
	if t.vt%sizeVOffset != 0 {
		return t, fail(ErrMisaligned, name, "vtable at %d", vt)
	}
	t.vtLen = int(le.Uint16(buf[t.vt:]))
	t.inline = int(le.Uint16(buf[t.vt+2:]))
	if t.vtLen < 4 || t.vtLen%sizeVOffset != 0 {
		return t, fail(ErrBadVTable, name, "vtable at %d has length %d", vt, int64(t.vtLen))
	}
	if t.vtLen > len(buf)-t.vt {
		return t, fail(ErrOutOfRange, name, "vtable at %d of length %d ends past the buffer (%d)",
			vt, int64(t.vtLen), int64(len(buf)))
	}
	if t.inline < 4 {
		return t, fail(ErrBadVTable, name, "table at %d has inline size %d", int64(pos), int64(t.inline))
	}
	if t.inline > len(buf)-pos {
		return t, fail(ErrOutOfRange, name, "table at %d of inline size %d ends past the buffer (%d)",
			int64(pos), int64(t.inline), int64(len(buf)))
	}
	return t, nil
}

// field returns the checked position of field id, whose size (and
// alignment) is size, or 0 when the field is absent (not in the vtable, or
// entry 0). what names the field, for errors.
func (t *table) field(buf []byte, id, size int, what string) (int, error) {
	slot := 4 + 2*id
	if slot+sizeVOffset > t.vtLen {
		return 0, nil // an older writer's shorter vtable: absent
	}
	off := int(le.Uint16(buf[t.vt+slot:]))
	if off == 0 {
		return 0, nil
	}
	if off < 4 || off+size > t.inline {
		return 0, fail(ErrOutOfRange, what, "at +%d outside its table's inline size %d (table at %d)",
			int64(off), int64(t.inline), int64(t.pos))
	}
	p := t.pos + off
	if p%size != 0 {
		return 0, fail(ErrMisaligned, what, "at offset %d, want %d-aligned", int64(p), int64(size))
	}
	return p, nil
}

// byteVector returns the [ubyte] vector of field id, nil when absent. The
// slice aliases buf and its capacity ends with it, so an append to it
// cannot write into the rest of the buffer.
func (t *table) byteVector(buf []byte, id int, what string) ([]byte, error) {
	p, err := t.field(buf, id, sizeUOffset, what)
	if err != nil || p == 0 {
		return nil, err
	}
	v, err := deref(buf, p, what)
	if err != nil {
		return nil, err
	}
	if v > len(buf)-sizeUOffset {
		return nil, fail(ErrOutOfRange, what, "length at %d past the end (%d)", int64(v), int64(len(buf)))
	}
	n := uint64(le.Uint32(buf[v:]))
	start := v + sizeUOffset
	if n > uint64(len(buf)-start) {
		return nil, fail(ErrOutOfRange, what, "of length %d at %d ends past the buffer (%d)",
			int64(n), int64(start), int64(len(buf)))
	}
	end := start + int(n)
	return buf[start:end:end], nil
}
