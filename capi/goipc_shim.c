/*
 * goipc_shim.c - defines every public function of include/goipc.h.
 *
 * Because this file includes goipc.h, a definition whose prototype differs
 * from the header's declaration does not compile; because it calls the
 * cgo-generated prototypes of the capi_* exports (_cgo_export.h) with
 * -Wall -Wextra -Werror, an argument that no longer matches the Go side
 * does not compile either. Each public function is one call into Go.
 *
 * Also here: the thread-local error state (Go has no thread-local
 * storage), goipc_strerror and goipc_options_init (no Go call needed).
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* A public function defined here but missing from goipc.h is an error too
 * (only in this file: cgo's generated C has no prototypes). */
#pragma GCC diagnostic error "-Wmissing-prototypes"

#include "goipc.h"
#include "shim.h"
#include "_cgo_export.h"

/* The options layout is part of the ABI (other languages mirror it). */
_Static_assert(offsetof(goipc_options, struct_size) == 0, "goipc_options layout");
_Static_assert(offsetof(goipc_options, reserved0) == 4, "goipc_options layout");
_Static_assert(offsetof(goipc_options, ring_size) == 8, "goipc_options layout");
_Static_assert(offsetof(goipc_options, max_message_size) == 16, "goipc_options layout");
_Static_assert(offsetof(goipc_options, spin_ns) == 24, "goipc_options layout");
_Static_assert(offsetof(goipc_options, handshake_timeout_ms) == 32, "goipc_options layout");
_Static_assert(offsetof(goipc_options, allow_any_uid) == 40, "goipc_options layout");
_Static_assert(offsetof(goipc_options, protocol_version_override) == 44, "goipc_options layout");
_Static_assert(offsetof(goipc_options, max_conns) == 48, "goipc_options layout");
_Static_assert(offsetof(goipc_options, max_segment_size) == 56, "goipc_options layout");
_Static_assert(offsetof(goipc_options, max_mapped_bytes) == 64, "goipc_options layout");
_Static_assert(offsetof(goipc_options, max_pending_handshakes) == 72, "goipc_options layout");
_Static_assert(offsetof(goipc_options, max_inflight_calls) == 80, "goipc_options layout");
_Static_assert(offsetof(goipc_options, free_space_in_pieces) == 88, "goipc_options layout");
_Static_assert(offsetof(goipc_options, reserved1) == 92, "goipc_options layout");
_Static_assert(sizeof(goipc_options) == 96, "goipc_options layout");
/* goipc_iovec: other languages mirror it (a pointer, then a size_t). */
_Static_assert(offsetof(goipc_iovec, data) == 0, "goipc_iovec layout");
_Static_assert(offsetof(goipc_iovec, len) == sizeof(void *), "goipc_iovec layout");
_Static_assert(sizeof(goipc_iovec) == 2 * sizeof(void *), "goipc_iovec layout");
_Static_assert(sizeof(goipc_conn) == 8 && sizeof(goipc_listener) == 8, "handle size");
/* goipc_stats version 1 (capi/stats.go's statsV1Size). */
_Static_assert(sizeof(goipc_direction_stats) == 56, "goipc_direction_stats layout");
_Static_assert(offsetof(goipc_direction_stats, in_use) == 40, "goipc_direction_stats layout");
_Static_assert(offsetof(goipc_direction_stats, sender_parked) == 48, "goipc_direction_stats layout");
_Static_assert(offsetof(goipc_direction_stats, receiver_parked) == 52, "goipc_direction_stats layout");
_Static_assert(offsetof(goipc_stats, dialer) == 4, "goipc_stats layout");
_Static_assert(offsetof(goipc_stats, peer_pid) == 8, "goipc_stats layout");
_Static_assert(offsetof(goipc_stats, opened_unix_ns) == 16, "goipc_stats layout");
_Static_assert(offsetof(goipc_stats, sent) == 24, "goipc_stats layout");
_Static_assert(offsetof(goipc_stats, received) == 80, "goipc_stats layout");
_Static_assert(sizeof(goipc_stats) == 136, "goipc_stats layout");

