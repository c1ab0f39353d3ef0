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
	_, err := parse(buf)
	return err
}

// Identify verifies buf as Verify does and returns its body type
// (fb.BodyPing or fb.BodyPong).
func Identify(buf []byte) (fb.Body, error) {
	m, err := parse(buf)
	return m.kind, err
}

// IsPing reports whether buf is a valid message (Verify returns nil) whose
// body is a Ping.
func IsPing(buf []byte) bool {
	m, err := parse(buf)
	return err == nil && m.kind == fb.BodyPing
}

// IsPong reports whether buf is a valid message whose body is a Pong.
func IsPong(buf []byte) bool {
	m, err := parse(buf)
	return err == nil && m.kind == fb.BodyPong
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
	name   string
	pos    int
	vt     int
	vtLen  int
	inline int
}

func errAt(sentinel error, what string, pos int) error {
	return fmt.Errorf("%w: %s at offset %d", sentinel, what, pos)
}

func parse(buf []byte) (parsed, error) {
	var m parsed
	if len(buf) < headerSize {
		return m, fmt.Errorf("%w: %d bytes", ErrTruncated, len(buf))
	}
	if len(buf) > MaxSize {
		return m, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(buf))
	}
	if [4]byte(buf[4:8]) != identifier {
		return m, fmt.Errorf("%w: got %q", ErrBadIdentifier, buf[4:8])
	}
	root, err := deref(buf, 0, "root offset")
	if err != nil {
		return m, err
	}
	msg, err := loadTable(buf, root, "Message")
	if err != nil {
		return m, err
	}
	typePos, err := msg.field(buf, fieldBodyType, 1, "Message.body_type")
	if err != nil {
		return m, err
	}
	bodyPos, err := msg.field(buf, fieldBody, sizeUOffset, "Message.body")
	if err != nil {
		return m, err
	}
	kind := fb.BodyNONE
	if typePos != 0 {
		kind = fb.Body(buf[typePos])
	}
	switch {
	case kind != fb.BodyNONE && kind != fb.BodyPing && kind != fb.BodyPong:
		return m, fmt.Errorf("%w: %d", ErrUnknownBody, kind)
	case kind == fb.BodyNONE && bodyPos == 0:
		return m, fmt.Errorf("%w: message has no body", ErrBadUnion)
	case kind == fb.BodyNONE:
		return m, fmt.Errorf("%w: body present with type NONE", ErrBadUnion)
	case bodyPos == 0:
		return m, fmt.Errorf("%w: type %s without a body", ErrBadUnion, kind)
	}
	bodyTab, err := deref(buf, bodyPos, "Message.body")
	if err != nil {
		return m, err
	}
	m.kind = kind
	if kind == fb.BodyPing {
		t, err := loadTable(buf, bodyTab, "Ping")
		if err != nil {
			return m, err
		}
		if m.seq, err = t.field(buf, fieldPingSeq, sizeU64, "Ping.seq"); err != nil {
			return m, err
		}
		if m.sentNs, err = t.field(buf, fieldPingSentNs, sizeU64, "Ping.sent_ns"); err != nil {
			return m, err
		}
		if m.payload, err = t.byteVector(buf, fieldPingPayload, "Ping.payload"); err != nil {
			return m, err
		}
		return m, nil
	}
	t, err := loadTable(buf, bodyTab, "Pong")
	if err != nil {
		return m, err
	}
	if m.seq, err = t.field(buf, fieldPongSeq, sizeU64, "Pong.seq"); err != nil {
		return m, err
	}
	if m.sentNs, err = t.field(buf, fieldPongPingSentNs, sizeU64, "Pong.ping_sent_ns"); err != nil {
		return m, err
	}
	if m.recvNs, err = t.field(buf, fieldPongReceivedNs, sizeU64, "Pong.received_ns"); err != nil {
		return m, err
	}
	if m.payload, err = t.byteVector(buf, fieldPongPayload, "Pong.payload"); err != nil {
		return m, err
	}
	return m, nil
}

