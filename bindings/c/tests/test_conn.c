/*
 * test_conn.c - in-process tests: listen/dial rules and errors, timeouts,
 * backpressure, message sizes, small buffers, the zero-copy pairs, close
 * semantics, peer close, and a full-duplex stress run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* A socket file nobody listens on (what a dead listener leaves). */
static int make_stale_socket(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    return r;
}

static int path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

struct accept_job {
    goipc_listener l;
    int64_t timeout_ms;
    goipc_conn c;
    int32_t st;
    char msg[512];
};

static void *accept_job_run(void *p)
{
    struct accept_job *j = p;
    j->st = goipc_accept(j->l, j->timeout_ms, &j->c);
    snprintf(j->msg, sizeof j->msg, "%s", goipc_last_error_message());
    return NULL;
}

void test_listen_rules(void)
{
    char path[300], file[300], stale[300], dead[300];
    goipc_listener l, l2;
    goipc_conn c;
    sock_path(path, sizeof path, "listen");

    REQUIRE_ST(goipc_listen(path, &l), GOIPC_OK);
    EXPECT(path_exists(path));
    EXPECT_ST(goipc_accept(l, 0, &c), GOIPC_ERR_TIMEOUT); /* nobody waiting */
    uint64_t t0 = now_ms();
    EXPECT_ST(goipc_accept(l, 100, &c), GOIPC_ERR_TIMEOUT);
    uint64_t dt = now_ms() - t0;
    EXPECT(dt >= 95 && dt < 3000);
    EXPECT_ST(goipc_listen(path, &l2), GOIPC_ERR_ADDRESS_IN_USE); /* live listener: refused */
    /* That second listen probed the path by connecting and hanging up:
     * no client for our listener. */
    EXPECT_ST(goipc_accept(l, 0, &c), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_listener_close(l), GOIPC_OK);
    EXPECT(!path_exists(path)); /* close removes the socket path */

    /* A path that exists and is not a socket is never replaced. */
    sock_path(file, sizeof file, "regular");
    FILE *f = fopen(file, "w");
    REQUIRE(f != NULL);
    fputs("keep me", f);
    fclose(f);
    EXPECT_ST(goipc_listen(file, &l), GOIPC_ERR_ADDRESS_IN_USE);
    EXPECT(path_exists(file));

    /* A stale socket file is replaced. */
    sock_path(stale, sizeof stale, "stale");
    REQUIRE(make_stale_socket(stale) == 0);
    EXPECT_ST(goipc_listen(stale, &l), GOIPC_OK);
    EXPECT_ST(goipc_listener_close(l), GOIPC_OK);

    /* ... including one left by a goipc listener that was SIGKILLed. */
    sock_path(dead, sizeof dead, "dead");
    child ch;
    char *argv[] = {g_self, "--sink", dead, NULL};
    REQUIRE(spawn_child(&ch, argv, NULL) == 0);
    REQUIRE(wait_output(&ch, "sink: listening", 10000, NULL, 0) == 0);
    EXPECT_ST(goipc_listen(dead, &l), GOIPC_ERR_ADDRESS_IN_USE); /* still alive */
    kill(ch.pid, SIGKILL);
    EXPECT(wait_exit(&ch, 10000) != -1);
    reap_child(&ch);
    EXPECT(path_exists(dead));
    EXPECT_ST(goipc_listen(dead, &l), GOIPC_OK);
    EXPECT_ST(goipc_listener_close(l), GOIPC_OK);

    /* Closing a listener interrupts a blocked accept. */
    sock_path(path, sizeof path, "accept-close");
    REQUIRE_ST(goipc_listen(path, &l), GOIPC_OK);
    struct accept_job j = {.l = l, .timeout_ms = -1};
    pthread_t t;
    pthread_create(&t, NULL, accept_job_run, &j);
    EXPECT_ST(goipc_listener_close(l), GOIPC_OK);
    pthread_join(t, NULL);
    EXPECT_ST(j.st, GOIPC_ERR_CLOSED);
}

