//go:build linux

package sys

import "testing"

func TestParseRunnable(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int
		ok   bool
	}{
		{"0.42 0.88 1.32 1/79 2502\n", 1, true},
		{"12.00 9.10 7.00 17/1203 99999", 17, true},
		{"0.42 0.88 1.32 /79 2502", 0, false},
		{"0.42 0.88 1.32 x/79 2502", 0, false},
		{"0.42 0.88 1.32 1234567890/79 1", 0, false}, // beyond 9 digits: not a count
		{"0.42 0.88", 0, false},
		{"", 0, false},
	} {
		got, ok := parseRunnable([]byte(tc.line))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRunnable(%q) = %d, %v; want %d, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
	// The machine running this test runs at least this test.
	if n, ok := RunnableThreads(); !ok || n < 1 {
		t.Fatalf("RunnableThreads() = %d, %v on Linux", n, ok)
	}
}
