/*
 * peer.c: one end of a 64 B round trip between two processes, driving
 * goipc's rings directly in C, so that each side of goipc's round trip can
 * be measured against a C end (make bench-floor; docs/PERFORMANCE.md
 * section 33).
 *
 * libgoipc makes the connection (goipc_dial or goipc_listen +
 * goipc_accept: the handshake, the peer checks, the segment) and this
 * program then finds the segment's mapping in /proc/self/maps, as goipc
 * stat finds an accepted connection's (docs/STAT.md), and never calls
 * goipc_send or goipc_recv on it. Its ends speak the protocol of
 * docs/PROTOCOL.md, in a benchmark's subset:
 *
 *   - frames as docs/LAYOUT.md lays them out, a message or a padding
 *     frame; every head and tail loaded from the segment is checked as a
 *     consumer and a producer check them, and every frame header too;
 *   - head and tail published with a sequentially consistent store (XCHG);
 *   - after each publication, the eventcount the peer may wait on is
 *     loaded: announced futex waiters are woken (epoch bumped, FUTEX_WAKE)
 *     and an armed doorbell is rung once (one byte on the socket), so a
 *     goipc peer that parks is woken as a goipc end would wake it;
 *   - this end never parks: it spins, loading the next frame's two lines
 *     while it waits (section 29), as goipc's receive does;
 *   - no locks, no in-flight counts, no statistics words, no calls.
 *
 * Usage:
 *   peer ping PATH [N]   dial PATH, make 10000 untimed round trips, then N
 *                        timed ones (default 300000), each reply compared
 *                        with what was sent outside the timed region; prints
 *                        "c-peer p50 P p99 P p99.9 P ns" (clock_gettime
 *                        CLOCK_MONOTONIC around each, as ring.c, goipc ping
 *                        and bench_inter time theirs)
 *   peer pong PATH       listen on PATH, accept one connection and echo
 *                        every message until the peer hangs up
 * Exit status: 0, 1 on a protocol error or a reply that differs, 2 on a
 * setup error.
 */
#include <linux/futex.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "goipc.h"

#define PAYLOAD 64
#define UNTIMED 10000

/* docs/LAYOUT.md, version 2 */
enum {
    OFF_MAX_MESSAGE = 0x18,
    OFF_RING0_DATA = 0x28,
    OFF_RING0_CAP = 0x30,
    OFF_RING1_DATA = 0x38,
    OFF_RING1_CAP = 0x40,
    OFF_CONTROL = 0x80, /* ring 0's control block; ring 1's follows */
    CONTROL_SIZE = 0x100,
    CTL_HEAD = 0x00,
    CTL_DATA_EC = 0x08,
    CTL_TAIL = 0x80,
    CTL_SPACE_EC = 0x88,
    KIND_MESSAGE = 0,
    KIND_PADDING = 1,
    LAYOUT_VERSION = 2,
};
#define EC_WAITERS 0x7fffffffull
#define EC_DOORBELL (1ull << 31)
#define EC_EPOCH (1ull << 32)

/* One direction as one end sees it. pos is this end's own position (head
 * for the producer, tail for the consumer), authoritative; seen is the
 * last valid position loaded from the other end. */
struct ring {
    unsigned char *data;
    uint64_t cap;
    uint64_t *head, *tail, *data_ec, *space_ec;
    uint64_t pos, seen;
};

struct end {
    struct ring tx, rx;
    uint64_t max_message;
    int sock; /* the connection's socket: doorbell bytes, and hang-up */
};

static _Noreturn void die(int status, const char *what)
{
    fprintf(stderr, "peer: %s\n", what);
    exit(status);
}

static uint64_t frame_size(uint64_t n)
{
    return (8 + n + 7) & ~7ull;
}

/* notify wakes the other end if it waits on ec (docs/PROTOCOL.md, the
 * notifier's side); called right after a sequentially consistent store. */