struct raw_server {
    int fd;
    int garbage; /* accept and answer the hello with garbage */
};

static void *raw_server_run(void *p)
{
    struct raw_server *s = p;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    char buf[64];
    if (read(c, buf, sizeof buf) > 0) {
        memset(buf, 'x', 16);
        if (write(c, buf, 16) != 16)
            perror("raw server write");
    }
    while (read(c, buf, sizeof buf) > 0) {
    }
    close(c);
    return NULL;
}

static int raw_listen(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 8) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void test_dial_errors(void)
{
    char path[300];
    goipc_conn c = 42;
    goipc_listener l;

    sock_path(path, sizeof path, "nobody");
    EXPECT_ST(goipc_dial(path, 1000, &c), GOIPC_ERR_SYSTEM);
    EXPECT(goipc_last_errno() == ENOENT);
    REQUIRE(make_stale_socket(path) == 0);
    EXPECT_ST(goipc_dial(path, 1000, &c), GOIPC_ERR_SYSTEM);
    EXPECT(goipc_last_errno() == ECONNREFUSED);
    EXPECT(c == 42);

    /* timeout 0: a handshake always has to wait for the listener. */
    sock_path(path, sizeof path, "zero");
    REQUIRE_ST(goipc_listen(path, &l), GOIPC_OK);
    EXPECT_ST(goipc_dial(path, 0, &c), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_listener_close(l), GOIPC_OK);

    /* A listener that never accepts: the handshake times out. */
    sock_path(path, sizeof path, "mute");
    int fd = raw_listen(path);
    REQUIRE(fd >= 0);
    uint64_t t0 = now_ms();
    EXPECT_ST(goipc_dial(path, 150, &c), GOIPC_ERR_TIMEOUT);
    uint64_t dt = now_ms() - t0;
    EXPECT(dt >= 140 && dt < 3000);
    goipc_options o;
    goipc_options_init(&o);
    o.handshake_timeout_ms = 150;
    t0 = now_ms();
    EXPECT_ST(goipc_dial_ex(path, &o, -1, &c), GOIPC_ERR_TIMEOUT);
    dt = now_ms() - t0;
    EXPECT(dt >= 140 && dt < 3000);
    close(fd);

    /* Not a goipc listener: a protocol error. */
    sock_path(path, sizeof path, "garbage");
    struct raw_server s = {.fd = raw_listen(path), .garbage = 1};
    REQUIRE(s.fd >= 0);
    pthread_t t;
    pthread_create(&t, NULL, raw_server_run, &s);
    EXPECT_ST(goipc_dial(path, 5000, &c), GOIPC_ERR_PROTOCOL);
    pthread_join(t, NULL);
    close(s.fd);
}

void test_version_mismatch(void)
{
    char path[300];
    goipc_listener l;
    goipc_conn c;
    goipc_options o;

    /* The listener speaks another protocol version. */
    sock_path(path, sizeof path, "ver-l");
    goipc_options_init(&o);
    o.protocol_version_override = 99;
    REQUIRE_ST(goipc_listen_ex(path, &o, &l), GOIPC_OK);
    struct accept_job j = {.l = l, .timeout_ms = 10000};
    pthread_t t;
    pthread_create(&t, NULL, accept_job_run, &j);
    EXPECT_ST(goipc_dial(path, 10000, &c), GOIPC_ERR_PROTOCOL);
    EXPECT(strstr(goipc_last_error_message(), "version") != NULL);
    pthread_join(t, NULL);
    EXPECT_ST(j.st, GOIPC_ERR_PROTOCOL);
    EXPECT(strstr(j.msg, "version") != NULL);

    /* The listener stays usable after a failed handshake. */
    goipc_options_init(&o);
    o.protocol_version_override = 99;
    j = (struct accept_job){.l = l, .timeout_ms = 10000};
    pthread_create(&t, NULL, accept_job_run, &j);
    EXPECT_ST(goipc_dial_ex(path, &o, 10000, &c), GOIPC_OK); /* same version 99 on both sides */
    pthread_join(t, NULL);
    EXPECT_ST(j.st, GOIPC_OK);
    if (j.st == GOIPC_OK) {
        goipc_conn_close(c);
        goipc_conn_close(j.c);
    }
    goipc_listener_close(l);

    /* The dialer speaks another version. */
    sock_path(path, sizeof path, "ver-d");
    REQUIRE_ST(goipc_listen(path, &l), GOIPC_OK);
    j = (struct accept_job){.l = l, .timeout_ms = 10000};
    pthread_create(&t, NULL, accept_job_run, &j);
    EXPECT_ST(goipc_dial_ex(path, &o, 10000, &c), GOIPC_ERR_PROTOCOL);
    EXPECT(strstr(goipc_last_error_message(), "version") != NULL);
    pthread_join(t, NULL);
    EXPECT_ST(j.st, GOIPC_ERR_PROTOCOL);
    goipc_listener_close(l);
}

