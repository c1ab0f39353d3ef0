package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/goipc/goipc/internal/statread"
)

func init() {
	commands["stat"] = command{summary: "list live goipc connections and their counters (like top with --watch)", run: runStat}
}

func runStat(args []string) int {
	fs := flag.NewFlagSet("goipc stat", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, `print {"connections": [...]} (fields: docs/STAT.md)`)
	watch := fs.Bool("watch", false, "refresh every --interval, with rates per second, until interrupted")
	interval := fs.Duration("interval", time.Second, "refresh `interval` of --watch")
	count := fs.Int("count", 0, "with --watch: stop after this many refreshes (0: never)")
	pid := fs.Int("pid", 0, "show only the connection ends process `PID` holds")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: goipc stat [--json] [--watch [--interval D] [--count N]] [--pid PID]\n\n"+
			"Lists every live goipc connection end this user may inspect (its own\n"+
			"processes; every process for root), found through /proc. docs/STAT.md\n"+
			"describes the columns and fields.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch {
	case fs.NArg() != 0:
		fmt.Fprintf(os.Stderr, "goipc stat: unexpected argument %q\n", fs.Arg(0))
		return 2
	case *pid < 0:
		fmt.Fprintln(os.Stderr, "goipc stat: --pid must be a process id")
		return 2
	case *watch && *asJSON:
		fmt.Fprintln(os.Stderr, "goipc stat: --watch and --json do not combine; run --json repeatedly and compare counters")
		return 2
	case *watch && *interval <= 0:
		fmt.Fprintln(os.Stderr, "goipc stat: --interval must be > 0")
		return 2
	case !*watch && *count != 0 || *count < 0:
		fmt.Fprintln(os.Stderr, "goipc stat: --count needs --watch and must be >= 0")
		return 2
	}
	opts := statread.Options{PID: *pid}
	if !*watch {
		snap, err := statread.Scan(opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "goipc stat:", err)
			return 1
		}
		if *asJSON {
			return writeJSON(os.Stdout, snap)
		}
		writeTable(os.Stdout, snap, nil)
		return 0
	}
	return watchStat(os.Stdout, opts, *interval, *count)
}

// watchStat prints a table every interval, with rates computed against the
// previous one; on a terminal each table replaces the last.
func watchStat(w io.Writer, opts statread.Options, interval time.Duration, count int) int {
	clear := isTerminal(os.Stdout)
	var prev *statread.Snapshot
	for i := 0; count == 0 || i < count; i++ {
		if i > 0 {
			time.Sleep(interval) // the refresh period itself, not a synchronisation
		}
		snap, err := statread.Scan(opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "goipc stat:", err)
			return 1
		}
		if clear {
			fmt.Fprint(w, "\x1b[H\x1b[2J")
		} else if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "goipc stat at %s, every %v\n", snap.Taken.Format("15:04:05"), interval)
		writeTable(w, snap, prev)
		prev = &snap
	}
	return 0
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// endKey identifies an end across snapshots, for rates.
type endKey struct {
	pid     int
	segment uint64
	dialer  bool
}

func keyOf(e statread.End) endKey { return endKey{e.PID, e.Segment, e.Dialer} }

func sortEnds(ends []statread.End) {
	// By process, then connection, the dialer end first.
	slices.SortFunc(ends, func(a, b statread.End) int {
		return cmp.Or(cmp.Compare(a.PID, b.PID), cmp.Compare(a.Segment, b.Segment), cmp.Compare(role(a), role(b)))
	})
}

func role(e statread.End) string {
	if e.Dialer {
		return "dialer"
	}
	return "listener"
}

