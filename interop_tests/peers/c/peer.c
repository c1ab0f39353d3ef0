/*
 * peer.c - the C peer of the interop matrix (interop_tests/run.py), built
 * against libgoipc.so with the typed Ping/Pong helpers of goipc.h. Same
 * command line and JSON lines as every other peer (docs/INTEROP.md):
 *
 *   peer consumer --listen PATH [--protocol-version V] [--once] [--calls]
 *   peer producer --dial PATH --scenario NAME [--n N] [--size B]
 *                 [--rounds R] [--ring-size BYTES] [--max-message BYTES]
 *                 [--protocol-version V] [--snapshot FILE]
 *
 * Only what is test-only lives here: the scenarios sizes, burst, stream
 * (the kill points), version and layout, and a consumer that reports each
 * connection's end. The pingpong and calls scenarios run the ping-pong
 * example, examples/ping-pong/c/ping.c, the program users read.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "goipc.h"

/* ---- The documented constants this peer depends on -------------------- */

/* Status codes (include/goipc.h, docs/C_API.md): the values are part of the
 * ABI, so a change of any of them must break this build. */
_Static_assert(GOIPC_ABI_VERSION == 1, "ABI version");
_Static_assert(GOIPC_OK == 0, "GOIPC_OK");
_Static_assert(GOIPC_ERR_INVALID_ARGUMENT == 1, "GOIPC_ERR_INVALID_ARGUMENT");
_Static_assert(GOIPC_ERR_TIMEOUT == 2, "GOIPC_ERR_TIMEOUT");
_Static_assert(GOIPC_ERR_CLOSED == 3, "GOIPC_ERR_CLOSED");
_Static_assert(GOIPC_ERR_PEER_CLOSED == 4, "GOIPC_ERR_PEER_CLOSED");
_Static_assert(GOIPC_ERR_MESSAGE_TOO_LARGE == 5, "GOIPC_ERR_MESSAGE_TOO_LARGE");
_Static_assert(GOIPC_ERR_BUFFER_TOO_SMALL == 6, "GOIPC_ERR_BUFFER_TOO_SMALL");
_Static_assert(GOIPC_ERR_PROTOCOL == 7, "GOIPC_ERR_PROTOCOL");
_Static_assert(GOIPC_ERR_PERMISSION == 8, "GOIPC_ERR_PERMISSION");
_Static_assert(GOIPC_ERR_SYSTEM == 9, "GOIPC_ERR_SYSTEM");
_Static_assert(GOIPC_ERR_ADDRESS_IN_USE == 10, "GOIPC_ERR_ADDRESS_IN_USE");
_Static_assert(GOIPC_ERR_NOT_SUPPORTED == 11, "GOIPC_ERR_NOT_SUPPORTED");
_Static_assert(GOIPC_ERR_LIMIT == 12, "GOIPC_ERR_LIMIT");
#define STATUS_COUNT 13

static const char *const status_names[STATUS_COUNT] = {
    "ok",        "invalid_argument", "timeout",    "closed", "peer_closed",    "message_too_large",
    "buffer_too_small", "protocol",  "permission", "system", "address_in_use", "not_supported",
    "limit",
};

/* Layout v2 (the diagram in internal/layout/layout.go, docs/LAYOUT.md) and
 * the Ping bytes (docs/MESSAGES.md). */
