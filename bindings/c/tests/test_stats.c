/*
 * test_stats.c - goipc_conn_stats: counts exactly what was sent and
 * received (through every send and receive call), sees a message in
 * flight, and honours the struct_size contract (versioned struct).
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static goipc_stats stats_of(goipc_conn c)
{
    goipc_stats s;
    memset(&s, 0xee, sizeof s); /* every field must be written */
    s.struct_size = sizeof s;
    EXPECT_ST(goipc_conn_stats(c, &s), GOIPC_OK);
    EXPECT(s.struct_size == sizeof s);
    return s;
}

/* Sends n messages of sizes 0, 3, 6, ... from a to b, alternating
 * goipc_send and goipc_reserve/commit, receiving each with goipc_recv or
 * goipc_recv_view/release; returns the payload bytes. */
static uint64_t exchange(goipc_conn a, goipc_conn b, int n)
{
    static unsigned char msg[1000], buf[1000];
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t len = (size_t)(i * 3) % sizeof msg;
        total += len;
        if (i % 2 == 0) {
            EXPECT_ST(goipc_send(a, msg, len, 5000), GOIPC_OK);
            size_t got = 0;
            EXPECT_ST(goipc_recv(b, buf, sizeof buf, &got, 5000), GOIPC_OK);
            EXPECT(got == len);
        } else {
            void *p;
            const void *v;
            size_t got = 0;
            EXPECT_ST(goipc_reserve(a, len, 5000, &p), GOIPC_OK);
            EXPECT_ST(goipc_commit(a, len), GOIPC_OK);
            EXPECT_ST(goipc_recv_view(b, &v, &got, 5000), GOIPC_OK);
            EXPECT(got == len);
            EXPECT_ST(goipc_release(b), GOIPC_OK);
        }
    }
    return total;
}

void test_conn_stats(void)
{
    goipc_options o;
    goipc_options_init(&o);
    o.ring_size = 1 << 16;
    o.max_message_size = 1000;
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, &o, NULL) == 0);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);

    uint64_t up = exchange(a, b, 1001), down = exchange(b, a, 333);
    EXPECT(up > 2 * (1 << 16)); /* the rings wrapped: padding must not count */
    goipc_stats sa = stats_of(a), sb = stats_of(b);
    EXPECT(sa.dialer == 1 && sb.dialer == 0);
    EXPECT(sa.peer_pid == getpid() && sb.peer_pid == getpid());
    EXPECT(sa.opened_unix_ns > (int64_t)now.tv_sec * 1000000000 - 60000000000LL);
    EXPECT(sa.sent.messages == 1001 && sa.sent.bytes == up && sb.received.messages == 1001 && sb.received.bytes == up);
    EXPECT(sb.sent.messages == 333 && sb.sent.bytes == down && sa.received.messages == 333 && sa.received.bytes == down);
    const goipc_direction_stats *dirs[] = {&sa.sent, &sa.received, &sb.sent, &sb.received};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        EXPECT(dirs[i]->capacity == 1 << 16);
        EXPECT(dirs[i]->in_use == 0);
        EXPECT(dirs[i]->sender_parked == 0 && dirs[i]->receiver_parked == 0);
        EXPECT(dirs[i]->parks < 1000000 && dirs[i]->wakeups < 1000000); /* written, not the 0xee filler */
    }

    /* A message not yet received is in use on both ends of its ring: an
     * 8-byte frame header and the payload padded to 8 bytes. */
    unsigned char msg[100] = {0};
    EXPECT_ST(goipc_send(a, msg, sizeof msg, 5000), GOIPC_OK);
    sa = stats_of(a);
    sb = stats_of(b);
    EXPECT(sa.sent.in_use == 112 && sb.received.in_use == 112);
    EXPECT(sa.sent.messages == 1002 && sb.received.messages == 1001);

    /* struct_size: a bigger (newer) struct gets version 1's 136 bytes and
     * learns so from struct_size; the rest is left alone. */
    union {
        goipc_stats s;
        unsigned char bytes[200];
    } big;
    memset(&big, 0xaa, sizeof big);
    big.s.struct_size = sizeof big;
    EXPECT_ST(goipc_conn_stats(a, &big.s), GOIPC_OK);
    EXPECT(big.s.struct_size == 136 && big.s.sent.messages == 1002);
    int untouched = 1;
    for (size_t i = 136; i < sizeof big; i++)
        untouched &= big.bytes[i] == 0xaa;
    EXPECT(untouched);

    /* Too small, implausible, NULL, bad handle: *out unchanged. */
    goipc_stats s;
    memset(&s, 0x55, sizeof s);
    s.struct_size = 0;
    EXPECT_ST(goipc_conn_stats(a, &s), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT(s.struct_size == 0 && s.sent.messages == 0x5555555555555555ULL);
    s.struct_size = 135;
    EXPECT_ST(goipc_conn_stats(a, &s), GOIPC_ERR_INVALID_ARGUMENT);
    s.struct_size = 1 << 20;
    EXPECT_ST(goipc_conn_stats(a, &s), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_conn_stats(a, NULL), GOIPC_ERR_INVALID_ARGUMENT);
    s.struct_size = sizeof s;
    EXPECT_ST(goipc_conn_stats(0, &s), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT(s.sent.messages == 0x5555555555555555ULL);

    goipc_conn_close(a);
    EXPECT_ST(goipc_conn_stats(a, &s), GOIPC_ERR_CLOSED);
    goipc_conn_close(b);
}
