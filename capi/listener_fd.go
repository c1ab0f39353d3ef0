package main

/*
#include <stdint.h>
#include "goipc.h"
#include "shim.h"
*/
import "C"

// goipc_listener_fd: the listener's pollable descriptor (Listener.NotifyFD).

//export capi_listener_fd
func capi_listener_fd(h C.uint64_t, out *C.int, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupListener(h, t)
	if e == nil {
		return st
	}
	if out == nil {
		return invalid(t, "goipc_listener_fd: fd must not be NULL")
	}
	fd, err := e.l.NotifyFD()
	if err != nil {
		return fail(t, err)
	}
	*out = C.int(fd)
	return C.GOIPC_OK
}

// goipc_listener_dropped_errors: Listener.DroppedErrors.

//export capi_listener_dropped_errors
func capi_listener_dropped_errors(h C.uint64_t, out *C.uint64_t, t *C.goipc_tls) (st C.int32_t) {
	defer recoverPanic(&st, t)
	maybePanic()
	e, st := lookupListener(h, t)
	if e == nil {
		return st
	}
	if out == nil {
		return invalid(t, "goipc_listener_dropped_errors: count must not be NULL")
	}
	*out = C.uint64_t(e.l.DroppedErrors())
	return C.GOIPC_OK
}
