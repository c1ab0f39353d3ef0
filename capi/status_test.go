package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"syscall"
	"testing"
)

// sentinelNames parses goipc/errors.go and returns the names of its
// exported Err* variables, so that a sentinel added there without a status
// code fails this test.
func sentinelNames(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../goipc/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, s := range g.Specs {
			for _, n := range s.(*ast.ValueSpec).Names {
				if strings.HasPrefix(n.Name, "Err") && n.IsExported() {
					names = append(names, n.Name)
				}
			}
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %d sentinels in goipc/errors.go: %v", len(names), names)
	}
	return names
}

func TestEverySentinelHasACode(t *testing.T) {
	inTable := map[string]int32{}
	for _, e := range statusTable {
		inTable[e.name] = e.code
	}
	for _, name := range sentinelNames(t) {
		code, ok := inTable["goipc."+name]
		if !ok {
			t.Errorf("goipc.%s has no entry in statusTable", name)
			continue
		}
		if code == statusOK || code == statusSystem {
			t.Errorf("goipc.%s maps to %d; a sentinel needs its own code", name, code)
		}
	}
}

// TestTableOrder checks that each entry, wrapped, maps to its own code:
// a wrapping sentinel listed after the one it wraps would be shadowed.
func TestTableOrder(t *testing.T) {
	for _, e := range statusTable {
		got, _ := statusOf(fmt.Errorf("context: %w", e.err))
		if got != e.code {
			t.Errorf("%s maps to %d, want %d (table order?)", e.name, got, e.code)
		}
	}
}

func TestEveryCodeHasAString(t *testing.T) {
	unknown := strerror(statusMax + 1)
	if unknown != statusUnknownDescription {
		t.Errorf("strerror(%d) = %q, want %q", statusMax+1, unknown, statusUnknownDescription)
	}
	seen := map[string]int32{}
	for code := statusOK; code <= statusMax; code++ {
		s := strerror(code)
		if s == "" || s == unknown {
			t.Errorf("strerror(%d) = %q", code, s)
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("strerror(%d) = strerror(%d) = %q", code, prev, s)
		}
		seen[s] = code
	}
	for _, code := range []int32{-1, statusMax + 1, 1 << 30, -1 << 31} {
		if s := strerror(code); s == "" {
			t.Errorf("strerror(%d) is empty", code)
		}
	}
}

// TestEveryCodeIsReachable: every error code but SYSTEM (the fallback) is
// produced by some entry of the table.
func TestEveryCodeIsReachable(t *testing.T) {
	produced := map[int32]bool{statusSystem: true}
	for _, e := range statusTable {
		produced[e.code] = true
	}
	for code := statusInvalidArgument; code <= statusMax; code++ {
		if !produced[code] {
			t.Errorf("no error maps to status %d (%s)", code, strerror(code))
		}
	}
}

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err         error
		code, errno int32
	}{
		{nil, statusOK, 0},
		{fmt.Errorf("dial: %w", syscall.ENOENT), statusSystem, int32(syscall.ENOENT)},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), statusSystem, int32(syscall.ECONNREFUSED)},
		{fmt.Errorf("listen: %w", syscall.EACCES), statusPermission, int32(syscall.EACCES)},
		{fmt.Errorf("%w: boom", errInternal), statusSystem, 0},
	} {
		code, errno := statusOf(tc.err)
		if code != tc.code || errno != tc.errno {
			t.Errorf("statusOf(%v) = %d, %d; want %d, %d", tc.err, code, errno, tc.code, tc.errno)
		}
	}
}
