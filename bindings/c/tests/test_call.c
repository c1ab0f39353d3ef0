/*
 * test_call.c - calls: many threads calling on one shared connection with
 * every reply checked against its request, replies out of order, timeouts
 * and late replies, pending calls, the peer closing with calls in flight,
 * misuse, and calls against the Go server (`goipc pong`).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test.h"

#define MAX_REQ 256

/* The answer to a request: its bytes reversed, then its length (u32 LE),
 * so that a reply delivered to another call cannot pass for the right one. */
static size_t answer_for(const unsigned char *req, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++)
        out[n - 1 - i] = req[i];
    uint32_t len = (uint32_t)n;
    memcpy(out + n, &len, 4);
    return n + 4;
}

/* A request unique to (caller, seq), 16 to 215 bytes. */
static size_t request_for(int caller, int seq, unsigned char *buf)
{
    size_t n = 16 + (size_t)(caller * 7 + seq * 13) % 200;
    uint64_t c = (uint64_t)caller, s = (uint64_t)seq;
    memcpy(buf, &c, 8);
    memcpy(buf + 8, &s, 8);
    for (size_t i = 16; i < n; i++)
        buf[i] = (unsigned char)(caller ^ seq ^ (int)i);
    return n;
}

/* A server thread: answers requests on c until the connection ends. */
struct server {
    goipc_conn c;
    int32_t st; /* what ended it */
    int answered;
};

static void *server_run(void *p)
{
    struct server *s = p;
    unsigned char req[MAX_REQ], out[MAX_REQ + 4];
    for (;;) {
        uint64_t id;
        size_t n;
        int32_t st = goipc_recv_request(s->c, &id, req, sizeof req, &n, -1);
        if (st == GOIPC_OK)
            st = goipc_reply(s->c, id, out, answer_for(req, n, out), -1);
        if (st != GOIPC_OK) {
            s->st = st;
            return NULL;
        }
        s->answered++;
    }
}

/* A caller thread: `calls` calls, each reply checked. */
struct caller {
    goipc_conn c;
    int id, calls, ok;
    int32_t st;
};

#define CALLERS 16
#define CALLS 1000

static void *caller_run(void *p)
{
    struct caller *k = p;
    unsigned char req[MAX_REQ], want[MAX_REQ + 4], got[MAX_REQ + 4];
    for (int i = 0; i < k->calls; i++) {
        size_t n = request_for(k->id, i, req), len = 0;
        size_t wn = answer_for(req, n, want);
        int32_t st;
        if (i % 2 == 0) {
            st = goipc_call(k->c, req, n, got, sizeof got, &len, 30000);
        } else {
            uint64_t pending = 1;
            st = goipc_call_ex(k->c, req, n, got, sizeof got, &len, 30000, &pending);
            if (st == GOIPC_OK && pending != 0)
                st = -1;
        }
        if (st != GOIPC_OK) {
            k->st = st;
            return NULL;
        }
        if (len != wn || memcmp(got, want, wn) != 0) {
            k->st = -2; /* another call's reply */
            return NULL;
        }
        k->ok++;
    }
    return NULL;
}

