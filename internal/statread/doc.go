// Package statread finds the live goipc connections of this host and
// reads their counters, for `goipc stat` (docs/STAT.md).
//
// It reads a segment the way an outsider must: through a file descriptor
// opened on /proc/PID/fd/N, with pread, 4 KiB of control area at most.
// The dialing end holds that descriptor; the accepting end holds only a
// mapping (listed in /proc/PID/maps) and is read through its dialer's
// descriptor on the same segment. It
// never maps a segment (the memfd of a hostile process may be unsealed and
// shrink under a mapping, which would raise SIGBUS) and never writes one.
// Every value it reads is untrusted: ParseControl checks the whole header
// before anything is derived from it, and a segment that fails the check
// is reported as unreadable with the reason, never followed.
//
// The package is internal on purpose: the stable interface for tools is
// the JSON of `goipc stat --json`, which any language can read, while this
// package's types follow the segment layout and change with it. Inside one
// Go process, (*goipc.Conn).Stats gives the same counters without /proc.
//
// The offsets come from internal/layout, the definition the core uses too.
// The header check is this package's own (it reports a reason where the
// core refuses to map); goipc's statread_test.go builds real segments and
// checks that this package decodes every field goipc wrote and refuses the
// headers the core refuses, so the two cannot drift apart silently.
package statread