enum {
    L_HELLO_SIZE = 32,
    L_PROTOCOL_VERSION = 2,
    L_LAYOUT_VERSION = 2,
    L_OFF_LAYOUT = 0x008,
    L_OFF_CONTROL_SIZE = 0x00C,
    L_OFF_SEG_SIZE = 0x010,
    L_OFF_MAX_MESSAGE = 0x018,
    L_OFF_FLAGS = 0x01C,
    L_OFF_CREATOR_PID = 0x020,
    L_OFF_ACCEPTOR_PID = 0x024,
    L_OFF_RING0_OFF = 0x028,
    L_OFF_RING0_CAP = 0x030,
    L_OFF_RING1_OFF = 0x038,
    L_OFF_RING1_CAP = 0x040,
    L_OFF_CREATED_NS = 0x048,
    L_OFF_PROTOCOL = 0x050,
    L_OFF_RESERVED54 = 0x054, /* 40 zero bytes up to ready */
    L_OFF_READY = 0x07C,
    L_OFF_RING0_CTL = 0x080,
    L_OFF_RING1_CTL = 0x180,
    L_RING_CTL_SIZE = 0x100,
    L_OFF_PATH_LEN = 0x280,
    L_OFF_PATH = 0x284,
    L_MAX_PATH = 108,
    L_OFF_RESERVED2F0 = 0x2F0, /* zero up to the control size */
    L_CONTROL_SIZE = 0x1000,
    /* Ring control block: the producer's block, then the consumer's. */
    L_CTL_HEAD = 0x00,
    L_CTL_DATA_EC = 0x08,
    L_CTL_PROD_MSGS = 0x10,
    L_CTL_PROD_BYTES = 0x18,
    L_CTL_PROD_PARKS = 0x20,
    L_CTL_PROD_WAKES = 0x28,
    L_CTL_PROD_END = 0x30, /* reserved up to the consumer's block */
    L_CTL_TAIL = 0x80,
    L_CTL_SPACE_EC = 0x88,
    L_CTL_CONS_MSGS = 0x90,
    L_CTL_CONS_BYTES = 0x98,
    L_CTL_CONS_PARKS = 0xA0,
    L_CTL_CONS_WAKES = 0xA8,
    L_CTL_CONS_END = 0xB0, /* reserved up to the block's end */
    L_CACHE_BLOCK = 128,
    L_EC_EPOCH_SHIFT = 32,
    L_EC_EPOCH_HALF = 4, /* the futex word: the epoch, the 32-bit half at +4 */
    L_FRAME_HEADER = 8,
    L_FRAME_ALIGN = 8,
    L_KIND_MESSAGE = 0,
    L_BODY_TYPE_OFF = 23,
    L_BODY_PING = 1,
    L_PING_SEQ_OFF = 56,
    L_PING_VEC_BASE = 64,
    L_SEQ = 42,
};
#define L_HELLO_MAGIC UINT64_C(0x53482d4350494f47) /* "GOIPC-HS" */
#define L_SEG_MAGIC UINT64_C(0x4d48534350494f47)   /* "GOIPCSHM" */
#define L_SEG_READY UINT32_C(0x59444552)           /* "REDY" */
#define L_EC_WAITERS_MASK UINT64_C(0x7fffffff)     /* eventcount bits 0-30: futex waiters */
#define L_EC_DOORBELL (UINT64_C(1) << 31)           /* bit 31: doorbell flag; 32-63: epoch */
_Static_assert(L_OFF_PROTOCOL + 4 == L_OFF_RESERVED54 && L_OFF_RESERVED54 + 40 == L_OFF_READY,
               "40 reserved bytes between the protocol version and ready");
_Static_assert(L_OFF_READY + 4 == L_OFF_RING0_CTL, "ready is the last header word");
_Static_assert(L_OFF_RING1_CTL - L_OFF_RING0_CTL == L_RING_CTL_SIZE && L_RING_CTL_SIZE == 0x100,
               "ring control blocks are 256 bytes");
_Static_assert(L_OFF_RING1_CTL + L_RING_CTL_SIZE == L_OFF_PATH_LEN, "the path length follows the control blocks");
_Static_assert(L_OFF_PATH_LEN + 4 == L_OFF_PATH && L_OFF_PATH + L_MAX_PATH == L_OFF_RESERVED2F0,
               "the path bytes fill up to 0x2F0");
_Static_assert(L_OFF_CREATED_NS % 8 == 0 && L_CTL_PROD_MSGS % 8 == 0 && L_CTL_CONS_MSGS % 8 == 0,
               "64-bit words are 8-byte aligned");
_Static_assert(L_CTL_HEAD / L_CACHE_BLOCK == 0 && (L_CTL_PROD_END - 1) / L_CACHE_BLOCK == 0,
               "the producer's words on the first 128-byte block");
_Static_assert(L_CTL_TAIL / L_CACHE_BLOCK == 1 && (L_CTL_CONS_END - 1) / L_CACHE_BLOCK == 1,
               "the consumer's words on the second 128-byte block");
_Static_assert((L_EC_WAITERS_MASK & L_EC_DOORBELL) == 0 && (L_EC_WAITERS_MASK | L_EC_DOORBELL) == UINT32_MAX,
               "waiters and doorbell fill the eventcount's low half");
_Static_assert(L_EC_EPOCH_SHIFT == 8 * L_EC_EPOCH_HALF, "the epoch (futex word) is the high half");

/* goipc.h: a Ping with an n-byte payload is 64 + ((n + 11) & ~7) bytes, a Pong 72 + ... */
static size_t ping_size(size_t n) { return 64 + ((n + 11) & ~(size_t)7); }
static size_t pong_size(size_t n) { return 72 + ((n + 11) & ~(size_t)7); }
static size_t frame_size(size_t n) { return (L_FRAME_HEADER + n + L_FRAME_ALIGN - 1) & ~(size_t)(L_FRAME_ALIGN - 1); }

/* ---- Output: JSON lines ---------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static const char *status_name(int32_t st)
{
    return st >= 0 && st < STATUS_COUNT ? status_names[st] : "unknown";
}

/* The result of a producer scenario. */
typedef struct {
    int ok;
    int32_t status; /* -1: none */
    char error[1024];
    char extra[1024]; /* further JSON members, ",\"k\":v..." */
} result;

static void set_fail(result *r, int32_t st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    r->ok = 0;
    r->status = st;
}

/* A failed goipc call: its status and message. */
static void set_fail_st(result *r, int32_t st, const char *what)
{
    set_fail(r, st, "%s: %s: %s", what, goipc_strerror(st), goipc_last_error_message());
}

