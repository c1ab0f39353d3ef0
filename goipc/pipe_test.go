package goipc

import (
	"errors"
	"testing"
	"time"
)

func TestPipe(t *testing.T) {
	checkLeaks(t)
	a, b, err := Pipe(&Options{RingSize: MinRingSize, MaxMessageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := a.Send([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		m, err := b.RecvTimeout(5 * time.Second)
		if err != nil || len(m) != 1 || m[0] != byte(i) {
			t.Fatalf("message %d: %v %v", i, m, err)
		}
	}
	if err := b.Send([]byte("back")); err != nil {
		t.Fatal(err)
	}
	if m, err := a.RecvTimeout(5 * time.Second); err != nil || string(m) != "back" {
		t.Fatal(m, err)
	}
	if err := a.Send([]byte("last")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if m, err := b.RecvTimeout(5 * time.Second); err != nil || string(m) != "last" {
		t.Fatalf("drain after close: %q %v", m, err)
	}
	if _, err := b.RecvTimeout(5 * time.Second); !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("after the peer closed: %v", err)
	}
	b.Close()
}
