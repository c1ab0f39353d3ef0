/*
 * test_basic.c - version, status strings, thread-local error state, bad
 * arguments, bad options, closed handles, panic recovery.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "test.h"

void test_abi_and_strings(void)
{
    EXPECT(goipc_abi_version() == GOIPC_ABI_VERSION);
    EXPECT(GOIPC_ABI_VERSION == 1);
    /* The fixed numbering that the Python and Rust bindings mirror. */
    EXPECT(GOIPC_OK == 0 && GOIPC_ERR_INVALID_ARGUMENT == 1 && GOIPC_ERR_TIMEOUT == 2 && GOIPC_ERR_CLOSED == 3 &&
           GOIPC_ERR_PEER_CLOSED == 4 && GOIPC_ERR_MESSAGE_TOO_LARGE == 5 && GOIPC_ERR_BUFFER_TOO_SMALL == 6 &&
           GOIPC_ERR_PROTOCOL == 7 && GOIPC_ERR_PERMISSION == 8 && GOIPC_ERR_SYSTEM == 9 &&
           GOIPC_ERR_ADDRESS_IN_USE == 10 && GOIPC_ERR_NOT_SUPPORTED == 11);
    const char *unknown = goipc_strerror(12);
    for (int32_t s = 0; s <= GOIPC_ERR_NOT_SUPPORTED; s++) {
        const char *m = goipc_strerror(s);
        EXPECT(m != NULL && m[0] != '\0' && m != unknown && strcmp(m, unknown) != 0);
        for (int32_t o = 0; o < s; o++)
            EXPECT(strcmp(m, goipc_strerror(o)) != 0);
        EXPECT(goipc_strerror(s) == m); /* static */
    }
    int32_t odd[] = {-1, 12, 100, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        const char *m = goipc_strerror(odd[i]);
        EXPECT(m != NULL && m[0] != '\0');
    }
}

struct err_state {
    int32_t st, err_no;
    char msg[512];
    int fresh_empty;
};

static void *fresh_thread(void *p)
{
    struct err_state *s = p;
    s->fresh_empty = goipc_last_error_message()[0] == '\0' && goipc_last_errno() == 0;
    goipc_conn c;
    s->st = goipc_dial("/nonexistent/goipc-test.sock", 1000, &c);
    s->err_no = goipc_last_errno();
    snprintf(s->msg, sizeof s->msg, "%s", goipc_last_error_message());
    return NULL;
}

