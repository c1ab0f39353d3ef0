/*
 * test_batch.c - goipc_send_batch and goipc_recv_batch: order of a long
 * stream of varied sizes (in-process and through the Go consumer), a
 * batch larger than the ring with a receiver thread, a timeout-0 prefix,
 * partial receive batches, and the refusals (NULL and invalid arguments,
 * oversized messages, reservations and views held by the caller).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

/* Message i of a stream: its size (0 .. 300 bytes, empty ones included)
 * and, through fill_pattern(seed i), its bytes. */
static size_t stream_size(size_t i) { return (i * 37 + i / 3) % 301; }

#define STREAM_MSGS 1000
#define STREAM_MAX 300

/* The stream's messages, each in its own buffer, and their iovecs. */
struct stream {
    unsigned char *bytes[STREAM_MSGS];
    goipc_iovec iov[STREAM_MSGS];
};

static void stream_init(struct stream *s)
{
    for (size_t i = 0; i < STREAM_MSGS; i++) {
        size_t n = stream_size(i);
        s->bytes[i] = n ? malloc(n) : NULL; /* an empty message may have no data */
        fill_pattern(s->bytes[i], n, i);
        s->iov[i] = (goipc_iovec){.data = s->bytes[i], .len = n};
    }
}

static void stream_free(struct stream *s)
{
    for (size_t i = 0; i < STREAM_MSGS; i++)
        free(s->bytes[i]);
}

/* Sends the stream in batches of 1, 2, ... 37 messages, then again. */
static void send_stream(goipc_conn c, const struct stream *s)
{
    size_t i = 0;
    for (size_t k = 1; i < STREAM_MSGS; k = k % 37 + 1) {
        size_t n = STREAM_MSGS - i < k ? STREAM_MSGS - i : k, sent = 12345;
        if (!EXPECT_ST(goipc_send_batch(c, s->iov + i, n, &sent, 10000), GOIPC_OK) || !EXPECT(sent == n))
            return;
        i += n;
    }
}

struct stream_sender {
    goipc_conn c;
    const struct stream *s;
};

static void *stream_sender_run(void *p)
{
    struct stream_sender *j = p;
    send_stream(j->c, j->s);
    return NULL;
}

/* Receives the stream with goipc_recv_batch, at most max_count messages
 * and cap bytes per call, checking order, sizes and bytes. */
static void recv_stream(goipc_conn c, size_t cap, size_t max_count)
{
    unsigned char *buf = malloc(cap);
    size_t *sizes = malloc(max_count * sizeof *sizes);
    for (size_t i = 0; i < STREAM_MSGS;) {
        size_t count = 12345;
        if (!EXPECT_ST(goipc_recv_batch(c, buf, cap, sizes, max_count, &count, 10000), GOIPC_OK))
            break;
        if (!EXPECT(count >= 1 && count <= max_count && i + count <= STREAM_MSGS))
            break;
        size_t off = 0;
        for (size_t j = 0; j < count; j++, i++) {
            if (!EXPECT(sizes[j] == stream_size(i) && off + sizes[j] <= cap && check_pattern(buf + off, sizes[j], i))) {
                fprintf(stderr, "    message %zu (batch entry %zu of %zu): %zu bytes, want %zu\n", i, j, count,
                        sizes[j], stream_size(i));
                i = STREAM_MSGS;
                break;
            }
            off += sizes[j];
        }
    }
    free(buf);
    free(sizes);
}

/* Sends the stream on `to` from a thread while this thread receives it on
 * `from` with recv_stream(cap, max_count). */
static void stream_through(goipc_conn to, goipc_conn from, const struct stream *s, size_t cap, size_t max_count)
{
    struct stream_sender j = {.c = to, .s = s};
    pthread_t t;
    pthread_create(&t, NULL, stream_sender_run, &j);
    recv_stream(from, cap, max_count);
    pthread_join(t, NULL);
}

/* An in-process pair whose dialer's ring holds ring_size bytes, with
 * messages of at most 1 KiB. */
static int small_ring_pair(goipc_conn *a, goipc_conn *b, uint64_t ring_size)
{
    goipc_options o;
    goipc_options_init(&o);
    o.ring_size = ring_size;
    o.max_message_size = 1024;
    return make_pair(a, b, &o, NULL);
}

/* A stream of 1000 messages of varied sizes, sent in batches by one thread
 * and received in batches by another, through a 16 KiB ring (wraps and
 * backpressure all the time); then again, received with a buffer the size
 * of the largest message. */
