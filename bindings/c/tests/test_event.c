/*
 * test_event.c - the pollable descriptor (goipc_conn_fd): poll(2) on one
 * connection's descriptor through its rules, and one thread multiplexing
 * 100 connections to the Go consumer with epoll (epoll_mux.h, shared with
 * the event-loop example epoll_ping.c, both in examples/event-loop/c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../examples/event-loop/c/epoll_mux.h"
#include "test.h"

void test_conn_fd_poll(void)
{
    goipc_options o;
    goipc_options_init(&o);
    o.ring_size = 4096;
    o.max_message_size = 512;
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, &o, NULL) == 0);
    int fd = -1, again = -1, afd = -1;
    unsigned char buf[512];
    size_t len = 0;

    EXPECT_ST(goipc_conn_fd(b, NULL), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_conn_fd(0, &fd), GOIPC_ERR_INVALID_ARGUMENT);
    REQUIRE_ST(goipc_conn_fd(b, &fd), GOIPC_OK);
    EXPECT_ST(goipc_conn_fd(b, &again), GOIPC_OK);
    EXPECT(fd >= 0 && again == fd);

    /* Quiet after a zero-timeout call found nothing (that call arms it),
     * readable once a message arrives. */
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &len, 0), GOIPC_ERR_TIMEOUT);
    EXPECT(!fd_readable(fd, 0));
    EXPECT_ST(goipc_send(a, "ping", 4, 1000), GOIPC_OK);
    EXPECT(fd_readable(fd, 10000));
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &len, 0), GOIPC_OK);
    EXPECT(len == 4 && memcmp(buf, "ping", 4) == 0);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &len, 0), GOIPC_ERR_TIMEOUT);
    /* Quiet again: the message's wakeup was consumed by the call that
     * found nothing, and the send direction, which nobody waits for,
     * keeps nothing readable. */
    EXPECT(!fd_readable(fd, 0));

    /* Ring space: the sender's descriptor becomes readable when the
     * receiver frees room in a full ring. */
    REQUIRE_ST(goipc_conn_fd(a, &afd), GOIPC_OK);
    EXPECT(afd != fd);
    int sent = 0;
    memset(buf, 7, sizeof buf);
    while (goipc_send(a, buf, 200, 0) == GOIPC_OK)
        sent++;
    EXPECT(sent > 0);
    EXPECT(!fd_readable(afd, 0));
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &len, 1000), GOIPC_OK);
    EXPECT(fd_readable(afd, 10000));
    EXPECT_ST(goipc_send(a, buf, 200, 0), GOIPC_OK);

    /* Peer close: the queued messages come first, then PEER_CLOSED. The
     * loop follows the rules: receive until a call does not succeed; on
     * GOIPC_ERR_TIMEOUT (which armed the descriptor) wait, then again.
     * (The receives that succeeded left b's descriptor as they found it:
     * readable, so waiting before the first TIMEOUT would prove nothing.) */
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &len, 0), GOIPC_OK);
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    int got = 0;
    int32_t st;
    int64_t deadline = mux_now_ms() + 10000;
    for (;;) {
        while ((st = goipc_recv(b, buf, sizeof buf, &len, 0)) == GOIPC_OK)
            got++;
        if (st != GOIPC_ERR_TIMEOUT || !EXPECT(fd_readable(fd, 10000)) || mux_now_ms() > deadline)
            break;
    }
    EXPECT_ST(st, GOIPC_ERR_PEER_CLOSED);
    EXPECT(got == sent - 1);
    EXPECT_ST(goipc_conn_close(b), GOIPC_OK);
    EXPECT_ST(goipc_conn_fd(b, &fd), GOIPC_ERR_CLOSED);
}

/* 100 connections to a Go pong served from one thread: with epoll alone
 * (sweep_idle_us 0), or with the loop sweeper as well; then, on the same
 * connections, the other way round (a connection detached from a freed
 * sweeper arms its descriptor again). */