void test_listener_limits(void)
{
    char path[300];
    goipc_listener l;
    goipc_conn c;
    goipc_options lo, dopt;
    sock_path(path, sizeof path, "limits");
    goipc_options_init(&lo);
    lo.max_message_size = 4096;
    REQUIRE_ST(goipc_listen_ex(path, &lo, &l), GOIPC_OK);

    /* A dialer asking for a larger maximum message is refused. */
    struct accept_job j = {.l = l, .timeout_ms = 10000};
    pthread_t t;
    pthread_create(&t, NULL, accept_job_run, &j);
    EXPECT_ST(goipc_dial(path, 10000, &c), GOIPC_ERR_INVALID_ARGUMENT);
    pthread_join(t, NULL);
    EXPECT(j.st != GOIPC_OK);

    goipc_options_init(&dopt);
    dopt.max_message_size = 4096;
    dopt.ring_size = 16384;
    j = (struct accept_job){.l = l, .timeout_ms = 10000};
    pthread_create(&t, NULL, accept_job_run, &j);
    EXPECT_ST(goipc_dial_ex(path, &dopt, 10000, &c), GOIPC_OK);
    pthread_join(t, NULL);
    EXPECT_ST(j.st, GOIPC_OK);
    size_t m1 = 0, m2 = 0;
    EXPECT_ST(goipc_conn_max_message_size(c, &m1), GOIPC_OK);
    EXPECT_ST(goipc_conn_max_message_size(j.c, &m2), GOIPC_OK);
    EXPECT(m1 == 4096 && m2 == 4096);
    goipc_conn_close(c);
    goipc_conn_close(j.c);
    goipc_listener_close(l);
}

void test_timeouts(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    char buf[64];
    size_t n;
    const void *cp;
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 0), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_recv_view(b, &cp, &n, 0), GOIPC_ERR_TIMEOUT);
    uint64_t t0 = now_ms();
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 100), GOIPC_ERR_TIMEOUT);
    uint64_t dt = now_ms() - t0;
    EXPECT(dt >= 95 && dt < 3000);
    t0 = now_ms();
    EXPECT_ST(goipc_recv_view(b, &cp, &n, 60), GOIPC_ERR_TIMEOUT);
    dt = now_ms() - t0;
    EXPECT(dt >= 55 && dt < 3000);
    /* Still usable. */
    EXPECT_ST(goipc_send(a, "late", 4, 0), GOIPC_OK);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 0), GOIPC_OK);
    EXPECT(n == 4 && memcmp(buf, "late", 4) == 0);
    goipc_conn_close(a);
    goipc_conn_close(b);
}

struct send_job {
    goipc_conn c;
    const void *data;
    size_t len;
    int64_t timeout_ms;
    int32_t st;
    uint64_t done_ms;
};

