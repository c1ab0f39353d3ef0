package message_test

import (
	"bytes"
	"fmt"

	"github.com/goipc/goipc/goipc/message"
)

// A consumer answers a Ping with a Pong built in place, in space of the
// exact size (a ring slot in real use).
func ExampleWritePong() {
	frame := message.AppendPing(nil, 42, 1000, []byte("hello"))

	ping, err := message.ParsePing(frame) // verifies; reads in place
	if err != nil {
		fmt.Println("bad message:", err)
		return
	}
	slot := make([]byte, message.PongSize(len(ping.Payload())))
	n, err := message.WritePong(slot, ping.Seq(), ping.SentNs(), 2500, ping.Payload())
	if err != nil {
		fmt.Println(err)
		return
	}

	pong, err := message.ParsePong(slot[:n])
	if err != nil {
		fmt.Println(err)
		return
	}
	kept := bytes.Clone(pong.Payload()) // clone before the slot is reused
	fmt.Println(n, pong.Seq(), pong.ReceivedNs()-pong.PingSentNs(), string(kept))
	// Output: 88 42 1500 hello
}
