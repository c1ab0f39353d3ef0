// Package natsbridge carries goipc connections over NATS, so that a
// producer and its Go consumer no longer need to share a kernel.
// Importing it (for its side effect) registers the nats:// and tls://
// address schemes with goipc:
//
//	import _ "github.com/goipc/goipc/goipc/natsbridge"
//
//	ln, err := goipc.Listen("nats://127.0.0.1:4222/orders", nil)
//	c, err := goipc.Dial("nats://127.0.0.1:4222/orders", nil)
//
// The C library (libgoipc.so) imports it, so goipc_dial and goipc_listen,
// and the Python and Rust bindings, take the same addresses.
//
// A connection is a goipc.Pipe: the user holds one end, a bridge in this
// process drives the other and moves messages between it and NATS. Every
// goipc.Conn method works as over shared memory: ordered delivery,
// backpressure (a slow receiver makes Send wait), timeouts, views and
// reservations, ErrPeerClosed after the peer's messages were received,
// and calls (Call, RecvRequest and Reply, goipc.Serve) in both directions:
// requests and replies travel among the messages, with their call ids.
// What NATS core does not give, the bridge adds: sequence numbers (a lost
// or repeated message breaks the connection with goipc.ErrProtocol, never
// a silent gap), credit-based flow control (NATS never holds more than
// one window per direction, so it never drops for a slow consumer), and
// heartbeats (a peer that dies, or whose server dies, is noticed within
// peer_timeout + heartbeat, 1.4 s by default). Listeners on one subject
// form a queue group: each new connection goes to one of them.
//
// The address syntax, the options and the guarantees are in docs/NATS.md
// and on parseAddress.
package natsbridge