void test_batch_order(void)
{
    goipc_conn a, b;
    REQUIRE(small_ring_pair(&a, &b, 16384) == 0);
    struct stream s;
    stream_init(&s);
    stream_through(a, b, &s, 2048, 16);
    /* Again, with a buffer the size of the largest message: a batch stops
     * at the first message that does not fit what is left of it. */
    stream_through(a, b, &s, STREAM_MAX, 64);
    size_t count;
    size_t sizes[4];
    unsigned char buf[64];
    EXPECT_ST(goipc_recv_batch(b, buf, sizeof buf, sizes, 4, &count, 0), GOIPC_ERR_TIMEOUT);
    EXPECT(count == 0);
    stream_free(&s);
    goipc_conn_close(a);
    goipc_conn_close(b);
}

/* Messages already published are taken by one call, up to max_count and
 * cap; the rest stay queued, in order. */
void test_batch_partial_recv(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    struct stream s;
    stream_init(&s);
    size_t sent = 0;
    /* Messages 1..10 (0 is empty, and sizes vary). */
    REQUIRE_ST(goipc_send_batch(a, s.iov + 1, 10, &sent, 0), GOIPC_OK);
    REQUIRE(sent == 10);
    unsigned char buf[4096];
    size_t sizes[8], count = 0;
    /* max_count 3: exactly three, the first three. */
    EXPECT_ST(goipc_recv_batch(b, buf, sizeof buf, sizes, 3, &count, 0), GOIPC_OK);
    EXPECT(count == 3 && sizes[0] == stream_size(1) && sizes[2] == stream_size(3));
    EXPECT(check_pattern(buf, sizes[0], 1) && check_pattern(buf + sizes[0] + sizes[1], sizes[2], 3));
    /* cap that holds messages 4 and 5 but not 6: two. */
    size_t cap = stream_size(4) + stream_size(5) + stream_size(6) - 1;
    EXPECT_ST(goipc_recv_batch(b, buf, cap, sizes, 8, &count, 0), GOIPC_OK);
    EXPECT(count == 2 && sizes[0] == stream_size(4) && sizes[1] == stream_size(5));
    /* A first message larger than cap: refused, count 0, its size in
     * sizes[0], and it stays (twice: the second time it is the message the
     * first refusal kept). */
    for (int i = 0; i < 2; i++) {
        sizes[0] = 777;
        EXPECT_ST(goipc_recv_batch(b, buf, stream_size(6) - 1, sizes, 8, &count, 0), GOIPC_ERR_BUFFER_TOO_SMALL);
        EXPECT(count == 0 && sizes[0] == stream_size(6));
    }
    size_t n = 0;
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 0), GOIPC_OK);
    EXPECT(n == stream_size(6) && check_pattern(buf, n, 6));
    /* The rest, 7..10, in one call with room to spare. */
    EXPECT_ST(goipc_recv_batch(b, buf, sizeof buf, sizes, 8, &count, 0), GOIPC_OK);
    EXPECT(count == 4 && sizes[3] == stream_size(10));
    /* A refused first message, then a batch that starts with it and goes
     * on with those behind it. */
    EXPECT_ST(goipc_send_batch(a, s.iov + 6, 3, &sent, 0), GOIPC_OK);
    EXPECT_ST(goipc_recv_batch(b, buf, 10, sizes, 8, &count, 0), GOIPC_ERR_BUFFER_TOO_SMALL);
    EXPECT(sizes[0] == stream_size(6));
    EXPECT_ST(goipc_recv_batch(b, buf, sizeof buf, sizes, 8, &count, 0), GOIPC_OK);
    EXPECT(count == 3 && sizes[0] == stream_size(6) && sizes[2] == stream_size(8));
    EXPECT(check_pattern(buf, sizes[0], 6) && check_pattern(buf + sizes[0] + sizes[1], sizes[2], 8));
    /* Empty messages fit a NULL buffer of capacity 0. */
    goipc_iovec empties[3] = {{NULL, 0}, {buf, 0}, {NULL, 0}};
    EXPECT_ST(goipc_send_batch(a, empties, 3, &sent, 0), GOIPC_OK);
    EXPECT(sent == 3);
    EXPECT_ST(goipc_recv_batch(b, NULL, 0, sizes, 8, &count, 0), GOIPC_OK);
    EXPECT(count == 3 && sizes[0] == 0 && sizes[1] == 0 && sizes[2] == 0);
    /* After the peer closes: what it sent, then PEER_CLOSED. */
    EXPECT_ST(goipc_send_batch(a, s.iov + 1, 2, &sent, 0), GOIPC_OK);
    goipc_conn_close(a);
    EXPECT_ST(goipc_recv_batch(b, buf, sizeof buf, sizes, 8, &count, 5000), GOIPC_OK);
    EXPECT(count == 2);
    EXPECT_ST(goipc_recv_batch(b, buf, sizeof buf, sizes, 8, &count, 5000), GOIPC_ERR_PEER_CLOSED);
    EXPECT(count == 0);
    stream_free(&s);
    goipc_conn_close(b);
}

