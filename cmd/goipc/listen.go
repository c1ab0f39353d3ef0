package main

import (
	"strings"
	"sync"

	"github.com/goipc/goipc/goipc"
	// nats:// and tls:// addresses (goipc over NATS, docs/NATS.md).
	_ "github.com/goipc/goipc/goipc/natsbridge"
)

// addrList is a repeatable address flag (--listen A --listen B).
type addrList []string

func (a *addrList) String() string     { return strings.Join(*a, ",") }
func (a *addrList) Set(v string) error { *a = append(*a, v); return nil }

// listenAll listens on every address, or on none (closing those opened)
// if one fails.
func listenAll(addrs []string, opts *goipc.Options) ([]*goipc.Listener, error) {
	var lns []*goipc.Listener
	for _, addr := range addrs {
		ln, err := goipc.Listen(addr, opts)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// acceptAll runs serve for each listener and returns when all returned.
func acceptAll(lns []*goipc.Listener, serve func(*goipc.Listener)) {
	var wg sync.WaitGroup
	for _, ln := range lns {
		wg.Add(1)
		go func() { defer wg.Done(); serve(ln) }()
	}
	wg.Wait()
}

// maxMessageFor is the MaxMessageSize a dialer asks for to send messages
// of size bytes (and get answers a little larger): 0, the transport's
// default, while that leaves 64 KiB to spare, else at least goipc's
// default. Asking for no more than needed lets a NATS connection fit the
// server's max_payload (1 MiB by default, as is goipc's default).
func maxMessageFor(size int) int {
	if size <= goipc.DefaultMaxMessageSize-64<<10 {
		return 0
	}
	return max(size, goipc.DefaultMaxMessageSize)
}
