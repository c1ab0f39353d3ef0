/*
 * ping.c - the ping-pong example in C (examples/README.md): a producer that
 * times round trips to a consumer that echoes every message. It is the one
 * C ping program: the C peer of `goipc bench --peers c` (bench/peers.go,
 * docs/BENCHMARKS.md "Cross-language rows"), the producer of `make bench-c`
 * (bindings/c/bench.sh) and of the C tests against Go. Built by `make
 * build` (mk/capi.mk) into build/c/ping and build/bin/goipc-ping-c, with
 * pkg-config like any program using the library.
 *
 *   ping [--transport goipc|unix] --path PATH [--size N] [--iters N]
 *        [--warmup N] [--typed] [--call] [--threads N] [--spin NS]
 *        [--timeout-ms MS]
 *
 * (--dial is another name for --path, -n for --iters.) The consumer
 * listens on PATH and answers every message: `goipc pong`, the Go example
 * (`go run ./examples/ping-pong/go pong`) or pong.c next to this file. This
 * program connects to it and does warmup + iters round trips (defaults
 * 1000 + 10000) of SIZE bytes (default 64):
 *
 *   goipc  through libgoipc: goipc_dial_ex, then goipc_send + goipc_recv,
 *          an exact echo expected. With --typed each message is the kit's
 *          FlatBuffers Ping with a SIZE-byte payload (goipc_send_ping) and
 *          the answer a Pong with the same seq and payload
 *          (goipc_recv_pong). With --call each round trip is one call, a
 *          request answered by its reply (goipc_call, or goipc_call_ping
 *          with --typed): one call into Go instead of two; --threads N
 *          makes the calls from N threads at once on the one connection,
 *          each checking that it got the reply to its own request (the
 *          interop matrix's calls scenario). Each send and
 *          receive waits at most --timeout-ms (default -1: wait forever,
 *          as blocking socket I/O does; the library returns PEER_CLOSED if
 *          the consumer goes away, so nothing hangs; a finite timeout
 *          costs a clock read per call). --spin sets how long a waiting
 *          side spins before it sleeps (goipc_options.spin_ns);
 *   unix   a plain AF_UNIX SOCK_STREAM socket: write the SIZE bytes, read
 *          SIZE bytes back (`pong --transport unix` or `goipc bench`).
 *
 * The warm-up round trips come first, then the timed ones; with threads,
 * round trip i is made by thread i mod N. PATH may also be a nats://
 * address (docs/NATS.md): libgoipc dials it through a NATS server.
 *
 * Each round trip after the warm-up is timed with CLOCK_MONOTONIC; every
 * reply (warm-up included) must equal what was sent byte for byte (each
 * message carries its sequence number in its first 8 bytes). It prints one
 * JSON line on stdout:
 *
 *   {"lang":"c","transport":"goipc","size":64,"iters":10000,"typed":false,
 *    "call":false,"threads":1,"p50_ns":...,"p90_ns":...,"p99_ns":...,"p999_ns":...,
 *    "max_ns":...,"per_s":...}
 *
 * (per_s: timed round trips per second of wall time) or, on any failure,
 * {"lang":"c",...,"error":"..."} and exit status 1 (2 for a bad command
 * line).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "goipc.h"

/* Whatever the peer was asked, echoed in every JSON line. */
static const char *g_transport = "";
static long long g_size = 0, g_iters = 0, g_threads = 1;
static int g_typed = 0, g_call = 0;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Writes s as a JSON string (quotes included). */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_head(FILE *f)
{
    fputs("{\"lang\":\"c\",\"transport\":", f);
    json_string(f, g_transport);
    fprintf(f, ",\"size\":%lld,\"iters\":%lld,\"typed\":%s,\"call\":%s,\"threads\":%lld", g_size, g_iters,
            g_typed ? "true" : "false", g_call ? "true" : "false", g_threads);
}

/* Prints the error line and returns 1 (the exit status). */
__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "c ping: %s\n", msg);
    json_head(stdout);
    fputs(",\"error\":", stdout);
    json_string(stdout, msg);
    fputs("}\n", stdout);
    fflush(stdout);
    return 1;
}

static void usage(const char *why)
{
    fprintf(stderr,
            "c ping: %s\n"
            "usage: ping [--transport goipc|unix] --path PATH [--size N] [--iters N] [--warmup N]\n"
            "            [--typed] [--call] [--threads N] [--spin NS] [--timeout-ms MS]\n",
            why);
    exit(2);
}