/*
 * fork(): a child forked from a process that has loaded the Go runtime
 * hangs as soon as it calls into Go (the runtime's threads did not survive
 * the fork). A pthread_atfork child handler marks the child, and every
 * function that would call Go fails fast instead, with a message that
 * says why. posix_spawn and vfork+exec do not run the handler.
 */
static volatile int forked_child;

static void on_fork_child(void) { forked_child = 1; }

__attribute__((constructor)) static void goipc_shim_init(void) { pthread_atfork(NULL, NULL, on_fork_child); }

static int32_t fail_here(int32_t status, const char *msg);

#define FORK_GUARD()                                                                                          \
    do {                                                                                                      \
        if (__builtin_expect(forked_child, 0))                                                                \
            return fail_here(GOIPC_ERR_NOT_SUPPORTED,                                                         \
                             "goipc: not supported in a child forked from a process that loaded "             \
                             "libgoipc.so: the Go runtime does not survive fork(); use posix_spawn or exec"); \
    } while (0)

/* The default (global-dynamic) TLS model: libgoipc.so may be dlopen'ed
 * (Python ctypes), where initial-exec TLS of this size could fail. */
static _Thread_local goipc_tls tls;

int32_t goipc_abi_version(void) { return GOIPC_ABI_VERSION; }

const char *goipc_strerror(int32_t status)
{
    switch (status) {
    case GOIPC_OK:
        return "GOIPC_OK: success";
    case GOIPC_ERR_INVALID_ARGUMENT:
        return "GOIPC_ERR_INVALID_ARGUMENT: invalid argument (NULL pointer, bad handle, bad option or misuse)";
    case GOIPC_ERR_TIMEOUT:
        return "GOIPC_ERR_TIMEOUT: timed out";
    case GOIPC_ERR_CLOSED:
        return "GOIPC_ERR_CLOSED: the handle was closed";
    case GOIPC_ERR_PEER_CLOSED:
        return "GOIPC_ERR_PEER_CLOSED: the peer closed the connection or exited";
    case GOIPC_ERR_MESSAGE_TOO_LARGE:
        return "GOIPC_ERR_MESSAGE_TOO_LARGE: message larger than the connection's maximum message size";
    case GOIPC_ERR_BUFFER_TOO_SMALL:
        return "GOIPC_ERR_BUFFER_TOO_SMALL: receive buffer too small for the next message";
    case GOIPC_ERR_PROTOCOL:
        return "GOIPC_ERR_PROTOCOL: protocol error or version mismatch";
    case GOIPC_ERR_PERMISSION:
        return "GOIPC_ERR_PERMISSION: permission denied";
    case GOIPC_ERR_SYSTEM:
        return "GOIPC_ERR_SYSTEM: operating system error (see goipc_last_errno)";
    case GOIPC_ERR_ADDRESS_IN_USE:
        return "GOIPC_ERR_ADDRESS_IN_USE: a live listener already serves this path";
    case GOIPC_ERR_NOT_SUPPORTED:
        return "GOIPC_ERR_NOT_SUPPORTED: not supported on this system";
    case GOIPC_ERR_LIMIT:
        return "GOIPC_ERR_LIMIT: a listener limit is reached";
    default:
        return "goipc: unknown status code";
    }
}

int32_t goipc_last_errno(void) { return tls.err_no; }

const char *goipc_last_error_message(void) { return tls.msg; }

/* The size of version 1 of goipc_options, which goipc_options_init
 * initialises forever (see goipc.h). */
#define GOIPC_OPTIONS_V1_SIZE 48
#define GOIPC_OPTIONS_MAX_SIZE 4096

void goipc_options_init_sized(goipc_options *opts, size_t size)
{
    if (opts == NULL || size < GOIPC_OPTIONS_V1_SIZE || size > GOIPC_OPTIONS_MAX_SIZE)
        return;
    memset(opts, 0, size);
    opts->struct_size = (uint32_t)size;
}

#undef goipc_options_init
void goipc_options_init(goipc_options *opts) { goipc_options_init_sized(opts, GOIPC_OPTIONS_V1_SIZE); }

static int32_t fail_here(int32_t status, const char *msg)
{
    tls.err_no = 0;
    strncpy(tls.msg, msg, sizeof tls.msg - 1);
    tls.msg[sizeof tls.msg - 1] = '\0';
    return status;
}