static void *send_job_run(void *p)
{
    struct send_job *j = p;
    j->st = goipc_send(j->c, j->data, j->len, j->timeout_ms);
    j->done_ms = now_ms();
    return NULL;
}

void test_backpressure(void)
{
    goipc_options o;
    goipc_options_init(&o);
    o.ring_size = 4096;
    o.max_message_size = 1024;
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, &o, NULL) == 0);
    unsigned char msg[1000], buf[1024];
    size_t n;
    int k = 0;
    for (;; k++) {
        fill_pattern(msg, sizeof msg, (uint64_t)k);
        int32_t st = goipc_send(a, msg, sizeof msg, 0);
        if (st != GOIPC_OK) {
            EXPECT_ST(st, GOIPC_ERR_TIMEOUT);
            break;
        }
        REQUIRE(k < 100);
    }
    EXPECT(k >= 3 && k <= 4); /* 4096-byte ring, 1008-byte frames */
    EXPECT_ST(goipc_send(a, msg, sizeof msg, 50), GOIPC_ERR_TIMEOUT);
    void *p;
    EXPECT_ST(goipc_reserve(a, sizeof msg, 0, &p), GOIPC_ERR_TIMEOUT);

    /* A sender blocked on the full ring proceeds when the reader drains. */
    unsigned char last[1000];
    fill_pattern(last, sizeof last, 1000);
    struct send_job j = {.c = a, .data = last, .len = sizeof last, .timeout_ms = -1};
    pthread_t t;
    pthread_create(&t, NULL, send_job_run, &j);
    for (int i = 0; i < k; i++) {
        EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 5000), GOIPC_OK);
        EXPECT(n == sizeof msg && check_pattern(buf, n, (uint64_t)i)); /* in order, nothing lost */
    }
    pthread_join(t, NULL);
    EXPECT_ST(j.st, GOIPC_OK);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 5000), GOIPC_OK);
    EXPECT(n == sizeof last && check_pattern(buf, n, 1000));
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 0), GOIPC_ERR_TIMEOUT);
    goipc_conn_close(a);
    goipc_conn_close(b);
}

void test_message_too_large(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    size_t m = 0;
    EXPECT_ST(goipc_conn_max_message_size(a, &m), GOIPC_OK);
    EXPECT(m == 1024 * 1024); /* the default */
    goipc_conn_close(a);
    goipc_conn_close(b);

    goipc_options o;
    goipc_options_init(&o);
    o.max_message_size = 4096;
    o.ring_size = 16384;
    REQUIRE(make_pair(&a, &b, &o, NULL) == 0);
    unsigned char *big = malloc(8192), buf[8192];
    REQUIRE(big != NULL);
    fill_pattern(big, 8192, 7);
    void *p = NULL;
    size_t n;
    EXPECT_ST(goipc_send(a, big, 4097, 0), GOIPC_ERR_MESSAGE_TOO_LARGE);
    EXPECT_ST(goipc_send(a, big, 8192, -1), GOIPC_ERR_MESSAGE_TOO_LARGE);
    EXPECT_ST(goipc_send(a, big, SIZE_MAX, 0), GOIPC_ERR_MESSAGE_TOO_LARGE);
    EXPECT_ST(goipc_reserve(a, 4097, 0, &p), GOIPC_ERR_MESSAGE_TOO_LARGE);
    EXPECT_ST(goipc_reserve(a, SIZE_MAX, 0, &p), GOIPC_ERR_MESSAGE_TOO_LARGE);
    EXPECT(p == NULL);
    /* Nothing was written; the connection stays usable. */
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 0), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_send(a, big, 4096, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 1000), GOIPC_OK);
    EXPECT(n == 4096 && memcmp(buf, big, 4096) == 0);
    EXPECT_ST(goipc_send(b, big, 4097, 0), GOIPC_ERR_MESSAGE_TOO_LARGE); /* the other direction too */
    free(big);
    goipc_conn_close(a);
    goipc_conn_close(b);
}

