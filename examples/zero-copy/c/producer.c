/*
 * producer.c - the zero-copy example in C (examples/README.md): messages
 * built in place in the ring and answers read in place, against the Go
 * consumer (`go run ./examples/zero-copy/go consumer --listen PATH`).
 *
 *   goipc-zero-copy-c --dial PATH [-n N] [--size B]
 *
 * For each message k: goipc_reserve gets B bytes of the ring, byte i is
 * written there as (k + i) mod 256, goipc_commit publishes them. The
 * consumer answers with the 8-byte little-endian sum of the bytes, which
 * goipc_recv_view lets us read where it lies; goipc_release gives its space
 * back. Exit status 0 if every sum matches.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <goipc.h>

static int fail(const char *what, long k, int32_t st)
{
    fprintf(stderr, "producer: message %ld: %s: %s (%s)\n", k, what, goipc_strerror(st), goipc_last_error_message());
    return 1;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long n = 1000, size = 65536;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--dial") == 0)
            path = argv[i + 1];
        else if (strcmp(argv[i], "-n") == 0)
            n = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--size") == 0)
            size = strtol(argv[i + 1], NULL, 10);
    }
    if (path == NULL || n < 0 || size < 0 || argc % 2 == 0) {
        fprintf(stderr, "usage: %s --dial PATH [-n N] [--size B]\n", argv[0]);
        return 2;
    }

    goipc_conn conn;
    int32_t st = goipc_dial(path, 10000, &conn);
    if (st != GOIPC_OK)
        return fail("dial", -1, st);

    for (long k = 0; k < n; k++) {
        void *space;
        if ((st = goipc_reserve(conn, (size_t)size, -1, &space)) != GOIPC_OK)
            return fail("reserve", k, st);
        unsigned char *msg = space;
        uint64_t want = 0;
        for (long i = 0; i < size; i++) {
            msg[i] = (unsigned char)(k + i);
            want += msg[i];
        }
        if ((st = goipc_commit(conn, (size_t)size)) != GOIPC_OK)
            return fail("commit", k, st);

        const void *view;
        size_t len;
        if ((st = goipc_recv_view(conn, &view, &len, 10000)) != GOIPC_OK)
            return fail("receive the sum", k, st);
        uint64_t got = 0;
        for (size_t b = len == 8 ? 8 : 0; b > 0; b--)
            got = got << 8 | ((const unsigned char *)view)[b - 1];
        if ((st = goipc_release(conn)) != GOIPC_OK)
            return fail("release", k, st);
        if (got != want) {
            fprintf(stderr, "producer: message %ld: the consumer summed %" PRIu64 ", want %" PRIu64 "\n", k, got, want);
            return 1;
        }
    }
    goipc_conn_close(conn);
    printf("producer c: %ld messages of %ld bytes built and answered in place\n", n, size);
    return 0;
}
