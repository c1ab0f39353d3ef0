/*
 * test_typed_call.c - the server side of typed calls: a C server answering
 * Ping calls with Pongs (goipc_recv_ping_request + goipc_reply_pong), from
 * the Go client (`goipc ping --call`, which checks every Pong's seq,
 * timestamp and payload) and from many C threads on one connection, and
 * the errors: a request that is not a Ping, a payload larger than the
 * buffer (the request stays queued), a Pong too large, call id 0, misuse.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test.h"

/* A server thread: answers Ping calls on c with their Pongs until the
 * connection ends. */
struct pong_server {
    goipc_conn c;
    int32_t st; /* what ended it */
    int answered;
};

static void *pong_server_run(void *p)
{
    struct pong_server *s = p;
    unsigned char payload[1024];
    for (;;) {
        uint64_t call = 0, seq = 0;
        int64_t sent = 0;
        size_t len = 0;
        int32_t st = goipc_recv_ping_request(s->c, &call, &seq, &sent, payload, sizeof payload, &len, -1);
        if (st == GOIPC_OK)
            st = goipc_reply_pong(s->c, call, seq, sent, 0, payload, len, -1);
        if (st != GOIPC_OK) {
            s->st = st;
            return NULL;
        }
        s->answered++;
    }
}

#define SERVERS 3

static void start_servers(goipc_conn c, struct pong_server *s, pthread_t *t)
{
    for (int i = 0; i < SERVERS; i++) {
        s[i] = (struct pong_server){.c = c};
        pthread_create(&t[i], NULL, pong_server_run, &s[i]);
    }
}

/* Joins the servers, which must have ended because the peer closed; returns
 * how many calls they answered. */
static int join_servers(struct pong_server *s, pthread_t *t)
{
    int answered = 0;
    for (int i = 0; i < SERVERS; i++) {
        pthread_join(t[i], NULL);
        EXPECT_ST(s[i].st, GOIPC_ERR_PEER_CLOSED);
        answered += s[i].answered;
    }
    return answered;
}

/* test_typed_call_go_client_c_server: `goipc ping --call` makes 3000 Ping
 * calls (after 100 warm-up calls) to C server threads and checks that each
 * Pong carries its Ping's seq, sent time and payload. */
