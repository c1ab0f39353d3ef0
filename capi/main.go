// Command capi is the C ABI of goipc, built with
//
//	go build -buildmode=c-shared -o build/lib/libgoipc.so ./capi
//
// (see mk/capi.mk, which also applies the version script libgoipc.map so
// that only the goipc_* functions of include/goipc.h are exported).
//
// The layering:
//
//	include/goipc.h   the contract: types, status codes, documented functions
//	goipc_shim.c      defines every goipc_* function of the header (so any
//	                  drift is a compile error), keeps the thread-local error
//	                  state, and forwards to one internal Go export per call
//	capi.go           the internal //export capi_* functions: validate
//	                  arguments and handles, call package goipc, map errors
//	handles.go        the handle table (generation counters; never trusts a
//	                  handle value from C)
//	status.go         the one table from goipc sentinel errors to status codes
//
// Every export recovers from panics and returns GOIPC_ERR_SYSTEM instead:
// an unrecovered panic in a c-shared library would abort the host process.
package main

func main() {}