/* Puts prefix before the error message (truncating the end if need be). */
static void prefix_error(result *r, const char *prefix)
{
    char prev[sizeof r->error];
    memcpy(prev, r->error, sizeof prev);
    size_t pl = strnlen(prefix, sizeof r->error - 1);
    size_t ql = strnlen(prev, sizeof r->error - 1 - pl);
    memcpy(r->error, prefix, pl);
    memcpy(r->error + pl, prev, ql);
    r->error[pl + ql] = 0;
}

static void add_extra(result *r, const char *fmt, ...)
{
    size_t used = strlen(r->extra);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->extra + used, sizeof r->extra - used, fmt, ap);
    va_end(ap);
}

static void emit_result(const char *scenario, const result *r)
{
    printf("{\"event\":\"result\",\"lang\":\"c\",\"scenario\":");
    json_str(stdout, scenario);
    printf(",\"ok\":%s", r->ok ? "true" : "false");
    if (r->status >= 0)
        printf(",\"status\":\"%s\"", status_name(r->status));
    if (r->error[0]) {
        printf(",\"error\":");
        json_str(stdout, r->error);
    }
    printf("%s}\n", r->extra);
    fflush(stdout);
}

/* ---- Arguments ------------------------------------------------------- */

typedef struct {
    const char *listen, *dial, *scenario, *snapshot;
    long long n, size, rounds, ring_size, max_message, proto;
    int once, calls;
} args;

static void usage(void)
{
    fprintf(stderr, "usage: peer consumer|producer [flags] (see docs/INTEROP.md)\n");
    exit(2);
}

static long long num(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        usage();
    return v;
}

static args parse(int argc, char **argv)
{
    args a = {.n = 100000, .size = 32, .rounds = 20};
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        if (strcmp(k, "--once") == 0 || strcmp(k, "--calls") == 0) {
            a.once |= strcmp(k, "--once") == 0;
            a.calls |= strcmp(k, "--calls") == 0;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(k, "--listen") == 0)
            a.listen = v;
        else if (strcmp(k, "--dial") == 0)
            a.dial = v;
        else if (strcmp(k, "--scenario") == 0)
            a.scenario = v;
        else if (strcmp(k, "--snapshot") == 0)
            a.snapshot = v;
        else if (strcmp(k, "--n") == 0 || strcmp(k, "-n") == 0)
            a.n = num(v);
        else if (strcmp(k, "--size") == 0)
            a.size = num(v);
        else if (strcmp(k, "--rounds") == 0)
            a.rounds = num(v);
        else if (strcmp(k, "--ring-size") == 0)
            a.ring_size = num(v);
        else if (strcmp(k, "--max-message") == 0)
            a.max_message = num(v);
        else if (strcmp(k, "--protocol-version") == 0)
            a.proto = num(v);
        else
            usage();
    }
    if (a.n < 0 || a.size < 0 || a.rounds < 0)
        usage();
    return a;
}

/* ---- Helpers --------------------------------------------------------- */

#define CALL_TIMEOUT_MS 10000

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The payload of a Ping with sequence number seq and n bytes is
 * pattern[seq % 251 .. seq % 251 + n], pattern[i] = i*7 + 3 (every peer). */
static unsigned char *pattern;
static size_t pattern_len;

static const unsigned char *payload_for(uint64_t seq, size_t n)
{
    if (pattern_len < n + 251) {
        free(pattern);
        pattern_len = n + 251;
        pattern = malloc(pattern_len);
        if (pattern == NULL) {
            fprintf(stderr, "peer: out of memory\n");
            exit(1);
        }
        for (size_t i = 0; i < pattern_len; i++)
            pattern[i] = (unsigned char)(i * 7 + 3);
    }
    return pattern + seq % 251;
}

static unsigned char *reply_buf;
static size_t reply_cap;

static void reserve_reply(size_t n)
{
    if (reply_cap < n) {
        free(reply_buf);
        reply_cap = n;
        reply_buf = malloc(n ? n : 1);
        if (reply_buf == NULL) {
            fprintf(stderr, "peer: out of memory\n");
            exit(1);
        }
    }
}

static int32_t dial(const args *a, goipc_conn *c)
{
    goipc_options o;
    goipc_options_init(&o);
    o.ring_size = (uint64_t)a->ring_size;
    o.max_message_size = (uint64_t)a->max_message;
    o.protocol_version_override = (uint32_t)a->proto;
    return goipc_dial_ex(a->dial, &o, CALL_TIMEOUT_MS, c);
}

