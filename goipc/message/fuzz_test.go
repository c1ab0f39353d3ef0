package message

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goipc/goipc/schema/gen/go/goipc/fb"
)

// FuzzVerify: Verify never panics; when it fails it wraps exactly one
// sentinel and every parse function agrees; when it accepts, every field
// reads without panicking through the views and through the generated
// accessors, and both read the same values. Seeds: the committed corpus in
// testdata/fuzz/FuzzVerify (valid messages of every writer and a few
// malformed ones) plus the messages added here.
//
//	go test -run '^$' -fuzz '^FuzzVerify$' -fuzztime 1m ./goipc/message
func FuzzVerify(f *testing.F) {
	b := NewBuilder(0)
	f.Add(AppendPing(nil, 42, 1234, seqPayload(13)))
	f.Add(AppendPong(nil, 42, 1234, 5678, seqPayload(13)))
	f.Add(bytes.Clone(b.Ping(0, 0, nil)))
	f.Add(bytes.Clone(b.Pong(1, 0, 3, seqPayload(8))))
	f.Add(vtableAfterTable(testPong()))
	f.Add([]byte("\x10\x00\x00\x00GIPC"))
	f.Fuzz(func(t *testing.T, buf []byte) {
		buf = buf[:len(buf):len(buf)]
		kind, err := Identify(buf)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("Identify: %v does not wrap exactly one sentinel", err)
			}
			if _, e := ParsePing(buf); e == nil {
				t.Fatal("ParsePing accepts what Identify rejects")
			}
			if _, e := ParsePong(buf); e == nil {
				t.Fatal("ParsePong accepts what Identify rejects")
			}
			if IsPing(buf) || IsPong(buf) || Verify(buf) == nil {
				t.Fatal("IsPing/IsPong/Verify accept what Identify rejects")
			}
			return
		}
		if kind != fb.BodyPing && kind != fb.BodyPong {
			t.Fatalf("Identify accepted body type %d", kind)
		}
		if IsPing(buf) != (kind == fb.BodyPing) || IsPong(buf) != (kind == fb.BodyPong) {
			t.Fatal("IsPing/IsPong disagree with Identify")
		}
		// Read everything both ways (mustRead compares them); a panic in
		// either is a fuzz failure.
		f := mustRead(t, buf)
		// A re-encoding of what was read verifies and reads the same.
		var again []byte
		if kind == fb.BodyPing {
			again = AppendPing(nil, f.seq, f.sentNs, f.payload)
		} else {
			again = AppendPong(nil, f.seq, f.sentNs, f.receivedNs, f.payload)
		}
		if g := mustRead(t, again); !g.equal(f) {
			t.Fatalf("re-encoded message reads %+v, want %+v", g, f)
		}
	})
}

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzVerify")

// TestWriteFuzzSeeds rewrites the committed seed corpus of FuzzVerify with
// -update-fuzz-seeds: valid messages of every writer (the wire files of all
// languages included) and every case of malformedCases.
//
//	go test -run '^TestWriteFuzzSeeds$' -update-fuzz-seeds ./goipc/message
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-fuzz-seeds to rewrite testdata/fuzz/FuzzVerify")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds := map[string][]byte{}
	b := NewBuilder(0)
	for _, n := range []int{0, 1, 4, 13} {
		seeds[fmt.Sprintf("valid_write_ping_%d", n)] = AppendPing(nil, 42, 1000, seqPayload(n))
		seeds[fmt.Sprintf("valid_write_pong_%d", n)] = AppendPong(nil, 42, 1000, 2000, seqPayload(n))
	}
	seeds["valid_builder_ping_zero"] = bytes.Clone(b.Ping(0, 0, nil))
	seeds["valid_builder_pong_zero"] = bytes.Clone(b.Pong(0, 0, 0, nil))
	for _, lang := range []string{"go", "python", "rust"} {
		for _, kind := range []string{"ping", "pong"} {
			buf, err := os.ReadFile(filepath.Join(wireDir, kind+"_"+lang+".bin"))
			if err != nil {
				t.Fatal(err)
			}
			seeds["wire_"+kind+"_"+lang] = buf
		}
	}
	for _, c := range malformedCases {
		name := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				return r
			}
			if r >= 'A' && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return '_'
		}, c.name)
		seeds["malformed_"+name] = c.mutate(testPong())
	}
	for name, buf := range seeds {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", buf)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
