/*
 * test_listener_fd.c - the listener's pollable descriptor
 * (goipc_listener_fd): readable exactly while goipc_accept with timeout 0
 * would not time out; an accept loop on poll(2) takes every client; closing
 * the listener wakes a poll blocked on it. And the count of failed
 * handshakes accept cannot report (goipc_listener_dropped_errors).
 */
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "test.h"

enum { DIALERS = 4, DIALS_EACH = 8 };

typedef struct dialer {
    const char *path;
    int failed;
} dialer;

/* Dials DIALS_EACH clients, closing each once connected (the listener's
 * end stays queued for accept). */
static void *dial_clients(void *arg)
{
    dialer *d = arg;
    for (int i = 0; i < DIALS_EACH; i++) {
        goipc_conn c;
        if (goipc_dial(d->path, 10000, &c) != GOIPC_OK) {
            d->failed++;
            continue;
        }
        goipc_conn_close(c);
    }
    return NULL;
}

typedef struct blocked_poll {
    int fd;
    int woke; /* 1: POLLIN, 0: timed out after 10 s, -1: not polled yet */
} blocked_poll;

static void *poll_until_readable(void *arg)
{
    blocked_poll *b = arg;
    b->woke = fd_readable(b->fd, 10000) ? 1 : 0;
    return NULL;
}

void test_listener_fd_poll(void)
{
    char path[300];
    sock_path(path, sizeof path, "lnfd");
    goipc_listener l;
    REQUIRE_ST(goipc_listen(path, &l), GOIPC_OK);
    int fd = -1, again = -1;
    goipc_conn c;

    EXPECT_ST(goipc_listener_fd(l, NULL), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_listener_fd(0, &fd), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT(fd == -1); /* unmodified on failure */
    REQUIRE_ST(goipc_listener_fd(l, &fd), GOIPC_OK);
    EXPECT_ST(goipc_listener_fd(l, &again), GOIPC_OK);
    EXPECT(fd >= 0 && again == fd);

    /* Quiet with nobody queued; goipc_dial returns once its connection is
     * queued, so the descriptor is readable at that moment; quiet again
     * once accept took it. */
    EXPECT(!fd_readable(fd, 0));
    EXPECT_ST(goipc_accept(l, 0, &c), GOIPC_ERR_TIMEOUT);
    goipc_conn client;
    REQUIRE_ST(goipc_dial(path, 10000, &client), GOIPC_OK);
    EXPECT(fd_readable(fd, 0));
    if (EXPECT_ST(goipc_accept(l, 0, &c), GOIPC_OK))
        EXPECT_ST(goipc_conn_close(c), GOIPC_OK);
    EXPECT(!fd_readable(fd, 0));
    EXPECT_ST(goipc_conn_close(client), GOIPC_OK);

    /* An accept loop on poll(2) while threads dial: every client is
     * accepted, and the descriptor never stays quiet with one queued. */
    pthread_t threads[DIALERS];
    dialer d[DIALERS];
    for (int i = 0; i < DIALERS; i++) {
        d[i] = (dialer){.path = path};
        REQUIRE(pthread_create(&threads[i], NULL, dial_clients, &d[i]) == 0);
    }
    int accepted = 0, quiet_too_long = 0;
    while (accepted < DIALERS * DIALS_EACH) {
        if (!fd_readable(fd, 10000)) {
            quiet_too_long = 1;
            break;
        }
        int32_t st;
        while ((st = goipc_accept(l, 0, &c)) == GOIPC_OK) {
            accepted++;
            goipc_conn_close(c);
        }
        if (!EXPECT_ST(st, GOIPC_ERR_TIMEOUT))
            break;
    }
    int failed = 0;
    for (int i = 0; i < DIALERS; i++) {
        pthread_join(threads[i], NULL);
        failed += d[i].failed;
    }
    EXPECT(!quiet_too_long);
    EXPECT(failed == 0);
    EXPECT(accepted == DIALERS * DIALS_EACH);
    EXPECT(!fd_readable(fd, 0));

    /* Closing the listener makes its descriptor readable, which wakes a
     * poll blocked on it if the thread got there first (here on
     * a duplicate, which outlives the listener's copy). */
    blocked_poll b = {.fd = dup(fd), .woke = -1};
    REQUIRE(b.fd >= 0);
    pthread_t poller;
    REQUIRE(pthread_create(&poller, NULL, poll_until_readable, &b) == 0);
    EXPECT_ST(goipc_listener_close(l), GOIPC_OK);
    pthread_join(poller, NULL);
    EXPECT(b.woke == 1);
    close(b.fd);
    EXPECT_ST(goipc_listener_fd(l, &fd), GOIPC_ERR_CLOSED);
}

/* A client that sends a hello of the right size with a bad magic (zeros)
 * and waits for the refusal. Returns 0 once refused. */
static int bad_client(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, path, len + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char hello[32] = {0}, reply[16];
    int ok = write(fd, hello, sizeof hello) == (ssize_t)sizeof hello && fd_readable(fd, 10000);
    if (ok)
        ok = read(fd, reply, sizeof reply) >= 0; /* the refusal, or EOF */
    close(fd);
    return ok ? 0 : -1;
}

void test_listener_dropped_errors(void)
{
    enum { QUEUED = 64, EXTRA = 3 };
    char path[300];
    sock_path(path, sizeof path, "lndrop");
    goipc_listener l;
    REQUIRE_ST(goipc_listen(path, &l), GOIPC_OK);
    uint64_t n = 77;
    EXPECT_ST(goipc_listener_dropped_errors(l, NULL), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_listener_dropped_errors(0, &n), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT(n == 77); /* unmodified on failure */
    REQUIRE_ST(goipc_listener_dropped_errors(l, &n), GOIPC_OK);
    EXPECT(n == 0);

    /* Failures nobody accepts: 64 wait for accept, the others are
     * counted. (A client has its refusal just before its failure is
     * queued or counted: wait for the count.) */
    for (int i = 0; i < QUEUED + EXTRA; i++)
        REQUIRE(bad_client(path) == 0);
    for (uint64_t t0 = now_ms(); n != EXTRA && now_ms() - t0 < 10000; usleep(1000))
        REQUIRE_ST(goipc_listener_dropped_errors(l, &n), GOIPC_OK);
    EXPECT(n == EXTRA);
    goipc_conn c;
    int protocol = 0;
    for (int i = 0; i < QUEUED; i++)
        protocol += goipc_accept(l, 0, &c) == GOIPC_ERR_PROTOCOL;
    EXPECT(protocol == QUEUED);
    EXPECT_ST(goipc_accept(l, 0, &c), GOIPC_ERR_TIMEOUT);
    EXPECT_ST(goipc_listener_close(l), GOIPC_OK);
}