/* Receives the Pong answering seq and checks its payload. */
static int recv_check(result *r, goipc_conn c, uint64_t seq, size_t size)
{
    reserve_reply(size);
    uint64_t got_seq = 0;
    size_t len = 0;
    int32_t st = goipc_recv_pong(c, &got_seq, reply_buf, reply_cap, &len, CALL_TIMEOUT_MS);
    if (st != GOIPC_OK) {
        char what[64];
        snprintf(what, sizeof what, "receive Pong %" PRIu64, seq);
        set_fail_st(r, st, what);
        return -1;
    }
    if (got_seq != seq) {
        set_fail(r, -1, "Pong answers seq %" PRIu64 ", want %" PRIu64 " (lost or reordered)", got_seq, seq);
        return -1;
    }
    if (len != size || memcmp(reply_buf, payload_for(seq, size), size) != 0) {
        set_fail(r, -1, "Pong %" PRIu64 " payload (%zu B) differs from the Ping's (%zu B)", seq, len, size);
        return -1;
    }
    return 0;
}

static int round_trip(result *r, goipc_conn c, uint64_t seq, size_t size)
{
    int32_t st = goipc_send_ping(c, seq, payload_for(seq, size), size, CALL_TIMEOUT_MS);
    if (st != GOIPC_OK) {
        char what[64];
        snprintf(what, sizeof what, "send Ping %" PRIu64, seq);
        set_fail_st(r, st, what);
        return -1;
    }
    return recv_check(r, c, seq, size);
}

/* ---- Scenarios ------------------------------------------------------- */

static size_t max_payload(size_t max_msg)
{
    size_t n = max_msg;
    while (n > 0 && pong_size(n) > max_msg)
        n--;
    return n;
}

static void sc_sizes(const args *a, result *r)
{
    goipc_conn c;
    int32_t st = dial(a, &c);
    if (st != GOIPC_OK)
        {
            set_fail_st(r, st, "dial");
            return;
        }
    size_t max_msg = 0;
    if ((st = goipc_conn_max_message_size(c, &max_msg)) != GOIPC_OK) {
        set_fail_st(r, st, "goipc_conn_max_message_size");
        goipc_conn_close(c);
        return;
    }
    size_t maxp = max_payload(max_msg);
    size_t sizes[] = {0, 1, 63, 64, 4095, 4096, 65536, maxp};
    uint64_t seq = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes && r->ok; k++)
        for (int j = 0; j < 3 && r->ok; j++, seq++)
            if (round_trip(r, c, seq, sizes[k]) != 0) {
                char prefix[64];
                snprintf(prefix, sizeof prefix, "payload %zu B: ", sizes[k]);
                prefix_error(r, prefix);
            }
    if (r->ok) {
        size_t big = maxp;
        while (ping_size(big) <= max_msg)
            big++;
        st = goipc_send_ping(c, seq, payload_for(seq, big), big, CALL_TIMEOUT_MS);
        if (st != GOIPC_ERR_MESSAGE_TOO_LARGE)
            set_fail(r, st, "a Ping with a %zu B payload (%zu B > max %zu B) gave %s, want message too large", big,
                     ping_size(big), max_msg, goipc_strerror(st));
        else if (round_trip(r, c, seq, 64) == 0)
            add_extra(r,
                      ",\"sizes\":[0,1,63,64,4095,4096,65536,%zu],\"max_message\":%zu,\"max_payload\":%zu,"
                      "\"too_large_payload\":%zu,\"round_trips\":%" PRIu64,
                      maxp, max_msg, maxp, big, seq + 1);
    }
    goipc_conn_close(c);
}

static void sc_burst(const args *a, result *r)
{
    goipc_conn c;
    int32_t st = dial(a, &c);
    if (st != GOIPC_OK)
        {
            set_fail_st(r, st, "dial");
            return;
        }
    size_t size = (size_t)a->size;
    uint64_t seq = 0, next = 0;
    long long max_burst = 0;
    for (long long round = 0; round < a->rounds && r->ok; round++) {
        long long burst = 0;
        for (;;) {
            st = goipc_send_ping(c, seq, payload_for(seq, size), size, 0);
            if (st == GOIPC_ERR_TIMEOUT)
                break; /* the ring is full: backpressure */
            if (st != GOIPC_OK) {
                set_fail_st(r, st, "send Ping");
                break;
            }
            seq++;
            if (++burst > 10000000) {
                set_fail(r, -1, "round %lld: 10M Pings sent and the ring never filled", round);
                break;
            }
        }
        if (r->ok && burst == 0)
            set_fail(r, -1, "round %lld: the ring was full before the first Ping", round);
        if (burst > max_burst)
            max_burst = burst;
        for (; next < seq && r->ok; next++)
            recv_check(r, c, next, size);
    }
    if (r->ok)
        add_extra(r, ",\"messages\":%" PRIu64 ",\"rounds\":%lld,\"ring_full\":%lld,\"max_burst\":%lld,\"ring_size\":%lld",
                  seq, a->rounds, a->rounds, max_burst, a->ring_size);
    goipc_conn_close(c);
}

