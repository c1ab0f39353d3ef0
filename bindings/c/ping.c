/*
 * ping.c - a C producer: dials a goipc consumer (for example the Go one,
 * `goipc pong --listen PATH`), sends N messages, checks that every answer
 * is byte for byte what was sent, and prints round-trip percentiles.
 *
 *   build/c/ping --dial PATH [-n N] [--size BYTES] [--warmup W] [--spin NS]
 *                [--timeout-ms MS] [--typed] [--call]
 *
 * By default each message is SIZE raw bytes (stamped with its sequence
 * number) and the answer must be an exact echo: one goipc_send and one
 * goipc_recv per round trip, one call into Go each. With --typed it sends
 * the kit's FlatBuffers Ping with a SIZE-byte payload (goipc_send_ping) and
 * expects a Pong with the same seq and payload (goipc_recv_pong); `goipc
 * pong` answers both kinds. With --call each round trip is one call (a
 * request answered by its reply: goipc_call, or goipc_call_ping with
 * --typed), one call into Go. Each send and receive waits at most
 * --timeout-ms (default 10000; -1 waits forever, as blocking socket I/O
 * does: `make bench-c` uses that, and it also spares the library a clock
 * read per call). Exit status 0 if every round trip succeeded and matched.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "goipc.h"
#include "latency.h"

static void usage(void)
{
    fprintf(stderr, "usage: ping --dial PATH [-n N] [--size BYTES] [--warmup W] [--spin NS] [--timeout-ms MS] [--typed] [--call]\n");
    exit(2);
}

static long long num_arg(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        usage();
    return v;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long long n = 100000, size = 64, warmup = 1000, spin = 0, timeout = 10000;
    int typed = 0, call = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--call") == 0) {
            call = 1;
            continue;
        }
        if (strcmp(argv[i], "--typed") == 0) {
            typed = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--dial") == 0)
            path = argv[++i];
        else if (strcmp(argv[i], "-n") == 0)
            n = num_arg(argv[++i]);
        else if (strcmp(argv[i], "--size") == 0)
            size = num_arg(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0)
            warmup = num_arg(argv[++i]);
        else if (strcmp(argv[i], "--spin") == 0)
            spin = num_arg(argv[++i]);
        else if (strcmp(argv[i], "--timeout-ms") == 0)
            timeout = num_arg(argv[++i]);
        else
            usage();
    }
    if (path == NULL || n <= 0 || size < 0 || warmup < 0)
        usage();

    goipc_options opts;
    goipc_options_init(&opts);
    opts.spin_ns = spin;
    if ((uint64_t)size + 128 > 1024 * 1024) /* room for a Pong around the payload */
        opts.max_message_size = (uint64_t)size + 128;

    goipc_conn c;
    int32_t st = goipc_dial_ex(path, &opts, 10000, &c);
    if (st != GOIPC_OK) {
        fprintf(stderr, "ping: dial %s: %s (%s)\n", path, goipc_strerror(st), goipc_last_error_message());
        return 1;
    }
    unsigned char *msg = malloc((size_t)size + 1), *reply = malloc((size_t)size + 1);
    uint64_t *rtt = malloc((size_t)n * sizeof *rtt);
    if (msg == NULL || reply == NULL || rtt == NULL) {
        fprintf(stderr, "ping: out of memory\n");
        return 1;
    }
    for (long long i = 0; i < size; i++)
        msg[i] = (unsigned char)(i * 7 + 3);

    int rc = 0;
    uint64_t start = 0;
    for (long long i = 0; i < warmup + n; i++) {
        if (i == warmup)
            start = lat_now_ns();
        if (size >= 8)
            memcpy(msg, &i, sizeof i); /* a sequence number, checked in the answer */
        uint64_t t0 = lat_now_ns(), seq = 0;
        size_t got = 0;
        if (call) {
            st = typed ? goipc_call_ping(c, (uint64_t)i, msg, (size_t)size, &seq, reply, (size_t)size, &got, timeout)
                       : goipc_call(c, msg, (size_t)size, reply, (size_t)size, &got, timeout);
        } else {
            st = typed ? goipc_send_ping(c, (uint64_t)i, msg, (size_t)size, timeout)
                       : goipc_send(c, msg, (size_t)size, timeout);
            if (st != GOIPC_OK) {
                fprintf(stderr, "ping: send %lld: %s (%s)\n", i, goipc_strerror(st), goipc_last_error_message());
                rc = 1;
                break;
            }
            st = typed ? goipc_recv_pong(c, &seq, reply, (size_t)size, &got, timeout)
                       : goipc_recv(c, reply, (size_t)size, &got, timeout);
        }
        uint64_t t1 = lat_now_ns();
        if (st != GOIPC_OK) {
            fprintf(stderr, "ping: receive %lld: %s (%s)\n", i, goipc_strerror(st), goipc_last_error_message());
            rc = 1;
            break;
        }
        if (got != (size_t)size || memcmp(reply, msg, (size_t)size) != 0 || (typed && seq != (uint64_t)i)) {
            fprintf(stderr, "ping: answer %lld differs from what was sent (%zu bytes, want %lld)\n", i, got, size);
            rc = 1;
            break;
        }
        if (i >= warmup)
            rtt[i - warmup] = t1 - t0;
    }
    if (rc == 0) {
        uint64_t elapsed = lat_now_ns() - start;
        if (typed)
            printf("c ping: %lld Ping/Pong %s with a %lld B payload to %s\n", n, call ? "calls" : "round trips", size, path);
        else
            printf("c ping: %lld %s of %lld B to %s\n", n, call ? "calls" : "round trips", size, path);
        lat_report(stdout, rtt, (size_t)n, elapsed);
    }
    goipc_conn_close(c);
    free(msg);
    free(reply);
    free(rtt);
    return rc;
}
