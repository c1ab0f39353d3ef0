/*
 * pong.c - the C consumer of the ping-pong example (examples/README.md):
 * listens on a Unix socket path and answers every message, so that a
 * producer (ping.c next to it, or the Go one, `goipc ping --dial PATH`)
 * can measure round trips against C. Built by `make build` (mk/capi.mk)
 * into build/c/pong.
 *
 *   build/c/pong --listen PATH [--raw] [--transport goipc|unix] [--spin NS]
 *                [--once] [-v]
 *
 * By default it speaks the kit's typed messages: each Ping is answered
 * with a Pong carrying its seq, sent_ns and payload (goipc_recv_ping +
 * goipc_send_pong). A message that is not a valid Ping is dropped and
 * logged (the typed receive reports it as GOIPC_ERR_PROTOCOL for that
 * message only). With --raw it is an exact echo of any message, with the
 * zero-copy pair: goipc_recv_view reads the message in place,
 * goipc_reserve gets ring space for the answer, one memcpy goes ring to
 * ring (use `goipc ping --raw` or ping.c against it).
 *
 * With --transport unix it is no goipc at all: an echo of the bytes of a
 * plain AF_UNIX SOCK_STREAM socket (read, write back), the baseline `make
 * bench-c` measures `ping --transport unix` against.
 *
 * Prints "c pong: listening on PATH" on stdout once ready (scripts wait for
 * that line). Each connection gets its own thread. SIGINT or SIGTERM (or,
 * with --once, the end of the first connection) closes the listener, which
 * removes the socket path, and every connection.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "goipc.h"

#define MAX_CONNS 256

static volatile sig_atomic_t stop;
static int verbose, once, raw;
static const char *transport = "goipc";
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static goipc_conn conns[MAX_CONNS];
static pthread_t threads[MAX_CONNS];
static int nconns;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* --raw: echoes until the connection ends; returns the status that ended it. */
static int32_t echo_loop(goipc_conn c, unsigned long long *n)
{
    for (;;) {
        const void *in;
        size_t len;
        int32_t st = goipc_recv_view(c, &in, &len, -1);
        if (st != GOIPC_OK)
            return st;
        void *out;
        st = goipc_reserve(c, len, -1, &out);
        if (st != GOIPC_OK) {
            goipc_release(c);
            return st;
        }
        memcpy(out, in, len);
        goipc_release(c);
        st = goipc_commit(c, len);
        if (st != GOIPC_OK)
            return st;
        (*n)++;
    }
}

/* Answers Pings with Pongs until the connection ends. */
static int32_t pong_loop(goipc_conn c, unsigned long long *n)
{
    size_t cap = 0;
    if (goipc_conn_max_message_size(c, &cap) != GOIPC_OK)
        return GOIPC_ERR_CLOSED;
    unsigned char *payload = malloc(cap);
    if (payload == NULL)
        return GOIPC_ERR_SYSTEM;
    int32_t st;
    for (;;) {
        uint64_t seq;
        int64_t sent_ns;
        size_t len;
        st = goipc_recv_ping(c, &seq, &sent_ns, payload, cap, &len, -1);
        if (st == GOIPC_ERR_PROTOCOL) { /* that message only: dropped */
            fprintf(stderr, "c pong: dropped a message: %s\n", goipc_last_error_message());
            continue;
        }
        if (st != GOIPC_OK)
            break;
        st = goipc_send_pong(c, seq, sent_ns, 0, payload, len, -1);
        if (st != GOIPC_OK)
            break;
        (*n)++;
    }
    free(payload);
    return st;
}

static void *serve(void *arg)
{
    goipc_conn c = *(goipc_conn *)arg;
    unsigned long long n = 0;
    int32_t st = raw ? echo_loop(c, &n) : pong_loop(c, &n);
    if (verbose || (st != GOIPC_ERR_PEER_CLOSED && st != GOIPC_ERR_CLOSED))
        fprintf(stderr, "c pong: connection ended after %llu messages: %s (%s)\n", n, goipc_strerror(st),
                goipc_last_error_message());
    if (once)
        stop = 1;
    return NULL;
}

/* ---- --transport unix: the socket baseline ------------------------------ */

static int unix_fds[MAX_CONNS];
static int unix_listen_fd = -1;

/* Echoes the bytes of one connection until it ends. */
static void *unix_echo(void *arg)
{
    int fd = *(int *)arg;
    unsigned char buf[65536];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t done = 0; done < r;) {
            ssize_t w = write(fd, buf + done, (size_t)(r - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                goto out;
            done += w;
        }
    }
out:
    if (once) {
        stop = 1;
        shutdown(unix_listen_fd, SHUT_RDWR); /* wakes the accept in main */
    }
    return NULL;
}