static void sc_stream(const args *a, result *r)
{
    goipc_conn c;
    int32_t st = dial(a, &c);
    if (st != GOIPC_OK)
        {
            set_fail_st(r, st, "dial");
            return;
        }
    uint64_t i = 0;
    for (;; i++) {
        if (i == (uint64_t)a->n) {
            printf("{\"event\":\"streaming\",\"lang\":\"c\",\"round_trips\":%" PRIu64 "}\n", i);
            fflush(stdout);
        }
        if (round_trip(r, c, i, (size_t)a->size) != 0)
            break;
    }
    add_extra(r, ",\"round_trips\":%" PRIu64, i);
    if (r->status == GOIPC_ERR_PEER_CLOSED)
        r->ok = 1;
    else
        prefix_error(r, "want peer closed, got: ");
    goipc_conn_close(c);
}

static void sc_version(const args *a, result *r)
{
    goipc_conn c;
    int32_t st = dial(a, &c);
    if (st == GOIPC_OK) {
        goipc_conn_close(c);
        {
            set_fail(r, -1, "dial succeeded; want a protocol version mismatch");
            return;
        }
    }
    const char *msg = goipc_last_error_message();
    if (st != GOIPC_ERR_PROTOCOL || strstr(msg, "version") == NULL)
        {
            set_fail(r, st, "want a protocol error naming the version, got %s: %s", goipc_strerror(st), msg);
            return;
        }
    r->status = st;
    add_extra(r, ",\"message\":");
    size_t used = strlen(r->extra);
    /* msg holds no quotes or backslashes in practice; escape anyway. */
    char esc[600];
    size_t k = 0;
    for (const char *s = msg; *s && k + 2 < sizeof esc; s++) {
        if (*s == '"' || *s == '\\')
            esc[k++] = '\\';
        esc[k++] = (*s >= 0x20) ? *s : ' ';
    }
    esc[k] = 0;
    snprintf(r->extra + used, sizeof r->extra - used, "\"%s\"", esc);
}

static uint64_t rd(const unsigned char *b, size_t off, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | b[off + (size_t)i];
    return v;
}

static void check(result *r, const char *what, uint64_t got, uint64_t want)
{
    if (got == want)
        return;
    char line[160];
    snprintf(line, sizeof line, "%s%s: got %#" PRIx64 ", want %#" PRIx64, r->ok ? "" : "; ", what, got, want);
    r->ok = 0;
    strncat(r->error, line, sizeof r->error - strlen(r->error) - 1);
}

/* check, for the field named "<scope> <field><detail>". */
static void check_in(result *r, const char *scope, const char *field, const char *detail, uint64_t got, uint64_t want)
{
    char what[128];
    snprintf(what, sizeof what, "%s %s%s", scope, field, detail);
    check(r, what, got, want);
}

/* Each byte of b[from..to) is zero. */
static void check_zero(result *r, const char *what, const unsigned char *b, size_t from, size_t to)
{
    for (size_t off = from; off < to; off++)
        if (b[off] != 0) {
            char line[160];
            snprintf(line, sizeof line, "%s: byte %#zx", what, off);
            check(r, line, b[off], 0);
            return;
        }
}

/* What the dialer knows about its own connection. */
typedef struct {
    const char *path; /* the path it dialed */
    size_t ring_size, max_msg;
    int64_t now_ns; /* wall clock, to judge the creation time */
} snapshot_want;

#define L_DAY_NS (INT64_C(24) * 60 * 60 * 1000000000)