/* test_call_c_caller_c_server_many_threads_one_conn. */
void test_call_many_threads(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    struct server srv[4];
    pthread_t st[4];
    for (int i = 0; i < 4; i++) {
        srv[i] = (struct server){.c = b};
        pthread_create(&st[i], NULL, server_run, &srv[i]);
    }
    struct caller k[CALLERS];
    pthread_t kt[CALLERS];
    for (int i = 0; i < CALLERS; i++) {
        k[i] = (struct caller){.c = a, .id = i, .calls = CALLS};
        pthread_create(&kt[i], NULL, caller_run, &k[i]);
    }
    int ok = 0;
    for (int i = 0; i < CALLERS; i++) {
        pthread_join(kt[i], NULL);
        if (!EXPECT(k[i].ok == CALLS))
            fprintf(stderr, "    caller %d: %d calls ok, then status %d (%s)\n", i, k[i].ok, k[i].st,
                    k[i].st == -2 ? "another call's reply" : goipc_strerror(k[i].st));
        ok += k[i].ok;
    }
    uint64_t dropped = 99;
    EXPECT_ST(goipc_conn_dropped_replies(a, &dropped), GOIPC_OK);
    EXPECT(dropped == 0);
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    int answered = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(st[i], NULL);
        EXPECT_ST(srv[i].st, GOIPC_ERR_PEER_CLOSED);
        answered += srv[i].answered;
    }
    EXPECT(answered == CALLERS * CALLS);
    printf("    %d calls from %d threads on one connection, %d server threads: every reply its own\n", ok, CALLERS, 4);
    EXPECT_ST(goipc_conn_close(b), GOIPC_OK);
}

struct one_call {
    goipc_conn c;
    unsigned char req[MAX_REQ];
    size_t n;
    unsigned char got[MAX_REQ + 4];
    size_t len;
    int64_t timeout_ms;
    int32_t st;
    uint64_t done_ms;
};

static void *one_call_run(void *p)
{
    struct one_call *o = p;
    o->st = goipc_call(o->c, o->req, o->n, o->got, sizeof o->got, &o->len, o->timeout_ms);
    o->done_ms = now_ms();
    return NULL;
}

/* The server answers three requests in reverse order of arrival. */
void test_call_out_of_order(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    struct one_call o[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        o[i] = (struct one_call){.c = a, .timeout_ms = 30000};
        o[i].n = request_for(i, 100 + i, o[i].req);
        pthread_create(&t[i], NULL, one_call_run, &o[i]);
    }
    uint64_t ids[3];
    unsigned char reqs[3][MAX_REQ];
    size_t lens[3];
    for (int i = 0; i < 3; i++)
        EXPECT_ST(goipc_recv_request(b, &ids[i], reqs[i], MAX_REQ, &lens[i], 10000), GOIPC_OK);
    unsigned char out[MAX_REQ + 4];
    for (int i = 2; i >= 0; i--)
        EXPECT_ST(goipc_reply(b, ids[i], out, answer_for(reqs[i], lens[i], out), 1000), GOIPC_OK);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        unsigned char want[MAX_REQ + 4];
        size_t wn = answer_for(o[i].req, o[i].n, want);
        EXPECT_ST(o[i].st, GOIPC_OK);
        EXPECT(o[i].len == wn && memcmp(o[i].got, want, wn) == 0);
    }
    goipc_conn_close(a);
    goipc_conn_close(b);
}

