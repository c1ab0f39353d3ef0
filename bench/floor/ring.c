/*
 * ring.c: the floor of a 64 B round trip over goipc's ring layout, in C.
 *
 * Two threads ping-pong a 64-byte payload over two rings laid out as
 * goipc lays them out (docs/LAYOUT.md): 8-byte frame header + payload at
 * a stride of 72 bytes, the producer's head and the consumer's tail each
 * on a cache line of its own, head and tail published with a sequentially
 * consistent store (XCHG), and a spinning receive that loads the next
 * frame's two lines while it waits (docs/PERFORMANCE.md section 29). No
 * validation, no locks, no wakeups, no pinning, no SCHED_FIFO: what the
 * hardware and the layout cost, for comparison with
 * BenchmarkRawRingPingPong (the same in Go), goipc itself and Tachyon's
 * bench_inter (docs/PERFORMANCE.md section 32; make bench-floor).
 *
 * Usage: ring [WARM [N]]   WARM 1 (default) or 0; N round trips timed
 * (default 300000) after 10000 untimed ones. Each timestamp is one
 * clock_gettime(CLOCK_MONOTONIC), as bench_inter and goipc ping take
 * theirs. Every reply is compared with what was sent, outside the timed
 * region; a difference exits 1.
 * Prints: c-ring warm=W p50 P p99 P p99.9 P ns
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define RING_CAP (1u << 20)
#define STRIDE 72 /* goipc's frame for 64 B: 8-byte header + payload */
#define PAYLOAD 64

struct ring {
    _Alignas(64) uint64_t head; /* written by the producer */
    uint64_t data_ec;           /* the data eventcount: loaded after each publish */
    _Alignas(64) uint64_t tail; /* written by the consumer */
    _Alignas(4096) unsigned char data[RING_CAP];
};

/* Each side on cache lines of its own: the two threads write their own
 * side on every round trip, and a shared line would cross the cores. */
struct side {
    _Alignas(64) struct ring *tx, *rx;
    uint64_t tx_head, rx_tail;
    unsigned char got[PAYLOAD];
};

static int warm = 1;

static void send_frame(struct side *s, const unsigned char *msg) {
    uint64_t off = s->tx_head & (RING_CAP - 1);
    if (off + STRIDE > RING_CAP) { /* no room before the end: start over at 0 */
        s->tx_head += RING_CAP - off;
        off = 0;
    }
    uint64_t n = PAYLOAD;
    memcpy(s->tx->data + off, &n, sizeof n);
    memcpy(s->tx->data + off + 8, msg, PAYLOAD);
    s->tx_head += STRIDE;
    __atomic_store_n(&s->tx->head, s->tx_head, __ATOMIC_SEQ_CST);
    (void)__atomic_load_n(&s->tx->data_ec, __ATOMIC_SEQ_CST);
}

static void recv_frame(struct side *s) {
    uint64_t off = s->rx_tail & (RING_CAP - 1);
    const volatile uint64_t *line1 = (const uint64_t *)(s->rx->data + off);
    const volatile uint64_t *line2 = (const uint64_t *)(s->rx->data + ((off + 64) & (RING_CAP - 1)));
    while (__atomic_load_n(&s->rx->head, __ATOMIC_ACQUIRE) == s->rx_tail) {
        /* Loads only to pull the lines in, racing with the producer's
         * writes by design: their values are never used (ThreadSanitizer
         * reports them, and nothing else here). */
        if (warm) {
            (void)*line1;
            (void)*line2;
        }
    }
    if (off + STRIDE > RING_CAP) {
        s->rx_tail += RING_CAP - off;
        off = 0;
    }
    uint64_t n;
    memcpy(&n, s->rx->data + off, sizeof n);
    if (n != PAYLOAD) {
        fprintf(stderr, "ring: frame of %llu bytes, want %d\n", (unsigned long long)n, PAYLOAD);
        exit(1);
    }
    memcpy(s->got, s->rx->data + off + 8, n);
    s->rx_tail += STRIDE;
    __atomic_store_n(&s->rx->tail, s->rx_tail, __ATOMIC_SEQ_CST);
}

static long rounds;

static void *pong(void *arg) {
    struct side *s = arg;
    for (long i = 0; i < rounds; i++) {
        recv_frame(s);
        send_frame(s, s->got);
    }
    return NULL;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    long n = 300000, untimed = 10000;
    if (argc > 1) warm = atoi(argv[1]) != 0;
    if (argc > 2) n = atol(argv[2]);
    if (n < 1000) {
        fprintf(stderr, "ring: N must be at least 1000\n");
        return 2;
    }
    rounds = n + untimed;
    struct ring *r = mmap(NULL, 2 * sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    uint64_t *lat = malloc((size_t)n * sizeof *lat);
    if (r == MAP_FAILED || lat == NULL) {
        perror("ring");
        return 2;
    }
    memset(lat, 0, (size_t)n * sizeof *lat); /* no page faults in the timed loop */
    struct side ping = {.tx = &r[0], .rx = &r[1]}, other = {.tx = &r[1], .rx = &r[0]};
    pthread_t t;
    if (pthread_create(&t, NULL, pong, &other) != 0) {
        perror("ring: pthread_create");
        return 2;
    }
    unsigned char msg[PAYLOAD];
    for (long i = 0; i < rounds; i++) {
        memset(msg, (int)(i * 7 + 1), sizeof msg);
        uint64_t t0 = now_ns();
        send_frame(&ping, msg);
        recv_frame(&ping);
        uint64_t t1 = now_ns();
        if (i >= untimed) lat[i - untimed] = t1 - t0;
        if (memcmp(ping.got, msg, sizeof msg) != 0) {
            fprintf(stderr, "ring: reply %ld differs from what was sent\n", i);
            return 1;
        }
    }
    pthread_join(t, NULL);
    qsort(lat, (size_t)n, sizeof *lat, by_value);
    printf("c-ring warm=%d p50 %llu p99 %llu p99.9 %llu ns\n", warm, (unsigned long long)lat[n / 2],
           (unsigned long long)lat[n * 99 / 100], (unsigned long long)lat[n * 999 / 1000]);
    free(lat);
    munmap(r, 2 * sizeof *r);
    return 0;
}