static void check_snapshot(result *r, const unsigned char *b, size_t len, const snapshot_want *w)
{
    static const unsigned char payload[13] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    size_t frame = frame_size(ping_size(sizeof payload));
    if (len != L_HELLO_SIZE + L_CONTROL_SIZE + frame)
        {
            set_fail(r, -1, "snapshot is %zu bytes, want %zu (hello, control area, one Ping frame)", len,
                        (size_t)(L_HELLO_SIZE + L_CONTROL_SIZE) + frame);
            return;
        }
    const unsigned char *h = b, *s = b + L_HELLO_SIZE, *m = s + L_CONTROL_SIZE + L_FRAME_HEADER;
    check(r, "hello magic", rd(h, 0, 8), L_HELLO_MAGIC);
    check(r, "hello protocol version", rd(h, 8, 4), L_PROTOCOL_VERSION);
    check(r, "hello layout version", rd(h, 12, 4), L_LAYOUT_VERSION);
    check(r, "hello segment size = header segment size", rd(h, 16, 8), rd(s, L_OFF_SEG_SIZE, 8));
    check(r, "hello reserved", rd(h, 24, 8), 0);
    check(r, "segment magic", rd(s, 0, 8), L_SEG_MAGIC);
    check(r, "layout version", rd(s, L_OFF_LAYOUT, 4), L_LAYOUT_VERSION);
    check(r, "control size", rd(s, L_OFF_CONTROL_SIZE, 4), L_CONTROL_SIZE);
    check(r, "max message size", rd(s, L_OFF_MAX_MESSAGE, 4), w->max_msg);
    check(r, "flags", rd(s, L_OFF_FLAGS, 4), 0);
    check(r, "creator pid", rd(s, L_OFF_CREATOR_PID, 4), (uint64_t)getpid());
    /* A goipc listener writes its pid here when it accepts; the capture is
     * not one and writes nothing into the segment. */
    check(r, "acceptor pid (the capture writes nothing)", rd(s, L_OFF_ACCEPTOR_PID, 4), 0);
    uint64_t cap0 = rd(s, L_OFF_RING0_CAP, 8), cap1 = rd(s, L_OFF_RING1_CAP, 8);
    check(r, "ring 0 data offset", rd(s, L_OFF_RING0_OFF, 8), L_CONTROL_SIZE);
    check(r, "ring 0 capacity", cap0, w->ring_size);
    check(r, "ring 1 data offset", rd(s, L_OFF_RING1_OFF, 8), L_CONTROL_SIZE + cap0);
    check(r, "ring 1 capacity", cap1, w->ring_size);
    check(r, "segment size", rd(s, L_OFF_SEG_SIZE, 8), L_CONTROL_SIZE + cap0 + cap1);
    int64_t created = (int64_t)rd(s, L_OFF_CREATED_NS, 8);
    check(r, "created (unix ns) is within a day of now",
          created > 0 && created >= w->now_ns - L_DAY_NS && created <= w->now_ns + L_DAY_NS, 1);
    check(r, "protocol version", rd(s, L_OFF_PROTOCOL, 4), L_PROTOCOL_VERSION);
    check_zero(r, "reserved before ready", s, L_OFF_RESERVED54, L_OFF_READY);
    check(r, "ready", rd(s, L_OFF_READY, 4), L_SEG_READY);
    size_t path_len = strlen(w->path), stored = (size_t)rd(s, L_OFF_PATH_LEN, 4);
    check(r, "socket path length", stored, path_len);
    check(r, "socket path = the dialed path",
          stored == path_len && path_len <= L_MAX_PATH && memcmp(s + L_OFF_PATH, w->path, path_len) == 0, 1);
    check_zero(r, "socket path after its length", s, L_OFF_PATH + (path_len < L_MAX_PATH ? path_len : L_MAX_PATH),
               L_OFF_PATH + L_MAX_PATH);
    check_zero(r, "reserved after the path", s, L_OFF_RESERVED2F0, L_CONTROL_SIZE);

    /* One Ping published on ring 0, nothing consumed, ring 1 untouched;
     * nobody waited (the capture never does, the dialer polled its receive
     * without waiting), so every eventcount is still 0. */
    static const struct {
        const char *name;
        size_t ctl;
        int published; /* ring 0: the Ping */
    } rings[] = {{"ring 0", L_OFF_RING0_CTL, 1}, {"ring 1", L_OFF_RING1_CTL, 0}};
    static const struct {
        const char *name;
        size_t off;
    } ecs[] = {{"data eventcount", L_CTL_DATA_EC}, {"space eventcount", L_CTL_SPACE_EC}};
    for (size_t i = 0; i < sizeof rings / sizeof *rings; i++) {
        const char *ring = rings[i].name;
        const unsigned char *ctl = s + rings[i].ctl;
        int one = rings[i].published;
        check_in(r, ring, "head", "", rd(ctl, L_CTL_HEAD, 8), one ? frame : 0);
        check_in(r, ring, "messages published", "", rd(ctl, L_CTL_PROD_MSGS, 8), one ? 1 : 0);
        check_in(r, ring, "payload bytes published", "", rd(ctl, L_CTL_PROD_BYTES, 8),
                 one ? ping_size(sizeof payload) : 0);
        check_in(r, ring, "producer parks", "", rd(ctl, L_CTL_PROD_PARKS, 8), 0);
        check_in(r, ring, "producer wakeups", "", rd(ctl, L_CTL_PROD_WAKES, 8), 0);
        check_in(r, ring, "tail", "", rd(ctl, L_CTL_TAIL, 8), 0);
        check_in(r, ring, "messages consumed", "", rd(ctl, L_CTL_CONS_MSGS, 8), 0);
        check_in(r, ring, "bytes consumed", "", rd(ctl, L_CTL_CONS_BYTES, 8), 0);
        check_in(r, ring, "consumer parks", "", rd(ctl, L_CTL_CONS_PARKS, 8), 0);
        check_in(r, ring, "consumer wakeups", "", rd(ctl, L_CTL_CONS_WAKES, 8), 0);
        for (size_t e = 0; e < sizeof ecs / sizeof *ecs; e++) {
            uint64_t word = rd(ctl, ecs[e].off, 8);
            check_in(r, ring, ecs[e].name, " waiters", word & L_EC_WAITERS_MASK, 0);
            check_in(r, ring, ecs[e].name, " doorbell flag", (word & L_EC_DOORBELL) != 0, 0);
            check_in(r, ring, ecs[e].name, " epoch", word >> L_EC_EPOCH_SHIFT, 0);
            check_in(r, ring, ecs[e].name, " futex word (epoch)", rd(ctl, ecs[e].off + L_EC_EPOCH_HALF, 4), 0);
        }
        char what[64];
        snprintf(what, sizeof what, "%s producer block reserved", ring);
        check_zero(r, what, ctl, L_CTL_PROD_END, L_CTL_TAIL);
        snprintf(what, sizeof what, "%s consumer block reserved", ring);
        check_zero(r, what, ctl, L_CTL_CONS_END, L_RING_CTL_SIZE);
    }

    check(r, "frame length = Ping size", rd(s, L_CONTROL_SIZE, 4), ping_size(sizeof payload));
    check(r, "frame kind", rd(s, L_CONTROL_SIZE + 4, 4), L_KIND_MESSAGE);
    check(r, "file identifier \"GIPC\"", memcmp(m + 4, "GIPC", 4) == 0, 1);
    check(r, "body type (Ping)", m[L_BODY_TYPE_OFF], L_BODY_PING);
    check(r, "Ping seq", rd(m, L_PING_SEQ_OFF, 8), L_SEQ);
    size_t v = (4 + sizeof payload + 7) & ~(size_t)7, pad = v - ((4 + sizeof payload + 3) & ~(size_t)3);
    check(r, "payload length", rd(m, L_PING_VEC_BASE + pad, 4), sizeof payload);
    check(r, "payload bytes", memcmp(m + L_PING_VEC_BASE + pad + 4, payload, sizeof payload) == 0, 1);
}