static int serve_unix(const char *path)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "c pong: socket path too long: %s\n", path);
        return 1;
    }
    strcpy(addr.sun_path, path);
    int lfd = unix_listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 64) != 0) {
        fprintf(stderr, "c pong: listen %s: %s\n", path, strerror(errno));
        return 1;
    }
    printf("c pong: listening on %s (unix socket echo)\n", path);
    fflush(stdout);
    /* The signal handler has no SA_RESTART, and the echo threads block
     * SIGINT and SIGTERM: a signal interrupts this accept. */
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    int rc = 0;
    while (!stop) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || stop)
                continue;
            fprintf(stderr, "c pong: accept: %s\n", strerror(errno));
            rc = 1;
            break;
        }
        if (nconns == MAX_CONNS) {
            fprintf(stderr, "c pong: too many connections, refusing one\n");
            close(fd);
            continue;
        }
        unix_fds[nconns] = fd;
        pthread_sigmask(SIG_BLOCK, &sigs, &old); /* the new thread inherits the mask */
        int err = pthread_create(&threads[nconns], NULL, unix_echo, &unix_fds[nconns]);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (err != 0) {
            fprintf(stderr, "c pong: pthread_create failed\n");
            close(fd);
            continue;
        }
        nconns++;
    }
    close(lfd);
    unlink(path);
    for (int i = 0; i < nconns; i++)
        shutdown(unix_fds[i], SHUT_RDWR); /* ends the blocked reads */
    for (int i = 0; i < nconns; i++) {
        pthread_join(threads[i], NULL);
        close(unix_fds[i]);
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long long spin = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--spin") == 0 && i + 1 < argc)
            spin = atoll(argv[++i]);
        else if (strcmp(argv[i], "--once") == 0)
            once = 1;
        else if (strcmp(argv[i], "--transport") == 0 && i + 1 < argc)
            transport = argv[++i];
        else if (strcmp(argv[i], "--raw") == 0)
            raw = 1;
        else if (strcmp(argv[i], "-v") == 0)
            verbose = 1;
        else
            path = NULL, i = argc;
    }
    if (path == NULL || (strcmp(transport, "goipc") != 0 && strcmp(transport, "unix") != 0)) {
        fprintf(stderr, "usage: pong --listen PATH [--raw] [--transport goipc|unix] [--spin NS] [--once] [-v]\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (strcmp(transport, "unix") == 0)
        return serve_unix(path);

    goipc_options opts;
    goipc_options_init(&opts);
    opts.spin_ns = spin;
    goipc_listener l;
    int32_t st = goipc_listen_ex(path, &opts, &l);
    if (st != GOIPC_OK) {
        fprintf(stderr, "c pong: listen %s: %s (%s)\n", path, goipc_strerror(st), goipc_last_error_message());
        return 1;
    }
    printf("c pong: listening on %s\n", path);
    fflush(stdout);

    /* Accept with a short timeout so that a signal is noticed: a signal
     * handler must not call into the library. */
    int rc = 0;
    while (!stop) {
        goipc_conn c;
        st = goipc_accept(l, 100, &c);
        if (st == GOIPC_ERR_TIMEOUT)
            continue;
        if (st != GOIPC_OK) {
            fprintf(stderr, "c pong: accept: %s (%s)\n", goipc_strerror(st), goipc_last_error_message());
            if (st == GOIPC_ERR_CLOSED) {
                rc = 1;
                break;
            }
            continue; /* a failed handshake concerns one client */
        }
        pthread_mutex_lock(&mu);
        if (nconns == MAX_CONNS) {
            pthread_mutex_unlock(&mu);
            fprintf(stderr, "c pong: too many connections, refusing one\n");
            goipc_conn_close(c);
            continue;
        }
        conns[nconns] = c;
        if (pthread_create(&threads[nconns], NULL, serve, &conns[nconns]) != 0) {
            pthread_mutex_unlock(&mu);
            fprintf(stderr, "c pong: pthread_create failed\n");
            goipc_conn_close(c);
            continue;
        }
        nconns++;
        pthread_mutex_unlock(&mu);
    }
    goipc_listener_close(l); /* removes the socket path */
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nconns; i++)
        goipc_conn_close(conns[i]); /* interrupts the blocked receives */
    for (int i = 0; i < nconns; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_unlock(&mu);
    return rc;
}
