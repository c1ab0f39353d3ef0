/*
 * client.c - the request/response example in C (examples/README.md):
 * several threads call at once on one shared connection with goipc_call,
 * against a server that squares numbers (the Go one:
 * `go run ./examples/request-response/go server --listen PATH`, or
 * server.c next to this file).
 *
 *   request-response-c-client --dial PATH [--threads T] [-n N]
 *
 * Thread t sends x = t*1000000 + i (a uint64, 8 bytes little-endian) for
 * i = 0..N-1 and checks that the reply is x*x: every request of the run
 * is different, so a reply routed to the wrong thread fails the check.
 * Prints one line and exits 0 when every reply matched its request.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <goipc.h>

/* Keeps x below 2^32: x*x fits in 64 bits, no two requests share a reply. */
#define MAX_CALLS 1000000L
#define MAX_THREADS 4000L

typedef struct caller {
    goipc_conn conn; /* shared by every caller */
    long thread, calls;
    char err[256]; /* empty when every call succeeded */
} caller;

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int b = 0; b < 8; b++)
        p[b] = (unsigned char)(v >> (8 * b));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--)
        v = v << 8 | p[b];
    return v;
}

static void *run_caller(void *arg)
{
    caller *c = arg;
    unsigned char req[8], reply[8];
    for (long i = 0; i < c->calls; i++) {
        uint64_t x = (uint64_t)c->thread * MAX_CALLS + (uint64_t)i;
        put_u64(req, x);
        size_t got = 0;
        /* One call into the library per round trip: sends the request
         * with a fresh call id and waits (up to 10 s) for the reply with
         * that id, whichever thread's reply arrives first. */
        int32_t st = goipc_call(c->conn, req, sizeof req, reply, sizeof reply, &got, 10000);
        if (st != GOIPC_OK) {
            snprintf(c->err, sizeof c->err, "thread %ld, call %ld: %s (%s)", c->thread, i, goipc_strerror(st),
                     goipc_last_error_message());
            return NULL;
        }
        if (got != 8 || get_u64(reply) != x * x) {
            snprintf(c->err, sizeof c->err, "thread %ld, call %ld: sent %" PRIu64 ", got a reply of %zu bytes: %" PRIu64,
                     c->thread, i, x, got, got == 8 ? get_u64(reply) : 0);
            return NULL;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long threads = 8, n = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--dial") == 0)
            path = argv[i + 1];
        else if (strcmp(argv[i], "--threads") == 0)
            threads = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "-n") == 0)
            n = strtol(argv[i + 1], NULL, 10);
        else
            path = NULL;
    }
    if (path == NULL || argc % 2 == 0 || threads < 1 || threads > MAX_THREADS || n < 0 || n > MAX_CALLS) {
        fprintf(stderr, "usage: %s --dial PATH [--threads 1..%ld] [-n 0..%ld]\n", argv[0], MAX_THREADS, MAX_CALLS);
        return 2;
    }

    goipc_conn conn;
    int32_t st = goipc_dial(path, 10000, &conn);
    if (st != GOIPC_OK) {
        fprintf(stderr, "client: dial %s: %s (%s)\n", path, goipc_strerror(st), goipc_last_error_message());
        return 1;
    }
    caller *callers = calloc((size_t)threads, sizeof *callers);
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    if (callers == NULL || tids == NULL)
        return 1;
    long started = 0;
    for (; started < threads; started++) {
        callers[started] = (caller){.conn = conn, .thread = started, .calls = n};
        if (pthread_create(&tids[started], NULL, run_caller, &callers[started]) != 0) {
            snprintf(callers[started].err, sizeof callers[started].err, "pthread_create failed");
            break;
        }
    }
    int rc = 0;
    for (long t = 0; t < threads; t++) {
        if (t < started)
            pthread_join(tids[t], NULL);
        if (callers[t].err[0] != '\0') {
            fprintf(stderr, "client: %s\n", callers[t].err);
            rc = 1;
        }
    }
    goipc_conn_close(conn);
    free(callers);
    free(tids);
    if (rc == 0)
        printf("client c: %ld threads x %ld calls on one connection, every reply matched its request\n", threads, n);
    return rc;
}
