package message

import (
	"fmt"
	"testing"
)

// go test -run '^$' -bench . -benchmem ./goipc/message
//
// Every benchmark reports allocs/op; steady state is 0 for all of them.

var benchSizes = []int{0, 64, 1024}

func BenchmarkWritePong(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			p := seqPayload(n)
			slot := make([]byte, PongSize(n))
			b.SetBytes(int64(len(slot)))
			b.ReportAllocs()
			for i := range b.N {
				if _, err := WritePong(slot, uint64(i), 1, 2, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkWritePing(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			p := seqPayload(n)
			slot := make([]byte, PingSize(n))
			b.SetBytes(int64(len(slot)))
			b.ReportAllocs()
			for i := range b.N {
				if _, err := WritePing(slot, uint64(i), 1, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBuilderPing(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			p := seqPayload(n)
			fbb := NewBuilder(0)
			b.SetBytes(int64(len(fbb.Ping(1, 1, p))))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				fbb.Ping(uint64(i)|1, 1, p)
			}
		})
	}
}

func BenchmarkBuilderPong(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			p := seqPayload(n)
			fbb := NewBuilder(0)
			b.SetBytes(int64(len(fbb.Pong(1, 1, 2, p))))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				fbb.Pong(uint64(i)|1, 1, 2, p)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	buf := AppendPong(nil, 1, 2, 3, seqPayload(64))
	b.ReportAllocs()
	for range b.N {
		if err := Verify(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// ParsePing + read every field: what a consumer does per message.
func BenchmarkParsePing(b *testing.B) {
	buf := AppendPing(nil, 1, 2, seqPayload(64))
	b.ReportAllocs()
	var sink uint64
	for range b.N {
		v, err := ParsePing(buf)
		if err != nil {
			b.Fatal(err)
		}
		sink += v.Seq() + uint64(v.SentNs()) + uint64(len(v.Payload()))
	}
	_ = sink
}

// The Go consumer's path: verify a Ping, answer it with a Pong in place.
func BenchmarkPongFromPing(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ping := AppendPing(nil, 1, 2, seqPayload(n))
			slot := make([]byte, PongSize(n))
			b.ReportAllocs()
			for i := range b.N {
				v, err := ParsePing(ping)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := WritePong(slot, v.Seq(), v.SentNs(), int64(i), v.Payload()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The same read through the generated accessors, for comparison (after
// Verify, as untrusted input requires).
func BenchmarkGeneratedReadPing(b *testing.B) {
	buf := AppendPing(nil, 1, 2, seqPayload(64))
	b.ReportAllocs()
	var sink uint64
	for range b.N {
		if err := Verify(buf); err != nil {
			b.Fatal(err)
		}
		f := readGenerated(buf)
		sink += f.seq + uint64(f.sentNs) + uint64(len(f.payload))
	}
	_ = sink
}