/* An integer argument, at least min. */
static long long num_arg(const char *name, const char *s, long long min)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s || v < min) {
        fprintf(stderr, "c ping: %s: %s is not an integer >= %lld\n", name, s, min);
        usage("bad argument");
    }
    return v;
}

/* ---- the two transports ------------------------------------------------ */

/* One connection: send message seq (len bytes), receive len bytes into
 * reply. Returns 0, or -1 after writing a description into err. With
 * --threads the threads share it (goipc calls only: each reply goes to
 * its own caller). */
struct transport {
    int (*roundtrip)(struct transport *t, uint64_t seq, const unsigned char *msg, unsigned char *reply, size_t len,
                     char *err, size_t errlen);
    void (*close)(struct transport *t);
    goipc_conn conn;
    int64_t timeout_ms;
    int fd;
};

/* The four ways through libgoipc: raw or typed (Ping/Pong), send + recv or
 * one call. A typed answer must also carry seq back. */
static int goipc_roundtrip(struct transport *t, uint64_t seq, const unsigned char *msg, unsigned char *reply,
                           size_t len, char *err, size_t errlen)
{
    int32_t st;
    size_t got = 0;
    uint64_t pong_seq = seq;
    const char *what;
    if (g_call) {
        what = g_typed ? "goipc_call_ping" : "goipc_call";
        st = g_typed ? goipc_call_ping(t->conn, seq, msg, len, &pong_seq, reply, len, &got, t->timeout_ms)
                     : goipc_call(t->conn, msg, len, reply, len, &got, t->timeout_ms);
    } else {
        st = g_typed ? goipc_send_ping(t->conn, seq, msg, len, t->timeout_ms)
                     : goipc_send(t->conn, msg, len, t->timeout_ms);
        if (st != GOIPC_OK) {
            snprintf(err, errlen, "%s: %s (%s)", g_typed ? "goipc_send_ping" : "goipc_send", goipc_strerror(st),
                     goipc_last_error_message());
            return -1;
        }
        what = g_typed ? "goipc_recv_pong" : "goipc_recv";
        st = g_typed ? goipc_recv_pong(t->conn, &pong_seq, reply, len, &got, t->timeout_ms)
                     : goipc_recv(t->conn, reply, len, &got, t->timeout_ms);
    }
    if (st == GOIPC_ERR_BUFFER_TOO_SMALL) {
        snprintf(err, errlen, "reply of %zu bytes, sent %zu", got, len);
        return -1;
    }
    if (st != GOIPC_OK) {
        snprintf(err, errlen, "%s: %s (%s)", what, goipc_strerror(st), goipc_last_error_message());
        return -1;
    }
    if (pong_seq != seq) {
        snprintf(err, errlen, "a Pong with seq %llu, sent a Ping with seq %llu", (unsigned long long)pong_seq,
                 (unsigned long long)seq);
        return -1;
    }
    if (got != len) {
        snprintf(err, errlen, "reply of %zu bytes, sent %zu", got, len);
        return -1;
    }
    return 0;
}

static void goipc_close(struct transport *t)
{
    goipc_conn_close(t->conn);
}