// statRecord is one connection end in `goipc stat --json`; docs/STAT.md
// documents every field. send_* describe this end -> peer, recv_* the
// reverse.
type statRecord struct {
	PID              int     `json:"pid"`
	Name             string  `json:"name"`
	PeerPID          int     `json:"peer_pid"`
	Role             string  `json:"role"`
	Path             string  `json:"path"`
	Segment          uint64  `json:"segment"`
	LayoutVersion    uint32  `json:"layout_version"`
	ProtocolVersion  uint32  `json:"protocol_version"`
	CreatedUnixNs    int64   `json:"created_unix_ns"`
	AgeSeconds       float64 `json:"age_seconds"` // milliseconds precision
	MaxMessageSize   uint32  `json:"max_message_size"`
	MessagesSent     uint64  `json:"messages_sent"`
	BytesSent        uint64  `json:"bytes_sent"`
	MessagesReceived uint64  `json:"messages_received"`
	BytesReceived    uint64  `json:"bytes_received"`

	SendCapacity   uint64 `json:"send_capacity"`
	SendInUse      uint64 `json:"send_in_use"`
	SendParks      uint64 `json:"send_parks"`
	SendWakeups    uint64 `json:"send_wakeups"`
	SendParked     bool   `json:"send_parked"`
	SendPeerParked bool   `json:"send_peer_parked"`

	RecvCapacity   uint64 `json:"recv_capacity"`
	RecvInUse      uint64 `json:"recv_in_use"`
	RecvParks      uint64 `json:"recv_parks"`
	RecvWakeups    uint64 `json:"recv_wakeups"`
	RecvParked     bool   `json:"recv_parked"`
	RecvPeerParked bool   `json:"recv_peer_parked"`
}

type unreadableRecord struct {
	PID    int    `json:"pid"`
	Name   string `json:"name"`
	FD     int    `json:"fd"`
	Reason string `json:"reason"`
}

func record(e statread.End, now time.Time) statRecord {
	r := statRecord{
		PID: e.PID, Name: e.Name, PeerPID: e.PeerPID, Role: role(e), Path: e.Header.Path, Segment: e.Segment,
		LayoutVersion: e.Header.LayoutVersion, ProtocolVersion: e.Header.ProtocolVersion,
		AgeSeconds: math.Round(e.Age(now).Seconds()*1e3) / 1e3, MaxMessageSize: e.Header.MaxMessageSize,
		MessagesSent: e.Sent.Messages, BytesSent: e.Sent.Bytes,
		MessagesReceived: e.Received.Messages, BytesReceived: e.Received.Bytes,
		SendCapacity: e.Sent.Capacity, SendInUse: e.Sent.InUse, SendParks: e.Sent.Parks, SendWakeups: e.Sent.Wakeups,
		SendParked: e.Sent.SenderParked, SendPeerParked: e.Sent.ReceiverParked,
		RecvCapacity: e.Received.Capacity, RecvInUse: e.Received.InUse, RecvParks: e.Received.Parks, RecvWakeups: e.Received.Wakeups,
		RecvParked: e.Received.ReceiverParked, RecvPeerParked: e.Received.SenderParked,
	}
	if !e.Header.Created.IsZero() {
		r.CreatedUnixNs = e.Header.Created.UnixNano()
	}
	return r
}

func writeJSON(w io.Writer, snap statread.Snapshot) int {
	sortEnds(snap.Ends)
	out := struct {
		Connections []statRecord       `json:"connections"`
		Unreadable  []unreadableRecord `json:"unreadable"`
	}{Connections: []statRecord{}, Unreadable: []unreadableRecord{}}
	for _, e := range snap.Ends {
		out.Connections = append(out.Connections, record(e, snap.Taken))
	}
	for _, u := range snap.Unreadable {
		out.Unreadable = append(out.Unreadable, unreadableRecord{u.PID, u.Name, u.FD, u.Reason})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "goipc stat:", err)
		return 1
	}
	return 0
}

// writeTable prints one line per end; with prev (--watch) it adds the
// message and byte rates since prev.
func writeTable(w io.Writer, snap statread.Snapshot, prev *statread.Snapshot) {
	sortEnds(snap.Ends)
	if len(snap.Ends) == 0 {
		fmt.Fprintf(w, "no goipc connections visible to uid %d (a non-root user sees its own processes only)\n", os.Geteuid())
	} else {
		writeEnds(w, snap, prev)
	}
	if len(snap.Unreadable) > 0 {
		fmt.Fprintln(w, "unreadable goipc segments:")
		for _, u := range snap.Unreadable {
			fmt.Fprintf(w, "  pid %d (%s) fd %d: %s\n", u.PID, printable(u.Name), u.FD, u.Reason)
		}
	}
}

