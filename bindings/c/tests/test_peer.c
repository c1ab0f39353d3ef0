/*
 * test_peer.c - tests across processes: a C producer against the Go
 * consumer (`goipc pong`), that consumer SIGKILLed, a C peer SIGKILLed
 * while we are blocked sending, many threads each with a connection, a Go
 * producer (`goipc ping`) against the C consumer example, and the C
 * producer example (examples/ping-pong/c: build/c/ping and build/c/pong)
 * against `goipc pong` and, over a plain Unix socket, against the C pong.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#define NEED_GO()                                                   \
    do {                                                            \
        if (g_goipc_bin == NULL)                                    \
            SKIP("GOIPC_BIN (the goipc CLI) is not set");           \
    } while (0)

static int echo_round_trip(goipc_conn c, size_t len, uint64_t seed, unsigned char *tx, unsigned char *rx, size_t rxcap)
{
    size_t n = 0;
    fill_pattern(tx, len, seed);
    if (!EXPECT_ST(goipc_send(c, tx, len, 10000), GOIPC_OK))
        return -1;
    if (!EXPECT_ST(goipc_recv(c, rx, rxcap, &n, 10000), GOIPC_OK))
        return -1;
    if (!EXPECT(n == len && memcmp(tx, rx, len) == 0))
        return -1;
    return 0;
}

/* test_c_producer_go_consumer: every size class, up to the maximum. */
void test_go_pong_echo(void)
{
    NEED_GO();
    char path[300];
    sock_path(path, sizeof path, "gopong");
    child pong;
    REQUIRE(start_go_pong(&pong, path) == 0);
    goipc_conn c;
    if (EXPECT_ST(goipc_dial(path, 10000, &c), GOIPC_OK)) {
        size_t max = 0;
        EXPECT_ST(goipc_conn_max_message_size(c, &max), GOIPC_OK);
        unsigned char *tx = malloc(max), *rx = malloc(max);
        size_t sizes[] = {0, 1, 7, 8, 63, 64, 65, 1000, 4096, 65536, 1000000, max};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            if (echo_round_trip(c, sizes[i], i, tx, rx, max) != 0)
                break;
        for (int i = 0; i < 2000; i++)
            if (echo_round_trip(c, 64, (uint64_t)i, tx, rx, max) != 0)
                break;
        /* Typed: the Go consumer answers a Ping with a Pong it builds. */
        size_t psizes[] = {0, 1, 64, 4096, 100000};
        for (size_t i = 0; i < sizeof psizes / sizeof psizes[0]; i++) {
            uint64_t seq = 0;
            size_t n = 0;
            fill_pattern(tx, psizes[i], 1000 + i);
            EXPECT_ST(goipc_send_ping(c, 1000 + i, tx, psizes[i], 10000), GOIPC_OK);
            EXPECT_ST(goipc_recv_pong(c, &seq, rx, max, &n, 10000), GOIPC_OK);
            EXPECT(seq == 1000 + i && n == psizes[i] && memcmp(tx, rx, n) == 0);
        }
        free(tx);
        free(rx);
        EXPECT_ST(goipc_conn_close(c), GOIPC_OK);
    }
    /* goipc pong exits cleanly on SIGTERM and removes its socket path. */
    kill(pong.pid, SIGTERM);
    int status = wait_exit(&pong, 10000);
    EXPECT(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT(access(path, F_OK) != 0);
    reap_child(&pong);
}

struct blocked_recv {
    goipc_conn c;
    int32_t st;
    uint64_t done_ms;
};

static void *blocked_recv_run(void *p)
{
    struct blocked_recv *b = p;
    unsigned char buf[64];
    size_t n;
    b->st = goipc_recv(b->c, buf, sizeof buf, &n, -1);
    b->done_ms = now_ms();
    return NULL;
}

/* test_c_producer_go_consumer_sigkill. */
void test_go_pong_killed(void)
{
    NEED_GO();
    char path[300];
    sock_path(path, sizeof path, "gokill");
    child pong;
    REQUIRE(start_go_pong(&pong, path) == 0);
    goipc_conn c;
    if (!EXPECT_ST(goipc_dial(path, 10000, &c), GOIPC_OK)) {
        reap_child(&pong);
        return;
    }
    unsigned char tx[64], rx[64];
    EXPECT(echo_round_trip(c, sizeof tx, 1, tx, rx, sizeof rx) == 0);

    /* A receive blocked with no timeout; then the consumer dies. Whether
     * the kill lands before or while it blocks, it must return
     * PEER_CLOSED, and promptly. */
    struct blocked_recv b = {.c = c};
    pthread_t t;
    pthread_create(&t, NULL, blocked_recv_run, &b);
    uint64_t t0 = now_ms();
    kill(pong.pid, SIGKILL);
    pthread_join(t, NULL);
    EXPECT_ST(b.st, GOIPC_ERR_PEER_CLOSED);
    uint64_t dt = b.done_ms - t0;
    EXPECT(dt < 2000);
    printf("    blocked receive returned PEER_CLOSED %llu ms after SIGKILL\n", (unsigned long long)dt);
    /* And so do later calls. */
    size_t n;
    EXPECT_ST(goipc_send(c, tx, sizeof tx, 1000), GOIPC_ERR_PEER_CLOSED);
    EXPECT_ST(goipc_recv(c, rx, sizeof rx, &n, 1000), GOIPC_ERR_PEER_CLOSED);
    EXPECT_ST(goipc_recv(c, rx, sizeof rx, &n, 0), GOIPC_ERR_PEER_CLOSED);
    EXPECT_ST(goipc_conn_close(c), GOIPC_OK);
    EXPECT_ST(goipc_conn_close(c), GOIPC_ERR_CLOSED);
    int status = wait_exit(&pong, 10000);
    EXPECT(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    reap_child(&pong);

    /* A new listener replaces the dead one's socket file. */
    goipc_listener l;
    EXPECT_ST(goipc_listen(path, &l), GOIPC_OK);
    goipc_listener_close(l);
}

struct blocked_send {
    goipc_conn c;
    int32_t st;
    uint64_t done_ms;
};

static void *blocked_send_run(void *p)
{
    struct blocked_send *b = p;
    unsigned char msg[1000] = {0};
    b->st = goipc_send(b->c, msg, sizeof msg, -1);
    b->done_ms = now_ms();
    return NULL;
}

/* test_c_producer_c_consumer_sigkill_while_send_blocked. */
void test_sink_killed_send_blocked(void)
{
    char path[300];
    sock_path(path, sizeof path, "sink");
    child sink;
    char *argv[] = {g_self, "--sink", path, NULL};
    REQUIRE(spawn_child(&sink, argv, NULL) == 0);
    if (!EXPECT(wait_output(&sink, "sink: listening", 10000, NULL, 0) == 0)) {
        reap_child(&sink);
        return;
    }
    goipc_options o;
    goipc_options_init(&o);
    o.ring_size = 4096;
    o.max_message_size = 1024;
    goipc_conn c;
    if (!EXPECT_ST(goipc_dial_ex(path, &o, 10000, &c), GOIPC_OK)) {
        reap_child(&sink);
        return;
    }
    EXPECT(wait_output(&sink, "sink: accepted", 10000, NULL, 0) == 0);
    unsigned char msg[1000] = {0};
    int k = 0;
    while (goipc_send(c, msg, sizeof msg, 0) == GOIPC_OK && k < 100)
        k++;
    EXPECT(k >= 3 && k <= 4); /* the ring is full: nobody reads */
    struct blocked_send b = {.c = c};
    pthread_t t;
    pthread_create(&t, NULL, blocked_send_run, &b);
    uint64_t t0 = now_ms();
    kill(sink.pid, SIGKILL);
    pthread_join(t, NULL);
    EXPECT_ST(b.st, GOIPC_ERR_PEER_CLOSED);
    uint64_t dt = b.done_ms - t0;
    EXPECT(dt < 2000);
    printf("    blocked send returned PEER_CLOSED %llu ms after SIGKILL\n", (unsigned long long)dt);
    EXPECT_ST(goipc_send(c, msg, 1, 0), GOIPC_ERR_PEER_CLOSED);
    EXPECT_ST(goipc_conn_close(c), GOIPC_OK);
    reap_child(&sink);
}

/* ---- many threads, each with its own connection: half to the Go
 * consumer in another process, half to a C echo server in this one. */

#define THREADS 8
#define THREAD_TRIPS 1500

static void *c_echo_conn(void *p)
{
    goipc_conn c = *(goipc_conn *)p;
    free(p);
    unsigned char buf[4096];
    size_t n;
    int32_t st;
    while ((st = goipc_recv(c, buf, sizeof buf, &n, -1)) == GOIPC_OK)
        if (goipc_send(c, buf, n, -1) != GOIPC_OK)
            break;
    goipc_conn_close(c);
    return NULL;
}

struct c_server {
    goipc_listener l;
    int want;
    pthread_t threads[THREADS];
    int n;
};

static void *c_server_run(void *p)
{
    struct c_server *s = p;
    while (s->n < s->want) {
        goipc_conn c;
        if (!EXPECT_ST(goipc_accept(s->l, 20000, &c), GOIPC_OK))
            break;
        goipc_conn *arg = malloc(sizeof *arg);
        *arg = c;
        pthread_create(&s->threads[s->n++], NULL, c_echo_conn, arg);
    }
    return NULL;
}

struct worker {
    const char *path;
    int id;
    int ok;
};

static void *worker_run(void *p)
{
    struct worker *w = p;
    goipc_conn c;
    if (!EXPECT_ST(goipc_dial(w->path, 20000, &c), GOIPC_OK))
        return NULL;
    unsigned char tx[4096], rx[4096];
    int i;
    for (i = 0; i < THREAD_TRIPS; i++) {
        size_t len = (size_t)((i * 61 + w->id * 17) % 4096);
        if (echo_round_trip(c, len, (uint64_t)(w->id * 100000 + i), tx, rx, sizeof rx) != 0)
            break;
    }
    w->ok = i == THREAD_TRIPS;
    EXPECT_ST(goipc_conn_close(c), GOIPC_OK);
    return NULL;
}

void test_many_threads(void)
{
    NEED_GO();
    char gopath[300], cpath[300];
    sock_path(gopath, sizeof gopath, "threads-go");
    sock_path(cpath, sizeof cpath, "threads-c");
    child pong;
    REQUIRE(start_go_pong(&pong, gopath) == 0);
    struct c_server srv = {.want = THREADS / 2};
    if (!EXPECT_ST(goipc_listen(cpath, &srv.l), GOIPC_OK)) {
        reap_child(&pong);
        return;
    }
    pthread_t st;
    pthread_create(&st, NULL, c_server_run, &srv);
    struct worker w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.path = i % 2 ? cpath : gopath, .id = i};
        pthread_create(&t[i], NULL, worker_run, &w[i]);
    }
    int ok = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += w[i].ok;
    }
    EXPECT(ok == THREADS);
    pthread_join(st, NULL);
    for (int i = 0; i < srv.n; i++)
        pthread_join(srv.threads[i], NULL); /* they end on PEER_CLOSED */
    goipc_listener_close(srv.l);
    kill(pong.pid, SIGTERM);
    int status = wait_exit(&pong, 10000);
    EXPECT(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    reap_child(&pong);
}

