/*
 * epoll_ping.c - the event-loop example in C (examples/README.md): one C
 * thread, many connections. Dials a goipc consumer that echoes (the Go
 * one of this scenario, `go run ./examples/event-loop/go server --listen
 * PATH`, or `goipc pong --listen PATH`) CONNS times, then runs ROUNDS
 * round trips on every connection at once from a single epoll loop over
 * the connections' descriptors (goipc_conn_fd; the loop is epoll_mux.h
 * next to this file). Every answer is checked byte for byte. Built by
 * `make build` into build/c/epoll_ping.
 *
 *   build/c/epoll_ping --dial PATH [-c CONNS] [-n ROUNDS] [--size BYTES] [--ring BYTES] [--sweep IDLE_US]
 *
 * --sweep IDLE_US adds the loop sweeper (goipc.h, "The loop sweeper"):
 * while replies keep coming the loop sweeps the waiting connections
 * instead of sleeping in epoll_wait, and arms their descriptors once
 * none came for IDLE_US microseconds (500 is a good start for a busy
 * loop; docs/C_API.md has numbers).
 *
 * Defaults: 100 connections, 1000 rounds, 64-byte messages, 64 KiB rings
 * (a segment is allocated in full: 2 rings per connection). Prints the
 * throughput and how many epoll wakeups it took; exit status 0 if every
 * round trip succeeded.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epoll_mux.h"
#include "goipc.h"

static void usage(void)
{
    fprintf(stderr, "usage: epoll_ping --dial PATH [-c CONNS] [-n ROUNDS] [--size BYTES] [--ring BYTES] [--sweep IDLE_US]\n");
    exit(2);
}

static long long num_arg(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long long conns = 100, rounds = 1000, size = 64, ring = 65536, sweep_us = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--dial") == 0)
            path = argv[i + 1];
        else if (strcmp(argv[i], "-c") == 0)
            conns = num_arg(argv[i + 1]);
        else if (strcmp(argv[i], "-n") == 0)
            rounds = num_arg(argv[i + 1]);
        else if (strcmp(argv[i], "--size") == 0)
            size = num_arg(argv[i + 1]);
        else if (strcmp(argv[i], "--ring") == 0)
            ring = num_arg(argv[i + 1]);
        else if (strcmp(argv[i], "--sweep") == 0)
            sweep_us = num_arg(argv[i + 1]);
        else
            usage();
    }
    if (argc % 2 == 0 || path == NULL || conns < 1 || conns > 100000 || rounds < 1 || size < 8 || size > ring / 4 ||
        sweep_us > 1000000)
        usage();

    goipc_options opts;
    goipc_options_init(&opts);
    opts.ring_size = (uint64_t)ring;
    opts.max_message_size = (uint64_t)size;
    goipc_conn *c = calloc((size_t)conns, sizeof *c);
    if (c == NULL)
        return 1;
    long long opened = 0;
    int rc = 1;
    for (; opened < conns; opened++) {
        int32_t st = goipc_dial_ex(path, &opts, 10000, &c[opened]);
        if (st != GOIPC_OK) {
            fprintf(stderr, "epoll_ping: dial %s (connection %lld): %s (%s)\n", path, opened, goipc_strerror(st),
                    goipc_last_error_message());
            goto out;
        }
    }
    mux_stats stats;
    char err[512];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (mux_run(c, (uint32_t)conns, (uint32_t)rounds, (size_t)size, (uint32_t)sweep_us, 10000, &stats, err,
                sizeof err) != 0) {
        fprintf(stderr, "epoll_ping: %s\n", err);
        goto out;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("c epoll_ping: %lld connections x %lld round trips of %lld B, every reply checked, one thread\n", conns,
           rounds, size);
    printf("throughput: %.0f round trips/s; epoll wakeups %" PRIu64 " (%" PRIu64 " found nothing)",
           (double)stats.round_trips / secs, stats.wakeups, stats.spurious);
    if (sweep_us > 0)
        printf("; sweeps %" PRIu64 ", arms %" PRIu64 " (idle %lld us)", stats.sweeps, stats.arms, sweep_us);
    printf("\n");
    rc = 0;
out:
    for (long long i = 0; i < opened; i++)
        goipc_conn_close(c[i]);
    free(c);
    return rc;
}
