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
 *
 * With sweep_idle_us > 0 the connections are also attached to a loop
 * sweeper (goipc.h, "The loop sweeper"): a receive that finds nothing is
 * then listed on it un-armed, and the loop calls goipc_sweeper_sweep
 * (no system call) instead of epoll_wait for as long as some reply came
 * within the last sweep_idle_us; after that it calls goipc_sweeper_arm,
 * which hands the waits back to the descriptors, and sleeps in
 * epoll_wait as without a sweeper. A busy loop so costs its peer no
 * doorbell and itself no epoll_wait or eventfd read per message.
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
    uint64_t sweeps;      /* goipc_sweeper_sweep calls (sweeper mode) */
    uint64_t arms;        /* goipc_sweeper_arm calls: times the loop went idle */
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

static int64_t mux_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mux_now_ms(void) { return mux_now_us() / 1000; }

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

/* Stops watching connection i (fds[i] = -1) once it has done all its
 * rounds; a finished connection may still come up once more (a sweep can
 * report its last receive). Returns 1 if it stopped watching it now. */
static uint32_t mux_retire_if_done(const mux *m, int ep, int *fds, uint32_t i)
{
    if (m->done[i] < m->rounds || fds[i] < 0)
        return 0;
    epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
    fds[i] = -1;
    return 1;
}

/* Drains the connections whose receives the sweeper reported (tokens[0..k),
 * each token<<1 | direction, the token being the connection's index).
 * Returns the replies taken, or -1. A finished connection may still be
 * reported once (its last receive listed it): it is skipped. */
static int64_t mux_drain_reported(mux *m, const uint64_t *tokens, size_t k)
{
    int64_t got = 0;
    for (size_t t = 0; t < k; t++) {
        if ((tokens[t] & 1) != GOIPC_SWEEP_RECV)
            continue; /* a send never waits here: one message in flight */
        int r = mux_drain(m, (uint32_t)(tokens[t] >> 1));
        if (r < 0)
            return -1;
        got += r;
    }
    return got;
}

/* Runs `rounds` round trips on each of the n connections at once, from
 * this thread: every reply must equal what was sent. sweep_idle_us > 0
 * adds the loop sweeper (see the top of this file). Returns 0, or -1
 * with a reason in err (a failed call, a wrong reply, no progress for
 * idle_timeout_ms). Leaves the connections open, unregistered and
 * detached. */
static int mux_run(const goipc_conn *conns, uint32_t n, uint32_t rounds, size_t size, uint32_t sweep_idle_us,
                   int idle_timeout_ms, mux_stats *stats, char *err, size_t errsz)
{
    int rc = -1;
    goipc_sweeper sw = 0;
    uint64_t *tokens = NULL;
    size_t ntok = 0;
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
    if (sweep_idle_us > 0) {
        /* Room for every connection in both directions: a sweep or an
         * arm then never leaves a report behind. */
        tokens = calloc(2 * (size_t)n, sizeof *tokens);
        if (tokens == NULL || goipc_sweeper_new(&sw) != GOIPC_OK) {
            snprintf(err, errsz, "goipc_sweeper_new: %s", goipc_last_error_message());
            goto out;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (sw != 0 && goipc_conn_set_sweeper(conns[i], sw, i) != GOIPC_OK) {
            snprintf(err, errsz, "goipc_conn_set_sweeper(conn %u): %s", i, goipc_last_error_message());
            goto out;
        }
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
    int64_t last_move_us = mux_now_us();
    struct epoll_event evs[64];
    while (remaining > 0) {
        if (sw != 0) {
            /* Sweep while replies keep coming; arm and sleep once they
             * have not for sweep_idle_us. */
            int64_t got;
            if (goipc_sweeper_sweep(sw, tokens, 2 * (size_t)n, &ntok) != GOIPC_OK) {
                snprintf(err, errsz, "goipc_sweeper_sweep: %s", goipc_last_error_message());
                goto out;
            }
            stats->sweeps++;
            if (ntok == 0 && mux_now_us() - last_move_us >= sweep_idle_us) {
                if (goipc_sweeper_arm(sw, tokens, 2 * (size_t)n, &ntok) != GOIPC_OK) {
                    snprintf(err, errsz, "goipc_sweeper_arm: %s", goipc_last_error_message());
                    goto out;
                }
                stats->arms++;
                if (ntok == 0)
                    goto wait; /* every wait is on its descriptor now */
            }
            if ((got = mux_drain_reported(&m, tokens, ntok)) < 0)
                goto out;
            if (ntok > 0) {
                last_move_us = mux_now_us();
                if (got > 0)
                    last_progress = mux_now_ms();
            }
            for (size_t t = 0; t < ntok; t++)
                remaining -= mux_retire_if_done(&m, ep, fds, (uint32_t)(tokens[t] >> 1));
            if (mux_now_ms() - last_progress > idle_timeout_ms) {
                snprintf(err, errsz, "no reply for %d ms; %u connections unfinished", idle_timeout_ms, remaining);
                goto out;
            }
            continue;
        }
    wait:;
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
            remaining -= mux_retire_if_done(&m, ep, fds, i);
        }
        last_move_us = mux_now_us(); /* sweep again after a wakeup */
    }
    rc = 0;
out:
    /* Unregister before the caller closes: goipc_conn_close closes the fds. */
    for (uint32_t i = 0; i < registered; i++)
        if (fds[i] >= 0)
            epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
    if (sw != 0) {
        for (uint32_t i = 0; i < n; i++)
            goipc_conn_set_sweeper(conns[i], 0, 0);
        goipc_sweeper_free(sw);
    }
    free(tokens);
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