/*
 * Copies the caller's options into *out, following the extensible-struct
 * rule: struct_size says how much the caller has; a caller compiled
 * against a newer, larger struct is accepted if everything this library
 * does not know about is zero. Returns GOIPC_OK, or fills tls and returns
 * GOIPC_ERR_INVALID_ARGUMENT.
 */
static int32_t copy_options(const goipc_options *in, goipc_options *out)
{
    if (in->struct_size < GOIPC_OPTIONS_V1_SIZE)
        return fail_here(GOIPC_ERR_INVALID_ARGUMENT,
                         "goipc: invalid argument: goipc_options.struct_size is too small "
                         "(initialise the struct with goipc_options_init)");
    if (in->struct_size > GOIPC_OPTIONS_MAX_SIZE)
        return fail_here(GOIPC_ERR_INVALID_ARGUMENT,
                         "goipc: invalid argument: goipc_options.struct_size is implausibly large "
                         "(initialise the struct with goipc_options_init)");
    const unsigned char *extra = (const unsigned char *)in + sizeof *out;
    for (size_t i = sizeof *out; i < in->struct_size; i++)
        if (extra[i - sizeof *out] != 0)
            return fail_here(GOIPC_ERR_NOT_SUPPORTED,
                             "goipc: not supported: goipc_options sets fields this library "
                             "version does not know (a newer goipc.h than libgoipc.so)");
    /* A version-1 caller's struct ends early: the fields it lacks stay 0
     * (their defaults). */
    memset(out, 0, sizeof *out);
    memcpy(out, in, in->struct_size < sizeof *out ? in->struct_size : sizeof *out);
    return GOIPC_OK;
}

int32_t goipc_listen(const char *path, goipc_listener *out)
{
    FORK_GUARD();
    return capi_listen((char *)path, NULL, out, &tls);
}

int32_t goipc_listen_ex(const char *path, const goipc_options *opts, goipc_listener *out)
{
    FORK_GUARD();
    goipc_options o;
    if (opts != NULL) {
        int32_t st = copy_options(opts, &o);
        if (st != GOIPC_OK)
            return st;
    }
    return capi_listen((char *)path, opts != NULL ? &o : NULL, out, &tls);
}

int32_t goipc_accept(goipc_listener l, int64_t timeout_ms, goipc_conn *out)
{
    FORK_GUARD();
    return capi_accept(l, timeout_ms, out, &tls);
}

int32_t goipc_listener_close(goipc_listener l)
{
    FORK_GUARD();
    return capi_listener_close(l, &tls);
}

int32_t goipc_listener_fd(goipc_listener l, int *fd)
{
    FORK_GUARD();
    return capi_listener_fd(l, fd, &tls);
}

int32_t goipc_listener_dropped_errors(goipc_listener l, uint64_t *count)
{
    FORK_GUARD();
    return capi_listener_dropped_errors(l, count, &tls);
}

int32_t goipc_sweeper_new(goipc_sweeper *out)
{
    FORK_GUARD();
    return capi_sweeper_new(out, &tls);
}

int32_t goipc_sweeper_free(goipc_sweeper s)
{
    FORK_GUARD();
    return capi_sweeper_free(s, &tls);
}

int32_t goipc_conn_set_sweeper(goipc_conn c, goipc_sweeper s, uint64_t token)
{
    FORK_GUARD();
    return capi_conn_set_sweeper(c, s, token, &tls);
}

int32_t goipc_sweeper_sweep(goipc_sweeper s, uint64_t *tokens, size_t cap, size_t *n)
{
    if (n != NULL)
        *n = 0; /* written on every return: here, before any can */
    FORK_GUARD();
    return capi_sweeper_sweep(s, tokens, cap, n, &tls);
}

int32_t goipc_sweeper_arm(goipc_sweeper s, uint64_t *tokens, size_t cap, size_t *n)
{
    if (n != NULL)
        *n = 0; /* written on every return: here, before any can */
    FORK_GUARD();
    return capi_sweeper_arm(s, tokens, cap, n, &tls);
}

int32_t goipc_dial(const char *path, int64_t timeout_ms, goipc_conn *out)
{
    FORK_GUARD();
    return capi_dial((char *)path, NULL, timeout_ms, out, &tls);
}

