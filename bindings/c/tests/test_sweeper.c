/*
 * test_sweeper.c - the loop sweeper (goipc_sweeper_*): handle checks,
 * which waits a sweep reports, arm handing waits to the descriptors, a
 * close from another thread, and one thread running 50 connections to the
 * Go consumer on sweeps alone (with arm and poll(2) when quiet).
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

void test_sweeper_misuse(void)
{
    goipc_sweeper s = 0;
    uint64_t tokens[4];
    size_t n = 99;
    EXPECT_ST(goipc_sweeper_new(NULL), GOIPC_ERR_INVALID_ARGUMENT);
    REQUIRE_ST(goipc_sweeper_new(&s), GOIPC_OK);
    EXPECT(s != 0);
    EXPECT_ST(goipc_sweeper_sweep(0, tokens, 4, &n), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT(n == 0);
    EXPECT_ST(goipc_sweeper_sweep(s ^ 0x5, tokens, 4, &n), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_sweeper_sweep(s, tokens, 4, NULL), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_sweeper_sweep(s, NULL, 4, &n), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_sweeper_sweep(s, NULL, 0, &n), GOIPC_OK);
    EXPECT_ST(goipc_sweeper_arm(s, tokens, 4, &n), GOIPC_OK);
    EXPECT(n == 0);

    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    EXPECT_ST(goipc_conn_set_sweeper(a, b, 1), GOIPC_ERR_INVALID_ARGUMENT); /* a conn is not a sweeper */
    EXPECT_ST(goipc_conn_set_sweeper(s, s, 1), GOIPC_ERR_INVALID_ARGUMENT); /* nor a sweeper a conn */
    EXPECT_ST(goipc_conn_set_sweeper(a, s, UINT64_MAX), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_conn_set_sweeper(a, s, 1), GOIPC_OK);
    EXPECT_ST(goipc_conn_set_sweeper(a, 0, 0), GOIPC_OK);

    EXPECT_ST(goipc_sweeper_free(s), GOIPC_OK);
    EXPECT_ST(goipc_sweeper_free(s), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_sweeper_sweep(s, tokens, 4, &n), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_sweeper_arm(s, tokens, 4, &n), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_conn_set_sweeper(a, s, 1), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    EXPECT_ST(goipc_conn_close(b), GOIPC_OK);
}

