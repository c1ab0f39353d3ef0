/*
 * test_main.c - harness, child-process and pair helpers, and main for the
 * C tests. Also the helper modes this binary runs as a child:
 *   test_capi --sink PATH [any-uid]  listen, accept one client, never read
 *   test_capi --panic-child       with GOIPC_CAPI_TEST_PANIC=1: every call
 *                                 must return GOIPC_ERR_SYSTEM, not abort
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

extern char **environ;

const char *g_goipc_bin;
const char *g_cbin;
char g_self[4096];
static char g_dir[256];
static atomic_int g_failures;
static atomic_int g_paths;
static _Thread_local int t_skipped;
static const char *g_current = "";

int expect_(int ok, const char *what, const char *file, int line)
{
    if (!ok) {
        atomic_fetch_add(&g_failures, 1);
        fprintf(stderr, "    FAIL %s: %s:%d: %s\n", g_current, file, line, what);
    }
    return ok;
}

int expect_st_(int32_t got, int32_t want, const char *what, const char *file, int line)
{
    if (got != want) {
        atomic_fetch_add(&g_failures, 1);
        fprintf(stderr, "    FAIL %s: %s:%d: %s = %d (%s), want %d (%s)\n      last error: %s (errno %d)\n",
                g_current, file, line, what, got, goipc_strerror(got), want, goipc_strerror(want),
                goipc_last_error_message(), goipc_last_errno());
    }
    return got == want;
}

void skip_(const char *why)
{
    t_skipped = 1;
    fprintf(stderr, "    SKIP %s: %s\n", g_current, why);
}

void sock_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s-%d.sock", g_dir, name, atomic_fetch_add(&g_paths, 1));
}

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int fd_readable(int fd, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint64_t now = now_ms();
        int left = now >= deadline ? 0 : (int)(deadline - now);
        int n = poll(&p, 1, left);
        if (n < 0 && errno == EINTR)
            continue;
        return n == 1 && (p.revents & POLLIN);
    }
}

void fill_pattern(unsigned char *buf, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + n;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
}

int check_pattern(const unsigned char *buf, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + n;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (buf[i] != (unsigned char)x)
            return 0;
    }
    return 1;
}

/* ---- children ---- */

int spawn_child(child *c, char *const argv[], char *const extra_env[])
{
    memset(c, 0, sizeof *c);
    c->pid = -1;
    c->out_fd = c->pidfd = -1;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    size_t ne = 0, nx = 0;
    while (environ[ne])
        ne++;
    while (extra_env && extra_env[nx])
        nx++;
    char **env = calloc(ne + nx + 1, sizeof *env);
    if (env == NULL)
        return -1;
    memcpy(env, environ, ne * sizeof *env);
    for (size_t i = 0; i < nx; i++)
        env[ne + i] = extra_env[i];
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    pid_t pid;
    int err = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(p[1]);
    if (err != 0) {
        fprintf(stderr, "    spawn %s: %s\n", argv[0], strerror(err));
        close(p[0]);
        return -1;
    }
    c->pid = pid;
    c->out_fd = p[0];
    c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    return 0;
}

int wait_output(child *c, const char *needle, int timeout_ms, char *out, size_t outsz)
{
    char buf[8192];
    size_t len = 0;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        buf[len] = '\0';
        if (strstr(buf, needle) != NULL && strchr(strstr(buf, needle), '\n') != NULL)
            break;
        uint64_t now = now_ms();
        if (now >= deadline || len + 1 >= sizeof buf)
            return -1;
        struct pollfd pfd = {.fd = c->out_fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t n = read(c->out_fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            return -1;
        len += (size_t)n;
    }
    if (out != NULL && outsz > 0) {
        size_t have = strlen(out);
        snprintf(out + have, outsz - have, "%s", buf);
    }
    return 0;
}

int wait_exit(child *c, int timeout_ms)
{
    if (c->pid <= 0)
        return -1;
    if (c->pidfd >= 0) {
        struct pollfd pfd = {.fd = c->pidfd, .events = POLLIN};
        int r;
        do
            r = poll(&pfd, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r == 0)
            return -1;
    }
    int status;
    if (waitpid(c->pid, &status, c->pidfd >= 0 ? WNOHANG : 0) != c->pid)
        return -1;
    c->pid = -1;
    return status;
}

void reap_child(child *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
        c->pid = -1;
    }
    if (c->out_fd >= 0)
        close(c->out_fd);
    if (c->pidfd >= 0)
        close(c->pidfd);
    c->out_fd = c->pidfd = -1;
}

int start_go_pong(child *c, const char *path)
{
    char *argv[] = {(char *)g_goipc_bin, "pong", "--listen", (char *)path, NULL};
    if (spawn_child(c, argv, NULL) != 0)
        return -1;
    if (wait_output(c, "listening on", 10000, NULL, 0) != 0) {
        fprintf(stderr, "    goipc pong did not print its ready line\n");
        reap_child(c);
        return -1;
    }
    return 0;
}