/* Waits until the capture has hung up (it does once the snapshot is
 * written), with receives that never wait: a blocking receive would park,
 * and parking writes ring 1's consumer counters and data eventcount, which
 * the capture may be copying at that moment. Returns the last status:
 * GOIPC_ERR_PEER_CLOSED when all went well. */
static int32_t await_capture_close(goipc_conn c)
{
    uint64_t seq;
    size_t len;
    unsigned char buf[64];
    uint64_t deadline = now_ns() + (uint64_t)CALL_TIMEOUT_MS * 1000000u;
    for (;;) {
        int32_t st = goipc_recv_pong(c, &seq, buf, sizeof buf, &len, 0);
        if (st != GOIPC_ERR_TIMEOUT || now_ns() > deadline)
            return st;
        /* Polling with a deadline, as the capture polls ring 0's head. */
        nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
    }
}

static void sc_layout(const args *a, result *r)
{
    /* The library agrees with the header on the ABI version and the status
     * codes (the values themselves are _Static_asserted above). */
    check(r, "goipc_abi_version()", (uint64_t)goipc_abi_version(), GOIPC_ABI_VERSION);
    const char *unknown = goipc_strerror(STATUS_COUNT);
    for (int32_t st = 0; st < STATUS_COUNT; st++)
        if (strcmp(goipc_strerror(st), unknown) == 0) {
            char what[64];
            snprintf(what, sizeof what, "goipc_strerror(%d) is unknown to the library", st);
            check(r, what, 1, 0);
        }
    for (size_t n = 0; n <= 64; n++)
        check(r, "Ping/Pong sizes are multiples of 8", ping_size(n) % 8 + pong_size(n) % 8, 0);
    if (a->ring_size == 0 || a->snapshot == NULL)
        {
            set_fail(r, -1, "layout needs --ring-size and --snapshot");
            return;
        }

    goipc_conn c;
    int32_t st = dial(a, &c);
    if (st != GOIPC_OK)
        {
            set_fail_st(r, st, "dial the capture listener");
            return;
        }
    size_t max_msg = 0;
    goipc_conn_max_message_size(c, &max_msg);
    static const unsigned char payload[13] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    st = goipc_send_ping(c, L_SEQ, payload, sizeof payload, CALL_TIMEOUT_MS);
    if (st != GOIPC_OK) {
        goipc_conn_close(c);
        {
            set_fail_st(r, st, "send the Ping");
            return;
        }
    }
    /* The capture closes the socket once the snapshot is written. */
    st = await_capture_close(c);
    goipc_conn_close(c);
    if (st != GOIPC_ERR_PEER_CLOSED)
        {
            set_fail(r, st, "after the snapshot: want peer closed, got %s", goipc_strerror(st));
            return;
        }
    FILE *f = fopen(a->snapshot, "rb");
    if (f == NULL)
        {
            set_fail(r, -1, "open %s: %s", a->snapshot, strerror(errno));
            return;
        }
    static unsigned char snap[1 << 16];
    size_t got = fread(snap, 1, sizeof snap, f);
    fclose(f);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snapshot_want w = {.path = a->dial, .ring_size = (size_t)a->ring_size, .max_msg = max_msg,
                       .now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec};
    check_snapshot(r, snap, got, &w);
    if (r->ok)
        add_extra(r, ",\"checked\":\"status codes, constants, hello, header (pids, creation time, protocol version, "
                     "socket path), ring control blocks (positions, counters, eventcounts), frame, Ping bytes\","
                     "\"snapshot_bytes\":%zu",
                  got);
}

/* ---- Consumer -------------------------------------------------------- */