func writeEnds(w io.Writer, snap statread.Snapshot, prev *statread.Snapshot) {
	before := map[endKey]statread.End{}
	var dt float64
	if prev != nil {
		dt = snap.Taken.Sub(prev.Taken).Seconds()
		for _, e := range prev.Ends {
			before[keyOf(e)] = e
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	cols := []string{"PID", "NAME", "PEER", "ROLE", "PROTO", "AGE"}
	for _, d := range []string{"TX", "RX"} {
		cols = append(cols, d+"_RING", d+"_MSGS", d+"_BYTES")
		if prev != nil {
			cols = append(cols, d+"_MSG/S", d+"_B/S")
		}
		cols = append(cols, d+"_PARKS", d+"_WAKES", d+"_PARKED")
	}
	// PATH comes last, after the final tab: left-aligned, any length.
	fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t  PATH")
	for _, e := range snap.Ends {
		old, hasOld := before[keyOf(e)]
		row := []string{strconv.Itoa(e.PID), printable(e.Name), strconv.Itoa(e.PeerPID), role(e),
			strconv.FormatUint(uint64(e.Header.ProtocolVersion), 10), humanAge(e.Age(snap.Taken))}
		for i, d := range []statread.Direction{e.Sent, e.Received} {
			oldDir := old.Sent
			if i == 1 {
				oldDir = old.Received
			}
			row = append(row, humanBytes(d.InUse)+"/"+humanBytes(d.Capacity),
				strconv.FormatUint(d.Messages, 10), humanBytes(d.Bytes))
			if prev != nil {
				row = append(row, rate(d.Messages, oldDir.Messages, hasOld, dt, humanCount),
					rate(d.Bytes, oldDir.Bytes, hasOld, dt, humanBytes))
			}
			self, peer := d.SenderParked, d.ReceiverParked
			if i == 1 {
				self, peer = d.ReceiverParked, d.SenderParked
			}
			row = append(row, strconv.FormatUint(d.Parks, 10), strconv.FormatUint(d.Wakeups, 10), parked(self, peer))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t  "+printable(e.Header.Path))
	}
	tw.Flush()
}

// parked says which side of a direction is parked now.
func parked(self, peer bool) string {
	switch {
	case self && peer:
		return "both"
	case self:
		return "self"
	case peer:
		return "peer"
	}
	return "-"
}

func rate(now, before uint64, known bool, seconds float64, format func(uint64) string) string {
	if !known || now < before || seconds <= 0 {
		return "-"
	}
	return format(uint64(float64(now-before)/seconds + 0.5))
}

// humanBytes: 1023, 1.0K, 4.0M, ... (powers of 1024).
func humanBytes(n uint64) string { return humanUnits(n, 1024) }

// humanCount: 999, 1.0k, 2.5M, ... (powers of 1000).
func humanCount(n uint64) string { return strings.Replace(humanUnits(n, 1000), "K", "k", 1) }

func humanUnits(n, base uint64) string {
	if n < base {
		return strconv.FormatUint(n, 10)
	}
	v := float64(n)
	for _, unit := range []string{"K", "M", "G", "T", "P"} {
		v /= float64(base)
		if v < float64(base) || unit == "P" {
			if v < 10 {
				return strconv.FormatFloat(v, 'f', 1, 64) + unit
			}
			return strconv.FormatFloat(v, 'f', 0, 64) + unit
		}
	}
	return strconv.FormatUint(n, 10) // not reached
}

func humanAge(d time.Duration) string {
	switch {
	case d <= 0:
		return "?"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%02dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// printable shows a string read from another process (a socket path in a
// segment, a process name) as is when it is plain printable text, quoted
// with escapes otherwise: a hostile process must not get to send escape
// sequences to the operator's terminal, nor to fake table columns.
func printable(s string) string {
	if s == "" {
		return "-"
	}
	plain := utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) || r == '"' })
	if plain {
		return s
	}
	return strconv.QuoteToASCII(s)
}
