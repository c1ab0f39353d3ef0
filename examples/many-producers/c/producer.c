/*
 * producer.c - the many-producers example in C (examples/README.md): one of
 * the producers a Go consumer serves at once
 * (`go run ./examples/many-producers/go consumer --listen PATH --producers K`).
 *
 *   goipc-many-producers-c --dial PATH --name NAME [-n N]
 *
 * Sends "NAME i" for i = 0..N-1, then "done", and checks the consumer's
 * answer: the number of messages it received from this connection (8
 * bytes, little-endian). Exit status 0 if it matches.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <goipc.h>

static int fail(const char *what, int32_t st)
{
    fprintf(stderr, "producer: %s: %s (%s)\n", what, goipc_strerror(st), goipc_last_error_message());
    return 1;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *name = "c";
    long n = 10000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--dial") == 0)
            path = argv[i + 1];
        else if (strcmp(argv[i], "--name") == 0)
            name = argv[i + 1];
        else if (strcmp(argv[i], "-n") == 0)
            n = strtol(argv[i + 1], NULL, 10);
    }
    if (path == NULL || n < 0 || argc % 2 == 0) {
        fprintf(stderr, "usage: %s --dial PATH --name NAME [-n N]\n", argv[0]);
        return 2;
    }

    goipc_conn conn;
    int32_t st = goipc_dial(path, 10000, &conn);
    if (st != GOIPC_OK)
        return fail("dial", st);

    char msg[128];
    for (long i = 0; i < n; i++) {
        int len = snprintf(msg, sizeof msg, "%s %ld", name, i);
        /* Waits while the ring is full (-1: no time limit): backpressure. */
        if ((st = goipc_send(conn, msg, (size_t)len, -1)) != GOIPC_OK)
            return fail("send", st);
    }
    if ((st = goipc_send(conn, "done", 4, -1)) != GOIPC_OK)
        return fail("send done", st);

    unsigned char answer[8];
    size_t got = 0;
    if ((st = goipc_recv(conn, answer, sizeof answer, &got, 10000)) != GOIPC_OK)
        return fail("receive the count", st);
    uint64_t counted = 0;
    for (int b = 7; b >= 0; b--)
        counted = counted << 8 | answer[b];
    goipc_conn_close(conn);
    if (got != 8 || counted != (uint64_t)n) {
        fprintf(stderr, "producer %s: sent %ld messages, the consumer counted %" PRIu64 "\n", name, n, counted);
        return 1;
    }
    printf("producer %s: %ld messages, the consumer counted %" PRIu64 "\n", name, n, counted);
    return 0;
}
