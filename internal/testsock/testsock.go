// Package testsock gives tests short paths for Unix sockets.
//
// A socket path must fit sun_path (107 bytes and a NUL). t.TempDir names
// its directory after the test, subtests included, so under a TMPDIR
// longer than /tmp a long test name pushes the path past the limit and
// the test fails for a reason that is not its own.
package testsock

import (
	"os"
	"path/filepath"
	"testing"
)

// Path returns name in a fresh directory under os.TempDir with a short
// name, removed when the test and its subtests end.
func Path(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "goipc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, name)
}
