package goipc

import "testing"

// TestHotPathDoesNotAllocate: Send, RecvView/ReleaseView, RecvInto and
// Reserve/Commit allocate nothing in steady state.
func TestHotPathDoesNotAllocate(t *testing.T) {
	client, server := pair(t, nil, nil)
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := client.Send(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := server.RecvView(-1); err != nil {
			t.Fatal(err)
		}
		server.ReleaseView()
		out, err := server.Reserve(64, -1)
		if err != nil {
			t.Fatal(err)
		}
		copy(out, msg)
		server.Commit(64)
		if _, err := client.RecvInto(buf, -1); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per round trip", allocs)
	}
}