void test_typed_call_go_client(void)
{
    if (g_goipc_bin == NULL)
        SKIP("GOIPC_BIN (the goipc CLI) is not set");
    char path[300], out[8192] = "";
    sock_path(path, sizeof path, "cserver");
    goipc_listener l;
    REQUIRE_ST(goipc_listen(path, &l), GOIPC_OK);
    child ping;
    char *argv[] = {(char *)g_goipc_bin, "ping", "--dial", path, "--call", "-n", "3000", "--warmup", "100",
                    "--size", "64", NULL};
    if (!EXPECT(spawn_child(&ping, argv, NULL) == 0)) {
        goipc_listener_close(l);
        return;
    }
    goipc_conn c;
    if (EXPECT_ST(goipc_accept(l, 20000, &c), GOIPC_OK)) {
        struct pong_server s[SERVERS];
        pthread_t t[SERVERS];
        start_servers(c, s, t);
        EXPECT(wait_output(&ping, "p50", 60000, out, sizeof out) == 0);
        int status = wait_exit(&ping, 60000);
        EXPECT(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        EXPECT(strstr(out, "3000 Ping/Pong calls with a 64 B payload") != NULL);
        /* The client exited: its end closed, which ends every server. */
        EXPECT(join_servers(s, t) == 3100);
        goipc_conn_close(c);
    }
    reap_child(&ping);
    goipc_listener_close(l);
}

/* A caller thread: `calls` Ping calls with payloads of 0 to 300 bytes,
 * each seq unique to (caller, call); every Pong checked. */
struct ping_caller {
    goipc_conn c;
    int id, calls, ok;
    int32_t st;
};

static void *ping_caller_run(void *p)
{
    struct ping_caller *k = p;
    unsigned char payload[300], got[300];
    for (int i = 0; i < k->calls; i++) {
        uint64_t seq = (uint64_t)k->id << 32 | (uint64_t)i, pong_seq = 0;
        size_t n = (size_t)(k->id * 37 + i * 11) % sizeof payload, len = 0;
        fill_pattern(payload, n, seq);
        int32_t st = goipc_call_ping(k->c, seq, payload, n, &pong_seq, got, sizeof got, &len, 30000);
        if (st != GOIPC_OK) {
            k->st = st;
            return NULL;
        }
        if (pong_seq != seq || len != n || !check_pattern(got, len, seq)) {
            k->st = -1; /* not this call's Pong */
            return NULL;
        }
        k->ok++;
    }
    return NULL;
}

/* test_typed_call_c_caller_c_server_many_threads_one_conn: 8 threads make
 * Ping calls on one connection, 3 threads answer them on the other end. */
void test_typed_call_c_threads(void)
{
    enum { CALLERS = 8, CALLS = 500 };
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    struct pong_server s[SERVERS];
    pthread_t st[SERVERS];
    start_servers(b, s, st);
    struct ping_caller k[CALLERS];
    pthread_t kt[CALLERS];
    for (int i = 0; i < CALLERS; i++) {
        k[i] = (struct ping_caller){.c = a, .id = i, .calls = CALLS};
        pthread_create(&kt[i], NULL, ping_caller_run, &k[i]);
    }
    for (int i = 0; i < CALLERS; i++) {
        pthread_join(kt[i], NULL);
        EXPECT_ST(k[i].st, GOIPC_OK);
        EXPECT(k[i].ok == CALLS);
    }
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    EXPECT(join_servers(s, st) == CALLERS * CALLS);
    goipc_conn_close(b);
}

/* One blocking goipc_call_ping in a thread. */
struct one_ping {
    goipc_conn c;
    uint64_t seq, pong_seq;
    unsigned char payload[200], got[200];
    size_t n, len;
    int32_t st;
};

static void *one_ping_run(void *p)
{
    struct one_ping *o = p;
    o->st = goipc_call_ping(o->c, o->seq, o->payload, o->n, &o->pong_seq, o->got, sizeof o->got, &o->len, 30000);
    return NULL;
}

static void start_ping(struct one_ping *o, pthread_t *t, goipc_conn c, uint64_t seq, size_t n)
{
    *o = (struct one_ping){.c = c, .seq = seq, .n = n};
    fill_pattern(o->payload, n, seq);
    pthread_create(t, NULL, one_ping_run, o);
}

static void expect_pong(struct one_ping *o, pthread_t t)
{
    pthread_join(t, NULL);
    EXPECT_ST(o->st, GOIPC_OK);
    EXPECT(o->pong_seq == o->seq && o->len == o->n && memcmp(o->got, o->payload, o->n) == 0);
}

void test_typed_call_errors(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    unsigned char buf[256];
    uint64_t call = 0, seq = 0;
    int64_t sent = 0;
    size_t len = 0, max = 0;

    /* Bad arguments: nothing is waited for or sent. */
    EXPECT_ST(goipc_recv_ping_request(b, NULL, &seq, &sent, buf, sizeof buf, &len, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_ping_request(b, &call, NULL, &sent, buf, sizeof buf, &len, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_ping_request(b, &call, &seq, &sent, buf, sizeof buf, NULL, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_ping_request(b, &call, &seq, &sent, NULL, 1, &len, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_ping_request(0, &call, &seq, &sent, buf, sizeof buf, &len, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_ping_request(b, &call, &seq, NULL, buf, sizeof buf, &len, 0), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_reply_pong(b, 0, 1, 0, 0, "x", 1, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(goipc_last_error_message(), "call id 0") != NULL);
    EXPECT_ST(goipc_reply_pong(b, 1, 1, 0, 0, NULL, 1, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_reply_pong(0, 1, 1, 0, 0, "x", 1, 0), GOIPC_ERR_INVALID_ARGUMENT);

    /* Sizes: the Pong (72 + ((len + 11) & ~7) bytes) and the 8-byte call
     * id must fit the maximum message size. The largest that fits goes
     * out (to an id no call waits for: the peer drops it, and counts it). */
    EXPECT_ST(goipc_conn_max_message_size(b, &max), GOIPC_OK);
    unsigned char *big = calloc(1, max);
    REQUIRE(big != NULL);
    EXPECT_ST(goipc_reply_pong(b, 0x12345, 1, 0, 0, big, max - 83, 1000), GOIPC_ERR_MESSAGE_TOO_LARGE);
    EXPECT(strstr(goipc_last_error_message(), "goipc_reply_pong") != NULL);
    EXPECT_ST(goipc_reply_pong(b, 0x12345, 1, 0, 0, big, max, 1000), GOIPC_ERR_MESSAGE_TOO_LARGE);
    EXPECT_ST(goipc_reply_pong(b, 0x12345, 1, 0, 0, big, max - 84, 1000), GOIPC_OK);
    free(big);

    /* A request that is not a Ping: PROTOCOL, with its id and bytes, so the
     * server can still answer it; the connection stays usable. */
    uint64_t pending = 0;
    EXPECT_ST(goipc_call_ex(a, "not a ping", 10, buf, sizeof buf, &len, 0, &pending), GOIPC_ERR_TIMEOUT);
    EXPECT(pending != 0);
    len = 0;
    EXPECT_ST(goipc_recv_ping_request(b, &call, &seq, &sent, buf, sizeof buf, &len, 10000), GOIPC_ERR_PROTOCOL);
    EXPECT(call == pending && len == 10 && memcmp(buf, "not a ping", 10) == 0);
    EXPECT(strstr(goipc_last_error_message(), "not a valid Ping") != NULL);
    EXPECT_ST(goipc_reply(b, call, "no", 2, 1000), GOIPC_OK);
    EXPECT_ST(goipc_call_end(a, pending, buf, sizeof buf, &len, 10000), GOIPC_OK);
    EXPECT(len == 2 && memcmp(buf, "no", 2) == 0);
    uint64_t dropped = 0;
    EXPECT_ST(goipc_conn_dropped_replies(a, &dropped), GOIPC_OK);
    EXPECT(dropped == 1); /* the large Pong above, read before "no" */

    /* A payload larger than the buffer: the request stays queued (a copy
     * the library keeps) without holding the ring: a plain message goes
     * through meanwhile; a larger buffer then takes the request. */
    struct one_ping o;
    pthread_t t;
    start_ping(&o, &t, a, 77, 100);
    EXPECT_ST(goipc_recv_ping_request(b, &call, &seq, &sent, buf, 4, &len, 10000), GOIPC_ERR_BUFFER_TOO_SMALL);
    EXPECT(len == 100);
    EXPECT_ST(goipc_send(a, "plain", 5, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &len, 1000), GOIPC_OK);
    EXPECT(len == 5 && memcmp(buf, "plain", 5) == 0);
    EXPECT_ST(goipc_recv_ping_request(b, &call, &seq, &sent, buf, 99, &len, 0), GOIPC_ERR_BUFFER_TOO_SMALL);
    sent = 0;
    EXPECT_ST(goipc_recv_ping_request(b, &call, &seq, &sent, buf, 100, &len, 0), GOIPC_OK);
    EXPECT(seq == 77 && len == 100 && sent > 0 && check_pattern(buf, len, 77));
    EXPECT_ST(goipc_reply_pong(b, call, seq, sent, 0, buf, len, 1000), GOIPC_OK);
    expect_pong(&o, t);

    /* A kept request is the next one goipc_recv_request takes too, whole
     * (a FlatBuffers Message: the identifier at bytes 4..7). */
    start_ping(&o, &t, a, 78, 50);
    EXPECT_ST(goipc_recv_ping_request(b, &call, &seq, &sent, buf, 0, &len, 10000), GOIPC_ERR_BUFFER_TOO_SMALL);
    EXPECT(len == 50);
    EXPECT_ST(goipc_recv_request(b, &call, buf, 8, &len, 0), GOIPC_ERR_BUFFER_TOO_SMALL);
    EXPECT(len > 50);
    EXPECT_ST(goipc_recv_request(b, &call, buf, sizeof buf, &len, 0), GOIPC_OK);
    EXPECT(len > 50 && memcmp(buf + 4, "GIPC", 4) == 0);
    EXPECT_ST(goipc_reply_pong(b, call, 78, 0, 0, o.payload, 50, 1000), GOIPC_OK);
    expect_pong(&o, t);

    /* The thread holding a view cannot take a request (it would wait on
     * itself), nor the thread holding a reservation reply. */
    const void *v;
    EXPECT_ST(goipc_send(a, "plain", 5, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv_view(b, &v, &len, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv_ping_request(b, &call, &seq, &sent, buf, sizeof buf, &len, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_release(b), GOIPC_OK);
    void *r;
    EXPECT_ST(goipc_reserve(b, 8, 1000, &r), GOIPC_OK);
    EXPECT_ST(goipc_reply_pong(b, 1, 1, 0, 0, "x", 1, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_abort_reserve(b), GOIPC_OK);

    /* The peer closing ends a waiting server; a closed handle is refused. */
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    EXPECT_ST(goipc_recv_ping_request(b, &call, &seq, &sent, buf, sizeof buf, &len, 10000), GOIPC_ERR_PEER_CLOSED);
    EXPECT_ST(goipc_conn_close(b), GOIPC_OK);
    EXPECT_ST(goipc_recv_ping_request(b, &call, &seq, &sent, buf, sizeof buf, &len, 0), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_reply_pong(b, 1, 1, 0, 0, "x", 1, 0), GOIPC_ERR_CLOSED);
}