int dial_go_pong(child *pong, const char *name, goipc_conn *c, int n)
{
    char path[300];
    sock_path(path, sizeof path, name);
    if (start_go_pong(pong, path) != 0)
        return -1;
    goipc_options o;
    goipc_options_init(&o);
    o.ring_size = 16384;
    o.max_message_size = 1024;
    int opened = 0;
    for (; opened < n; opened++)
        if (!EXPECT_ST(goipc_dial_ex(path, &o, 10000, &c[opened]), GOIPC_OK))
            break;
    return opened;
}

/* ---- pairs ---- */

struct accept_arg {
    goipc_listener l;
    goipc_conn c;
    int32_t st;
};

static void *accept_thread(void *p)
{
    struct accept_arg *a = p;
    a->st = goipc_accept(a->l, 10000, &a->c);
    return NULL;
}

int make_pair(goipc_conn *a, goipc_conn *b, const goipc_options *dial_opts, const goipc_options *listen_opts)
{
    char path[300];
    sock_path(path, sizeof path, "pair");
    struct accept_arg arg = {0};
    if (!EXPECT_ST(goipc_listen_ex(path, listen_opts, &arg.l), GOIPC_OK))
        return -1;
    pthread_t t;
    pthread_create(&t, NULL, accept_thread, &arg);
    int32_t st = goipc_dial_ex(path, dial_opts, 10000, a);
    pthread_join(t, NULL);
    goipc_listener_close(arg.l);
    if (!EXPECT_ST(st, GOIPC_OK) || !EXPECT_ST(arg.st, GOIPC_OK)) {
        if (st == GOIPC_OK)
            goipc_conn_close(*a);
        if (arg.st == GOIPC_OK)
            goipc_conn_close(arg.c);
        return -1;
    }
    *b = arg.c;
    return 0;
}

/* ---- child modes ---- */

static int sink_main(const char *path, int any_uid)
{
    goipc_listener l;
    goipc_conn c;
    goipc_options o;
    goipc_options_init(&o);
    o.allow_any_uid = any_uid;
    if (goipc_listen_ex(path, &o, &l) != GOIPC_OK) {
        fprintf(stderr, "sink: listen %s: %s\n", path, goipc_last_error_message());
        return 1;
    }
    printf("sink: listening on %s\n", path);
    fflush(stdout);
    int32_t st;
    while ((st = goipc_accept(l, -1, &c)) != GOIPC_OK)
        if (st == GOIPC_ERR_CLOSED)
            return 1; /* others concern one client (e.g. a probe): keep accepting */
    printf("sink: accepted\n");
    fflush(stdout);
    for (;;)
        pause(); /* never reads: the test SIGKILLs us */
}



static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
#define REGISTER_TEST(name) {#name, test_##name},
    TEST_LIST(REGISTER_TEST)};

static void rm_dir(void)
{
    char cmd[300];
    if (g_dir[0] != '\0') {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", g_dir);
    }
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--sink") == 0)
        return sink_main(argv[2], argc >= 4 && strcmp(argv[3], "any-uid") == 0);
    if (argc >= 2 && strcmp(argv[1], "--panic-child") == 0)
        return panic_child_main();

    signal(SIGPIPE, SIG_IGN);
    g_goipc_bin = getenv("GOIPC_BIN");
    g_cbin = getenv("GOIPC_C_BIN");
    ssize_t n = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    if (n <= 0) {
        perror("readlink /proc/self/exe");
        return 1;
    }
    g_self[n] = '\0';
    snprintf(g_dir, sizeof g_dir, "/tmp/goipc-ctest-XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    atexit(rm_dir);

    int ran = 0, skipped = 0, failed_tests = 0;
    uint64_t t_all = now_ms();
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (argc > 1) {
            int want = 0;
            for (int j = 1; j < argc; j++)
                want |= strcmp(argv[j], tests[i].name) == 0;
            if (!want)
                continue;
        }
        g_current = tests[i].name;
        int before = atomic_load(&g_failures);
        t_skipped = 0;
        uint64_t t0 = now_ms();
        tests[i].fn();
        int failed = atomic_load(&g_failures) != before;
        printf("%s %-26s %5llu ms\n", failed ? "FAIL" : t_skipped ? "skip" : "ok  ", tests[i].name,
               (unsigned long long)(now_ms() - t0));
        fflush(stdout);
        ran++;
        skipped += t_skipped && !failed;
        failed_tests += failed;
    }
    printf("%d tests, %d failed, %d skipped, %.1f s\n", ran, failed_tests, skipped, (now_ms() - t_all) / 1e3);
    return failed_tests == 0 ? 0 : 1;
}
