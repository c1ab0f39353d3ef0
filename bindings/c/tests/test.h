/*
 * test.h - a small harness for the C tests of libgoipc.so (run by
 * `make test-c` under AddressSanitizer and UndefinedBehaviorSanitizer).
 * Every test is a void function listed in TEST_LIST; main runs them in
 * order (or those named on the command line) in one process.
 */
#ifndef GOIPC_C_TEST_H
#define GOIPC_C_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "goipc.h"

#define TEST_LIST(X)            \
    X(abi_and_strings)          \
    X(error_state_per_thread)   \
    X(bad_arguments)            \
    X(bad_options)              \
    X(options_earlier_sizes)    \
    X(closed_handles)           \
    X(listen_rules)             \
    X(dial_errors)              \
    X(version_mismatch)         \
    X(peer_uid_policy)          \
    X(listener_limits)          \
    X(timeouts)                 \
    X(backpressure)             \
    X(message_too_large)        \
    X(buffer_too_small)         \
    X(zero_copy)                \
    X(zero_copy_misuse)         \
    X(close_interrupts)         \
    X(close_with_views)         \
    X(peer_close)               \
    X(duplex_stress)            \
    X(go_pong_echo)             \
    X(go_pong_killed)           \
    X(sink_killed_send_blocked) \
    X(many_threads)             \
    X(go_ping_c_pong)           \
    X(c_ping_example)           \
    X(c_ping_c_pong_unix)       \
    X(typed_messages)           \
    X(conn_stats)               \
    X(conn_fd_poll)             \
    X(free_space_in_pieces)     \
    X(listener_fd_poll)         \
    X(listener_dropped_errors)  \
    X(epoll_many_conns)         \
    X(epoll_many_conns_swept)   \
    X(epoll_ping_example)       \
    X(fork_child)               \
    X(panic_recovery)           \
    X(call_many_threads)        \
    X(call_out_of_order)        \
    X(call_timeouts_and_late_replies) \
    X(call_peer_closes)         \
    X(call_misuse)              \
    X(call_max_inflight)        \
    X(call_start)               \
    X(call_go_pong)             \
    X(typed_call_go_client)     \
    X(typed_call_c_threads)     \
    X(typed_call_errors)        \
    X(batch_order)              \
    X(batch_partial_recv)       \
    X(batch_larger_than_ring)   \
    X(batch_timeout_prefix)     \
    X(batch_misuse)             \
    X(batch_go_pong)            \
    X(sweeper_misuse)           \
    X(sweeper_pairs)            \
    X(sweeper_go_pong)

#define DECLARE_TEST(name) void test_##name(void);
TEST_LIST(DECLARE_TEST)

/* ---- assertions: EXPECT records a failure and returns whether it held;
 * REQUIRE also returns from the (void) test function. Safe in threads. */
int expect_(int ok, const char *what, const char *file, int line);
int expect_st_(int32_t got, int32_t want, const char *what, const char *file, int line);
#define EXPECT(cond) expect_(!!(cond), #cond, __FILE__, __LINE__)
#define EXPECT_ST(call, want) expect_st_((call), (want), #call, __FILE__, __LINE__)
#define REQUIRE(cond)          \
    do {                       \
        if (!EXPECT(cond))     \
            return;            \
    } while (0)
#define REQUIRE_ST(call, want)        \
    do {                              \
        if (!EXPECT_ST(call, want))   \
            return;                   \
    } while (0)
void skip_(const char *why);
#define SKIP(why)      \
    do {               \
        skip_(why);    \
        return;        \
    } while (0)

/* ---- environment */
extern const char *g_goipc_bin; /* $GOIPC_BIN: the Go CLI (goipc pong/ping), or NULL */
extern const char *g_cbin;      /* $GOIPC_C_BIN: directory of the C examples, or NULL */
extern char g_self[4096];       /* this test binary */

/* A fresh socket path in the test's temporary directory. */
void sock_path(char *buf, size_t n, const char *name);
uint64_t now_ms(void);
/* 1 if fd becomes readable (POLLIN) within timeout_ms, else 0. A poll(2)
 * interrupted by a signal (the Go runtime in this process sends some) is
 * restarted for the time left. */
int fd_readable(int fd, int timeout_ms);

/* ---- child processes (posix_spawn: never fork a process running Go) */
typedef struct child {
    pid_t pid;
    int out_fd;    /* read end of the child's stdout */
    int pidfd;     /* for waiting on exit with poll */
} child;

/* Starts argv[0] (a path) with argv; extra_env (NULL-terminated, may be
 * NULL) is added to the environment. Returns 0 or -1. */
int spawn_child(child *c, char *const argv[], char *const extra_env[]);
/* Reads the child's stdout until a line containing needle (returns 0),
 * EOF or timeout_ms (-1). The text read is appended to out if not NULL. */
int wait_output(child *c, const char *needle, int timeout_ms, char *out, size_t outsz);
/* Waits for exit up to timeout_ms; returns the wait status, or -1 on
 * timeout. */
int wait_exit(child *c, int timeout_ms);
/* SIGKILLs (if still running) and reaps; closes fds. */
void reap_child(child *c);
/* Starts `goipc pong --listen path` and waits for its ready line. */
int start_go_pong(child *c, const char *path);
/* Starts `goipc pong` on a fresh socket path (name) and dials n
 * connections to it (16 KiB rings, 1 KiB messages): returns how many
 * opened (n unless a dial failed), or -1 if the consumer did not start. */
int dial_go_pong(child *pong, const char *name, goipc_conn *c, int n);

/* test_basic.c: the --panic-child mode. */
int panic_child_main(void);

/* ---- in-process pairs */
/* A connected pair through a listener on a fresh path: *a is the dialer's
 * end, *b the listener's. Options may be NULL. Returns 0 or -1. */
int make_pair(goipc_conn *a, goipc_conn *b, const goipc_options *dial_opts, const goipc_options *listen_opts);

/* Fills buf with a pattern derived from seed; checks it. */
void fill_pattern(unsigned char *buf, size_t n, uint64_t seed);
int check_pattern(const unsigned char *buf, size_t n, uint64_t seed);

#endif