void test_error_state_per_thread(void)
{
    struct err_state s = {0};
    pthread_t t;
    pthread_create(&t, NULL, fresh_thread, &s);
    pthread_join(t, NULL);
    EXPECT(s.fresh_empty);
    EXPECT_ST(s.st, GOIPC_ERR_SYSTEM);
    EXPECT(s.err_no == ENOENT);
    EXPECT(strstr(s.msg, "/nonexistent/goipc-test.sock") != NULL);

    /* This thread: an INVALID_ARGUMENT carries no errno, and does not touch
     * the other thread's state (checked above through its own copy). */
    EXPECT_ST(goipc_send(0, "x", 1, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT(goipc_last_errno() == 0);
    const char *m = goipc_last_error_message();
    EXPECT(strstr(m, "invalid argument") != NULL);
    /* A successful call does not reset it. */
    goipc_options o;
    goipc_options_init(&o);
    EXPECT(strstr(goipc_last_error_message(), "invalid argument") != NULL);
    /* A system error with an errno on this thread. */
    goipc_conn c;
    EXPECT_ST(goipc_dial("/nonexistent/x.sock", 1000, &c), GOIPC_ERR_SYSTEM);
    EXPECT(goipc_last_errno() == ENOENT);
}

void test_bad_arguments(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    char path[300];
    sock_path(path, sizeof path, "bad");
    goipc_listener l;
    REQUIRE_ST(goipc_listen(path, &l), GOIPC_OK);

    char buf[16];
    size_t n = 12345;
    void *p = NULL;
    const void *cp = NULL;
    goipc_conn out = 777;
    goipc_listener lout = 777;

    /* NULL pointers. */
    EXPECT_ST(goipc_listen(NULL, &lout), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_listen(path, NULL), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_listen("", &lout), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_listen_ex(NULL, NULL, &lout), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_dial(NULL, 100, &out), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_dial(path, 100, NULL), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_dial("", 100, &out), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_dial_ex(NULL, NULL, 100, &out), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_accept(l, 0, NULL), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_send(a, NULL, 1, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv(a, NULL, 1, &n, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv(a, buf, sizeof buf, NULL, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_reserve(a, 8, 0, NULL), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_view(a, NULL, &n, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_recv_view(a, &cp, NULL, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_conn_max_message_size(a, NULL), GOIPC_ERR_INVALID_ARGUMENT);
    goipc_options_init(NULL); /* NULL-safe */

    /* Handle 0, never-issued handles, handles of the wrong kind. */
    uint64_t bogus[] = {0, 1, 12345, UINT64_MAX, 0xC0000000FFFFFFFFull, 0xC0FFFFFF00000001ull, l};
    for (size_t i = 0; i < sizeof bogus / sizeof bogus[0]; i++) {
        goipc_conn h = bogus[i];
        EXPECT_ST(goipc_send(h, "x", 1, 0), GOIPC_ERR_INVALID_ARGUMENT);
        EXPECT_ST(goipc_recv(h, buf, sizeof buf, &n, 0), GOIPC_ERR_INVALID_ARGUMENT);
        EXPECT_ST(goipc_reserve(h, 8, 0, &p), GOIPC_ERR_INVALID_ARGUMENT);
        EXPECT_ST(goipc_commit(h, 0), GOIPC_ERR_INVALID_ARGUMENT);
        EXPECT_ST(goipc_abort_reserve(h), GOIPC_ERR_INVALID_ARGUMENT);
        EXPECT_ST(goipc_recv_view(h, &cp, &n, 0), GOIPC_ERR_INVALID_ARGUMENT);
        EXPECT_ST(goipc_release(h), GOIPC_ERR_INVALID_ARGUMENT);
        EXPECT_ST(goipc_conn_max_message_size(h, &n), GOIPC_ERR_INVALID_ARGUMENT);
        EXPECT_ST(goipc_conn_close(h), GOIPC_ERR_INVALID_ARGUMENT);
    }
    uint64_t bogus_l[] = {0, 1, 12345, UINT64_MAX, 0x1E000000FFFFFFFFull, a, b};
    for (size_t i = 0; i < sizeof bogus_l / sizeof bogus_l[0]; i++) {
        EXPECT_ST(goipc_accept(bogus_l[i], 0, &out), GOIPC_ERR_INVALID_ARGUMENT);
        EXPECT_ST(goipc_listener_close(bogus_l[i]), GOIPC_ERR_INVALID_ARGUMENT);
    }
    EXPECT(n == 12345 && out == 777 && lout == 777 && p == NULL && cp == NULL); /* untouched on failure */

    /* Misuse of the zero-copy pairs. */
    EXPECT_ST(goipc_commit(a, 0), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_abort_reserve(a), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT_ST(goipc_release(a), GOIPC_ERR_INVALID_ARGUMENT);

    /* Everything still works after all that. */
    EXPECT_ST(goipc_send(a, "ok", 2, 1000), GOIPC_OK);
    EXPECT_ST(goipc_recv(b, buf, sizeof buf, &n, 1000), GOIPC_OK);
    EXPECT(n == 2 && memcmp(buf, "ok", 2) == 0);
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    EXPECT_ST(goipc_conn_close(b), GOIPC_OK);
    EXPECT_ST(goipc_listener_close(l), GOIPC_OK);
}

void test_bad_options(void)
{
    char path[300];
    sock_path(path, sizeof path, "opts");
    goipc_listener l;
    goipc_conn c;
    goipc_options o;

    memset(&o, 0, sizeof o); /* struct_size 0: not initialised */
    EXPECT_ST(goipc_listen_ex(path, &o, &l), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(goipc_last_error_message(), "goipc_options_init") != NULL);
    EXPECT_ST(goipc_dial_ex(path, &o, 100, &c), GOIPC_ERR_INVALID_ARGUMENT);

    goipc_options_init(&o);
    EXPECT(o.struct_size == sizeof o && o.ring_size == 0 && o.spin_ns == 0 && o.allow_any_uid == 0);
    o.reserved0 = 1;
    EXPECT_ST(goipc_listen_ex(path, &o, &l), GOIPC_ERR_INVALID_ARGUMENT);
    goipc_options_init(&o);
    o.reserved1 = 1;
    EXPECT_ST(goipc_listen_ex(path, &o, &l), GOIPC_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(goipc_last_error_message(), "reserved1") != NULL);

    goipc_options_init(&o);
    o.ring_size = 5000; /* not a power of two */
    EXPECT_ST(goipc_dial_ex(path, &o, 100, &c), GOIPC_ERR_INVALID_ARGUMENT);
    o.ring_size = 1024; /* below the minimum */
    EXPECT_ST(goipc_dial_ex(path, &o, 100, &c), GOIPC_ERR_INVALID_ARGUMENT);
    o.ring_size = UINT64_MAX;
    EXPECT_ST(goipc_dial_ex(path, &o, 100, &c), GOIPC_ERR_INVALID_ARGUMENT);
    goipc_options_init(&o);
    o.ring_size = 4096;
    o.max_message_size = 8192; /* does not fit the ring */
    EXPECT_ST(goipc_dial_ex(path, &o, 100, &c), GOIPC_ERR_INVALID_ARGUMENT);
    goipc_options_init(&o);
    o.handshake_timeout_ms = -5;
    EXPECT_ST(goipc_listen_ex(path, &o, &l), GOIPC_ERR_INVALID_ARGUMENT);

    /* A caller compiled against a newer, larger struct: accepted while the
     * fields this library does not know are zero. */
    struct {
        goipc_options v1;
        uint64_t future_field;
    } big;
    memset(&big, 0, sizeof big);
    goipc_options_init(&big.v1);
    big.v1.struct_size = sizeof big;
    EXPECT_ST(goipc_listen_ex(path, &big.v1, &l), GOIPC_OK);
    EXPECT_ST(goipc_listener_close(l), GOIPC_OK);
    big.future_field = 1;
    EXPECT_ST(goipc_listen_ex(path, &big.v1, &l), GOIPC_ERR_NOT_SUPPORTED);
}

/* Callers compiled against the version-1 (48-byte), version-2 (80-byte)
 * or version-3 (88-byte) goipc_options keep working: initialising writes
 * no byte past their struct, and the library reads none (the bytes past
 * it here hold a max_inflight_calls value and a reserved1 it would
 * refuse), so every field they lack takes its default. */
void test_options_earlier_sizes(void)
{
    static const size_t sizes[] = {48, 80, 88};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        union {
            goipc_options o;
            unsigned char raw[sizeof(goipc_options)];
        } u;
        memset(u.raw, 0xAB, sizeof u.raw);
        if (sizes[i] == 48)
            (goipc_options_init)(&u.o); /* the function a version-1 binary calls */
        else
            goipc_options_init_sized(&u.o, sizes[i]);
        EXPECT(u.o.struct_size == sizes[i] && u.o.ring_size == 0 && u.o.allow_any_uid == 0);
        int untouched = 1;
        for (size_t j = sizes[i]; j < sizeof u.raw; j++)
            untouched &= u.raw[j] == 0xAB;
        EXPECT(untouched);
        goipc_conn a, b;
        if (make_pair(&a, &b, &u.o, &u.o) != 0)
            continue;
        /* Calls work, with the default cap of 64: 64 pending at once. */
        uint64_t pending[64];
        unsigned char buf[8];
        size_t len;
        int sent = 0;
        for (int k = 0; k < 64; k++)
            sent += goipc_call_ex(a, "x", 1, buf, sizeof buf, &len, 0, &pending[k]) == GOIPC_ERR_TIMEOUT &&
                    pending[k] != 0;
        EXPECT(sent == 64);
        uint64_t extra = 1;
        EXPECT_ST(goipc_call_ex(a, "x", 1, buf, sizeof buf, &len, 0, &extra), GOIPC_ERR_TIMEOUT);
        EXPECT(extra == 0);
        EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
        EXPECT_ST(goipc_conn_close(b), GOIPC_OK);
    }
}

void test_closed_handles(void)
{
    goipc_conn a, b;
    REQUIRE(make_pair(&a, &b, NULL, NULL) == 0);
    char buf[16];
    size_t n;
    void *p;
    const void *cp;
    EXPECT_ST(goipc_conn_close(a), GOIPC_OK);
    EXPECT_ST(goipc_conn_close(a), GOIPC_ERR_CLOSED); /* double close */
    EXPECT_ST(goipc_send(a, "x", 1, 0), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_recv(a, buf, sizeof buf, &n, 0), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_reserve(a, 1, 0, &p), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_commit(a, 0), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_abort_reserve(a), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_recv_view(a, &cp, &n, 0), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_release(a), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_conn_max_message_size(a, &n), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_conn_close(a), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_conn_close(b), GOIPC_OK);
    EXPECT_ST(goipc_conn_close(b), GOIPC_ERR_CLOSED);

    /* A new connection never gets a closed handle's value back. */
    goipc_conn c, d;
    REQUIRE(make_pair(&c, &d, NULL, NULL) == 0);
    EXPECT(c != a && c != b && d != a && d != b);
    EXPECT_ST(goipc_send(a, "x", 1, 0), GOIPC_ERR_CLOSED);
    goipc_conn_close(c);
    goipc_conn_close(d);

    char path[300];
    sock_path(path, sizeof path, "closed");
    goipc_listener l;
    goipc_conn out;
    REQUIRE_ST(goipc_listen(path, &l), GOIPC_OK);
    EXPECT_ST(goipc_listener_close(l), GOIPC_OK);
    EXPECT_ST(goipc_listener_close(l), GOIPC_ERR_CLOSED);
    EXPECT_ST(goipc_accept(l, 0, &out), GOIPC_ERR_CLOSED);
}

/* ---- panic recovery ---- */

static int expect_panic(int32_t st, const char *what)
{
    if (st != GOIPC_ERR_SYSTEM || strstr(goipc_last_error_message(), "panic") == NULL) {
        fprintf(stderr, "panic child: %s returned %d (%s), want GOIPC_ERR_SYSTEM with a panic message\n", what, st,
                goipc_last_error_message());
        return 1;
    }
    return 0;
}

/* Runs in a child with GOIPC_CAPI_TEST_PANIC=1: every call into Go panics
 * inside the library; each must come back as GOIPC_ERR_SYSTEM. */
int panic_child_main(void)
{
    goipc_listener l = 0;
    goipc_conn c = 0;
    char buf[8];
    size_t n;
    void *p;
    const void *cp;
    goipc_options o;
    goipc_options_init(&o);
    int bad = 0;
    bad += expect_panic(goipc_listen("/tmp/goipc-panic.sock", &l), "goipc_listen");
    bad += expect_panic(goipc_listen_ex("/tmp/goipc-panic.sock", &o, &l), "goipc_listen_ex");
    bad += expect_panic(goipc_accept(l, 0, &c), "goipc_accept");
    bad += expect_panic(goipc_listener_close(l), "goipc_listener_close");
    bad += expect_panic(goipc_dial("/tmp/goipc-panic.sock", 0, &c), "goipc_dial");
    bad += expect_panic(goipc_dial_ex("/tmp/goipc-panic.sock", &o, 0, &c), "goipc_dial_ex");
    bad += expect_panic(goipc_conn_max_message_size(c, &n), "goipc_conn_max_message_size");
    bad += expect_panic(goipc_send(c, "x", 1, 0), "goipc_send");
    bad += expect_panic(goipc_recv(c, buf, sizeof buf, &n, 0), "goipc_recv");
    bad += expect_panic(goipc_reserve(c, 1, 0, &p), "goipc_reserve");
    bad += expect_panic(goipc_commit(c, 1), "goipc_commit");
    bad += expect_panic(goipc_abort_reserve(c), "goipc_abort_reserve");
    bad += expect_panic(goipc_recv_view(c, &cp, &n, 0), "goipc_recv_view");
    bad += expect_panic(goipc_release(c), "goipc_release");
    bad += expect_panic(goipc_conn_close(c), "goipc_conn_close");
    uint64_t seq;
    bad += expect_panic(goipc_send_ping(c, 1, "x", 1, 0), "goipc_send_ping");
    bad += expect_panic(goipc_recv_pong(c, &seq, buf, sizeof buf, &n, 0), "goipc_recv_pong");
    bad += expect_panic(goipc_recv_ping(c, &seq, NULL, buf, sizeof buf, &n, 0), "goipc_recv_ping");
    bad += expect_panic(goipc_send_pong(c, 1, 0, 0, "x", 1, 0), "goipc_send_pong");
    uint64_t call;
    bad += expect_panic(goipc_call(c, "x", 1, buf, sizeof buf, &n, 0), "goipc_call");
    bad += expect_panic(goipc_recv_request(c, &call, buf, sizeof buf, &n, 0), "goipc_recv_request");
    bad += expect_panic(goipc_reply(c, 1, "x", 1, 0), "goipc_reply");
    bad += expect_panic(goipc_call_ping(c, 1, "x", 1, &seq, buf, sizeof buf, &n, 0), "goipc_call_ping");
    bad += expect_panic(goipc_recv_ping_request(c, &call, &seq, NULL, buf, sizeof buf, &n, 0), "goipc_recv_ping_request");
    bad += expect_panic(goipc_reply_pong(c, 1, 1, 0, 0, "x", 1, 0), "goipc_reply_pong");
    goipc_iovec iov = {"x", 1};
    size_t sizes[2];
    bad += expect_panic(goipc_send_batch(c, &iov, 1, &n, 0), "goipc_send_batch");
    bad += expect_panic(goipc_recv_batch(c, buf, sizeof buf, sizes, 2, &n, 0), "goipc_recv_batch");
    /* Functions that do not call into Go still work. */
    bad += goipc_abi_version() != GOIPC_ABI_VERSION;
    bad += goipc_strerror(GOIPC_OK)[0] == '\0';
    printf("panic child: %s\n", bad == 0 ? "every call returned GOIPC_ERR_SYSTEM" : "FAILED");
    return bad == 0 ? 0 : 1;
}

void test_panic_recovery(void)
{
    child ch;
    char *argv[] = {g_self, "--panic-child", NULL};
    char *env[] = {"GOIPC_CAPI_TEST_PANIC=1", NULL};
    REQUIRE(spawn_child(&ch, argv, env) == 0);
    char out[4096] = "";
    EXPECT(wait_output(&ch, "panic child:", 30000, out, sizeof out) == 0);
    int status = wait_exit(&ch, 30000);
    EXPECT(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT(strstr(out, "every call returned GOIPC_ERR_SYSTEM") != NULL);
    reap_child(&ch);
}

/* A child forked from this process (which runs Go) must get an error from
 * every call into the library, not hang in the Go runtime. */
void test_fork_child(void)
{
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        goipc_conn c;
        goipc_listener l;
        goipc_iovec iov = {"x", 1};
        size_t sent = 99, swept = 99;
        int ok = goipc_dial("/tmp/goipc-fork-test.sock", 100, &c) == GOIPC_ERR_NOT_SUPPORTED &&
                 strstr(goipc_last_error_message(), "fork") != NULL &&
                 goipc_send(1, "x", 1, 0) == GOIPC_ERR_NOT_SUPPORTED &&
                 goipc_send_batch(1, &iov, 1, &sent, 0) == GOIPC_ERR_NOT_SUPPORTED && sent == 0 &&
                 goipc_sweeper_sweep(1, NULL, 0, &swept) == GOIPC_ERR_NOT_SUPPORTED && swept == 0 &&
                 goipc_listen("/tmp/goipc-fork-test.sock", &l) == GOIPC_ERR_NOT_SUPPORTED &&
                 goipc_abi_version() == GOIPC_ABI_VERSION; /* no Go call: still fine */
        _exit(ok ? 0 : 1);
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int ready = pidfd >= 0 && fd_readable(pidfd, 10000);
    if (!EXPECT(ready)) /* the child hung */
        kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (pidfd >= 0)
        close(pidfd);
    EXPECT(ready && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