struct plain_receiver {
    goipc_conn c;
    size_t want, got;
    size_t msg_len;
};

/* Receives with plain goipc_recv: a batch is received one by one. */
static void *plain_receiver_run(void *p)
{
    struct plain_receiver *r = p;
    unsigned char buf[256];
    size_t n;
    for (; r->got < r->want; r->got++) {
        if (!EXPECT_ST(goipc_recv(r->c, buf, sizeof buf, &n, 10000), GOIPC_OK))
            break;
        if (!EXPECT(n == r->msg_len && check_pattern(buf, n, r->got)))
            break;
    }
    return NULL;
}

/* One batch of 600 messages of 64 bytes (about 43 KiB of frames) through a
 * 4 KiB ring: the sender publishes what it wrote, waits for space while
 * the receiver thread drains, and ends with all sent. */
void test_batch_larger_than_ring(void)
{
    goipc_conn a, b;
    REQUIRE(small_ring_pair(&a, &b, 4096) == 0);
    enum { N = 600, LEN = 64 };
    unsigned char(*msgs)[LEN] = malloc(N * LEN);
    goipc_iovec *iov = malloc(N * sizeof *iov);
    for (size_t i = 0; i < N; i++) {
        fill_pattern(msgs[i], LEN, i);
        iov[i] = (goipc_iovec){msgs[i], LEN};
    }
    struct plain_receiver r = {.c = b, .want = N, .msg_len = LEN};
    pthread_t t;
    pthread_create(&t, NULL, plain_receiver_run, &r);
    size_t sent = 0;
    EXPECT_ST(goipc_send_batch(a, iov, N, &sent, 10000), GOIPC_OK);
    EXPECT(sent == N);
    pthread_join(t, NULL);
    EXPECT(r.got == N);
    free(iov);
    free(msgs);
    goipc_conn_close(a);
    goipc_conn_close(b);
}

/* Timeout 0 on a batch larger than the free space: a proper prefix is
 * sent (and only it), GOIPC_ERR_TIMEOUT; the rest follows once drained. */
void test_batch_timeout_prefix(void)
{
    goipc_conn a, b;
    REQUIRE(small_ring_pair(&a, &b, 4096) == 0);
    enum { N = 200, LEN = 64 };
    unsigned char msgs[N][LEN];
    goipc_iovec iov[N];
    for (size_t i = 0; i < N; i++) {
        fill_pattern(msgs[i], LEN, i);
        iov[i] = (goipc_iovec){msgs[i], LEN};
    }
    size_t sent = 12345;
    EXPECT_ST(goipc_send_batch(a, iov, N, &sent, 0), GOIPC_ERR_TIMEOUT);
    EXPECT(sent > 0 && sent < N);
    size_t next = 0; /* the next message the receiver expects */
    unsigned char buf[LEN * N];
    size_t sizes[N], count;
    for (size_t total = sent; next < N;) {
        /* Everything sent so far, and nothing else, is there. */
        while (next < total) {
            if (!EXPECT_ST(goipc_recv_batch(b, buf, sizeof buf, sizes, N, &count, 0), GOIPC_OK))
                goto out;
            for (size_t j = 0; j < count; j++, next++)
                EXPECT(sizes[j] == LEN && check_pattern(buf + j * LEN, LEN, next));
        }
        EXPECT(next == total);
        EXPECT_ST(goipc_recv_batch(b, buf, sizeof buf, sizes, N, &count, 0), GOIPC_ERR_TIMEOUT);
        if (total == N)
            break;
        sent = 0;
        int32_t st = goipc_send_batch(a, iov + total, N - total, &sent, 0);
        EXPECT(st == GOIPC_OK || st == GOIPC_ERR_TIMEOUT);
        EXPECT(sent > 0 && (st == GOIPC_OK) == (sent == N - total));
        if (sent == 0)
            break;
        total += sent;
    }
out:
    EXPECT(next == N);
    goipc_conn_close(a);
    goipc_conn_close(b);
}

