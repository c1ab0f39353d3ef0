/*
 * epoll_mux.h - one thread serving many goipc connections with epoll over
 * their notification descriptors (goipc_conn_fd), shared by the example
 * epoll_ping.c next to it and the C tests
 * (bindings/c/tests/test_event.c).
 *
 * The loop follows the rules of goipc_conn_fd in goipc.h: descriptors are
 * registered level-triggered; when one is readable, its connection is
 * drained with goipc_recv(..., timeout 0) until GOIPC_ERR_TIMEOUT (the call
 * that arms the descriptor again), and only then does the loop wait again.
 * Each connection keeps one message in flight (a ping-pong), so a send
 * never finds its ring full and never has to wait.
 */
#ifndef GOIPC_EPOLL_MUX_H
#define GOIPC_EPOLL_MUX_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "goipc.h"

typedef struct mux_stats {
    uint64_t round_trips; /* replies received and checked */
    uint64_t wakeups;     /* readable descriptors reported by epoll_wait */
    uint64_t spurious;    /* wakeups whose drain found no message */
} mux_stats;

/* The message number seq of connection conn: size bytes (size >= 8), the
 * first eight carrying conn and seq, the rest derived from them. */
static void mux_message(unsigned char *msg, size_t size, uint32_t conn, uint32_t seq)
{
    memcpy(msg, &conn, 4);
    memcpy(msg + 4, &seq, 4);
    for (size_t i = 8; i < size; i++)
        msg[i] = (unsigned char)(conn * 31u + seq * 7u + i);
}

static int64_t mux_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The state of one mux_run. */
typedef struct mux {
    const goipc_conn *conns;
    uint32_t rounds;
    size_t size;
    uint32_t *done; /* round trips completed, per connection */
    unsigned char *msg, *want, *reply;
    mux_stats *stats;
    char *err;
    size_t errsz;
} mux;

/* Takes every reply waiting on connection i, sending the next message
 * after each, until goipc_recv reports GOIPC_ERR_TIMEOUT (which arms the
 * descriptor) or the connection has done all its rounds. Returns the
 * number of replies taken, or -1 with a reason in m->err. */
static int mux_drain(mux *m, uint32_t i)
{
    int got = 0;
    while (m->done[i] < m->rounds) {
        size_t len = 0;
        int32_t st = goipc_recv(m->conns[i], m->reply, m->size + 1, &len, 0);
        if (st == GOIPC_ERR_TIMEOUT)
            return got;
        if (st != GOIPC_OK) {
            snprintf(m->err, m->errsz, "recv on conn %u: %s (%s)", i, goipc_strerror(st), goipc_last_error_message());
            return -1;
        }
        mux_message(m->want, m->size, i, m->done[i]);
        if (len != m->size || memcmp(m->reply, m->want, m->size) != 0) {
            snprintf(m->err, m->errsz, "conn %u reply %u: %zu bytes, not what was sent", i, m->done[i], len);
            return -1;
        }
        got++;
        m->stats->round_trips++;
        if (++m->done[i] == m->rounds)
            return got;
        mux_message(m->msg, m->size, i, m->done[i]);
        st = goipc_send(m->conns[i], m->msg, m->size, 0);
        if (st != GOIPC_OK) {
            snprintf(m->err, m->errsz, "send on conn %u: %s", i, goipc_strerror(st));
            return -1;
        }
    }
    return got;
}

/* Runs `rounds` round trips on each of the n connections at once, from
 * this thread: every reply must equal what was sent. Returns 0, or -1
 * with a reason in err (a failed call, a wrong reply, no progress for
 * idle_timeout_ms). Leaves the connections open and unregistered. */
static int mux_run(const goipc_conn *conns, uint32_t n, uint32_t rounds, size_t size, int idle_timeout_ms,
                   mux_stats *stats, char *err, size_t errsz)
{
    int rc = -1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int *fds = calloc(n, sizeof *fds);
    mux m = {.conns = conns, .rounds = rounds, .size = size, .done = calloc(n, sizeof *m.done),
             .msg = malloc(size), .want = malloc(size), .reply = malloc(size + 1), .stats = stats,
             .err = err, .errsz = errsz};
    uint32_t registered = 0, remaining = n;
    memset(stats, 0, sizeof *stats);
    if (ep < 0 || fds == NULL || m.done == NULL || m.msg == NULL || m.want == NULL || m.reply == NULL || size < 8) {
        snprintf(err, errsz, "setup failed (epoll_create1, memory, or size < 8)");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        int32_t st = goipc_conn_fd(conns[i], &fds[i]);
        if (st != GOIPC_OK) {
            snprintf(err, errsz, "goipc_conn_fd(conn %u): %s", i, goipc_last_error_message());
            goto out;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0) {
            snprintf(err, errsz, "epoll_ctl(ADD conn %u) failed", i);
            goto out;
        }
        registered = i + 1;
        mux_message(m.msg, size, i, 0);
        st = goipc_send(conns[i], m.msg, size, 0);
        if (st != GOIPC_OK) {
            snprintf(err, errsz, "first send on conn %u: %s", i, goipc_strerror(st));
            goto out;
        }
        /* A send does not arm the descriptor for replies: a receive
         * that finds nothing does (or takes an early reply). */
        if (mux_drain(&m, i) < 0)
            goto out;
    }
    int64_t last_progress = mux_now_ms();
    struct epoll_event evs[64];
    while (remaining > 0) {
        int64_t left = last_progress + idle_timeout_ms - mux_now_ms();
        if (left <= 0) {
            snprintf(err, errsz, "no reply for %d ms; %u connections unfinished", idle_timeout_ms, remaining);
            goto out;
        }
        int nev = epoll_wait(ep, evs, 64, (int)left);
        for (int e = 0; e < nev; e++) {
            uint32_t i = evs[e].data.u32;
            stats->wakeups++;
            int got = mux_drain(&m, i);
            if (got < 0)
                goto out;
            if (got > 0)
                last_progress = mux_now_ms();
            else
                stats->spurious++;
            if (m.done[i] == rounds) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
                remaining--;
            }
        }
    }
    rc = 0;
out:
    /* Unregister before the caller closes: goipc_conn_close closes the fds. */
    for (uint32_t i = 0; i < registered; i++)
        if (m.done != NULL && m.done[i] < rounds)
            epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
    if (ep >= 0)
        close(ep);
    free(fds);
    free(m.done);
    free(m.msg);
    free(m.want);
    free(m.reply);
    return rc;
}

#endif
