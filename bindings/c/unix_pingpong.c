/*
 * unix_pingpong.c - the baseline for bench-c: the same ping/pong as
 * ping.c + a goipc consumer, but over a Unix stream socket between two C
 * processes (socketpair + fork). Blocking read/write, one message per
 * round trip each way, percentiles printed exactly like ping.c.
 *
 *   build/c/unix_pingpong [-n N] [--size BYTES] [--warmup W]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "latency.h"

static int full_io(int fd, unsigned char *buf, size_t len, int writing)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = writing ? write(fd, buf + done, len - done) : read(fd, buf + done, len - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        done += (size_t)r;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long long n = 100000, size = 64, warmup = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-n") == 0)
            n = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--size") == 0)
            size = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--warmup") == 0)
            warmup = atoll(argv[i + 1]);
    }
    if (n <= 0 || size <= 0 || warmup < 0) {
        fprintf(stderr, "usage: unix_pingpong [-n N] [--size BYTES] [--warmup W]\n");
        return 2;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        perror("socketpair");
        return 1;
    }
    unsigned char *msg = malloc((size_t)size), *reply = malloc((size_t)size);
    uint64_t *rtt = malloc((size_t)n * sizeof *rtt);
    if (msg == NULL || reply == NULL || rtt == NULL)
        return 1;
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) { /* pong: echo until EOF */
        close(sv[0]);
        while (full_io(sv[1], reply, (size_t)size, 0) == 0)
            if (full_io(sv[1], reply, (size_t)size, 1) != 0)
                break;
        _exit(0);
    }
    close(sv[1]);
    for (long long i = 0; i < size; i++)
        msg[i] = (unsigned char)(i * 7 + 3);
    int rc = 0;
    uint64_t start = 0;
    for (long long i = 0; i < warmup + n; i++) {
        if (i == warmup)
            start = lat_now_ns();
        if (size >= 8)
            memcpy(msg, &i, sizeof i);
        uint64_t t0 = lat_now_ns();
        if (full_io(sv[0], msg, (size_t)size, 1) != 0 || full_io(sv[0], reply, (size_t)size, 0) != 0) {
            perror("unix_pingpong: round trip");
            rc = 1;
            break;
        }
        uint64_t t1 = lat_now_ns();
        if (memcmp(msg, reply, (size_t)size) != 0) {
            fprintf(stderr, "unix_pingpong: answer %lld differs\n", i);
            rc = 1;
            break;
        }
        if (i >= warmup)
            rtt[i - warmup] = t1 - t0;
    }
    uint64_t elapsed = lat_now_ns() - start;
    close(sv[0]);
    waitpid(pid, NULL, 0);
    if (rc == 0) {
        printf("unix socket ping/pong: %lld round trips of %lld B\n", n, size);
        lat_report(stdout, rtt, (size_t)n, elapsed);
    }
    free(msg);
    free(reply);
    free(rtt);
    return rc;
}