static int full_io(int fd, unsigned char *buf, size_t len, int writing, char *err, size_t errlen)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = writing ? write(fd, buf + done, len - done) : read(fd, buf + done, len - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", writing ? "write" : "read", strerror(errno));
            return -1;
        }
        if (r == 0) {
            snprintf(err, errlen, "read: the consumer closed the socket after %zu of %zu bytes", done, len);
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

static int unix_roundtrip(struct transport *t, uint64_t seq, const unsigned char *msg, unsigned char *reply,
                          size_t len, char *err, size_t errlen)
{
    (void)seq; /* it is in the message's first bytes */
    if (full_io(t->fd, (unsigned char *)msg, len, 1, err, errlen) != 0)
        return -1;
    return full_io(t->fd, reply, len, 0, err, errlen);
}

static void unix_close(struct transport *t)
{
    close(t->fd);
}

static int open_goipc(struct transport *t, const char *path, size_t size, int64_t spin_ns, char *err, size_t errlen)
{
    goipc_options opts;
    goipc_options_init(&opts);
    opts.spin_ns = spin_ns;
    /* The consumer listens with max(1 MiB, size); the default is 1 MiB. A
     * Ping or Pong needs room for its fields around the payload. */
    size_t need = size + (g_typed ? 128 : 0);
    if (need > 1024 * 1024)
        opts.max_message_size = need;
    int32_t st = goipc_dial_ex(path, &opts, 10000, &t->conn);
    if (st != GOIPC_OK) {
        snprintf(err, errlen, "goipc_dial %s: %s (%s)", path, goipc_strerror(st), goipc_last_error_message());
        return -1;
    }
    t->roundtrip = goipc_roundtrip;
    t->close = goipc_close;
    return 0;
}

static int open_unix(struct transport *t, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        snprintf(err, errlen, "socket path too long: %s", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* The consumer listens before starting us; retry briefly all the same. */
    for (int attempt = 0;; attempt++) {
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0)
            break;
        if ((errno == ENOENT || errno == ECONNREFUSED || errno == EINTR) && attempt < 500) {
            struct timespec pause = {0, 10 * 1000 * 1000};
            nanosleep(&pause, NULL);
            continue;
        }
        snprintf(err, errlen, "connect %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    t->fd = fd;
    t->roundtrip = unix_roundtrip;
    t->close = unix_close;
    return 0;
}

/* ---- statistics --------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least permille/1000 of them at
 * or below it (integer arithmetic, so that 99.9% is exact). */
static uint64_t percentile(const uint64_t *sorted, size_t n, unsigned permille)
{
    size_t rank = ((size_t)permille * n + 999) / 1000;
    if (rank < 1)
        rank = 1;
    return sorted[(rank <= n ? rank : n) - 1];
}

/* The payload pattern; each message then gets its sequence number stamped
 * (little-endian) into its first 8 bytes. */
static void fill(unsigned char *msg, size_t len)
{
    for (size_t j = 0; j < len; j++)
        msg[j] = (unsigned char)(j * 131 + 7);
}

/* One thread's share of a phase: round trips from, from + step, ... below
 * to, each reply checked; with rtt, each one's time is stored there. */
struct worker {
    struct transport *t;
    long long from, to, step;
    size_t len;
    uint64_t *rtt; /* NULL: not timed (the warm-up) */
    size_t count;
    int failed;
    char err[1024];
};

static void *work(void *arg)
{
    struct worker *w = arg;
    size_t len = w->len;
    unsigned char *msg = malloc(len + 1), *reply = malloc(len + 1);
    if (msg == NULL || reply == NULL) {
        w->failed = 1;
        snprintf(w->err, sizeof w->err, "out of memory");
        goto out;
    }
    fill(msg, len);
    char err[768];
    for (long long i = w->from; i < w->to; i += w->step) {
        for (size_t j = 0; j < 8 && j < len; j++)
            msg[j] = (unsigned char)((uint64_t)i >> (8 * j));
        memset(reply, 0, len < 16 ? len : 16); /* a stale buffer must not pass the check */
        uint64_t t0 = now_ns();
        if (w->t->roundtrip(w->t, (uint64_t)i, msg, reply, len, err, sizeof err) != 0) {
            w->failed = 1;
            snprintf(w->err, sizeof w->err, "round trip %lld: %s", i, err);
            break;
        }
        uint64_t t1 = now_ns();
        if (memcmp(reply, msg, len) != 0) {
            size_t at = 0;
            while (reply[at] == msg[at])
                at++;
            w->failed = 1;
            snprintf(w->err, sizeof w->err,
                     "round trip %lld: the reply differs from what was sent at byte %zu (0x%02x, want 0x%02x)", i, at,
                     reply[at], msg[at]);
            break;
        }
        if (w->rtt != NULL)
            w->rtt[w->count++] = t1 - t0;
    }
out:
    free(msg);
    free(reply);
    return NULL;
}

/* Round trips from..to-1 on g_threads threads; with rtt, their times end
 * up at its front. Returns 0, or -1 with the first failure in err. */
static int phase(struct transport *t, long long from, long long to, size_t len, uint64_t *rtt, char *err,
                 size_t errlen)
{
    long long n = g_threads;
    struct worker *w = calloc((size_t)n, sizeof *w);
    pthread_t *tid = calloc((size_t)n, sizeof *tid);
    if (w == NULL || tid == NULL) {
        free(w);
        free(tid);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t share = (size_t)((to - from) / n + 1); /* the most round trips one thread makes */
    uint64_t *times = rtt != NULL ? malloc((size_t)n * share * sizeof *times) : NULL;
    int rc = 0;
    if (rtt != NULL && times == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
        n = 0;
    }
    long long started = 0;
    for (long long g = 0; g < n; g++) {
        w[g] = (struct worker){.t = t, .from = from + g, .to = to, .step = n, .len = len,
                               .rtt = times != NULL ? times + (size_t)g * share : NULL};
        if (n == 1) { /* no thread of its own: the round trip stays on main's */
            work(&w[g]);
        } else if (pthread_create(&tid[g], NULL, work, &w[g]) != 0) {
            w[g].failed = 1;
            snprintf(w[g].err, sizeof w[g].err, "pthread_create failed");
            break;
        }
        started++;
    }
    size_t total = 0;
    for (long long g = 0; g < started; g++) {
        if (n > 1)
            pthread_join(tid[g], NULL);
        if (w[g].failed && rc == 0) {
            snprintf(err, errlen, "%s", w[g].err);
            rc = -1;
        }
        if (times != NULL) {
            memcpy(rtt + total, w[g].rtt, w[g].count * sizeof *rtt);
            total += w[g].count;
        }
    }
    if (started < n && rc == 0) {
        snprintf(err, errlen, "%s", w[started].err);
        rc = -1;
    }
    free(times);
    free(w);
    free(tid);
    return rc;
}

int main(int argc, char **argv)
{
    const char *transport = "goipc", *path = NULL;
    long long size = 64, iters = 10000, warmup = 1000, spin = 0, timeout = -1, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            usage("help");
        if (strcmp(argv[i], "--typed") == 0) {
            g_typed = 1;
            continue;
        }
        if (strcmp(argv[i], "--call") == 0) {
            g_call = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage("missing value");
        const char *name = argv[i], *val = argv[++i];
        if (strcmp(name, "--transport") == 0)
            transport = val;
        else if (strcmp(name, "--path") == 0 || strcmp(name, "--dial") == 0)
            path = val;
        else if (strcmp(name, "--size") == 0)
            size = num_arg(name, val, 0);
        else if (strcmp(name, "--iters") == 0 || strcmp(name, "-n") == 0)
            iters = num_arg(name, val, 1);
        else if (strcmp(name, "--warmup") == 0)
            warmup = num_arg(name, val, 0);
        else if (strcmp(name, "--threads") == 0)
            threads = num_arg(name, val, 1);
        else if (strcmp(name, "--spin") == 0)
            spin = num_arg(name, val, 0);
        else if (strcmp(name, "--timeout-ms") == 0)
            timeout = num_arg(name, val, -1);
        else
            usage("unknown flag");
    }
    if (path == NULL)
        usage("--path is required");
    /* Replies to plain messages are not addressed: two receivers on one
     * connection would get each other's answers. */
    if (threads > 1 && !g_call)
        usage("--threads needs --call");
    g_transport = transport;
    g_size = size;
    g_iters = iters;
    g_threads = threads;

    char err[1024];
    struct transport t;
    memset(&t, 0, sizeof t);
    t.timeout_ms = timeout;
    if (strcmp(transport, "goipc") == 0) {
        if (open_goipc(&t, path, (size_t)size, spin, err, sizeof err) != 0)
            return fail("%s", err);
    } else if ((g_typed || g_call) && strcmp(transport, "unix") == 0) {
        return fail("--typed and --call need --transport goipc");
    } else if (strcmp(transport, "unix") == 0) {
        if (open_unix(&t, path, err, sizeof err) != 0)
            return fail("%s", err);
    } else {
        return fail("unknown transport \"%s\" (goipc or unix)", transport);
    }

    uint64_t *rtt = malloc((size_t)iters * sizeof *rtt);
    if (rtt == NULL) {
        t.close(&t);
        return fail("out of memory (%lld iterations)", iters);
    }
    int rc = 0;
    uint64_t start = 0, elapsed = 0;
    if (phase(&t, 0, warmup, (size_t)size, NULL, err, sizeof err) != 0) {
        rc = fail("%s", err);
    } else {
        start = now_ns();
        if (phase(&t, warmup, warmup + iters, (size_t)size, rtt, err, sizeof err) != 0)
            rc = fail("%s", err);
        elapsed = now_ns() - start;
    }
    t.close(&t);
    if (rc == 0) {
        size_t n = (size_t)iters;
        qsort(rtt, n, sizeof *rtt, cmp_u64);
        json_head(stdout);
        printf(",\"p50_ns\":%llu,\"p90_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu,\"max_ns\":%llu,\"per_s\":%.0f}\n",
               (unsigned long long)percentile(rtt, n, 500), (unsigned long long)percentile(rtt, n, 900),
               (unsigned long long)percentile(rtt, n, 990), (unsigned long long)percentile(rtt, n, 999),
               (unsigned long long)rtt[n - 1], elapsed > 0 ? (double)n * 1e9 / (double)elapsed : 0.0);
        fflush(stdout);
    }
    free(rtt);
    return rc;
}