int32_t goipc_dial_ex(const char *path, const goipc_options *opts, int64_t timeout_ms, goipc_conn *out)
{
    FORK_GUARD();
    goipc_options o;
    if (opts != NULL) {
        int32_t st = copy_options(opts, &o);
        if (st != GOIPC_OK)
            return st;
    }
    return capi_dial((char *)path, opts != NULL ? &o : NULL, timeout_ms, out, &tls);
}

int32_t goipc_conn_max_message_size(goipc_conn c, size_t *out)
{
    FORK_GUARD();
    return capi_conn_max_message_size(c, out, &tls);
}

int32_t goipc_conn_fd(goipc_conn c, int *fd)
{
    FORK_GUARD();
    return capi_conn_fd(c, fd, &tls);
}

int32_t goipc_send(goipc_conn c, const void *data, size_t len, int64_t timeout_ms)
{
    FORK_GUARD();
    return capi_send(c, (void *)data, len, timeout_ms, &tls);
}

int32_t goipc_recv(goipc_conn c, void *buf, size_t cap, size_t *len, int64_t timeout_ms)
{
    FORK_GUARD();
    return capi_recv(c, buf, cap, len, timeout_ms, &tls);
}

int32_t goipc_send_batch(goipc_conn c, const goipc_iovec *msgs, size_t count, size_t *sent, int64_t timeout_ms)
{
    if (sent != NULL)
        *sent = 0; /* written on every return: here, before any can */
    FORK_GUARD();
    return capi_send_batch(c, (goipc_iovec *)msgs, count, sent, timeout_ms, &tls);
}

int32_t goipc_recv_batch(goipc_conn c, void *buf, size_t cap, size_t *sizes, size_t max_count, size_t *count,
                         int64_t timeout_ms)
{
    if (count != NULL)
        *count = 0; /* written on every return: here, before any can */
    FORK_GUARD();
    return capi_recv_batch(c, buf, cap, sizes, max_count, count, timeout_ms, &tls);
}

int32_t goipc_conn_close(goipc_conn c)
{
    FORK_GUARD();
    return capi_conn_close(c, &tls);
}

int32_t goipc_reserve(goipc_conn c, size_t len, int64_t timeout_ms, void **out_ptr)
{
    FORK_GUARD();
    if (out_ptr == NULL)
        return capi_reserve(c, len, timeout_ms, NULL, &tls); /* Go reports it (or a bad handle) */
    uintptr_t p = 0;
    int32_t st = capi_reserve(c, len, timeout_ms, &p, &tls);
    if (st == GOIPC_OK)
        *out_ptr = (void *)p;
    return st;
}

int32_t goipc_commit(goipc_conn c, size_t len)
{
    FORK_GUARD();
    return capi_commit(c, len, &tls);
}

int32_t goipc_abort_reserve(goipc_conn c)
{
    FORK_GUARD();
    return capi_abort_reserve(c, &tls);
}

int32_t goipc_recv_view(goipc_conn c, const void **out_ptr, size_t *out_len, int64_t timeout_ms)
{
    FORK_GUARD();
    if (out_ptr == NULL)
        return capi_recv_view(c, NULL, out_len, timeout_ms, &tls);
    uintptr_t p = 0;
    int32_t st = capi_recv_view(c, &p, out_len, timeout_ms, &tls);
    if (st == GOIPC_OK)
        *out_ptr = (const void *)p;
    return st;
}

int32_t goipc_release(goipc_conn c)
{
    FORK_GUARD();
    return capi_release(c, &tls);
}

/* ---- typed messages ---- */

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int32_t goipc_send_ping(goipc_conn c, uint64_t seq, const void *payload, size_t len, int64_t timeout_ms)
{
    FORK_GUARD();
    return capi_send_ping(c, seq, (void *)payload, len, monotonic_ns(), timeout_ms, &tls);
}

int32_t goipc_recv_pong(goipc_conn c, uint64_t *seq, void *buf, size_t cap, size_t *len, int64_t timeout_ms)
{
    FORK_GUARD();
    return capi_recv_pong(c, seq, buf, cap, len, timeout_ms, &tls);
}

