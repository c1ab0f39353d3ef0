package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// The baseline server of `goipc bench-server`: what a Go service writes
// when it serves many local clients without goipc. The net package, a
// goroutine per connection (parked in the netpoller while idle), and a
// length-prefixed message protocol on a Unix stream socket:
//
//	[u32 little-endian length][length bytes of payload]
//
// Each message is echoed whole, with its prefix, in one write. A
// connection's buffer is allocated at its first message and kept, as a
// server reusing a buffer per connection would.

// UnixEchoMaxMessage is the default largest message of the echo server.
const UnixEchoMaxMessage = 1 << 20

// ServeUnixEcho accepts connections on ln until it is closed, serving each
// in its own goroutine. It returns the error that ended Accept (net.ErrClosed
// after ln.Close). logf reports per-connection protocol errors (nil: none).
func ServeUnixEcho(ln *net.UnixListener, maxMessage int, logf func(format string, a ...any)) error {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return err
		}
		go func() {
			defer c.Close()
			if err := echoUnixConn(c, maxMessage); err != nil && logf != nil {
				logf("goipc unix-echo: a connection ended: %v", err)
			}
		}()
	}
}

// echoUnixConn echoes length-prefixed messages until the client hangs up.
func echoUnixConn(c *net.UnixConn, maxMessage int) error {
	var hdr [4]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n := int(binary.LittleEndian.Uint32(hdr[:]))
		if n > maxMessage {
			return fmt.Errorf("message of %d B above the maximum of %d B", n, maxMessage)
		}
		if cap(buf) < 4+n {
			buf = make([]byte, 4+n)
		}
		buf = buf[:4+n]
		copy(buf, hdr[:])
		if _, err := io.ReadFull(c, buf[4:]); err != nil {
			return err
		}
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
}

// unixEchoRoundTrip sends msg (whose first 4 bytes are the length prefix,
// filled here) and reads the echo into reply (same length).
func unixEchoRoundTrip(c net.Conn, msg, reply []byte) error {
	binary.LittleEndian.PutUint32(msg, uint32(len(msg)-4))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, reply); err != nil {
		return err
	}
	if got := binary.LittleEndian.Uint32(reply); int(got) != len(msg)-4 {
		return fmt.Errorf("echo length prefix %d, want %d", got, len(msg)-4)
	}
	return nil
}
