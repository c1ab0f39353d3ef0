package main

import "testing"

// Every call through the C ABI runs on a goroutine locked to the caller's
// thread: the options of every connection it makes say so (options
// starts from the same value with or without goipc_options).
func TestOptionsAreThreadLocked(t *testing.T) {
	opts, err := options(nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts == nil || !opts.ThreadLocked {
		t.Fatalf("options(NULL) = %+v, want ThreadLocked", opts)
	}
}
