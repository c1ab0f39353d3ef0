package bench

import (
	"os"
	"testing"
)

// TestMain lets the test binary serve as the bench's child process: the
// tests re-execute it with GOIPC_BENCH_CHILD set.
func TestMain(m *testing.M) {
	if IsChild() {
		os.Exit(ChildMain())
	}
	os.Exit(m.Run())
}

// testChild re-executes the test binary, running no test in it.
func testChild(t testing.TB) []string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, "-test.run=^$"}
}
