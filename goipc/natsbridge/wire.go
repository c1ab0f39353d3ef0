package natsbridge

import (
	"encoding/binary"
	"encoding/json"
	"time"
)

// The bridge's protocol over NATS core (docs/NATS.md):
//
// Connect: the dialer subscribes to an inbox of its own, then sends a
// hello (JSON) as a NATS request to the listener's subject; listeners
// share the subject in a queue group, so one of them answers. The
// winner subscribes to an inbox of its own and replies with a welcome
// (JSON). From then on each side publishes to the other's inbox.
//
// Every message on an inbox starts with a type byte (little-endian
// integers follow):
//
//	data       1  seq u64, payload     one goipc message; seq counts from 1
//	credit     2  taken u64            cumulative cost the receiver has taken in
//	heartbeat  3  last seq u64         "still here, and I have sent `last` messages",
//	                                   sent in each interval in which nothing else was
//	close      4  last seq u64         the sender's user closed after message `last`
//	abort      5  reason (UTF-8)       the sender found a protocol error
//	request    6  seq u64, id u64, payload   a call request with its caller's id
//	reply      7  seq u64, id u64, payload   the reply to the request with that id
//
// Data, request and reply messages share one sequence (they are the
// frames of the user's ring, in their order), one window and the same
// loss/duplicate checks: a call is carried like any other message, and
// the id is what pairs a reply with its request at the caller's end.
//
// A message's cost is its payload length + costOverhead; a sender keeps
// what it has sent minus what the receiver has taken within the window
// the receiver announced, so NATS never holds more than a window per
// direction and a slow receiver slows the sender (its ring fills, Send
// waits). Sequence numbers make a lost or repeated message an error; the
// heartbeat's count catches the loss of the last message before a pause.
const (
	msgData      = 1
	msgCredit    = 2
	msgHeartbeat = 3
	msgClose     = 4
	msgAbort     = 5
	msgRequest   = 6
	msgReply     = 7

	dataHeader   = 9  // type + seq
	callHeader   = 17 // type + seq + call id: a call's payload is at most the maximum message - 8, so it fits as data does
	costOverhead = 64 // bytes a message costs beyond its payload (headers, bookkeeping)

	// protocolVersion is the bridge protocol's version, in hello and welcome.
	// Version 2 added requests and replies (calls).
	protocolVersion = 2
)

// Welcome statuses.
const (
	statusOK       = "ok"
	statusVersion  = "version"   // the listener speaks another protocol version
	statusTooLarge = "too_large" // the dialer's maximum message is above the listener's
	statusLimit    = "limit"     // a listener limit (goipc.ErrLimit)
	statusClosed   = "closed"    // the listener is closing
	statusError    = "error"     // anything else; see Error
)

// hello is the dialer's connect request.
type hello struct {
	Version       int    `json:"version"`
	Inbox         string `json:"inbox"`           // where the listener publishes
	MaxMessage    int    `json:"max_message"`     // the connection's maximum message size
	Window        int64  `json:"window"`          // the dialer's receive window (cost bytes)
	HeartbeatMs   int64  `json:"heartbeat_ms"`    // both sides send heartbeats this often
	PeerTimeoutMs int64  `json:"peer_timeout_ms"` // and declare the peer gone after this silence
}

// welcome is the listener's reply.
type welcome struct {
	Version int    `json:"version"`
	Status  string `json:"status"`
	Error   string `json:"error,omitempty"`
	Inbox   string `json:"inbox,omitempty"`  // where the dialer publishes
	Window  int64  `json:"window,omitempty"` // the listener's receive window
}

func (h *hello) heartbeat() time.Duration   { return time.Duration(h.HeartbeatMs) * time.Millisecond }
func (h *hello) peerTimeout() time.Duration { return time.Duration(h.PeerTimeoutMs) * time.Millisecond }

func encodeJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and integers always marshal
	}
	return b
}

func cost(payload int) uint64 { return uint64(payload) + costOverhead }

func appendU64(b []byte, typ byte, v uint64) []byte {
	b = append(b, typ)
	return binary.LittleEndian.AppendUint64(b, v)
}

func u64At(b []byte) uint64 { return binary.LittleEndian.Uint64(b[1:9]) }