/* Runs `goipc ping` against build/c/pong (raw: both in exact-echo mode). */
static void go_ping_c_pong(int raw)
{
    char path[300], pong_bin[600], out[8192] = "";
    sock_path(path, sizeof path, raw ? "cpong-raw" : "cpong");
    snprintf(pong_bin, sizeof pong_bin, "%s/pong", g_cbin);
    child pong, ping;
    char *pargv[] = {pong_bin, "--listen", path, raw ? "--raw" : NULL, NULL};
    REQUIRE(spawn_child(&pong, pargv, NULL) == 0);
    if (!EXPECT(wait_output(&pong, "c pong: listening on", 10000, NULL, 0) == 0)) {
        reap_child(&pong);
        return;
    }
    char *gargv[] = {(char *)g_goipc_bin, "ping", "--dial", path, "-n", "3000", "--warmup", "100", "--size", "64",
                     raw ? "--raw" : NULL, NULL};
    if (EXPECT(spawn_child(&ping, gargv, NULL) == 0)) {
        EXPECT(wait_output(&ping, "p50", 60000, out, sizeof out) == 0);
        int status = wait_exit(&ping, 60000);
        EXPECT(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        reap_child(&ping);
        EXPECT(strstr(out, raw ? "3000 raw echo round trips" : "3000 Ping/Pong round trips") != NULL);
    }
    kill(pong.pid, SIGTERM);
    int status = wait_exit(&pong, 10000);
    EXPECT(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT(access(path, F_OK) != 0); /* the C consumer removed its socket path */
    reap_child(&pong);
}

/* test_go_producer_c_consumer: typed Ping/Pong, then raw echo. */
void test_go_ping_c_pong(void)
{
    NEED_GO();
    if (g_cbin == NULL)
        SKIP("GOIPC_C_BIN (the C examples) is not set");
    go_ping_c_pong(0);
    go_ping_c_pong(1);
}

/* Runs the ping-pong example's C ping (build/c/ping) with argv (ping_bin
 * first) and checks that it exits 0 with one JSON line holding every
 * field in want (e.g. "\"typed\":true") and its percentiles. */
static void run_c_ping(char *const argv[], const char *const want[])
{
    child ping;
    char out[8192] = "";
    if (!EXPECT(spawn_child(&ping, argv, NULL) == 0))
        return;
    EXPECT(wait_output(&ping, "\"p50_ns\":", 60000, out, sizeof out) == 0);
    int status = wait_exit(&ping, 60000);
    EXPECT(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT(strncmp(out, "{\"lang\":\"c\",", 12) == 0 && strstr(out, "\"error\"") == NULL);
    for (int i = 0; want[i] != NULL; i++)
        if (!EXPECT(strstr(out, want[i]) != NULL))
            fprintf(stderr, "    want %s in: %s\n", want[i], out);
    EXPECT(strstr(out, "\"p99_ns\":") != NULL && strstr(out, "\"max_ns\":") != NULL);
    reap_child(&ping);
}

/* test_e2e_ping_c_pong_go: the ping-pong example's C ping against `goipc
 * pong`, in its four ways: raw or typed (Ping/Pong), send + recv or call. */
void test_c_ping_example(void)
{
    NEED_GO();
    if (g_cbin == NULL)
        SKIP("GOIPC_C_BIN (the C examples) is not set");
    char path[300], ping_bin[600];
    sock_path(path, sizeof path, "cping");
    snprintf(ping_bin, sizeof ping_bin, "%s/ping", g_cbin);
    child pong;
    REQUIRE(start_go_pong(&pong, path) == 0);
    for (int mode = 0; mode < 4; mode++) {
        int typed = mode & 1, call = mode & 2;
        char *argv[12] = {ping_bin, "--dial", path, "-n", "3000", "--warmup", "100", "--timeout-ms", "10000"};
        int argc = 9;
        if (typed)
            argv[argc++] = "--typed";
        if (call)
            argv[argc++] = "--call";
        argv[argc] = NULL;
        const char *want[] = {"\"transport\":\"goipc\"", "\"size\":64", "\"iters\":3000",
                              typed ? "\"typed\":true" : "\"typed\":false", call ? "\"call\":true" : "\"call\":false",
                              NULL};
        run_c_ping(argv, want);
    }
    reap_child(&pong);
}

/* test_e2e_ping_c_pong_c_unix: the baseline of `make bench-c`, the C ping
 * against the C pong over a plain Unix stream socket (no goipc); the pong
 * then exits on SIGTERM and removes its socket path. */
void test_c_ping_c_pong_unix(void)
{
    if (g_cbin == NULL)
        SKIP("GOIPC_C_BIN (the C examples) is not set");
    char path[300], ping_bin[600], pong_bin[600];
    sock_path(path, sizeof path, "cunix");
    snprintf(ping_bin, sizeof ping_bin, "%s/ping", g_cbin);
    snprintf(pong_bin, sizeof pong_bin, "%s/pong", g_cbin);
    child pong;
    char *pargv[] = {pong_bin, "--transport", "unix", "--listen", path, NULL};
    REQUIRE(spawn_child(&pong, pargv, NULL) == 0);
    if (!EXPECT(wait_output(&pong, "c pong: listening on", 10000, NULL, 0) == 0)) {
        reap_child(&pong);
        return;
    }
    char *argv[] = {ping_bin, "--transport", "unix", "--path", path, "--iters", "3000", "--warmup", "100",
                    "--size", "1000", NULL};
    const char *want[] = {"\"transport\":\"unix\"", "\"size\":1000", "\"iters\":3000", NULL};
    run_c_ping(argv, want);
    kill(pong.pid, SIGTERM);
    int status = wait_exit(&pong, 10000);
    EXPECT(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT(access(path, F_OK) != 0);
    reap_child(&pong);
}

/* Starts this binary as a sink listener running as uid/gid 65534 (nobody),
 * in a directory nobody can write to. Returns 0, or -1 (then *why says
 * whether to skip). */
static int start_nobody_sink(child *c, const char *path, int any_uid, const char **why)
{
    *why = NULL;
    if (geteuid() != 0) {
        *why = "needs root (to run a peer as another uid)";
        return -1;
    }
    if (access("/usr/bin/setpriv", X_OK) != 0) {
        *why = "needs /usr/bin/setpriv";
        return -1;
    }
    char *argv[] = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    g_self, "--sink", (char *)path, any_uid ? "any-uid" : NULL, NULL};
    if (spawn_child(c, argv, NULL) != 0)
        return -1;
    if (wait_output(c, "sink: listening", 10000, NULL, 0) != 0) {
        *why = "could not start a peer as uid 65534 (is this binary reachable for nobody?)";
        reap_child(c);
        return -1;
    }
    return 0;
}

/* test_c_producer_c_consumer_other_uid: the peer-uid policy, both sides. */
void test_peer_uid_policy(void)
{
    /* Not under the test's private directory (0700): nobody must reach it. */
    char dir[] = "/tmp/goipc-uid-XXXXXX", path[64];
    REQUIRE(mkdtemp(dir) != NULL);
    EXPECT(chmod(dir, 0777) == 0);
    snprintf(path, sizeof path, "%s/l.sock", dir);
    child sink;
    const char *why;
    if (start_nobody_sink(&sink, path, 0, &why) != 0) {
        rmdir(dir);
        if (why != NULL)
            SKIP(why);
        REQUIRE(0);
    }
    goipc_conn c;
    goipc_options o;
    goipc_options_init(&o);
    /* We refuse a peer of another uid by default... */
    EXPECT_ST(goipc_dial(path, 10000, &c), GOIPC_ERR_PERMISSION);
    EXPECT(strstr(goipc_last_error_message(), "uid") != NULL);
    /* ...and so does the peer, when we allow it. */
    o.allow_any_uid = 1;
    EXPECT_ST(goipc_dial_ex(path, &o, 10000, &c), GOIPC_ERR_PERMISSION);
    reap_child(&sink);

    /* Both sides allow any uid: connected. */
    if (EXPECT(start_nobody_sink(&sink, path, 1, &why) == 0)) {
        if (EXPECT_ST(goipc_dial_ex(path, &o, 10000, &c), GOIPC_OK)) {
            EXPECT(wait_output(&sink, "sink: accepted", 10000, NULL, 0) == 0);
            EXPECT_ST(goipc_send(c, "hi", 2, 1000), GOIPC_OK);
            EXPECT_ST(goipc_conn_close(c), GOIPC_OK);
        }
        reap_child(&sink);
    }
    unlink(path); /* the killed sink's socket file */
    EXPECT(rmdir(dir) == 0);
}
