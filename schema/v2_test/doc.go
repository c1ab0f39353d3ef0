// Package v2test is TEST ONLY. It checks the schema evolution rules of
// schema/goipc.fbs in both directions against goipc_v2.fbs, a pretend
// future version whose generated code is in gen/go (also test-only: nothing
// outside schema/v2_test may import it). See docs/MESSAGES.md.
package v2test
