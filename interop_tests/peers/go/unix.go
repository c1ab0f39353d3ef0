package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	"slices"
	"time"
)

// The demo's baseline: the same round trip over a Unix stream socket, Go
// to Go (net package), no goipc.

// runUnixEcho listens on path, accepts one client and echoes messages of
// size bytes until it hangs up.
func runUnixEcho(path string, size int) int {
	if path == "" || size <= 0 {
		usage()
	}
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		emit(map[string]any{"event": "listen_error", "lang": lang, "error": err.Error()})
		return 1
	}
	ln.SetUnlinkOnClose(true)
	defer ln.Close()
	emit(map[string]any{"event": "ready", "lang": lang, "path": path})
	ln.SetDeadline(time.Now().Add(60 * time.Second))
	c, err := ln.AcceptUnix()
	if err != nil {
		emit(map[string]any{"event": "accept_error", "lang": lang, "error": err.Error()})
		return 1
	}
	defer c.Close()
	buf := make([]byte, size)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return 0
		}
		if _, err := c.Write(buf); err != nil {
			return 0
		}
	}
}

// unixPing: n round trips of size bytes (after warmup) to a unix-echo,
// each answer checked, with the same percentiles as pingpong.
func (p *producer) unixPing() result {
	c, err := net.DialTimeout("unix", p.path, callTimeout)
	if err != nil {
		return fail("dial %s: %v", p.path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	msg, reply := make([]byte, p.size), make([]byte, p.size)
	copy(msg, payloadFor(0, p.size))
	rtts := make([]int64, 0, p.n)
	var start time.Time
	for i := 0; i < p.warmup+p.n; i++ {
		if i == p.warmup {
			start = time.Now()
		}
		if p.size >= 8 {
			binary.LittleEndian.PutUint64(msg, uint64(i))
		}
		t0 := monoNs()
		if _, err := c.Write(msg); err != nil {
			return fail("write %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, reply); err != nil {
			return fail("read %d: %v", i, err)
		}
		if i >= p.warmup {
			rtts = append(rtts, monoNs()-t0)
		}
		if !bytes.Equal(msg, reply) {
			return fail("answer %d differs", i)
		}
	}
	elapsed := time.Since(start)
	slices.Sort(rtts)
	pct := func(q float64) int64 { return rtts[int(q/100*float64(len(rtts)-1)+0.5)] }
	return result{"round_trips": p.n, "size": p.size, "p50_ns": pct(50), "p99_ns": pct(99),
		"elapsed_ns": elapsed.Nanoseconds(), "round_trips_per_s": float64(p.n) / elapsed.Seconds()}
}
