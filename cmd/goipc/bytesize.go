package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteSize is a flag value in bytes: an integer with an optional binary
// suffix K, M, G or T (KiB ... TiB, "B" and "iB" accepted), or a negative
// number (the listener limits' "no limit").
type byteSize int64

func (b *byteSize) Set(s string) error {
	u := strings.ToUpper(strings.TrimSpace(s))
	u = strings.TrimSuffix(strings.TrimSuffix(u, "IB"), "B")
	shift := 0
	if n := len(u); n > 0 {
		if i := strings.IndexByte("KMGT", u[n-1]); i >= 0 {
			shift, u = 10*(i+1), u[:n-1]
		}
	}
	v, err := strconv.ParseInt(u, 10, 64)
	if err != nil || v > math.MaxInt64>>shift || v < math.MinInt64>>shift {
		return fmt.Errorf("%q is not a size in bytes (e.g. 65536, 64K, 16G, -1)", s)
	}
	*b = byteSize(v << shift)
	return nil
}

// String prints the size with the largest binary suffix that divides it.
func (b byteSize) String() string {
	v := int64(b)
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if v != 0 && v%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", v>>u.shift, u.suffix)
		}
	}
	return strconv.FormatInt(v, 10)
}