/* Timeouts, late replies, pending calls, buffers too small, cancel. */
void test_call_timeouts_and_late_replies(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    unsigned char buf[64], req[MAX_REQ];
    size_t len = 0, n = 0;
    uint64_t id = 0, dropped = 0;

    /* A call nobody answers in time: TIMEOUT, after the timeout. */
    uint64_t t0 = now_ms();
    EXPECT_ST(goipc_call(a, "slow", 4, buf, sizeof buf, &len, 30), GOIPC_ERR_TIMEOUT);
    EXPECT(now_ms() - t0 >= 30);
    /* Its reply comes late: dropped, counted, and never the next call's. */
    EXPECT_ST(goipc_recv_request(b, &id, req, sizeof req, &n, 1000), GOIPC_OK);
    EXPECT(n == 4 && memcmp(req, "slow", 4) == 0);
    EXPECT_ST(goipc_reply(b, id, "late", 4, 1000), GOIPC_OK);
    struct server srv = {.c = b};
    pthread_t st;
    pthread_create(&st, NULL, server_run, &srv);
    EXPECT_ST(goipc_call(a, "next", 4, buf, sizeof buf, &len, 10000), GOIPC_OK);
    EXPECT(len == 8 && memcmp(buf, "txen", 4) == 0);
    EXPECT_ST(goipc_conn_dropped_replies(a, &dropped), GOIPC_OK);
    EXPECT(dropped == 1);

    /* A reply larger than the buffer: the size needed; goipc_call drops
     * it, goipc_call_ex keeps it for goipc_call_end. */
    len = 0;
    EXPECT_ST(goipc_call(a, "0123456789", 10, buf, 4, &len, 10000), GOIPC_ERR_BUFFER_TOO_SMALL);
    EXPECT(len == 14);
    uint64_t pending = 0;
    len = 0;
    EXPECT_ST(goipc_call_ex(a, "0123456789", 10, buf, 4, &len, 10000, &pending), GOIPC_ERR_BUFFER_TOO_SMALL);
    EXPECT(len == 14 && pending != 0);
    EXPECT_ST(goipc_call_end(a, pending, buf, 3, &len, 0), GOIPC_ERR_BUFFER_TOO_SMALL); /* still kept */
    EXPECT_ST(goipc_call_end(a, pending, buf, sizeof buf, &len, 0), GOIPC_OK);
    EXPECT(len == 14 && memcmp(buf, "9876543210", 10) == 0);
    EXPECT_ST(goipc_call_end(a, pending, buf, sizeof buf, &len, 0), GOIPC_ERR_INVALID_ARGUMENT); /* ended */
    EXPECT_ST(goipc_call_cancel(a, pending), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_call_cancel(a, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_call_end(a, 0xdeadbeef, buf, sizeof buf, &len, 0), GOIPC_ERR_INVALID_ARGUMENT);

    /* No call without a reply waits past its timeout, and the first call
     * of goipc_call_ex in slices: timeout 0 sends and returns. */
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    pthread_join(st, NULL);
    EXPECT_ST(srv.st, GOIPC_ERR_PEER_CLOSED);
    goipc_conn_close(b);

    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    pending = 0;
    EXPECT_ST(goipc_call_ex(a, "sliced", 6, buf, sizeof buf, &len, 0, &pending), GOIPC_ERR_TIMEOUT);
    EXPECT(pending != 0);
    EXPECT_ST(goipc_call_end(a, pending, buf, sizeof buf, &len, 0), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_call_end(a, pending, buf, sizeof buf, &len, 10), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_recv_request(b, &id, req, sizeof req, &n, 1000), GOIPC_OK);
    EXPECT(id == pending); /* the id the server sees is the caller's */
    EXPECT_ST(goipc_reply(b, id, "done", 4, 1000), GOIPC_OK);
    EXPECT_ST(goipc_call_end(a, pending, buf, sizeof buf, &len, 10000), GOIPC_OK);
    EXPECT(len == 4 && memcmp(buf, "done", 4) == 0);

    /* Cancelled: its reply is dropped. */
    EXPECT_ST(goipc_call_ex(a, "cancel me", 9, buf, sizeof buf, &len, 0, &pending), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_call_cancel(a, pending), GOIPC_OK);
    EXPECT_ST(goipc_recv_request(b, &id, req, sizeof req, &n, 1000), GOIPC_OK);
    EXPECT_ST(goipc_reply(b, id, "nobody", 6, 1000), GOIPC_OK);
    /* A reply to an id never issued: dropped as well. */
    EXPECT_ST(goipc_reply(b, 0x123456789abcdefULL, "stray", 5, 1000), GOIPC_OK);
    srv = (struct server){.c = b};
    pthread_create(&st, NULL, server_run, &srv);
    EXPECT_ST(goipc_call(a, "after", 5, buf, sizeof buf, &len, 10000), GOIPC_OK);
    EXPECT(len == 9 && memcmp(buf, "retfa", 5) == 0);
    EXPECT_ST(goipc_conn_dropped_replies(a, &dropped), GOIPC_OK);
    EXPECT(dropped == 2);
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    pthread_join(st, NULL);
    goipc_conn_close(b);
}

/* Calls in flight (the server took each request and answers none) all
 * return PEER_CLOSED promptly when the peer closes. */
void test_call_peer_closes(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    enum { N = 8 };
    struct one_call o[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        o[i] = (struct one_call){.c = a, .timeout_ms = -1};
        o[i].n = request_for(i, 0, o[i].req);
        pthread_create(&t[i], NULL, one_call_run, &o[i]);
    }
    unsigned char req[MAX_REQ];
    for (int i = 0; i < N; i++) {
        uint64_t id;
        size_t n;
        EXPECT_ST(goipc_recv_request(b, &id, req, sizeof req, &n, 10000), GOIPC_OK);
    }
    uint64_t t0 = now_ms();
    EXPECT_ST(goipc_conn_close(b), GOIPC_OK);
    uint64_t worst = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        EXPECT_ST(o[i].st, GOIPC_ERR_PEER_CLOSED);
        if (o[i].done_ms - t0 > worst)
            worst = o[i].done_ms - t0;
    }
    EXPECT(worst < 2000);
    printf("    %d calls in flight returned PEER_CLOSED within %llu ms of the peer's close\n", N,
           (unsigned long long)worst);
    unsigned char buf[8];
    size_t len;
    EXPECT_ST(goipc_call(a, "x", 1, buf, sizeof buf, &len, 1000), GOIPC_ERR_PEER_CLOSED);
    goipc_conn_close(a);
}

