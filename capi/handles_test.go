package main

import (
	"sync"
	"testing"
)

func TestHandles(t *testing.T) {
	tb := &table[int]{kind: kindConn}
	v1, v2 := 1, 2
	h1, ok := tb.put(&v1)
	if !ok || h1 == 0 {
		t.Fatalf("put = %#x, %v", h1, ok)
	}
	h2, _ := tb.put(&v2)
	if h1 == h2 {
		t.Fatalf("two live entries share handle %#x", h1)
	}
	if got, r := tb.get(h1); r != found || got != &v1 {
		t.Fatalf("get(h1) = %v, %v", got, r)
	}
	for _, h := range []uint64{0, 1, h1 + 1000, h1 ^ 0xFF<<56, h1 + 1<<32, ^uint64(0)} {
		if _, r := tb.get(h); r != unknown {
			t.Errorf("get(%#x) = %v, want unknown", h, r)
		}
	}
	other := &table[int]{kind: kindListener}
	if _, r := other.get(h1); r != unknown {
		t.Errorf("a conn handle is found in the listener table")
	}
	tb.del(h1)
	if _, r := tb.get(h1); r != stale {
		t.Errorf("get(closed) = %v, want stale", r)
	}
	tb.del(h1) // double del: no effect
	// Reuse never gives a closed handle's value back.
	seen := map[uint64]bool{h1: true, h2: true}
	for i := 0; i < 5*minFree; i++ {
		v := i
		h, _ := tb.put(&v)
		if seen[h] {
			t.Fatalf("handle %#x issued twice", h)
		}
		seen[h] = true
		tb.del(h)
		if _, r := tb.get(h); r != stale {
			t.Fatalf("get(closed %#x) = %v, want stale", h, r)
		}
	}
	if _, r := tb.get(h1); r != stale {
		t.Errorf("get(h1) after reuse = %v, want stale", r)
	}
	if got, r := tb.get(h2); r != found || got != &v2 {
		t.Errorf("h2 lost: %v, %v", got, r)
	}
	if n := tb.count(); n != 1 {
		t.Errorf("count = %d, want 1", n)
	}
}

func TestHandlesConcurrent(t *testing.T) {
	tb := &table[int]{kind: kindConn}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				v := i
				h, ok := tb.put(&v)
				if !ok {
					t.Error("table full")
					return
				}
				if got, r := tb.get(h); r != found || got != &v {
					t.Errorf("get(%#x) = %v, %v", h, got, r)
					return
				}
				tb.del(h)
				if _, r := tb.get(h); r == found {
					t.Errorf("get(%#x) found after del", h)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := tb.count(); n != 0 {
		t.Errorf("count = %d, want 0", n)
	}
}
