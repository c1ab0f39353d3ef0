/*
 * server.c - the server side of the request/response example in C
 * (examples/README.md): answers calls with goipc_recv_request and
 * goipc_reply, from several threads on each connection. The service
 * squares numbers: a request is a uint64 x (8 bytes, little-endian), its
 * reply x*x.
 *
 *   request-response-c-server --listen PATH [--clients K] [--threads W]
 *
 * Serves K connections (default 1), one after the other, each with W
 * threads (default 4) that take requests and answer them: a thread that
 * takes a request answers it while the others take the next ones, so
 * replies may leave in another order than the requests came (the call ids
 * route them). Prints "listening on PATH" once ready and, when K clients
 * have come and gone, how many calls it answered; exit status 0 unless a
 * call failed.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <goipc.h>

#define MAX_WORKERS 64

typedef struct worker {
    goipc_conn conn; /* shared by the connection's workers */
    atomic_ullong *answered;
    int32_t status; /* what ended this worker: GOIPC_ERR_PEER_CLOSED when all went well */
    char err[256];
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    for (;;) {
        unsigned char req[8], reply[8];
        uint64_t call = 0;
        size_t len = 0;
        /* Waits for the next request (-1: as long as it takes); the peer
         * closing the connection ends the wait with GOIPC_ERR_PEER_CLOSED. */
        int32_t st = goipc_recv_request(w->conn, &call, req, sizeof req, &len, -1);
        if (st == GOIPC_OK && len != 8) {
            snprintf(w->err, sizeof w->err, "a request is 8 bytes, got %zu", len);
            st = GOIPC_ERR_PROTOCOL;
        } else if (st == GOIPC_ERR_BUFFER_TOO_SMALL) {
            snprintf(w->err, sizeof w->err, "a request is 8 bytes, got %zu", len);
        }
        if (st != GOIPC_OK) {
            w->status = st;
            return NULL;
        }
        uint64_t x = 0;
        for (int b = 7; b >= 0; b--)
            x = x << 8 | req[b];
        uint64_t y = x * x;
        for (int b = 0; b < 8; b++)
            reply[b] = (unsigned char)(y >> (8 * b));
        if ((st = goipc_reply(w->conn, call, reply, sizeof reply, -1)) != GOIPC_OK) {
            w->status = st;
            return NULL;
        }
        atomic_fetch_add(w->answered, 1);
    }
}

/* Serves one connection with n workers until the peer closes it; returns 0
 * if that is how it ended. */
static int serve_conn(goipc_conn conn, int n, atomic_ullong *answered)
{
    worker workers[MAX_WORKERS];
    pthread_t tids[MAX_WORKERS];
    int started = 0, rc = 0;
    for (; started < n; started++) {
        workers[started] = (worker){.conn = conn, .answered = answered};
        if (pthread_create(&tids[started], NULL, work, &workers[started]) != 0) {
            fprintf(stderr, "server: pthread_create failed\n");
            rc = 1;
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        if (workers[i].status != GOIPC_ERR_PEER_CLOSED) {
            fprintf(stderr, "server: %s (%s)\n", goipc_strerror(workers[i].status),
                    workers[i].err[0] ? workers[i].err : goipc_last_error_message());
            rc = 1;
        }
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long clients = 1, threads = 4;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            path = argv[i + 1];
        else if (strcmp(argv[i], "--clients") == 0)
            clients = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = strtol(argv[i + 1], NULL, 10);
        else
            path = NULL;
    }
    if (path == NULL || argc % 2 == 0 || clients < 1 || threads < 1 || threads > MAX_WORKERS) {
        fprintf(stderr, "usage: %s --listen PATH [--clients K] [--threads 1..%d]\n", argv[0], MAX_WORKERS);
        return 2;
    }

    goipc_listener ln;
    int32_t st = goipc_listen(path, &ln);
    if (st != GOIPC_OK) {
        fprintf(stderr, "server: listen %s: %s (%s)\n", path, goipc_strerror(st), goipc_last_error_message());
        return 1;
    }
    printf("listening on %s\n", path);
    fflush(stdout);

    atomic_ullong answered = 0;
    int rc = 0;
    for (long k = 0; k < clients && rc == 0; k++) {
        goipc_conn conn;
        if ((st = goipc_accept(ln, -1, &conn)) != GOIPC_OK) {
            fprintf(stderr, "server: accept: %s (%s)\n", goipc_strerror(st), goipc_last_error_message());
            rc = 1;
            break;
        }
        rc = serve_conn(conn, (int)threads, &answered);
        goipc_conn_close(conn);
    }
    goipc_listener_close(ln);
    if (rc == 0)
        printf("server c: %ld clients, %llu calls answered\n", clients, (unsigned long long)atomic_load(&answered));
    return rc;
}