static void conn_end(int32_t st, unsigned long long n, unsigned long long malformed)
{
    printf("{\"event\":\"conn_end\",\"lang\":\"c\",\"status\":\"%s\",\"messages\":%llu,\"malformed\":%llu,\"error\":",
           status_name(st), n, malformed);
    json_str(stdout, st == GOIPC_OK ? "" : goipc_last_error_message());
    printf("}\n");
    fflush(stdout);
}

/* --calls: answers each call request, a Ping with its Pong
 * (goipc_recv_ping_request + goipc_reply_pong, built in place by the
 * library), anything else with its own bytes, as `goipc pong` does. */
static void serve_calls(goipc_conn c)
{
    unsigned long long n = 0;
    size_t max = 0;
    int32_t st = goipc_conn_max_message_size(c, &max);
    if (st == GOIPC_OK)
        reserve_reply(max); /* any request fits: a non-Ping is handed over whole */
    while (st == GOIPC_OK) {
        uint64_t call = 0, seq = 0;
        int64_t sent = 0;
        size_t len = 0;
        st = goipc_recv_ping_request(c, &call, &seq, &sent, reply_buf, reply_cap, &len, -1);
        if (st == GOIPC_ERR_BUFFER_TOO_SMALL) { /* the request stays queued */
            reserve_reply(len);
            st = GOIPC_OK;
            continue;
        }
        if (st == GOIPC_OK)
            st = goipc_reply_pong(c, call, seq, sent, 0, reply_buf, len, -1);
        else if (st == GOIPC_ERR_PROTOCOL && call != 0 && len <= reply_cap) /* not a Ping: its id and bytes are ours */
            st = goipc_reply(c, call, reply_buf, len, -1);
        if (st == GOIPC_OK)
            n++;
    }
    conn_end(st, n, 0);
    goipc_conn_close(c);
}

static void serve(goipc_conn c)
{
    unsigned long long n = 0, malformed = 0;
    int protocol_in_a_row = 0;
    int32_t st;
    for (;;) {
        uint64_t seq = 0;
        int64_t sent = 0;
        size_t len = 0;
        st = goipc_recv_ping(c, &seq, &sent, reply_buf, reply_cap, &len, -1);
        if (st == GOIPC_ERR_BUFFER_TOO_SMALL) { /* the message stays queued */
            reserve_reply(len);
            continue;
        }
        if (st == GOIPC_ERR_PROTOCOL && ++protocol_in_a_row < 3) { /* one malformed message, dropped */
            malformed++;
            continue;
        }
        if (st != GOIPC_OK)
            break;
        protocol_in_a_row = 0;
        st = goipc_send_pong(c, seq, sent, 0, reply_buf, len, -1);
        if (st != GOIPC_OK)
            break;
        n++;
    }
    conn_end(st, n, malformed);
    goipc_conn_close(c);
}

static int run_consumer(const args *a)
{
    if (a->listen == NULL)
        usage();
    goipc_options o;
    goipc_options_init(&o);
    o.protocol_version_override = (uint32_t)a->proto;
    goipc_listener l;
    int32_t st = goipc_listen_ex(a->listen, &o, &l);
    if (st != GOIPC_OK) {
        printf("{\"event\":\"listen_error\",\"lang\":\"c\",\"status\":\"%s\",\"error\":", status_name(st));
        json_str(stdout, goipc_last_error_message());
        printf("}\n");
        return 1;
    }
    reserve_reply(64 * 1024);
    printf("{\"event\":\"ready\",\"lang\":\"c\",\"path\":");
    json_str(stdout, a->listen);
    printf("}\n");
    fflush(stdout);
    for (;;) {
        goipc_conn c;
        st = goipc_accept(l, -1, &c);
        if (st == GOIPC_ERR_CLOSED)
            break;
        if (st != GOIPC_OK) {
            printf("{\"event\":\"accept_error\",\"lang\":\"c\",\"status\":\"%s\",\"error\":", status_name(st));
            json_str(stdout, goipc_last_error_message());
            printf("}\n");
            fflush(stdout);
        } else {
            if (a->calls)
                serve_calls(c); /* one client at a time: the matrix uses one per consumer */
            else
                serve(c);
        }
        if (a->once)
            break;
    }
    goipc_listener_close(l);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    args a = parse(argc, argv);
    if (strcmp(argv[1], "consumer") == 0)
        return run_consumer(&a);
    if (strcmp(argv[1], "producer") != 0 || a.dial == NULL || a.scenario == NULL)
        usage();
    static const struct {
        const char *name;
        void (*run)(const args *, result *);
    } scenarios[] = {
        {"sizes", sc_sizes},     {"burst", sc_burst},   {"stream", sc_stream},
        {"version", sc_version}, {"layout", sc_layout},
    };
    for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++)
        if (strcmp(a.scenario, scenarios[i].name) == 0) {
            result r = {.ok = 1, .status = -1};
            scenarios[i].run(&a, &r);
            emit_result(a.scenario, &r);
            return r.ok ? 0 : 1;
        }
    fprintf(stderr, "peer producer: unknown scenario %s\n", a.scenario);
    return 2;
}