void test_batch_misuse(void)
{
    goipc_conn a, b;
    REQUIRE(small_ring_pair(&a, &b, 1 << 16) == 0);
    unsigned char small[16] = "0123456789abcdef", big[1025] = {0}, buf[2048];
    size_t sizes[4], sent, count;
    goipc_iovec with_null[3] = {{small, 4}, {small, 8}, {NULL, 5}};
    goipc_iovec too_big[3] = {{small, 4}, {big, sizeof big}, {small, 8}};
    goipc_iovec ok[2] = {{small, 4}, {small, 16}};

#define EXPECT_SENT(call, want_st)        \
    do {                                  \
        sent = 99;                        \
        EXPECT_ST(call, want_st);         \
        EXPECT(sent == 0);                \
    } while (0)
    EXPECT_SENT(goipc_send_batch(a, NULL, 2, &sent, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_SENT(goipc_send_batch(a, with_null, 3, &sent, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(goipc_last_error_message(), "msgs[2]") != NULL);
    EXPECT_SENT(goipc_send_batch(a, too_big, 3, &sent, 0), GOIPC_ERR_MESSAGE_TOO_LARGE);
    EXPECT(strstr(goipc_last_error_message(), "message 1") != NULL);
    EXPECT_SENT(goipc_send_batch(a, NULL, 0, &sent, 0), GOIPC_OK); /* nothing to send */
    EXPECT_SENT(goipc_send_batch(0, ok, 2, &sent, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_SENT(goipc_send_batch(0xdeadbeef, ok, 2, &sent, 0), GOIPC_ERR_INVALID_ARGUMENT);
    /* None of the refused batches sent anything. */
    EXPECT_ST(goipc_recv_batch(b, buf, sizeof buf, sizes, 4, &count, 0), GOIPC_ERR_TIMEOUT);
    /* sent may be NULL. */
    EXPECT_ST(goipc_send_batch(a, ok, 2, NULL, 0), GOIPC_OK);

#define EXPECT_COUNT(call, want_st)       \
    do {                                  \
        count = 99;                       \
        EXPECT_ST(call, want_st);         \
        EXPECT(count == 0);               \
    } while (0)
    EXPECT_ST(goipc_recv_batch(b, buf, sizeof buf, NULL, 4, &count, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_batch(b, buf, sizeof buf, sizes, 4, NULL, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_COUNT(goipc_recv_batch(b, buf, sizeof buf, sizes, 0, &count, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_COUNT(goipc_recv_batch(b, NULL, 16, sizes, 4, &count, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_COUNT(goipc_recv_batch(0, buf, sizeof buf, sizes, 4, &count, 0), GOIPC_ERR_INVALID_ARGUMENT);
    /* The refusals took nothing: both messages are there, in order. */
    EXPECT_COUNT(goipc_recv_batch(b, buf, 3, sizes, 4, &count, 0), GOIPC_ERR_BUFFER_TOO_SMALL);
    EXPECT_ST(goipc_recv_batch(b, buf, sizeof buf, sizes, 4, &count, 0), GOIPC_OK);
    EXPECT(count == 2 && sizes[0] == 4 && sizes[1] == 16 && memcmp(buf, "01230123456789abcdef", 20) == 0);

    /* A huge cap or max_count is not a problem: only what arrives is
     * written. */
    EXPECT_ST(goipc_send_batch(a, ok, 1, &sent, 0), GOIPC_OK);
    EXPECT_ST(goipc_recv_batch(b, buf, SIZE_MAX, sizes, 1, &count, 0), GOIPC_OK);
    EXPECT(count == 1 && sizes[0] == 4);

    /* The thread holding a reservation (view) may not send (receive) a
     * batch: it would wait for itself. */
    void *res;
    REQUIRE_ST(goipc_reserve(a, 8, 0, &res), GOIPC_OK);
    EXPECT_SENT(goipc_send_batch(a, ok, 2, &sent, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_commit(a, 8), GOIPC_OK);
    const void *view;
    size_t vlen;
    REQUIRE_ST(goipc_recv_view(b, &view, &vlen, 1000), GOIPC_OK);
    EXPECT_COUNT(goipc_recv_batch(b, buf, sizeof buf, sizes, 4, &count, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_release(b), GOIPC_OK);

    /* Closed handles. */
    goipc_conn_close(a);
    goipc_conn_close(b);
    EXPECT_SENT(goipc_send_batch(a, ok, 2, &sent, 0), GOIPC_ERR_CLOSED);
    EXPECT_COUNT(goipc_recv_batch(b, buf, sizeof buf, sizes, 4, &count, 0), GOIPC_ERR_CLOSED);
#undef EXPECT_SENT
#undef EXPECT_COUNT
}

/* test_c_batch_producer_go_consumer: the stream in batches to `goipc pong`,
 * its echoes received in batches (another process, the default ring). */
void test_batch_go_pong(void)
{
    if (g_goipc_bin == NULL)
        SKIP("GOIPC_BIN (the goipc CLI) is not set");
    char path[300];
    sock_path(path, sizeof path, "batch-gopong");
    child pong;
    REQUIRE(start_go_pong(&pong, path) == 0);
    goipc_conn c;
    if (EXPECT_ST(goipc_dial(path, 10000, &c), GOIPC_OK)) {
        struct stream s;
        stream_init(&s);
        stream_through(c, c, &s, 4096, 32);
        stream_free(&s);
        EXPECT_ST(goipc_conn_close(c), GOIPC_OK);
    }
    kill(pong.pid, SIGTERM);
    EXPECT(wait_exit(&pong, 10000) != -1);
    reap_child(&pong);
}