// deref follows the uoffset at p (p is in range and 4-aligned: the root
// offset at 0, or a checked field) and returns the position it points to,
// which is in the buffer and 4-aligned. All sums are done in uint64 so that
// nothing wraps, whatever int's size.
func deref(buf []byte, p int, what string) (int, error) {
	u := le.Uint32(buf[p:])
	target := uint64(p) + uint64(u)
	if target >= uint64(len(buf)) {
		return 0, fmt.Errorf("%w: %s at offset %d points to %d, past the end (%d)",
			ErrOutOfRange, what, p, target, len(buf))
	}
	if target%sizeUOffset != 0 {
		return 0, fmt.Errorf("%w: %s at offset %d points to %d, not 4-aligned",
			ErrMisaligned, what, p, target)
	}
	return int(target), nil
}

// loadTable checks the table at pos (in the buffer, 4-aligned) and its
// vtable.
func loadTable(buf []byte, pos int, name string) (table, error) {
	t := table{name: name, pos: pos}
	if pos > len(buf)-4 {
		return t, errAt(ErrOutOfRange, name+" table", pos)
	}
	// The soffset is signed and subtracted: the vtable may be before or
	// after the table.
	soff := int64(int32(le.Uint32(buf[pos:])))
	vt := int64(pos) - soff
	if vt < 0 || vt > int64(len(buf))-4 {
		return t, fmt.Errorf("%w: %s vtable at %d (table at %d, buffer %d bytes)",
			ErrOutOfRange, name, vt, pos, len(buf))
	}
	t.vt = int(vt)
	if t.vt%sizeVOffset != 0 {
		return t, errAt(ErrMisaligned, name+" vtable", t.vt)
	}
	t.vtLen = int(le.Uint16(buf[t.vt:]))
	t.inline = int(le.Uint16(buf[t.vt+2:]))
	if t.vtLen < 4 || t.vtLen%sizeVOffset != 0 {
		return t, fmt.Errorf("%w: %s vtable at %d has length %d",
			ErrBadVTable, name, t.vt, t.vtLen)
	}
	if t.vtLen > len(buf)-t.vt {
		return t, fmt.Errorf("%w: %s vtable at %d of length %d ends past the buffer (%d)",
			ErrOutOfRange, name, t.vt, t.vtLen, len(buf))
	}
	if t.inline < 4 {
		return t, fmt.Errorf("%w: %s table at %d has inline size %d",
			ErrBadVTable, name, pos, t.inline)
	}
	if t.inline > len(buf)-pos {
		return t, fmt.Errorf("%w: %s table at %d of inline size %d ends past the buffer (%d)",
			ErrOutOfRange, name, pos, t.inline, len(buf))
	}
	return t, nil
}

// field returns the checked position of field id, whose size (and
// alignment) is size, or 0 when the field is absent (not in the vtable, or
// entry 0).
func (t table) field(buf []byte, id, size int, what string) (int, error) {
	slot := 4 + 2*id
	if slot+sizeVOffset > t.vtLen {
		return 0, nil // an older writer's shorter vtable: absent
	}
	off := int(le.Uint16(buf[t.vt+slot:]))
	if off == 0 {
		return 0, nil
	}
	if off < 4 || off+size > t.inline {
		return 0, fmt.Errorf("%w: %s at +%d outside %s table's inline size %d (table at %d)",
			ErrOutOfRange, what, off, t.name, t.inline, t.pos)
	}
	p := t.pos + off
	if p%size != 0 {
		return 0, fmt.Errorf("%w: %s at offset %d, want %d-aligned", ErrMisaligned, what, p, size)
	}
	return p, nil
}

// byteVector returns the [ubyte] vector of field id, nil when absent. The
// slice aliases buf and its capacity ends with it, so an append to it
// cannot write into the rest of the buffer.
func (t table) byteVector(buf []byte, id int, what string) ([]byte, error) {
	p, err := t.field(buf, id, sizeUOffset, what)
	if err != nil || p == 0 {
		return nil, err
	}
	v, err := deref(buf, p, what)
	if err != nil {
		return nil, err
	}
	if v > len(buf)-sizeUOffset {
		return nil, fmt.Errorf("%w: %s length at %d past the end (%d)", ErrOutOfRange, what, v, len(buf))
	}
	n := uint64(le.Uint32(buf[v:]))
	start := v + sizeUOffset
	if n > uint64(len(buf)-start) {
		return nil, fmt.Errorf("%w: %s of length %d at %d ends past the buffer (%d)",
			ErrOutOfRange, what, n, start, len(buf))
	}
	end := start + int(n)
	return buf[start:end:end], nil
}