static void epoll_many_conns(const char *tag, uint32_t first_sweep_us, uint32_t second_sweep_us)
{
    enum { CONNS = 100, ROUNDS = 200, SIZE = 64 };
    if (g_goipc_bin == NULL)
        SKIP("GOIPC_BIN is not set");
    child pong;
    goipc_conn c[CONNS];
    int opened = dial_go_pong(&pong, tag, c, CONNS);
    REQUIRE(opened >= 0);
    if (opened == CONNS) {
        uint32_t modes[2] = {first_sweep_us, second_sweep_us};
        for (int k = 0; k < 2; k++) {
            mux_stats st;
            char err[512] = "";
            int rc = mux_run(c, CONNS, ROUNDS, SIZE, modes[k], 20000, &st, err, sizeof err);
            if (!EXPECT(rc == 0))
                fprintf(stderr, "    mux_run (sweep %u us): %s\n", modes[k], err);
            EXPECT(st.round_trips == (uint64_t)CONNS * ROUNDS);
            if (modes[k] == 0) {
                EXPECT(st.wakeups > 0);
                EXPECT(st.sweeps == 0 && st.arms == 0);
            } else {
                EXPECT(st.sweeps > 0);
            }
        }
    }
    for (int i = 0; i < opened; i++)
        EXPECT_ST(goipc_conn_close(c[i]), GOIPC_OK);
    reap_child(&pong);
}

/* goipc_options.free_space_in_pieces on the receiver (b): after one
 * receive from a full ring the sender still has no room and its
 * descriptor stays quiet (the space is held back: a 208-byte frame of a
 * 256-byte piece); once the receiver has read everything, all of it is
 * back and the sender's descriptor is readable. Without the option one
 * receive frees room at once (test_conn_fd_poll). */
void test_free_space_in_pieces(void)
{
    goipc_options o, lo;
    goipc_options_init(&o);
    o.ring_size = 4096;
    o.max_message_size = 512;
    goipc_options_init(&lo);
    lo.free_space_in_pieces = 1;
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, &o, &lo) == 0);
    int afd;
    unsigned char buf[512];
    size_t len;
    REQUIRE_ST(goipc_conn_fd(a, &afd), GOIPC_OK);
    memset(buf, 7, sizeof buf);
    int sent = 0;
    while (goipc_send(a, buf, 200, 0) == GOIPC_OK)
        sent++;
    EXPECT(sent > 2);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &len, 1000), GOIPC_OK);
    EXPECT(len == 200);
    EXPECT(!fd_readable(afd, 0));
    EXPECT_ST(goipc_send(a, buf, 200, 0), GOIPC_ERR_TIMEOUT);
    int got = 1;
    while (goipc_recv(b, buf, sizeof buf, &len, 0) == GOIPC_OK)
        got++;
    EXPECT(got == sent);
    EXPECT(fd_readable(afd, 10000));
    int again = 0;
    while (goipc_send(a, buf, 200, 0) == GOIPC_OK)
        again++;
    EXPECT(again == sent);
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    EXPECT_ST(goipc_conn_close(b), GOIPC_OK);
}

void test_epoll_many_conns(void) { epoll_many_conns("epoll", 0, 200); }

void test_epoll_many_conns_swept(void) { epoll_many_conns("swept", 200, 0); }

void test_epoll_ping_example(void)
{
    if (g_goipc_bin == NULL || g_cbin == NULL)
        SKIP("GOIPC_BIN or GOIPC_C_BIN is not set");
    char path[300], exe[4096];
    sock_path(path, sizeof path, "epex");
    snprintf(exe, sizeof exe, "%s/epoll_ping", g_cbin);
    child pong, ping;
    REQUIRE(start_go_pong(&pong, path) == 0);
    char *argv[] = {exe, "--dial", path, "-c", "50", "-n", "200", "--ring", "16384", NULL};
    if (EXPECT(spawn_child(&ping, argv, NULL) == 0)) {
        char out[2048] = "";
        EXPECT(wait_output(&ping, "throughput:", 60000, out, sizeof out) == 0);
        int status = wait_exit(&ping, 60000);
        if (!EXPECT(status == 0))
            fprintf(stderr, "    epoll_ping: status %d, output:\n%s\n", status, out);
        reap_child(&ping);
    }
    reap_child(&pong);
}