static void notify(const struct end *e, uint64_t *ec, char byte)
{
    uint64_t w = __atomic_load_n(ec, __ATOMIC_SEQ_CST);
    if ((w & (EC_WAITERS | EC_DOORBELL)) == 0)
        return;
    if (w & EC_WAITERS) {
        __atomic_fetch_add(ec, EC_EPOCH, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, (uint32_t *)ec + 1, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
    }
    if ((w & EC_DOORBELL) && (__atomic_fetch_and(ec, ~EC_DOORBELL, __ATOMIC_SEQ_CST) & EC_DOORBELL))
        (void)!write(e->sock, &byte, 1); /* EAGAIN: a wakeup pending already */
}

/* send_msg writes one message frame and publishes it, spinning while the
 * ring is full. */
static void send_msg(struct end *e, const unsigned char *msg, uint64_t n)
{
    struct ring *r = &e->tx;
    uint64_t fs = frame_size(n), off = r->pos & (r->cap - 1);
    uint64_t pad = off + fs > r->cap ? r->cap - off : 0;
    while (r->pos + pad + fs - r->seen > r->cap) {
        uint64_t t = __atomic_load_n(r->tail, __ATOMIC_ACQUIRE);
        if (r->pos - t > r->cap || (t & 7) || t < r->seen)
            die(1, "protocol error: the peer's tail moved outside the ring");
        r->seen = t;
    }
    if (pad) {
        uint64_t hdr = (pad - 8) | (uint64_t)KIND_PADDING << 32;
        memcpy(r->data + off, &hdr, 8);
        r->pos += pad;
        off = 0;
    }
    memcpy(r->data + off + 8, msg, n);
    uint64_t hdr = n | (uint64_t)KIND_MESSAGE << 32;
    memcpy(r->data + off, &hdr, 8); /* header last, as goipc's seal */
    r->pos += fs;
    __atomic_store_n(r->head, r->pos, __ATOMIC_SEQ_CST);
    notify(e, r->data_ec, 'D');
}

/* hung_up reports whether the peer closed its end of the socket. */
static int hung_up(int sock)
{
    struct pollfd p = {.fd = sock, .events = POLLRDHUP};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* recv_msg spins for the next message and copies it into buf (PAYLOAD
 * bytes at most), skipping padding; returns its length, or -1 once the
 * peer hung up (looked at every 2^20 polls, a few milliseconds). */
static int64_t recv_msg(struct end *e, unsigned char *buf)
{
    struct ring *r = &e->rx;
    for (;;) {
        uint64_t off = r->pos & (r->cap - 1);
        const volatile uint64_t *line1 = (const uint64_t *)(r->data + off);
        const volatile uint64_t *line2 = (const uint64_t *)(r->data + ((off + 64) & (r->cap - 1)));
        uint64_t h;
        for (uint32_t i = 1; (h = __atomic_load_n(r->head, __ATOMIC_ACQUIRE)) == r->pos; i++) {
            /* Loads only to pull the lines in; their values are unused. */
            (void)*line1;
            (void)*line2;
            if ((i & ((1u << 20) - 1)) == 0 && hung_up(e->sock))
                return -1;
        }
        if (h - r->pos > r->cap || (h & 7))
            die(1, "protocol error: the peer's head moved outside the ring");
        uint64_t hdr;
        memcpy(&hdr, r->data + off, 8); /* read once, then only the copy */
        uint64_t n = (uint32_t)hdr;
        uint32_t kind = (uint32_t)(hdr >> 32);
        if (kind == KIND_PADDING) {
            if (n + 8 != r->cap - off || r->cap - off > h - r->pos)
                die(1, "protocol error: a padding frame that does not reach the ring end");
            r->pos += r->cap - off;
            continue;
        }
        uint64_t fs = frame_size(n);
        if (kind != KIND_MESSAGE || n > e->max_message || off + fs > r->cap || fs > h - r->pos)
            die(1, "protocol error: a frame header out of bounds, or not a message");
        if (n > PAYLOAD)
            die(1, "a message larger than this benchmark's payload");
        memcpy(buf, r->data + off + 8, n);
        r->pos += fs;
        __atomic_store_n(r->tail, r->pos, __ATOMIC_SEQ_CST);
        notify(e, r->space_ec, 'S');
        return (int64_t)n;
    }
}

/* attach finds the connection's segment and socket. dialer: ring 0 is
 * ours to produce; an accepted end consumes it. */
static void attach(struct end *e, const char *path, int dialer)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL)
        die(2, "cannot read /proc/self/maps");
    char line[512];
    unsigned long lo = 0, hi = 0;
    int found = 0;
    while (fgets(line, sizeof line, maps))
        if (strstr(line, "/memfd:goipc") && sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
            found++;
        }
    fclose(maps);
    if (found != 1)
        die(2, "not exactly one goipc segment mapped in this process");
    unsigned char *b = (unsigned char *)lo;
    uint32_t version;
    memcpy(&version, b + 8, 4);
    if (version != LAYOUT_VERSION)
        die(2, "the segment's layout is not the version this program speaks");
    uint32_t max32;
    memcpy(&max32, b + OFF_MAX_MESSAGE, 4);
    e->max_message = max32;
    struct ring r[2];
    for (int i = 0; i < 2; i++) {
        uint64_t data, cap;
        memcpy(&data, b + (i ? OFF_RING1_DATA : OFF_RING0_DATA), 8);
        memcpy(&cap, b + (i ? OFF_RING1_CAP : OFF_RING0_CAP), 8);
        if (data + cap > hi - lo || (cap & (cap - 1)))
            die(2, "a ring outside the mapping");
        unsigned char *ctl = b + OFF_CONTROL + i * CONTROL_SIZE;
        r[i] = (struct ring){
            .data = b + data,
            .cap = cap,
            .head = (uint64_t *)(ctl + CTL_HEAD),
            .tail = (uint64_t *)(ctl + CTL_TAIL),
            .data_ec = (uint64_t *)(ctl + CTL_DATA_EC),
            .space_ec = (uint64_t *)(ctl + CTL_SPACE_EC),
        };
    }
    e->tx = r[dialer ? 0 : 1];
    e->rx = r[dialer ? 1 : 0];
    /* The connected socket: the dialer's peer, or the accepted one (named
     * as the listener is, but not listening). */
    e->sock = -1;
    for (int fd = 3; fd < 1024 && e->sock < 0; fd++) {
        struct sockaddr_un a;
        socklen_t al = sizeof a;
        int listening = 0;
        socklen_t ll = sizeof listening;
        int got = dialer ? getpeername(fd, (struct sockaddr *)&a, &al) : getsockname(fd, (struct sockaddr *)&a, &al);
        if (got != 0 || a.sun_family != AF_UNIX || strncmp(a.sun_path, path, sizeof a.sun_path) != 0)
            continue;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) == 0 && !listening)
            e->sock = fd;
    }
    if (e->sock < 0)
        die(2, "cannot find the connection's socket");
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int ping(const char *path, long n)
{
    goipc_conn c;
    if (goipc_dial(path, 10000, &c) != GOIPC_OK) {
        fprintf(stderr, "peer: goipc_dial %s: %s\n", path, goipc_last_error_message());
        return 2;
    }
    struct end e;
    attach(&e, path, 1);
    uint64_t *lat = malloc((size_t)n * sizeof *lat);
    if (lat == NULL)
        die(2, "out of memory");
    memset(lat, 0, (size_t)n * sizeof *lat); /* no page faults in the timed loop */
    unsigned char msg[PAYLOAD], got[PAYLOAD];
    for (long i = 0; i < n + UNTIMED; i++) {
        memset(msg, (int)(i * 7 + 1), sizeof msg);
        uint64_t t0 = now_ns();
        send_msg(&e, msg, PAYLOAD);
        int64_t len = recv_msg(&e, got);
        uint64_t t1 = now_ns();
        if (i >= UNTIMED)
            lat[i - UNTIMED] = t1 - t0;
        if (len < 0)
            die(1, "the peer hung up");
        if (len != PAYLOAD || memcmp(got, msg, sizeof msg) != 0) {
            fprintf(stderr, "peer: reply %ld differs from what was sent\n", i);
            return 1;
        }
    }
    goipc_conn_close(c);
    qsort(lat, (size_t)n, sizeof *lat, by_value);
    printf("c-peer p50 %llu p99 %llu p99.9 %llu ns\n", (unsigned long long)lat[n / 2],
           (unsigned long long)lat[n * 99 / 100], (unsigned long long)lat[n * 999 / 1000]);
    free(lat);
    return 0;
}

static int pong(const char *path)
{
    goipc_listener l;
    goipc_conn c;
    if (goipc_listen(path, &l) != GOIPC_OK || goipc_accept(l, 60000, &c) != GOIPC_OK) {
        fprintf(stderr, "peer: listen or accept on %s: %s\n", path, goipc_last_error_message());
        return 2;
    }
    struct end e;
    attach(&e, path, 0);
    unsigned char buf[PAYLOAD];
    int64_t n;
    while ((n = recv_msg(&e, buf)) >= 0)
        send_msg(&e, buf, (uint64_t)n);
    goipc_conn_close(c);
    goipc_listener_close(l);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "ping") == 0) {
        long n = argc > 3 ? atol(argv[3]) : 300000;
        if (n < 1000)
            die(2, "N must be at least 1000");
        return ping(argv[2], n);
    }
    if (argc == 3 && strcmp(argv[1], "pong") == 0)
        return pong(argv[2]);
    fprintf(stderr, "usage: peer ping PATH [N] | peer pong PATH\n");
    return 2;
}