static void *close_conn(void *p)
{
    goipc_conn_close(*(goipc_conn *)p);
    return NULL;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

void test_sweeper_pairs(void)
{
    enum { PAIRS = 8 };
    goipc_options o;
    goipc_options_init(&o);
    o.ring_size = 4096;
    o.max_message_size = 512;
    goipc_conn a[PAIRS], b[PAIRS];
    goipc_sweeper s;
    REQUIRE_ST(goipc_sweeper_new(&s), GOIPC_OK);
    int made = 0;
    for (; made < PAIRS; made++)
        if (make_pair(&a[made], &b[made], &o, NULL) != 0)
            break;
    unsigned char buf[512];
    size_t len = 0, n = 0;
    uint64_t tokens[PAIRS * 2];
    int fd[PAIRS];
    if (!EXPECT(made == PAIRS))
        goto out;
    for (int i = 0; i < PAIRS; i++) {
        EXPECT_ST(goipc_conn_set_sweeper(a[i], s, (uint64_t)i), GOIPC_OK);
        EXPECT_ST(goipc_conn_fd(a[i], &fd[i]), GOIPC_OK);
        EXPECT_ST(goipc_recv(a[i], buf, sizeof buf, &len, 0), GOIPC_ERR_TIMEOUT);
    }
    EXPECT_ST(goipc_sweeper_sweep(s, tokens, PAIRS * 2, &n), GOIPC_OK);
    EXPECT(n == 0);

    /* Messages on pairs 1 and 5: exactly their receives are reported, and
     * nothing rang their descriptors. */
    EXPECT_ST(goipc_send(b[1], "one", 3, 1000), GOIPC_OK);
    EXPECT_ST(goipc_send(b[5], "five", 4, 1000), GOIPC_OK);
    EXPECT_ST(goipc_sweeper_sweep(s, tokens, PAIRS * 2, &n), GOIPC_OK);
    qsort(tokens, n, sizeof tokens[0], cmp_u64);
    EXPECT(n == 2 && tokens[0] == (1u << 1 | GOIPC_SWEEP_RECV) && tokens[1] == (5u << 1 | GOIPC_SWEEP_RECV));
    EXPECT(!fd_readable(fd[1], 0) && !fd_readable(fd[5], 0));
    EXPECT_ST(goipc_recv(a[1], buf, sizeof buf, &len, 0), GOIPC_OK);
    EXPECT(len == 3 && memcmp(buf, "one", 3) == 0);
    EXPECT_ST(goipc_sweeper_sweep(s, tokens, PAIRS * 2, &n), GOIPC_OK);
    EXPECT(n == 0); /* reported once */

    /* A send that finds the ring full, reported when space is freed. */
    int sent = 0;
    memset(buf, 7, sizeof buf);
    while (goipc_send(a[2], buf, 200, 0) == GOIPC_OK)
        sent++;
    EXPECT(sent > 0);
    EXPECT_ST(goipc_recv(b[2], buf, sizeof buf, &len, 1000), GOIPC_OK);
    EXPECT_ST(goipc_sweeper_sweep(s, tokens, PAIRS * 2, &n), GOIPC_OK);
    EXPECT(n == 1 && tokens[0] == (2u << 1 | GOIPC_SWEEP_SEND));

    /* Closed from another thread: reported. */
    pthread_t t;
    pthread_create(&t, NULL, close_conn, &a[3]);
    pthread_join(t, NULL);
    EXPECT_ST(goipc_sweeper_sweep(s, tokens, PAIRS * 2, &n), GOIPC_OK);
    EXPECT(n == 1 && tokens[0] == (3u << 1 | GOIPC_SWEEP_RECV));

    /* Arm: pair 5's message (never received) is reported at once; the
     * others are armed: a message on pair 0 makes its descriptor
     * readable. */
    EXPECT_ST(goipc_recv(a[5], buf, sizeof buf, &len, 0), GOIPC_OK);
    EXPECT_ST(goipc_recv(a[5], buf, sizeof buf, &len, 0), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_send(b[6], "six", 3, 1000), GOIPC_OK);
    EXPECT_ST(goipc_sweeper_arm(s, tokens, PAIRS * 2, &n), GOIPC_OK);
    EXPECT(n == 1 && tokens[0] == (6u << 1 | GOIPC_SWEEP_RECV));
    EXPECT(!fd_readable(fd[0], 0));
    EXPECT_ST(goipc_send(b[0], "zero", 4, 1000), GOIPC_OK);
    EXPECT(fd_readable(fd[0], 10000));
    EXPECT_ST(goipc_sweeper_sweep(s, tokens, PAIRS * 2, &n), GOIPC_OK);
    EXPECT(n == 0); /* arm emptied the list */

out:
    EXPECT_ST(goipc_sweeper_free(s), GOIPC_OK);
    for (int i = 0; i < made; i++) {
        if (i != 3)
            EXPECT_ST(goipc_conn_close(a[i]), GOIPC_OK);
        EXPECT_ST(goipc_conn_close(b[i]), GOIPC_OK);
    }
}

/* One thread, 50 connections to `goipc pong`, each sending ROUNDS pings
 * one at a time: the loop sweeps while answers come and, after a sweep
 * streak that found nothing, arms and sleeps in poll(2). */
void test_sweeper_go_pong(void)
{
    enum { CONNS = 50, ROUNDS = 200, SIZE = 64 };
    if (g_goipc_bin == NULL)
        SKIP("GOIPC_BIN is not set");
    child pong;
    goipc_conn c[CONNS];
    int opened = dial_go_pong(&pong, "sweep", c, CONNS);
    REQUIRE(opened >= 0);
    goipc_sweeper s;
    REQUIRE_ST(goipc_sweeper_new(&s), GOIPC_OK);
    int done = 0, failed = 0;
    for (int i = 0; i < opened; i++)
        EXPECT_ST(goipc_conn_set_sweeper(c[i], s, (uint64_t)i), GOIPC_OK);
    int got[CONNS] = {0};
    struct pollfd pfd[CONNS];
    unsigned char msg[SIZE], buf[1024];
    size_t len, n;
    uint64_t tokens[2 * CONNS];
    uint64_t arms = 0, sweeps = 0;
    memset(msg, 'p', sizeof msg);
    if (opened < CONNS)
        goto out;
    for (int i = 0; i < CONNS; i++) {
        REQUIRE_ST(goipc_conn_fd(c[i], &pfd[i].fd), GOIPC_OK);
        pfd[i].events = POLLIN;
        EXPECT_ST(goipc_send(c[i], msg, SIZE, 1000), GOIPC_OK);
        tokens[i] = (uint64_t)i << 1 | GOIPC_SWEEP_RECV; /* the first receives: as if reported */
    }
    n = CONNS;
    int64_t deadline = (int64_t)now_ms() + 60000;
    int idle = 0;
    while (done < CONNS && !failed && (int64_t)now_ms() < deadline) {
        for (size_t k = 0; k < n; k++) {
            if ((tokens[k] & 1) != GOIPC_SWEEP_RECV)
                continue;
            int i = (int)(tokens[k] >> 1);
            int32_t st;
            while ((st = goipc_recv(c[i], buf, sizeof buf, &len, 0)) == GOIPC_OK) {
                failed |= !EXPECT(len == SIZE && buf[0] == 'p');
                if (++got[i] == ROUNDS)
                    done++;
                else
                    failed |= !EXPECT_ST(goipc_send(c[i], msg, SIZE, 1000), GOIPC_OK);
            }
            failed |= !EXPECT_ST(st, GOIPC_ERR_TIMEOUT);
        }
        EXPECT_ST(goipc_sweeper_sweep(s, tokens, 2 * CONNS, &n), GOIPC_OK);
        sweeps++;
        if (n == 0 && ++idle >= 2000) {
            /* Quiet: arm, then sleep until a descriptor is readable. */
            EXPECT_ST(goipc_sweeper_arm(s, tokens, 2 * CONNS, &n), GOIPC_OK);
            arms++;
            if (n == 0 && poll(pfd, CONNS, 10000) <= 0) {
                failed = !EXPECT(!"no descriptor became readable within 10 s");
                break;
            }
            for (int i = 0; i < CONNS && n < 2 * CONNS; i++)
                if (pfd[i].revents & POLLIN)
                    tokens[n++] = (uint64_t)i << 1 | GOIPC_SWEEP_RECV;
        }
        if (n > 0)
            idle = 0;
    }
    EXPECT(done == CONNS);
    if (done != CONNS)
        fprintf(stderr, "    %d of %d connections finished; %llu sweeps, %llu arms\n", done, CONNS,
                (unsigned long long)sweeps, (unsigned long long)arms);
out:
    EXPECT_ST(goipc_sweeper_free(s), GOIPC_OK);
    for (int i = 0; i < opened; i++)
        EXPECT_ST(goipc_conn_close(c[i]), GOIPC_OK);
    reap_child(&pong);
}
