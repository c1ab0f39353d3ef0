package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// runCapture is the listener of the layout scenario. It is not a goipc
// Listener: it speaks the documented handshake by hand (docs/LAYOUT.md),
// maps the dialer's segment read-only, waits until the dialer has published
// its first message, and writes a snapshot:
//
//	hello (32 bytes) || segment[0 : 0x1000 + ring 0 head]
//
// (the header, both ring control blocks and ring 0's frames). It then
// closes the socket, so the dialer sees peer-closed, and the dialer's peer
// checks the snapshot against its own copy of the layout constants.
// The mapping is read-only: the capture writes nothing into the segment
// (a goipc listener writes its pid at 0x024 when it accepts; here that
// word stays 0, and the peers check that it does).
// The capture itself checks only what a snapshot cannot show: the seals
// and the size of the memfd, reported in its "captured" line.
func runCapture(path, snapshot string) int {
	if path == "" || snapshot == "" {
		usage()
	}
	failed := func(format string, args ...any) int {
		emit(map[string]any{"event": "capture_error", "lang": lang, "error": fmt.Sprintf(format, args...)})
		return 1
	}
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return failed("listen: %v", err)
	}
	ln.SetUnlinkOnClose(true)
	defer ln.Close()
	emit(map[string]any{"event": "ready", "lang": lang, "path": path})

	ln.SetDeadline(time.Now().Add(30 * time.Second))
	conn, err := ln.AcceptUnix()
	if err != nil {
		return failed("accept: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	hello := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(hello, oob)
	if err != nil {
		return failed("read hello: %v", err)
	}
	if n != 32 {
		return failed("hello is %d bytes, want 32", n)
	}
	hello = hello[:32]
	fds, err := rightsOf(oob[:oobn])
	if err != nil || len(fds) != 1 {
		return failed("hello carries %d fds (%v), want 1", len(fds), err)
	}
	fd := fds[0]
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return failed("fstat: %v", err)
	}
	size := binary.LittleEndian.Uint64(hello[16:])
	if uint64(st.Size) != size || size < 0x1000 || size > 1<<31 {
		return failed("memfd is %d bytes, hello says %d", st.Size, size)
	}
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return failed("F_GET_SEALS: %v", err)
	}
	want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL
	if seals&want != want {
		return failed("memfd seals %#x lack shrink|grow|seal (%#x)", seals, want)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return failed("mmap: %v", err)
	}
	defer unix.Munmap(mem)

	// The version-2 reply (goipc/handshake_linux.go): magic, protocol
	// version, status 0 (ok), then 16 zero bytes (limit kind u32, reserved
	// u32, limit value u64: used only when a listener refuses a client).
	reply := make([]byte, 32)
	binary.LittleEndian.PutUint64(reply[0:], binary.LittleEndian.Uint64(hello[0:])) // the dialer's magic back
	binary.LittleEndian.PutUint32(reply[8:], binary.LittleEndian.Uint32(hello[8:])) // its protocol version
	binary.LittleEndian.PutUint32(reply[12:], 0)                                    // status ok
	if _, err := conn.Write(reply); err != nil {
		return failed("write reply: %v", err)
	}

	// Ring 0's head (dialer -> listener), stored by the dialer's publish:
	// once it is non-zero the first frame is complete.
	head := (*uint64)(unsafe.Pointer(&mem[0x80]))
	deadline := time.Now().Add(10 * time.Second)
	var h uint64
	for h = atomic.LoadUint64(head); h == 0; h = atomic.LoadUint64(head) {
		if time.Now().After(deadline) {
			return failed("the dialer published nothing within 10 s")
		}
		time.Sleep(100 * time.Microsecond) // polling a shared word, with a deadline
	}
	end := 0x1000 + h
	if end > size {
		return failed("ring 0 head %d runs past the segment (%d bytes)", h, size)
	}
	snap := append(append([]byte{}, hello...), mem[:end]...)
	tmp := snapshot + ".tmp"
	if err := os.WriteFile(tmp, snap, 0o644); err != nil {
		return failed("write snapshot: %v", err)
	}
	if err := os.Rename(tmp, snapshot); err != nil {
		return failed("rename snapshot: %v", err)
	}
	emit(map[string]any{"event": "captured", "lang": lang, "bytes": len(snap), "seals": seals, "memfd_size": st.Size})
	return 0
}

func rightsOf(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			return fds, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}