int32_t goipc_recv_ping(goipc_conn c, uint64_t *seq, int64_t *sent_ns, void *buf, size_t cap, size_t *len,
                        int64_t timeout_ms)
{
    FORK_GUARD();
    return capi_recv_ping(c, seq, sent_ns, buf, cap, len, timeout_ms, &tls);
}

int32_t goipc_send_pong(goipc_conn c, uint64_t seq, int64_t ping_sent_ns, int64_t received_ns, const void *payload,
                        size_t len, int64_t timeout_ms)
{
    FORK_GUARD();
    return capi_send_pong(c, seq, ping_sent_ns, received_ns != 0 ? received_ns : monotonic_ns(), (void *)payload,
                          len, timeout_ms, &tls);
}

int32_t goipc_conn_stats(goipc_conn c, goipc_stats *out)
{
    FORK_GUARD();
    return capi_conn_stats(c, out, &tls);
}

/* ---- calls ---- */

int32_t goipc_call(goipc_conn c, const void *req, size_t req_len, void *resp, size_t resp_cap, size_t *resp_len,
                   int64_t timeout_ms)
{
    FORK_GUARD();
    return capi_call(c, (void *)req, req_len, resp, resp_cap, resp_len, timeout_ms, NULL, &tls);
}

int32_t goipc_call_ex(goipc_conn c, const void *req, size_t req_len, void *resp, size_t resp_cap, size_t *resp_len,
                      int64_t timeout_ms, uint64_t *pending)
{
    FORK_GUARD();
    return capi_call(c, (void *)req, req_len, resp, resp_cap, resp_len, timeout_ms, pending, &tls);
}

int32_t goipc_call_start(goipc_conn c, const void *req, size_t req_len, int64_t timeout_ms, uint64_t *pending)
{
    FORK_GUARD();
    return capi_call_start(c, (void *)req, req_len, timeout_ms, pending, &tls);
}

int32_t goipc_call_end(goipc_conn c, uint64_t call, void *resp, size_t resp_cap, size_t *resp_len, int64_t timeout_ms)
{
    FORK_GUARD();
    return capi_call_end(c, call, resp, resp_cap, resp_len, timeout_ms, &tls);
}

int32_t goipc_call_cancel(goipc_conn c, uint64_t call)
{
    FORK_GUARD();
    return capi_call_cancel(c, call, &tls);
}

int32_t goipc_conn_dropped_replies(goipc_conn c, uint64_t *out)
{
    FORK_GUARD();
    return capi_conn_dropped_replies(c, out, &tls);
}

int32_t goipc_recv_request(goipc_conn c, uint64_t *call, void *buf, size_t cap, size_t *len, int64_t timeout_ms)
{
    FORK_GUARD();
    return capi_recv_request(c, call, buf, cap, len, timeout_ms, &tls);
}

int32_t goipc_reply(goipc_conn c, uint64_t call, const void *data, size_t len, int64_t timeout_ms)
{
    FORK_GUARD();
    return capi_reply(c, call, (void *)data, len, timeout_ms, &tls);
}

int32_t goipc_call_ping(goipc_conn c, uint64_t seq, const void *payload, size_t len, uint64_t *pong_seq, void *buf,
                        size_t cap, size_t *out_len, int64_t timeout_ms)
{
    FORK_GUARD();
    return capi_call_ping(c, seq, (void *)payload, len, monotonic_ns(), pong_seq, buf, cap, out_len, timeout_ms, &tls);
}

int32_t goipc_recv_ping_request(goipc_conn c, uint64_t *call, uint64_t *seq, int64_t *sent_ns, void *buf, size_t cap,
                                size_t *len, int64_t timeout_ms)
{
    FORK_GUARD();
    return capi_recv_ping_request(c, call, seq, sent_ns, buf, cap, len, timeout_ms, &tls);
}

int32_t goipc_reply_pong(goipc_conn c, uint64_t call, uint64_t seq, int64_t ping_sent_ns, int64_t received_ns,
                         const void *payload, size_t len, int64_t timeout_ms)
{
    FORK_GUARD();
    return capi_reply_pong(c, call, seq, ping_sent_ns, received_ns != 0 ? received_ns : monotonic_ns(),
                           (void *)payload, len, timeout_ms, &tls);
}