struct typed_call {
    goipc_conn c;
    int32_t st;
};

static void *typed_call_run(void *p)
{
    struct typed_call *tc = p;
    unsigned char buf[64];
    uint64_t seq;
    size_t len;
    tc->st = goipc_call_ping(tc->c, 1, "payload", 7, &seq, buf, sizeof buf, &len, 10000);
    return NULL;
}

void test_call_misuse(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    unsigned char buf[16];
    size_t len = 0, max = 0;
    uint64_t id = 0;
    EXPECT_ST(goipc_call(a, "x", 1, buf, sizeof buf, NULL, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_call(a, NULL, 1, buf, sizeof buf, &len, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_call(a, "x", 1, NULL, 1, &len, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_call(0, "x", 1, buf, sizeof buf, &len, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_request(b, NULL, buf, sizeof buf, &len, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_request(b, &id, NULL, 1, &len, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_reply(b, 1, NULL, 1, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_conn_dropped_replies(a, NULL), GOIPC_ERR_INVALID_ARGUMENT);

    /* Sizes: the 8-byte id counts against the maximum message size. */
    EXPECT_ST(goipc_conn_max_message_size(a, &max), GOIPC_OK);
    unsigned char *big = calloc(1, max);
    REQUIRE(big != NULL);
    EXPECT_ST(goipc_call(a, big, max - 7, buf, sizeof buf, &len, 0), GOIPC_ERR_MESSAGE_TOO_LARGE);
    EXPECT_ST(goipc_reply(b, 1, big, max - 7, 0), GOIPC_ERR_MESSAGE_TOO_LARGE);
    EXPECT_ST(goipc_call(a, big, max + 1, buf, sizeof buf, &len, 0), GOIPC_ERR_MESSAGE_TOO_LARGE);
    /* A request of exactly the maximum goes through (and times out). */
    EXPECT_ST(goipc_call(a, big, max - 8, buf, sizeof buf, &len, 0), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_recv_request(b, &id, big, max, &len, 1000), GOIPC_OK);
    EXPECT(len == max - 8);
    /* A request larger than the buffer stays queued. */
    EXPECT_ST(goipc_call(a, "0123456789", 10, buf, sizeof buf, &len, 0), GOIPC_ERR_TIMEOUT);
    len = 0;
    EXPECT_ST(goipc_recv_request(b, &id, buf, 4, &len, 1000), GOIPC_ERR_BUFFER_TOO_SMALL);
    EXPECT(len == 10);
    EXPECT_ST(goipc_recv_request(b, &id, buf, sizeof buf, &len, 0), GOIPC_OK);
    EXPECT(len == 10 && memcmp(buf, "0123456789", 10) == 0);
    free(big);

    /* A thread holding a view (or a reservation) cannot call: it would
     * wait on itself. */
    EXPECT_ST(goipc_send(b, "plain", 5, 1000), GOIPC_OK);
    const void *v;
    EXPECT_ST(goipc_recv_view(a, &v, &len, 1000), GOIPC_OK);
    EXPECT_ST(goipc_call(a, "x", 1, buf, sizeof buf, &len, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_release(a), GOIPC_OK);
    void *r;
    EXPECT_ST(goipc_reserve(a, 8, 1000, &r), GOIPC_OK);
    EXPECT_ST(goipc_call(a, "x", 1, buf, sizeof buf, &len, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_abort_reserve(a), GOIPC_OK);

    /* Plain messages and requests share the ring: each waits for its own
     * kind of receiver (head of line), then goes through. */
    EXPECT_ST(goipc_send(a, "plain", 5, 1000), GOIPC_OK);
    uint64_t pending = 0;
    EXPECT_ST(goipc_call_ex(a, "req", 3, buf, sizeof buf, &len, 0, &pending), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_recv_request(b, &id, buf, sizeof buf, &len, 20), GOIPC_ERR_TIMEOUT); /* behind "plain" */
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &len, 1000), GOIPC_OK);
    EXPECT(len == 5 && memcmp(buf, "plain", 5) == 0);
    EXPECT_ST(goipc_recv_request(b, &id, buf, sizeof buf, &len, 1000), GOIPC_OK);
    EXPECT(id == pending && len == 3);
    EXPECT_ST(goipc_call_cancel(a, pending), GOIPC_OK);

    /* A typed call whose reply is not a Pong: PROTOCOL, for that call. */
    struct typed_call tc = {.c = a};
    pthread_t t;
    pthread_create(&t, NULL, typed_call_run, &tc);
    EXPECT_ST(goipc_recv_request(b, &id, buf, sizeof buf, &len, 10000), GOIPC_ERR_BUFFER_TOO_SMALL);
    unsigned char ping[256];
    EXPECT_ST(goipc_recv_request(b, &id, ping, sizeof ping, &len, 0), GOIPC_OK);
    EXPECT(len >= 8 && memcmp(ping + 4, "GIPC", 4) == 0); /* a FlatBuffers Message */
    EXPECT_ST(goipc_reply(b, id, "garbage!", 8, 1000), GOIPC_OK);
    pthread_join(t, NULL);
    EXPECT_ST(tc.st, GOIPC_ERR_PROTOCOL);
    EXPECT_ST(goipc_send(b, "still usable", 12, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv(a, buf, sizeof buf, &len, 1000), GOIPC_OK);

    goipc_conn_close(a);
    EXPECT_ST(goipc_call(a, "x", 1, buf, sizeof buf, &len, 0), GOIPC_ERR_CLOSED);
    goipc_conn_close(b);

    /* A peer that announces protocol version 1 (no calls) is refused at
     * the handshake: no call can reach it. */
    char path[300];
    sock_path(path, sizeof path, "v1");
    goipc_listener l;
    REQUIRE_ST(goipc_listen(path, &l), GOIPC_OK);
    goipc_options o;
    goipc_options_init(&o);
    o.protocol_version_override = 1;
    goipc_conn old;
    EXPECT_ST(goipc_dial_ex(path, &o, 5000, &old), GOIPC_ERR_PROTOCOL);
    EXPECT(strstr(goipc_last_error_message(), "version") != NULL);
    goipc_listener_close(l);
}

/* test_call_c_caller_go_server: `goipc pong` answers calls with the echo
 * of the request, and a Ping call with a Pong, from many threads. */
void test_call_go_pong(void)
{
    if (g_goipc_bin == NULL)
        SKIP("GOIPC_BIN (the goipc CLI) is not set");
    char path[300];
    sock_path(path, sizeof path, "callpong");
    child pong;
    REQUIRE(start_go_pong(&pong, path) == 0);
    goipc_conn c;
    if (EXPECT_ST(goipc_dial(path, 10000, &c), GOIPC_OK)) {
        unsigned char req[64], got[64];
        size_t len = 0;
        fill_pattern(req, sizeof req, 3);
        EXPECT_ST(goipc_call(c, req, sizeof req, got, sizeof got, &len, 10000), GOIPC_OK);
        EXPECT(len == sizeof req && memcmp(req, got, len) == 0);
        uint64_t seq = 0;
        EXPECT_ST(goipc_call_ping(c, 42, "hello", 5, &seq, got, sizeof got, &len, 10000), GOIPC_OK);
        EXPECT(seq == 42 && len == 5 && memcmp(got, "hello", 5) == 0);
        EXPECT_ST(goipc_call_ping(c, 43, "hello", 5, &seq, got, 2, &len, 10000), GOIPC_ERR_BUFFER_TOO_SMALL);
        EXPECT(len == 5);
        /* A reply that is not a Pong (the echo of a non-Ping request). */
        EXPECT_ST(goipc_call(c, "not a ping", 10, got, sizeof got, &len, 10000), GOIPC_OK);
        EXPECT(len == 10);
        /* Many threads on the one connection: pong echoes, so the
         * checker's answer is the request itself. */
        enum { N = 8 };
        pthread_t t[N];
        struct one_call o[N];
        for (int round = 0; round < 200; round++) {
            for (int i = 0; i < N; i++) {
                o[i] = (struct one_call){.c = c, .timeout_ms = 30000};
                o[i].n = request_for(i, round, o[i].req);
                pthread_create(&t[i], NULL, one_call_run, &o[i]);
            }
            for (int i = 0; i < N; i++) {
                pthread_join(t[i], NULL);
                if (!EXPECT_ST(o[i].st, GOIPC_OK) || !EXPECT(o[i].len == o[i].n && memcmp(o[i].req, o[i].got, o[i].n) == 0))
                    round = 1 << 30;
            }
        }
        EXPECT_ST(goipc_conn_close(c), GOIPC_OK);
    }
    kill(pong.pid, SIGTERM);
    int status = wait_exit(&pong, 10000);
    EXPECT(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    reap_child(&pong);
}

/* goipc_options.max_inflight_calls: with a cap of 2, two calls in flight
 * make a third wait, unsent, until one of them ends; a listener's cap
 * applies to the connections it accepts; bad values are refused with a
 * message naming the field. */
void test_call_max_inflight(void)
{
    goipc_options o;
    goipc_options_init(&o);
    EXPECT(o.struct_size == sizeof o && o.max_inflight_calls == 0);
    o.max_inflight_calls = 2;
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, &o, NULL) == 0);
    unsigned char buf[MAX_REQ + 4], req[MAX_REQ];
    size_t len = 0, n = 0;
    uint64_t p1 = 0, p2 = 0, p3 = 1;
    EXPECT_ST(goipc_call_ex(a, "one", 3, buf, sizeof buf, &len, 0, &p1), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_call_ex(a, "two", 3, buf, sizeof buf, &len, 0, &p2), GOIPC_ERR_TIMEOUT);
    EXPECT(p1 != 0 && p2 != 0 && p1 != p2);
    /* The third finds no free slot: nothing is sent, nothing pending. */
    EXPECT_ST(goipc_call_ex(a, "three", 5, buf, sizeof buf, &len, 0, &p3), GOIPC_ERR_TIMEOUT);
    EXPECT(p3 == 0);
    uint64_t t0 = now_ms();
    EXPECT_ST(goipc_call(a, "three", 5, buf, sizeof buf, &len, 50), GOIPC_ERR_TIMEOUT);
    EXPECT(now_ms() - t0 >= 50);

    /* A third call from another thread waits for a slot... */
    struct one_call third = {.c = a, .timeout_ms = 30000, .n = 5};
    memcpy(third.req, "three", 5);
    pthread_t t;
    pthread_create(&t, NULL, one_call_run, &third);
    uint64_t ids[3];
    EXPECT_ST(goipc_recv_request(b, &ids[0], req, sizeof req, &n, 10000), GOIPC_OK);
    EXPECT(n == 3 && memcmp(req, "one", 3) == 0);
    EXPECT_ST(goipc_recv_request(b, &ids[1], req, sizeof req, &n, 10000), GOIPC_OK);
    EXPECT(n == 3 && memcmp(req, "two", 3) == 0);
    /* ...and its request is not sent while both slots are taken. */
    EXPECT_ST(goipc_recv_request(b, &ids[2], req, sizeof req, &n, 100), GOIPC_ERR_TIMEOUT);
    /* The first call ends: its slot goes to the waiting call. */
    unsigned char out[MAX_REQ + 4];
    EXPECT_ST(goipc_reply(b, ids[0], out, answer_for((const unsigned char *)"one", 3, out), 1000), GOIPC_OK);
    EXPECT_ST(goipc_call_end(a, p1, buf, sizeof buf, &len, 10000), GOIPC_OK);
    EXPECT(len == 7 && memcmp(buf, "eno", 3) == 0);
    EXPECT_ST(goipc_recv_request(b, &ids[2], req, sizeof req, &n, 10000), GOIPC_OK);
    EXPECT(n == 5 && memcmp(req, "three", 5) == 0);
    EXPECT_ST(goipc_reply(b, ids[2], out, answer_for(req, n, out), 1000), GOIPC_OK);
    pthread_join(t, NULL);
    EXPECT_ST(third.st, GOIPC_OK);
    EXPECT(third.len == 9 && memcmp(third.got, "eerht", 5) == 0);
    EXPECT_ST(goipc_reply(b, ids[1], out, answer_for((const unsigned char *)"two", 3, out), 1000), GOIPC_OK);
    EXPECT_ST(goipc_call_end(a, p2, buf, sizeof buf, &len, 10000), GOIPC_OK);
    EXPECT(len == 7 && memcmp(buf, "owt", 3) == 0);
    goipc_conn_close(a);
    goipc_conn_close(b);

    /* A listener's cap (1) holds on the accepted end, not on the dialer
     * (default 64). */
    goipc_options lo;
    goipc_options_init(&lo);
    lo.max_inflight_calls = 1;
    REQUIRE(make_pair(&a, &b, NULL, &lo) == 0);
    EXPECT_ST(goipc_call_ex(b, "x", 1, buf, sizeof buf, &len, 0, &p1), GOIPC_ERR_TIMEOUT);
    EXPECT(p1 != 0);
    EXPECT_ST(goipc_call_ex(b, "y", 1, buf, sizeof buf, &len, 0, &p2), GOIPC_ERR_TIMEOUT);
    EXPECT(p2 == 0);
    EXPECT_ST(goipc_call_ex(a, "x", 1, buf, sizeof buf, &len, 0, &p1), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_call_ex(a, "y", 1, buf, sizeof buf, &len, 0, &p2), GOIPC_ERR_TIMEOUT);
    EXPECT(p1 != 0 && p2 != 0);
    goipc_conn_close(a);
    goipc_conn_close(b);

    /* Bad values: negative, or above 65536 (the slot index is 16 bits). */
    char path[300];
    sock_path(path, sizeof path, "inflight");
    goipc_listener l;
    goipc_conn c;
    const int64_t bad[] = {-1, INT64_MIN, 65537, INT64_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.max_inflight_calls = bad[i];
        EXPECT_ST(goipc_listen_ex(path, &o, &l), GOIPC_ERR_INVALID_ARGUMENT);
        EXPECT(strstr(goipc_last_error_message(), "max_inflight_calls") != NULL);
        EXPECT_ST(goipc_dial_ex(path, &o, 100, &c), GOIPC_ERR_INVALID_ARGUMENT);
        EXPECT(strstr(goipc_last_error_message(), "max_inflight_calls") != NULL);
    }
    o.max_inflight_calls = 65536; /* the largest cap */
    if (EXPECT_ST(goipc_listen_ex(path, &o, &l), GOIPC_OK))
        goipc_listener_close(l);
}

/* goipc_call_start: the request goes out, the reply is not looked for;
 * goipc_call_end takes it. With every call slot in use it sends nothing
 * (timeout 0: GOIPC_ERR_TIMEOUT, pending 0) until a call ends. Bad
 * arguments are refused. */
void test_call_start(void)
{
    goipc_options o;
    goipc_options_init(&o);
    o.max_inflight_calls = 1;
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, &o, NULL) == 0);
    unsigned char buf[MAX_REQ + 4], req[MAX_REQ], out[MAX_REQ + 4];
    size_t len = 0, n = 0;
    uint64_t p1 = 0, p2 = 7, id = 0;

    EXPECT_ST(goipc_call_start(a, "x", 1, 0, NULL), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_call_start(a, NULL, 1, 0, &p2), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT(p2 == 0);
    EXPECT_ST(goipc_call_start(0, "x", 1, 0, &p2), GOIPC_ERR_INVALID_ARGUMENT);

    EXPECT_ST(goipc_call_start(a, "one", 3, 0, &p1), GOIPC_OK);
    EXPECT(p1 != 0);
    /* The one slot is taken: nothing sent. */
    p2 = 7;
    EXPECT_ST(goipc_call_start(a, "two", 3, 0, &p2), GOIPC_ERR_TIMEOUT);
    EXPECT(p2 == 0);
    EXPECT_ST(goipc_call_end(a, p1, buf, sizeof buf, &len, 0), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_recv_request(b, &id, req, sizeof req, &n, 10000), GOIPC_OK);
    EXPECT(id == p1 && n == 3 && memcmp(req, "one", 3) == 0);
    EXPECT_ST(goipc_recv_request(b, &id, req, sizeof req, &n, 20), GOIPC_ERR_TIMEOUT); /* "two" was not sent */
    EXPECT_ST(goipc_reply(b, p1, out, answer_for(req, n, out), 1000), GOIPC_OK);
    EXPECT_ST(goipc_call_end(a, p1, buf, sizeof buf, &len, 10000), GOIPC_OK);
    EXPECT(len == 7 && memcmp(buf, "eno", 3) == 0);
    /* The call ended: its slot is free again. */
    EXPECT_ST(goipc_call_start(a, "two", 3, 0, &p2), GOIPC_OK);
    EXPECT(p2 != 0 && p2 != p1);
    EXPECT_ST(goipc_recv_request(b, &id, req, sizeof req, &n, 10000), GOIPC_OK);
    EXPECT(id == p2 && n == 3 && memcmp(req, "two", 3) == 0);
    EXPECT_ST(goipc_call_cancel(a, p2), GOIPC_OK);

    /* Too large: refused before anything is sent. */
    size_t max = 0;
    EXPECT_ST(goipc_conn_max_message_size(a, &max), GOIPC_OK);
    unsigned char *big = calloc(1, max);
    REQUIRE(big != NULL);
    EXPECT_ST(goipc_call_start(a, big, max - 7, 0, &p2), GOIPC_ERR_MESSAGE_TOO_LARGE);
    free(big);

    goipc_conn_close(b);
    /* The peer gone: a started call's wait ends with PEER_CLOSED. */
    if (goipc_call_start(a, "late", 4, 1000, &p1) == GOIPC_OK)
        EXPECT_ST(goipc_call_end(a, p1, buf, sizeof buf, &len, 10000), GOIPC_ERR_PEER_CLOSED);
    goipc_conn_close(a);
    EXPECT_ST(goipc_call_start(a, "x", 1, 0, &p1), GOIPC_ERR_CLOSED);
}