void test_buffer_too_small(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    unsigned char msg[100], buf[100];
    fill_pattern(msg, sizeof msg, 3);
    size_t n = 0;
    EXPECT_ST(goipc_send(a, msg, sizeof msg, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv(b, buf, 10, &n, 1000), GOIPC_ERR_BUFFER_TOO_SMALL);
    EXPECT(n == 100);
    n = 0;
    EXPECT_ST(goipc_recv(b, buf, 99, &n, 0), GOIPC_ERR_BUFFER_TOO_SMALL); /* still queued */
    EXPECT(n == 100);
    n = 0;
    EXPECT_ST(goipc_recv(b, NULL, 0, &n, 0), GOIPC_ERR_BUFFER_TOO_SMALL); /* a size probe */
    EXPECT(n == 100);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 0), GOIPC_OK);
    EXPECT(n == 100 && check_pattern(buf, n, 3));
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 0), GOIPC_ERR_TIMEOUT);

    /* Empty messages exist, and need no buffer. */
    EXPECT_ST(goipc_send(a, NULL, 0, 1000), GOIPC_OK);
    EXPECT_ST(goipc_send(a, "", 0, 1000), GOIPC_OK);
    n = 99;
    EXPECT_ST(goipc_recv(b, NULL, 0, &n, 1000), GOIPC_OK);
    EXPECT(n == 0);
    n = 99;
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 1000), GOIPC_OK);
    EXPECT(n == 0);
    goipc_conn_close(a);
    goipc_conn_close(b);
}

struct commit_job {
    goipc_conn c;
    size_t len;
    int32_t st;
    int release; /* call goipc_release instead */
};

static void *commit_job_run(void *p)
{
    struct commit_job *j = p;
    j->st = j->release ? goipc_release(j->c) : goipc_commit(j->c, j->len);
    return NULL;
}

void test_zero_copy(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    void *p = NULL;
    const void *v = NULL;
    size_t n = 0;
    unsigned char buf[256];

    REQUIRE_ST(goipc_reserve(a, 64, 1000, &p), GOIPC_OK);
    EXPECT(p != NULL && ((uintptr_t)p & 7) == 0);
    fill_pattern(p, 64, 11);
    EXPECT_ST(goipc_commit(a, 65), GOIPC_ERR_INVALID_ARGUMENT); /* more than reserved: stays open */
    EXPECT_ST(goipc_commit(a, 64), GOIPC_OK);
    REQUIRE_ST(goipc_recv_view(b, &v, &n, 1000), GOIPC_OK);
    EXPECT(n == 64 && check_pattern(v, n, 11));
    EXPECT_ST(goipc_release(b), GOIPC_OK);
    EXPECT_ST(goipc_release(b), GOIPC_ERR_INVALID_ARGUMENT);

    /* Commit fewer bytes than reserved. */
    REQUIRE_ST(goipc_reserve(a, 200, 1000, &p), GOIPC_OK);
    fill_pattern(p, 10, 12);
    EXPECT_ST(goipc_commit(a, 10), GOIPC_OK);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 1000), GOIPC_OK);
    EXPECT(n == 10 && check_pattern(buf, 10, 12));

    /* Abort sends nothing. */
    REQUIRE_ST(goipc_reserve(a, 100, 1000, &p), GOIPC_OK);
    memset(p, 0xAB, 100);
    EXPECT_ST(goipc_abort_reserve(a), GOIPC_OK);
    EXPECT_ST(goipc_abort_reserve(a), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 0), GOIPC_ERR_TIMEOUT);

    /* Zero-length reservation and view: non-NULL pointers, 0 bytes. */
    REQUIRE_ST(goipc_reserve(a, 0, 1000, &p), GOIPC_OK);
    EXPECT(p != NULL);
    EXPECT_ST(goipc_commit(a, 0), GOIPC_OK);
    n = 99;
    REQUIRE_ST(goipc_recv_view(b, &v, &n, 1000), GOIPC_OK);
    EXPECT(v != NULL && n == 0);
    EXPECT_ST(goipc_release(b), GOIPC_OK);

    /* Commit and release may come from another thread. */
    REQUIRE_ST(goipc_reserve(a, 32, 1000, &p), GOIPC_OK);
    fill_pattern(p, 32, 13);
    struct commit_job cj = {.c = a, .len = 32};
    pthread_t t;
    pthread_create(&t, NULL, commit_job_run, &cj);
    pthread_join(t, NULL);
    EXPECT_ST(cj.st, GOIPC_OK);
    REQUIRE_ST(goipc_recv_view(b, &v, &n, 1000), GOIPC_OK);
    EXPECT(n == 32 && check_pattern(v, n, 13));
    struct commit_job rj = {.c = b, .release = 1};
    pthread_create(&t, NULL, commit_job_run, &rj);
    pthread_join(t, NULL);
    EXPECT_ST(rj.st, GOIPC_OK);

    /* Views of many messages in a row, crossing the ring's wrap. */
    for (int i = 0; i < 3000; i++) {
        size_t len = (size_t)(i * 37) % 3000;
        REQUIRE_ST(goipc_reserve(a, len, 1000, &p), GOIPC_OK);
        fill_pattern(p, len, (uint64_t)i);
        REQUIRE_ST(goipc_commit(a, len), GOIPC_OK);
        REQUIRE_ST(goipc_recv_view(b, &v, &n, 1000), GOIPC_OK);
        REQUIRE(n == len && check_pattern(v, n, (uint64_t)i));
        REQUIRE_ST(goipc_release(b), GOIPC_OK);
    }
    goipc_conn_close(a);
    goipc_conn_close(b);
}

