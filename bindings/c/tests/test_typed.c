/*
 * test_typed.c - the typed Ping/Pong helpers: round trip, clocks, small
 * buffers (the message stays queued for any kind of receive), malformed
 * and unexpected messages (PROTOCOL for that message only), sizes.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "test.h"

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static size_t ping_size(size_t n) { return 64 + ((n + 11) & ~(size_t)7); }
static size_t pong_size(size_t n) { return 72 + ((n + 11) & ~(size_t)7); }

void test_typed_messages(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    unsigned char buf[512], big[200];
    uint64_t seq = 0;
    int64_t sent = 0;
    size_t n = 0;

    /* Ping -> Pong round trip. */
    int64_t t0 = mono_ns();
    EXPECT_ST(goipc_send_ping(a, 7, "hello", 5, 1000), GOIPC_OK);
    int64_t t1 = mono_ns();
    EXPECT_ST(goipc_recv_ping(b, &seq, &sent, buf, sizeof buf, &n, 1000), GOIPC_OK);
    EXPECT(seq == 7 && n == 5 && memcmp(buf, "hello", 5) == 0);
    EXPECT(sent >= t0 && sent <= t1); /* CLOCK_MONOTONIC, taken during the call */
    EXPECT_ST(goipc_send_pong(b, seq, sent, 0, buf, n, 1000), GOIPC_OK);
    seq = 0;
    EXPECT_ST(goipc_recv_pong(a, &seq, buf, sizeof buf, &n, 1000), GOIPC_OK);
    EXPECT(seq == 7 && n == 5 && memcmp(buf, "hello", 5) == 0);

    /* Empty payloads, NULL pointers with length 0. */
    EXPECT_ST(goipc_send_ping(a, 8, NULL, 0, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv_ping(b, &seq, NULL, NULL, 0, &n, 1000), GOIPC_OK);
    EXPECT(seq == 8 && n == 0);

    /* The wire size is what the header says. */
    EXPECT_ST(goipc_send_ping(a, 9, "abc", 3, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 1000), GOIPC_OK);
    EXPECT(n == ping_size(3) && memcmp(buf + 4, "GIPC", 4) == 0);

    /* Too small a buffer: the Pong stays queued, for any kind of receive. */
    fill_pattern(big, sizeof big, 5);
    EXPECT_ST(goipc_send_pong(b, 10, 1, 2, big, sizeof big, 1000), GOIPC_OK);
    n = 0;
    EXPECT_ST(goipc_recv_pong(a, &seq, buf, 10, &n, 1000), GOIPC_ERR_BUFFER_TOO_SMALL);
    EXPECT(n == sizeof big);
    n = 0;
    EXPECT_ST(goipc_recv_pong(a, &seq, NULL, 0, &n, 0), GOIPC_ERR_BUFFER_TOO_SMALL);
    EXPECT(n == sizeof big);
    n = 0;
    EXPECT_ST(goipc_recv(a, buf, 16, &n, 0), GOIPC_ERR_BUFFER_TOO_SMALL); /* raw: the whole message */
    EXPECT(n == pong_size(sizeof big));
    seq = 0;
    EXPECT_ST(goipc_recv_pong(a, &seq, buf, sizeof buf, &n, 0), GOIPC_OK);
    EXPECT(seq == 10 && n == sizeof big && check_pattern(buf, n, 5));
    EXPECT_ST(goipc_recv_pong(a, &seq, buf, sizeof buf, &n, 0), GOIPC_ERR_TIMEOUT);

    /* ... and a raw receive or a view after a kept message gets it too. */
    EXPECT_ST(goipc_send_pong(b, 11, 1, 2, big, sizeof big, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv_pong(a, &seq, buf, 10, &n, 1000), GOIPC_ERR_BUFFER_TOO_SMALL);
    const void *v;
    EXPECT_ST(goipc_recv_view(a, &v, &n, 0), GOIPC_OK);
    EXPECT(n == pong_size(sizeof big));
    EXPECT_ST(goipc_release(a), GOIPC_OK);
    EXPECT_ST(goipc_send_pong(b, 12, 1, 2, big, sizeof big, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv_pong(a, &seq, buf, 10, &n, 1000), GOIPC_ERR_BUFFER_TOO_SMALL);
    EXPECT_ST(goipc_recv(a, buf, sizeof buf, &n, 0), GOIPC_OK);
    EXPECT(n == pong_size(sizeof big));

    /* Malformed and unexpected messages: PROTOCOL for that message only. */
    EXPECT_ST(goipc_send(a, "definitely not a flatbuffer", 27, 1000), GOIPC_OK);
    EXPECT_ST(goipc_send(a, "", 0, 1000), GOIPC_OK);
    EXPECT_ST(goipc_send_pong(a, 13, 0, 0, "x", 1, 1000), GOIPC_OK); /* a Pong where a Ping is expected */
    EXPECT_ST(goipc_send_ping(a, 14, "ok", 2, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv_ping(b, &seq, NULL, buf, sizeof buf, &n, 1000), GOIPC_ERR_PROTOCOL);
    EXPECT(strstr(goipc_last_error_message(), "still usable") != NULL);
    EXPECT_ST(goipc_recv_ping(b, &seq, NULL, buf, sizeof buf, &n, 1000), GOIPC_ERR_PROTOCOL);
    EXPECT_ST(goipc_recv_ping(b, &seq, NULL, buf, sizeof buf, &n, 1000), GOIPC_ERR_PROTOCOL);
    EXPECT_ST(goipc_recv_ping(b, &seq, NULL, buf, sizeof buf, &n, 1000), GOIPC_OK);
    EXPECT(seq == 14 && n == 2 && memcmp(buf, "ok", 2) == 0);

    /* A Ping whose header claims a payload past its end (cut short). */
    unsigned char msg[128];
    EXPECT_ST(goipc_send_ping(a, 15, "0123456789", 10, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv(b, msg, sizeof msg, &n, 1000), GOIPC_OK);
    EXPECT_ST(goipc_send(a, msg, n - 8, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv_ping(b, &seq, NULL, buf, sizeof buf, &n, 1000), GOIPC_ERR_PROTOCOL);
    EXPECT_ST(goipc_send_ping(a, 16, NULL, 0, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv_ping(b, &seq, NULL, buf, sizeof buf, &n, 1000), GOIPC_OK);
    EXPECT(seq == 16);

    /* Bad arguments. */
    EXPECT_ST(goipc_send_ping(a, 1, NULL, 1, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_send_pong(a, 1, 0, 0, NULL, 1, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_pong(a, NULL, buf, sizeof buf, &n, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_pong(a, &seq, buf, sizeof buf, NULL, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_ping(a, &seq, NULL, NULL, 5, &n, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_send_ping(0, 1, "x", 1, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_pong(0, &seq, buf, sizeof buf, &n, 0), GOIPC_ERR_INVALID_ARGUMENT);
    goipc_conn_close(a);
    goipc_conn_close(b);

    /* Sizes against the maximum message size. */
    goipc_options o;
    goipc_options_init(&o);
    o.max_message_size = 4096;
    o.ring_size = 16384;
    REQUIRE(make_pair(&a, &b, &o, NULL) == 0);
    static unsigned char payload[4096];
    EXPECT(ping_size(4028) == 4096 && ping_size(4029) > 4096);
    EXPECT_ST(goipc_send_ping(a, 1, payload, 4029, 0), GOIPC_ERR_MESSAGE_TOO_LARGE);
    EXPECT_ST(goipc_send_ping(a, 1, payload, SIZE_MAX, 0), GOIPC_ERR_MESSAGE_TOO_LARGE);
    EXPECT_ST(goipc_send_ping(a, 2, payload, 4028, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv_ping(b, &seq, NULL, payload, sizeof payload, &n, 1000), GOIPC_OK);
    EXPECT(seq == 2 && n == 4028);

    /* Closing with a kept message releases it. */
    EXPECT_ST(goipc_send_pong(b, 3, 0, 0, payload, 100, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv_pong(a, &seq, buf, 10, &n, 1000), GOIPC_ERR_BUFFER_TOO_SMALL);
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    EXPECT_ST(goipc_conn_close(b), GOIPC_OK);
}
