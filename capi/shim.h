/*
 * shim.h - internal declarations shared by the Go side of capi (through its
 * cgo preamble) and the C shim goipc_shim.c. Not installed, not exported.
 */
#ifndef GOIPC_CAPI_SHIM_H
#define GOIPC_CAPI_SHIM_H

#include <stdint.h>

/* Size of the thread-local error message buffer, NUL included. */
#define GOIPC_TLS_MSG_SIZE 512

/*
 * Per-thread error state. Go has no thread-local storage, so the shim
 * passes a pointer to its _Thread_local instance into every Go call, and
 * Go fills it when the call fails. Its address also identifies the calling
 * thread (for reservation and view ownership).
 */
typedef struct goipc_tls {
    int32_t err_no;
    char msg[GOIPC_TLS_MSG_SIZE];
} goipc_tls;

#endif