void test_zero_copy_misuse(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    void *p, *p2 = NULL;
    const void *v, *v2 = NULL;
    size_t n;
    unsigned char buf[64];

    /* The thread holding a reservation cannot send or reserve again
     * (that would deadlock); it gets an error instead. */
    REQUIRE_ST(goipc_reserve(a, 8, 1000, &p), GOIPC_OK);
    memcpy(p, "reserved", 8);
    EXPECT_ST(goipc_reserve(a, 8, 0, &p2), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_send(a, "x", 1, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT(p2 == NULL);
    /* Another thread's send waits for the reservation to end, then goes
     * after it. */
    struct send_job j = {.c = a, .data = "second", .len = 6, .timeout_ms = -1};
    pthread_t t;
    pthread_create(&t, NULL, send_job_run, &j);
    EXPECT_ST(goipc_commit(a, 8), GOIPC_OK);
    pthread_join(t, NULL);
    EXPECT_ST(j.st, GOIPC_OK);

    /* The thread holding a view cannot receive again. */
    REQUIRE_ST(goipc_recv_view(b, &v, &n, 1000), GOIPC_OK);
    EXPECT(n == 8 && memcmp(v, "reserved", 8) == 0);
    EXPECT_ST(goipc_recv_view(b, &v2, &n, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT(v2 == NULL);
    EXPECT_ST(goipc_send(b, "pong", 4, 1000), GOIPC_OK); /* the other direction is free */
    EXPECT_ST(goipc_release(b), GOIPC_OK);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 1000), GOIPC_OK);
    EXPECT(n == 6 && memcmp(buf, "second", 6) == 0);
    EXPECT_ST(goipc_recv(a, buf, sizeof buf, &n, 1000), GOIPC_OK);
    EXPECT(n == 4 && memcmp(buf, "pong", 4) == 0);
    goipc_conn_close(a);
    goipc_conn_close(b);
}

struct recv_job {
    goipc_conn c;
    int64_t timeout_ms;
    int32_t st;
    uint64_t done_ms;
    int view;
};

static void *recv_job_run(void *p)
{
    struct recv_job *j = p;
    unsigned char buf[64];
    size_t n;
    const void *v;
    j->st = j->view ? goipc_recv_view(j->c, &v, &n, j->timeout_ms) : goipc_recv(j->c, buf, sizeof buf, &n, j->timeout_ms);
    j->done_ms = now_ms();
    return NULL;
}

void test_close_interrupts(void)
{
    goipc_conn a, b;
    pthread_t t;
    /* A blocked receive returns CLOSED when its own side closes (whether
     * the close lands before or while it blocks). */
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    struct recv_job r = {.c = a, .timeout_ms = -1};
    pthread_create(&t, NULL, recv_job_run, &r);
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    pthread_join(t, NULL);
    EXPECT_ST(r.st, GOIPC_ERR_CLOSED);
    goipc_conn_close(b);

    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    r = (struct recv_job){.c = a, .timeout_ms = INT64_MAX, .view = 1}; /* as good as forever */
    pthread_create(&t, NULL, recv_job_run, &r);
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    pthread_join(t, NULL);
    EXPECT_ST(r.st, GOIPC_ERR_CLOSED);
    goipc_conn_close(b);

    /* A send blocked on a full ring, likewise. */
    goipc_options o;
    goipc_options_init(&o);
    o.ring_size = 4096;
    o.max_message_size = 1024;
    REQUIRE(make_pair(&a, &b, &o, NULL) == 0);
    unsigned char msg[1000] = {0};
    while (goipc_send(a, msg, sizeof msg, 0) == GOIPC_OK) {
    }
    struct send_job s = {.c = a, .data = msg, .len = sizeof msg, .timeout_ms = -1};
    pthread_create(&t, NULL, send_job_run, &s);
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    pthread_join(t, NULL);
    EXPECT_ST(s.st, GOIPC_ERR_CLOSED);
    goipc_conn_close(b);
}

struct view_holder {
    goipc_conn c;
    pthread_barrier_t *bar;
    int32_t view_st, release_st;
    int intact;
};

static void *view_holder_run(void *p)
{
    struct view_holder *h = p;
    const void *v;
    size_t n = 0;
    h->view_st = goipc_recv_view(h->c, &v, &n, 5000);
    pthread_barrier_wait(h->bar); /* view taken */
    pthread_barrier_wait(h->bar); /* main has closed the connection */
    /* The view stays readable until we release it. */
    h->intact = h->view_st == GOIPC_OK && n == 512 && check_pattern(v, n, 21);
    h->release_st = goipc_release(h->c);
    return NULL;
}

void test_close_with_views(void)
{
    goipc_conn a, b;
    void *p;
    const void *v;
    size_t n;
    /* Closing ends the caller's own reservation and view. */
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    REQUIRE_ST(goipc_reserve(a, 16, 1000, &p), GOIPC_OK);
    EXPECT_ST(goipc_send(b, "v", 1, 1000), GOIPC_OK);
    REQUIRE_ST(goipc_recv_view(a, &v, &n, 1000), GOIPC_OK);
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    EXPECT_ST(goipc_commit(a, 16), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_release(a), GOIPC_ERR_CLOSED);
    goipc_conn_close(b);

    /* Another thread's view stays valid until that thread releases it. */
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    unsigned char msg[512];
    fill_pattern(msg, sizeof msg, 21);
    EXPECT_ST(goipc_send(a, msg, sizeof msg, 1000), GOIPC_OK);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    struct view_holder h = {.c = b, .bar = &bar};
    pthread_t t;
    pthread_create(&t, NULL, view_holder_run, &h);
    pthread_barrier_wait(&bar);
    EXPECT_ST(goipc_conn_close(b), GOIPC_OK);
    EXPECT_ST(goipc_send(b, "x", 1, 0), GOIPC_ERR_CLOSED);
    pthread_barrier_wait(&bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&bar);
    EXPECT_ST(h.view_st, GOIPC_OK);
    EXPECT(h.intact);
    EXPECT_ST(h.release_st, GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_release(b), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_conn_close(b), GOIPC_ERR_CLOSED);
    goipc_conn_close(a);
}

void test_peer_close(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    unsigned char buf[64];
    size_t n;
    for (int i = 0; i < 3; i++) {
        fill_pattern(buf, 40, (uint64_t)i);
        EXPECT_ST(goipc_send(a, buf, 40, 1000), GOIPC_OK);
    }
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    /* What was sent before the close is delivered first. */
    for (int i = 0; i < 3; i++) {
        EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 5000), GOIPC_OK);
        EXPECT(n == 40 && check_pattern(buf, n, (uint64_t)i));
    }
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 5000), GOIPC_ERR_PEER_CLOSED);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 0), GOIPC_ERR_PEER_CLOSED);
    EXPECT_ST(goipc_send(b, "x", 1, 1000), GOIPC_ERR_PEER_CLOSED);
    void *p;
    EXPECT_ST(goipc_reserve(b, 1, 1000, &p), GOIPC_ERR_PEER_CLOSED);
    EXPECT_ST(goipc_conn_close(b), GOIPC_OK);

    /* A receive blocked when the peer closes returns PEER_CLOSED. */
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    struct recv_job r = {.c = b, .timeout_ms = -1};
    pthread_t t;
    pthread_create(&t, NULL, recv_job_run, &r);
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    pthread_join(t, NULL);
    EXPECT_ST(r.st, GOIPC_ERR_PEER_CLOSED);
    goipc_conn_close(b);
}

/* ---- full duplex: one sender thread and one receiver thread on the same
 * connection, an echo thread on the other end. */

#define DUPLEX_N 20000

struct duplex {
    goipc_conn a, b;
    atomic_int bad;
};

static void *duplex_sender(void *p)
{
    struct duplex *d = p;
    unsigned char buf[3000];
    for (int i = 0; i < DUPLEX_N; i++) {
        size_t len = (size_t)(i * 131) % sizeof buf;
        fill_pattern(buf, len, (uint64_t)i);
        if (!EXPECT_ST(goipc_send(d->a, buf, len, 10000), GOIPC_OK)) {
            atomic_fetch_add(&d->bad, 1);
            break;
        }
    }
    return NULL;
}

static void *duplex_echo(void *p)
{
    struct duplex *d = p;
    unsigned char buf[3000];
    size_t n;
    for (int i = 0; i < DUPLEX_N; i++) {
        if (!EXPECT_ST(goipc_recv(d->b, buf, sizeof buf, &n, 10000), GOIPC_OK) ||
            !EXPECT_ST(goipc_send(d->b, buf, n, 10000), GOIPC_OK)) {
            atomic_fetch_add(&d->bad, 1);
            break;
        }
    }
    return NULL;
}

void test_duplex_stress(void)
{
    goipc_options o;
    goipc_options_init(&o);
    o.ring_size = 16384; /* small: backpressure and wraps all the time */
    o.max_message_size = 4096;
    struct duplex d = {0};
    REQUIRE(make_pair(&d.a, &d.b, &o, NULL) == 0);
    pthread_t ts, te;
    pthread_create(&ts, NULL, duplex_sender, &d);
    pthread_create(&te, NULL, duplex_echo, &d);
    unsigned char buf[3000];
    size_t n;
    for (int i = 0; i < DUPLEX_N && atomic_load(&d.bad) == 0; i++) {
        size_t want = (size_t)(i * 131) % sizeof buf;
        if (!EXPECT_ST(goipc_recv(d.a, buf, sizeof buf, &n, 10000), GOIPC_OK))
            break;
        if (!EXPECT(n == want && check_pattern(buf, n, (uint64_t)i)))
            break;
    }
    /* Closing unblocks whichever thread is still waiting after a failure. */
    goipc_conn_close(d.a);
    goipc_conn_close(d.b);
    pthread_join(ts, NULL);
    pthread_join(te, NULL);
}
