/*
 * goipc.h - the C ABI of goipc, a shared-memory message channel between two
 * processes on one Linux host.
 *
 * This header is the contract. libgoipc.so (built from capi/ with
 * `go build -buildmode=c-shared`) exports exactly the functions declared
 * here and nothing else; the shim capi/goipc_shim.c includes this header,
 * so a definition that drifts from a declaration is a compile error, and
 * `make test-c` checks that `nm -D --defined-only libgoipc.so` lists exactly
 * these functions.
 *
 * Conventions (they hold for every function unless its comment says
 * otherwise):
 *
 *  - Return value: an int32_t status, GOIPC_OK (0) on success, one of the
 *    GOIPC_ERR_* codes on failure. New codes may be added in later minor
 *    versions: treat an unknown non-zero code as a failure and print it with
 *    goipc_strerror().
 *  - Out-parameters are written only on success, unless the comment says
 *    otherwise (goipc_recv writes *len on GOIPC_ERR_BUFFER_TOO_SMALL;
 *    goipc_send_batch's *sent and goipc_recv_batch's *count are written on
 *    every return). On failure they are left unmodified.
 *  - A NULL pointer where a pointer is required, handle 0, a handle of the
 *    wrong kind or a handle this library never issued returns
 *    GOIPC_ERR_INVALID_ARGUMENT. A handle that was closed returns
 *    GOIPC_ERR_CLOSED. Neither ever crashes the process.
 *  - Timeouts are int64_t milliseconds: < 0 waits as long as it takes, 0
 *    never waits (GOIPC_ERR_TIMEOUT if the call would have to wait), > 0
 *    waits at most that long (2^40 ms, about 35 years, or more: forever).
 *  - Errors: after a failed call, goipc_last_error_message() and
 *    goipc_last_errno() describe it, per thread. Successful calls do not
 *    reset them.
 *  - No function aborts the process: a Go panic inside the library is
 *    recovered and returned as GOIPC_ERR_SYSTEM.
 *  - Every function may be called from any thread. Per-connection limits:
 *    see "Thread safety" below.
 *
 * Thread safety of a connection: one goipc_conn may be used by any number
 * of threads at once. Sends are serialised with each other, receives with
 * each other, and a send runs in parallel with a receive: the intended use
 * is one sender thread and one receiver thread. An open reservation
 * (goipc_reserve .. goipc_commit/goipc_abort_reserve) holds the send side,
 * and an open view (goipc_recv_view .. goipc_release) holds the receive
 * side: other threads' sends on that connection wait for a reservation to
 * end whatever their timeout; receives and calls wait for a view to end
 * within their timeout. Keep reservations and views short.
 * The thread that holds a reservation (view) gets GOIPC_ERR_INVALID_ARGUMENT
 * if it sends (receives) again before ending it, instead of deadlocking.
 * goipc_conn_close may be called at any time from any thread: calls blocked
 * on that connection return GOIPC_ERR_CLOSED.
 *
 * Process rules (they come from the Go runtime inside the library):
 *  - A child created by fork() of a process that has loaded libgoipc.so
 *    cannot use it (the Go runtime does not survive fork): every function
 *    that would call into Go returns GOIPC_ERR_NOT_SUPPORTED there, instead
 *    of hanging. Use posix_spawn, or exec in the child.
 *  - Do not call goipc functions from a signal handler.
 *  - Only one Go c-shared library per process is supported.
 *  - glibc only: musl cannot dlopen a Go c-shared library.
 *  - The first goipc call on a new thread costs about 0.2-1 ms; the first
 *    call after the library loads waits for the Go runtime to start.
 *
 * Link with `pkg-config --cflags --libs goipc` (build/lib/pkgconfig).
 * See docs/C_API.md for a guide and bindings/c/ for examples.
 */
#ifndef GOIPC_H
#define GOIPC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this ABI. It changes only on an incompatible change; added
 * functions, added status codes and options struct growth keep it. */
#define GOIPC_ABI_VERSION 1

/* Returns GOIPC_ABI_VERSION as compiled into the library. Compare it with
 * the macro to detect a header/library mismatch. Never fails. */
int32_t goipc_abi_version(void);

/* ---- Status codes ------------------------------------------------------ */

/* Success. */
#define GOIPC_OK 0
/* Misuse: NULL pointer, handle 0, unknown handle or wrong kind of handle,
 * bad option values, commit without reserve, a listener refusing a segment
 * whose maximum message size is above its own. */
#define GOIPC_ERR_INVALID_ARGUMENT 1
/* The timeout expired, or timeout 0 and the call would have had to wait.
 * The connection stays usable. */
#define GOIPC_ERR_TIMEOUT 2
/* The handle was closed by this process (goipc_conn_close or
 * goipc_listener_close), possibly while the call was blocked. */
#define GOIPC_ERR_CLOSED 3
/* The peer closed the connection or its process died. Messages it had
 * fully sent were delivered first. Close the handle and reconnect. */
#define GOIPC_ERR_PEER_CLOSED 4
/* The message is larger than the connection's maximum message size
 * (goipc_conn_max_message_size). Nothing was written; the connection stays
 * usable. */
#define GOIPC_ERR_MESSAGE_TOO_LARGE 5
/* goipc_recv: the next message does not fit the buffer. *len is set to its
 * size and the message stays queued; retry with a larger buffer. */
#define GOIPC_ERR_BUFFER_TOO_SMALL 6
/* The peer broke the protocol (corrupt shared memory, bad handshake), or
 * speaks another protocol/layout version (the message says which). The
 * connection is unusable; close it. For goipc_accept it concerns one client
 * only: the listener stays usable. */
#define GOIPC_ERR_PROTOCOL 7
/* Peer credentials refused by the uid policy, or the socket path cannot be
 * used (EACCES). */
#define GOIPC_ERR_PERMISSION 8
/* An operating-system error; goipc_last_errno() gives the errno (for
 * example ENOENT or ECONNREFUSED when nothing listens on a dialed path).
 * Also returned, with errno 0, for an internal error (a recovered panic). */
#define GOIPC_ERR_SYSTEM 9
/* goipc_listen: a live listener already serves the path, or the path
 * exists and is not a socket. */
#define GOIPC_ERR_ADDRESS_IN_USE 10
/* Not supported: on this system (goipc needs Linux), in a child forked
 * from a process that had loaded the library, or options from a newer
 * goipc.h that this library cannot honour. */
#define GOIPC_ERR_NOT_SUPPORTED 11
/* A listener refused the connection because one of its limits is reached
 * (max_conns, max_segment_size, max_mapped_bytes, or it ran out of file
 * descriptors); goipc_last_error_message() names the limit and its value.
 * Other connections are not affected: retry later, or have the listener's
 * operator raise the limit. Returned by goipc_dial; goipc_accept reports
 * it for the refused client, and the listener stays usable. */
#define GOIPC_ERR_LIMIT 12

/* Returns a static, non-empty, NUL-terminated English description of
 * status: for every value, known or not (unknown values give
 * "goipc: unknown status code"). The string is owned by the library and
 * never freed. Never fails; thread-safe; does not call into Go. */
const char *goipc_strerror(int32_t status);

/* Returns the errno behind the most recent failed goipc call on the calling
 * thread when the operating system reported one (always the case for a
 * GOIPC_ERR_SYSTEM from a system call; sometimes also for
 * GOIPC_ERR_PERMISSION), else 0. Successful calls do not reset it.
 * Thread-local; never fails; does not call into Go. */
int32_t goipc_last_errno(void);

/* Returns a detail message for the most recent failed goipc call on the
 * calling thread ("" if none has failed yet), e.g.
 * "goipc: message larger than the connection's maximum message size: 2000000
 * bytes, maximum is 1048576". Owned by the library; valid until the next
 * goipc call on this thread (copy it to keep it). Messages longer than 511
 * bytes are truncated. Thread-local; never fails; does not call into Go. */
const char *goipc_last_error_message(void);

/* ---- Handles ----------------------------------------------------------- */

/* Opaque handles. 0 is never a valid handle. A closed handle's value is not
 * reused by a new listener or connection for at least 2^24 further opens of
 * the same slot, so a stale handle reliably returns GOIPC_ERR_CLOSED. */
typedef uint64_t goipc_listener;
typedef uint64_t goipc_conn;
typedef uint64_t goipc_sweeper; /* see "The loop sweeper" */

/* ---- Options ----------------------------------------------------------- */

/* Options for goipc_listen_ex and goipc_dial_ex. Always initialise with
 * goipc_options_init, then set the fields you need: the struct may grow at
 * its end in later versions (struct_size tells the library which version
 * the caller was compiled against; bytes past the fields this library knows
 * must be zero). Version 1 of the struct is its first 48 bytes (up to
 * protocol_version_override), version 2 its first 80 (up to
 * max_pending_handshakes), version 3 is 88 bytes (max_inflight_calls),
 * version 4 is 96 bytes (free_space_in_pieces);
 * the library accepts every earlier struct_size forever, and the fields
 * such a caller lacks take their defaults. */
typedef struct goipc_options {
    uint32_t struct_size;        /* sizeof(goipc_options), set by goipc_options_init */
    uint32_t reserved0;          /* must be 0 */
    /* Bytes per direction, a power of two in [4096, 2^30]; 0 = default
     * (4 MiB, raised to hold at least four maximum-size messages). The
     * dialer's value defines the connection; a listener ignores it. */
    uint64_t ring_size;
    /* Largest message in bytes; 0 = default (1 MiB). The dialer's value
     * defines the connection; a listener refuses dialers whose value is
     * above its own (the dialer sees GOIPC_ERR_INVALID_ARGUMENT). */
    uint64_t max_message_size;
    /* How long a waiting call polls before it sleeps, in ns: 0 = default
     * (50 us; up to 1 ms for a direction whose last 64 waits all ended
     * while it polled, see docs/PROTOCOL.md); -1 (any negative) = sleep at
     * once (lowest CPU, highest latency); INT64_MAX = poll forever (lowest
     * latency, one busy core per waiting side; timeouts and peer death are
     * still honoured). A sleeping call first waits on a futex for up to
     * 2 ms (holding its thread), then on the connection's doorbell (holding
     * no Go thread; a C caller's own thread stays blocked in the call
     * either way). Applies to connections made with these options. */
    int64_t spin_ns;
    /* Bound on the connection handshake in ms; 0 = default (5000). Must
     * not be negative. */
    int64_t handshake_timeout_ms;
    /* Non-zero: accept peers of any uid. Default (0): the peer must run as
     * the same uid as this process (checked with SO_PEERCRED on both
     * sides). */
    int32_t allow_any_uid;
    /* Testing only: announce another protocol version; 0 = normal. */
    uint32_t protocol_version_override;
    /* ---- end of version 1 (48 bytes) ---- */
    /* Listener limits (goipc_dial_ex ignores them): 0 = the default, any
     * negative value = no limit. A client over a limit gets
     * GOIPC_ERR_LIMIT naming it; the listener logs the first refusal of
     * each kind to stderr; other connections are unaffected. */
    int64_t max_conns;              /* open connections; default 4096 */
    int64_t max_segment_size;       /* bytes of one connection's segment; default 64 MiB + 4 KiB */
    int64_t max_mapped_bytes;       /* segment bytes over all connections; default 16 GiB */
    int64_t max_pending_handshakes; /* handshakes in progress, the oldest is dropped beyond; default 64 */
    /* ---- end of version 2 (80 bytes) ---- */
    /* Calls (goipc_call, goipc_call_ex, goipc_call_ping) that may be in
     * flight at once on each connection made with these options, counted
     * at this end: 0 = default (64); at most 65536 (a slot's index is 16
     * bits of the call id); a negative or larger value gives
     * GOIPC_ERR_INVALID_ARGUMENT naming the field. A call beyond the cap
     * waits, within its timeout_ms, until one of them ends
     * (backpressure: nothing is queued); with timeout_ms 0 it returns
     * GOIPC_ERR_TIMEOUT at once and sends nothing. Each end sets its own:
     * a listener's value applies to the connections it accepts, and the
     * peer's cap does not limit this end. The slots (a 112-byte slot
     * and a channel each) are allocated on the connection's first call. */
    int64_t max_inflight_calls;
    /* ---- end of version 3 (88 bytes) ---- */
    /* Non-zero: as a receiver, return the space of the messages read to
     * the sender a sixteenth of the ring at a time while more messages
     * are queued, and all of it once every message seen has been read.
     * Default (0): every receive returns its message's space at once, and
     * a sender whose send found the ring full is told (its call returns,
     * its descriptor or sweeper reports the send direction) after one
     * receive. For a stream's receiver that keeps receiving while
     * messages are queued: a one-way stream whose ring stays full moves
     * 1.1-1.5x the messages per second; a sender may wait for up to a
     * sixteenth of the ring this end has read from, until this end
     * receives again. Nothing is negotiated; a listener's value applies to
     * the connections it accepts (docs/PROTOCOL.md, "Freed space in pieces
     * (opt-in)"). */
    int32_t free_space_in_pieces;
    uint32_t reserved1; /* must be 0 */
} goipc_options;

/* Sets the first size bytes of *opts to zero (every field's default) and
 * struct_size to size: size is how big the caller's struct is, normally
 * sizeof(goipc_options). NULL-safe, and does nothing when size is below 48
 * (the version-1 struct) or above 4096. Never fails; does not call into
 * Go. Bindings in other languages call this with the size of the struct
 * they mirror. */
void goipc_options_init_sized(goipc_options *opts, size_t size);

/* The function goipc_options_init (for binaries compiled against a
 * version-1 goipc.h) initialises exactly the 48-byte version-1 struct, in
 * every library version: it never writes more than such a caller
 * allocated. This header maps the name to goipc_options_init_sized with
 * this header's struct size, so that C and C++ callers initialise every
 * field they see. */
void goipc_options_init(goipc_options *opts);
#define goipc_options_init(opts) goipc_options_init_sized((opts), sizeof(goipc_options))

/* ---- Listener ---------------------------------------------------------- */

/* Listens on the Unix socket path (a filesystem path, at most 107 bytes).
 * Equivalent to goipc_listen_ex(path, NULL, out).
 * Returns GOIPC_OK and sets *out to a new listener handle, which the caller
 * owns and must close with goipc_listener_close. A stale socket file left by
 * a dead listener is replaced.
 * Errors: GOIPC_ERR_INVALID_ARGUMENT (path or out NULL, path empty),
 * GOIPC_ERR_ADDRESS_IN_USE (a live listener serves path, or path exists
 * and is not a socket), GOIPC_ERR_PERMISSION, GOIPC_ERR_SYSTEM.
 * path is only read during the call (the caller keeps ownership). */
int32_t goipc_listen(const char *path, goipc_listener *out);

/* goipc_listen with options; opts may be NULL (all defaults). The
 * listener's max_message_size, spin_ns, handshake_timeout_ms, allow_any_uid
 * and protocol_version_override apply to every accepted connection; its
 * limits (max_conns, max_segment_size, max_mapped_bytes,
 * max_pending_handshakes) bound what dialers can make it hold.
 * Additional errors: GOIPC_ERR_INVALID_ARGUMENT for bad options
 * (struct_size not set by goipc_options_init, out-of-range values);
 * GOIPC_ERR_NOT_SUPPORTED if opts comes from a newer goipc.h and sets
 * fields this library does not know.
 * opts is only read during the call. */
int32_t goipc_listen_ex(const char *path, const goipc_options *opts, goipc_listener *out);

/* Waits for a client whose handshake has completed. Handshakes run inside
 * the library, concurrently and each under its own deadline, from the
 * moment goipc_listen returns: a silent or slow client never delays
 * another, and at most max_pending_handshakes are in progress (the oldest
 * is dropped beyond). Returns GOIPC_OK and sets *out to a new connection
 * handle, owned by the caller (close it with goipc_conn_close).
 * timeout_ms 0 takes only a client whose handshake has already completed.
 * Errors: GOIPC_ERR_INVALID_ARGUMENT (bad handle, out NULL),
 * GOIPC_ERR_CLOSED (the listener is or gets closed), GOIPC_ERR_TIMEOUT,
 * and, reporting one client's failed handshake, GOIPC_ERR_PROTOCOL,
 * GOIPC_ERR_PERMISSION, GOIPC_ERR_LIMIT, GOIPC_ERR_TIMEOUT (that client's
 * handshake timed out or was dropped), GOIPC_ERR_SYSTEM: the listener
 * stays usable after those, keep accepting. (At most 64 such failures are
 * kept for accept to report; the clients get their own errors anyway.
 * goipc_listener_dropped_errors counts the others.)
 * Thread safety: any number of threads may accept on one listener. */
int32_t goipc_accept(goipc_listener l, int64_t timeout_ms, goipc_conn *out);

/* Stops listening and removes the socket file. Accept calls blocked on l
 * return GOIPC_ERR_CLOSED; connections already accepted stay open. The
 * handle is invalid afterwards. Returns GOIPC_OK, or GOIPC_ERR_CLOSED if l
 * was already closed, GOIPC_ERR_INVALID_ARGUMENT for a handle never issued.
 * Thread-safe. */
int32_t goipc_listener_close(goipc_listener l);

/* Sets *fd to a file descriptor that is readable while goipc_accept with
 * timeout_ms 0 would not return GOIPC_ERR_TIMEOUT: a connection (or a
 * failed handshake's error) is queued, or the listener is closed. For event
 * loops (epoll, poll, select, asyncio, tokio) that accept without a thread
 * blocked in goipc_accept and without polling on a timer.
 * Rules:
 *  - Readiness is exact and level-triggered: the descriptor turns readable
 *    when a handshake completes and quiet when goipc_accept takes the last
 *    queued client. When it is readable, call goipc_accept with
 *    timeout_ms 0 until it returns GOIPC_ERR_TIMEOUT (with EPOLLET too),
 *    then wait again. A goipc_accept that returned GOIPC_ERR_TIMEOUT found
 *    the descriptor quiet, so no client can arrive unnoticed between that
 *    call and the wait.
 *  - Another thread's goipc_accept may take the client a wakeup announced:
 *    goipc_accept then returns GOIPC_ERR_TIMEOUT; wait again.
 *  - The descriptor belongs to the listener: do not read, write or close
 *    it. goipc_listener_close makes it readable (a poll(2) blocked on it
 *    wakes) and then closes it: remove it from epoll sets before.
 *  - It is an eventfd of this process. Every call returns the same
 *    descriptor; listeners that never call it pay nothing.
 * Errors: GOIPC_ERR_INVALID_ARGUMENT (bad handle, fd NULL),
 * GOIPC_ERR_CLOSED, GOIPC_ERR_SYSTEM (eventfd failed: errno); *fd is
 * unmodified on failure.
 * Thread-safe. */
int32_t goipc_listener_fd(goipc_listener l, int *fd);

/* Sets *count to the number of failed handshakes goipc_accept will never
 * report: at most 64 failures wait for accept, and one that ends while
 * that many wait is counted here instead (its client got its own error
 * either way). A server that logs accept's errors should log this count
 * too, so that every refused client is accounted for when its accepting
 * thread falls behind a flood of bad clients. The count only grows.
 * Errors: GOIPC_ERR_INVALID_ARGUMENT (bad handle, count NULL),
 * GOIPC_ERR_CLOSED; *count is unmodified on failure.
 * Thread-safe. */
int32_t goipc_listener_dropped_errors(goipc_listener l, uint64_t *count);

/* ---- Connection -------------------------------------------------------- */

/* Connects to the listener at path and completes the handshake.
 * Equivalent to goipc_dial_ex(path, NULL, timeout_ms, out).
 * Returns GOIPC_OK and sets *out to a new connection handle owned by the
 * caller (close it with goipc_conn_close).
 * timeout_ms: < 0 waits as long as the handshake timeout allows (default
 * 5 s); 0 always returns GOIPC_ERR_TIMEOUT, because a handshake has to wait
 * for the listener's reply; > 0 bounds connect + handshake.
 * Errors: GOIPC_ERR_INVALID_ARGUMENT (path or out NULL, path empty; or the
 * listener refused our max_message_size), GOIPC_ERR_TIMEOUT,
 * GOIPC_ERR_SYSTEM (errno ENOENT: no such path; ECONNREFUSED: nobody
 * listens), GOIPC_ERR_PERMISSION (uid policy of either side, or EACCES),
 * GOIPC_ERR_PROTOCOL (not a goipc listener, or another protocol version),
 * GOIPC_ERR_PEER_CLOSED (the listener went away during the handshake).
 * path is only read during the call. */
int32_t goipc_dial(const char *path, int64_t timeout_ms, goipc_conn *out);

/* goipc_dial with options; opts may be NULL. The dialer's ring_size and
 * max_message_size define the connection's segment. opts is only read
 * during the call. */
int32_t goipc_dial_ex(const char *path, const goipc_options *opts, int64_t timeout_ms, goipc_conn *out);

/* Sets *out to the largest message, in bytes, that connection c carries
 * (in both directions). Errors: GOIPC_ERR_INVALID_ARGUMENT, GOIPC_ERR_CLOSED. */
int32_t goipc_conn_max_message_size(goipc_conn c, size_t *out);

/* Sends len bytes from data as one message (copied into shared memory;
 * the caller keeps ownership of data). Waits while the peer's ring is full
 * (backpressure: nothing is dropped or overwritten), up to timeout_ms.
 * data may be NULL only if len is 0 (an empty message).
 * Errors: GOIPC_ERR_INVALID_ARGUMENT, GOIPC_ERR_CLOSED, GOIPC_ERR_TIMEOUT
 * (ring full; nothing written), GOIPC_ERR_PEER_CLOSED,
 * GOIPC_ERR_MESSAGE_TOO_LARGE (len above the maximum: nothing written, the
 * connection stays usable), GOIPC_ERR_PROTOCOL.
 * One call into Go; no allocation. */
int32_t goipc_send(goipc_conn c, const void *data, size_t len, int64_t timeout_ms);

/* Receives the next message into buf (capacity cap bytes) and sets *len to
 * its size. buf may be NULL only if cap is 0.
 * If the message is larger than cap: returns GOIPC_ERR_BUFFER_TOO_SMALL,
 * sets *len to the size needed and leaves the message queued.
 * Errors: GOIPC_ERR_INVALID_ARGUMENT (len NULL, buf NULL with cap > 0, bad
 * handle), GOIPC_ERR_CLOSED, GOIPC_ERR_TIMEOUT, GOIPC_ERR_PEER_CLOSED
 * (after every message the peer sent has been received),
 * GOIPC_ERR_BUFFER_TOO_SMALL, GOIPC_ERR_PROTOCOL.
 * One call into Go; no allocation. */
int32_t goipc_recv(goipc_conn c, void *buf, size_t cap, size_t *len, int64_t timeout_ms);

/* ---- Batches: many messages per call ----------------------------------- */

/* One message of a batch to send: len bytes at data. data may be NULL only
 * if len is 0 (an empty message). Same layout on every platform the
 * library supports: a pointer, then a size_t. */
typedef struct goipc_iovec {
    const void *data;
    size_t len;
} goipc_iovec;

/* Sends msgs[0..count-1] in order, each as one message (the peer receives
 * them one by one, with goipc_recv or any other receive). They are copied
 * into shared memory and published together: the peer sees its ring move,
 * and is woken if asleep, once per batch instead of once per message. Use
 * it to stream many small messages; one goipc_send per message costs a
 * call into Go and a publication each.
 * Waits for ring space as goipc_send does, up to timeout_ms for the whole
 * batch; before waiting it publishes what it has written, so a batch may
 * be larger than the ring.
 * Sets *sent to how many messages were sent, on success (count) and on
 * every failure: a failure after some messages were sent (the timeout
 * expired, the peer closed, ...) sent exactly msgs[0..*sent-1] and none of
 * the others; resend the rest if needed. With timeout_ms 0 it sends what
 * fits now and returns GOIPC_ERR_TIMEOUT if that is not all. sent may be
 * NULL if the caller does not need it.
 * Every message is checked before any is sent: msgs NULL with count > 0, or
 * a message with data NULL and len > 0, returns GOIPC_ERR_INVALID_ARGUMENT,
 * and one above the maximum message size GOIPC_ERR_MESSAGE_TOO_LARGE, with
 * *sent 0 (nothing sent; the connection stays usable). count 0 returns
 * GOIPC_OK at once.
 * msgs and the bytes it points to are only read during the call; the
 * caller keeps ownership. Thread safety: a send like goipc_send (sends on
 * one connection are serialised: no other message comes between those of
 * a batch); the thread holding a reservation gets
 * GOIPC_ERR_INVALID_ARGUMENT.
 * Errors: as goipc_send. One call into Go; batches of up to 4096 messages
 * reuse a pooled slice (an allocation only after a garbage collection
 * emptied the pool). */
int32_t goipc_send_batch(goipc_conn c, const goipc_iovec *msgs, size_t count, size_t *sent, int64_t timeout_ms);

/* Receives up to max_count messages in one call: waits up to timeout_ms
 * for the first (as goipc_recv does), then takes the messages the peer has
 * already published behind it, as many as fit in buf and max_count, without
 * waiting again. Their ring space goes back to the peer once per batch.
 * The messages are copied one after another into buf (capacity cap
 * bytes): message i is sizes[i] bytes and starts at buf + sizes[0] + ... +
 * sizes[i-1] (no padding between them; keep alignment in mind when reading
 * fields in place). *count is set to how many were taken, 1 to max_count,
 * on success, and to 0 on every failure.
 * A batch is partial whenever fewer messages are waiting, or the next one
 * does not fit what is left of buf: that message stays queued and is the
 * next call's first. A first message larger than cap returns
 * GOIPC_ERR_BUFFER_TOO_SMALL, sets sizes[0] to its size and leaves it
 * queued (as goipc_recv does; a buf of goipc_conn_max_message_size bytes
 * always holds it).
 * buf may be NULL only if cap is 0 (then only empty messages fit). sizes
 * must hold max_count entries. sizes NULL, count NULL or max_count 0
 * return GOIPC_ERR_INVALID_ARGUMENT. buf and sizes belong to the caller;
 * the library writes them only during the call.
 * Thread safety: a receive like goipc_recv (receives on one connection are
 * serialised); the thread holding a view gets GOIPC_ERR_INVALID_ARGUMENT.
 * Errors: as goipc_recv (GOIPC_ERR_PEER_CLOSED only once every message the
 * peer sent has been received). One call into Go; no allocation. */
int32_t goipc_recv_batch(goipc_conn c, void *buf, size_t cap, size_t *sizes, size_t max_count, size_t *count,
                         int64_t timeout_ms);

/* Closes the connection. Calls blocked on c return GOIPC_ERR_CLOSED; the
 * peer gets GOIPC_ERR_PEER_CLOSED once it has received what was sent. The
 * handle is invalid afterwards. A reservation or view held by the calling
 * thread is ended by the close (its pointer becomes invalid); one held by
 * another thread stays valid until that thread calls goipc_commit,
 * goipc_abort_reserve or goipc_release (which return GOIPC_ERR_CLOSED and
 * free the shared memory).
 * Returns GOIPC_OK, or GOIPC_ERR_CLOSED if c was already closed (double
 * close is harmless), GOIPC_ERR_INVALID_ARGUMENT for a handle never issued.
 * Thread-safe. */
int32_t goipc_conn_close(goipc_conn c);

/* Sets *fd to a file descriptor that becomes readable when a call on c
 * that returned GOIPC_ERR_TIMEOUT with timeout_ms 0 may now succeed: a
 * message arrived, ring space was freed after a send found the ring full,
 * or the connection ended (peer closed or died: the next call returns
 * GOIPC_ERR_PEER_CLOSED). For event loops (epoll, poll, select, asyncio,
 * tokio) that wait on many connections without a thread each.
 * Rules:
 *  - A call with timeout_ms 0 that returns GOIPC_ERR_TIMEOUT arms the
 *    descriptor for its direction (receive: the next message; send: ring
 *    space) and resets that direction's readiness. Readiness is
 *    level-triggered and may be spurious: when the descriptor is readable,
 *    retry the calls you were waiting to make, each until it returns
 *    GOIPC_ERR_TIMEOUT, then wait again. Calls that succeed leave the
 *    readiness alone (the descriptor may stay readable until the next call
 *    that returns GOIPC_ERR_TIMEOUT). A failed call in one direction never
 *    swallows the other direction's readiness.
 *  - A send does not arm the descriptor for the reply: make one receive
 *    with timeout_ms 0 before the first wait.
 *  - Blocking calls (timeout_ms != 0) on c work as usual.
 *  - With EPOLLET, the same rule holds: retry until GOIPC_ERR_TIMEOUT.
 *  - The descriptor belongs to the connection: do not read, write or close
 *    it. goipc_conn_close closes it: remove it from epoll sets before.
 *  - It is an eventfd of this process, never shared with the peer.
 *  - Every call returns the same descriptor. The first call costs one
 *    eventfd; connections that never call it pay nothing.
 * Errors: GOIPC_ERR_INVALID_ARGUMENT (bad handle, fd NULL),
 * GOIPC_ERR_CLOSED, GOIPC_ERR_SYSTEM (eventfd failed: errno). */
int32_t goipc_conn_fd(goipc_conn c, int *fd);

/* ---- The loop sweeper -------------------------------------------------- */

/* A sweeper lets an event loop that is busy (something to do every few
 * microseconds) wait on many connections without a system call per
 * message, on either side. Without one, every call with timeout_ms 0 that
 * returns GOIPC_ERR_TIMEOUT arms the connection's descriptor
 * (goipc_conn_fd), so each message the loop then waits for costs the peer
 * a doorbell write, this process a wakeup of its descriptor, and the loop
 * a poll and a read. With the connection attached to a sweeper
 * (goipc_conn_set_sweeper), such a call lists its direction on the
 * sweeper instead, un-armed, and the loop:
 *  - calls goipc_sweeper_sweep between its other work: it reports the
 *    listed waits that may now succeed (one memory load each, no system
 *    call); make those calls again (one that still finds nothing is
 *    listed again);
 *  - calls goipc_sweeper_arm when sweeps have found nothing for a while
 *    and it is about to sleep in poll/epoll: every listed wait is then
 *    armed as without a sweeper, and its descriptor becomes readable as
 *    goipc_conn_fd says. About 50 microseconds is the Go side's choice; a
 *    loop that is much faster than its peers (C against a busy server)
 *    does better waiting longer (with 1000 connections, 500 microseconds
 *    measured 306-314 k round trips/s against 115-177 k at 50:
 *    docs/PERFORMANCE.md), since each arm makes the peers ring doorbells
 *    again.
 * Reported tokens are (token << 1) | GOIPC_SWEEP_RECV for a receive (a
 * message, or a call's reply, may be there) and (token << 1) |
 * GOIPC_SWEEP_SEND for a send (ring space was freed); a connection that
 * ended (closed, peer closed or died, protocol error) is reported in every
 * listed direction, and the next call returns its error. Blocking calls
 * (timeout_ms != 0) are not affected. The peer's protocol is the same: a
 * listed wait is, to the peer, a receiver that polls.
 * A sweeper is for one loop: calls on it (sweep, arm, free) from one
 * thread at a time; goipc_conn_close of an attached connection, from any
 * thread, is safe (its entries are reported, never read after the close).
 * Handles are checked: a freed or unknown sweeper handle is an error,
 * never a crash. */
#define GOIPC_SWEEP_SEND 0
#define GOIPC_SWEEP_RECV 1

/* Creates an empty sweeper and stores its handle in *out (unchanged on
 * failure). Free it with goipc_sweeper_free.
 * Errors: GOIPC_ERR_INVALID_ARGUMENT (out NULL), GOIPC_ERR_LIMIT (too many
 * live sweepers). Thread-safe. */
int32_t goipc_sweeper_new(goipc_sweeper *out);

/* Frees the sweeper. Listed waits are armed as by goipc_sweeper_arm, and
 * those that could already succeed make their descriptors readable (none
 * is lost); connections still attached arm their descriptors again on a
 * failed call, as without a sweeper. The handle is invalid afterwards.
 * Errors: GOIPC_ERR_CLOSED (freed already), GOIPC_ERR_INVALID_ARGUMENT
 * (never issued). */
int32_t goipc_sweeper_free(goipc_sweeper s);

/* Attaches c to the sweeper s under token (at most 2^63 - 1: reports shift
 * it left by one), or detaches it with s = 0. A wait listed on another
 * sweeper, or under the old token, is taken off it first (make the call
 * again to list it anew). Attaching creates c's descriptor (goipc_conn_fd)
 * if it has none: waits that goipc_sweeper_arm hands back end on it.
 * Errors: GOIPC_ERR_INVALID_ARGUMENT (bad handles, token too large),
 * GOIPC_ERR_CLOSED (c closed, s freed), GOIPC_ERR_SYSTEM (eventfd failed).
 * Thread-safe. */
int32_t goipc_conn_set_sweeper(goipc_conn c, goipc_sweeper s, uint64_t token);

/* One sweep: stores in tokens[0..*n) the listed waits that may now succeed
 * or whose connection ended, at most cap of them; they leave the list
 * (the others, and those that did not fit, stay for the next sweep). *n
 * is set to 0 on every error but a bad n. No system call, no allocation.
 * Errors: GOIPC_ERR_INVALID_ARGUMENT (bad handle, n NULL, tokens NULL with
 * cap > 0), GOIPC_ERR_CLOSED (s freed). */
int32_t goipc_sweeper_sweep(goipc_sweeper s, uint64_t *tokens, size_t cap, size_t *n);

/* The loop is going idle: arms every listed wait (as a failed call without
 * a sweeper does) and empties the list. Waits that may already succeed,
 * or whose connection ended, are stored in tokens[0..*n); those that do
 * not fit in cap make their connection's descriptor readable instead.
 * From then on the listed waits end through their descriptors. One eventfd
 * read per connection whose descriptor was readable, at most.
 * Errors: as goipc_sweeper_sweep. */
int32_t goipc_sweeper_arm(goipc_sweeper s, uint64_t *tokens, size_t cap, size_t *n);

/* ---- Zero-copy send: reserve, fill, commit ----------------------------- */

/* Reserves room for a message of up to len bytes in the ring and sets
 * *out_ptr to it, for the caller to fill in place. Waits for space up to
 * timeout_ms. The caller then calls goipc_commit(c, n) with n <= len to
 * publish the first n bytes, or goipc_abort_reserve(c) to drop it. Until
 * then the memory at *out_ptr belongs to the caller (write only inside
 * [*out_ptr, *out_ptr + len)); afterwards it must not be touched. *out_ptr
 * is 8-byte aligned. For len 0 *out_ptr is a valid, non-NULL pointer to 0
 * bytes.
 * The reservation holds the connection's send side (see Thread safety);
 * the same thread calling goipc_send or goipc_reserve again before ending
 * it gets GOIPC_ERR_INVALID_ARGUMENT.
 * Errors: as goipc_send. */
int32_t goipc_reserve(goipc_conn c, size_t len, int64_t timeout_ms, void **out_ptr);

/* Publishes the first len bytes of the open reservation as one message and
 * ends the reservation. May be called from another thread than the one
 * that reserved. Errors: GOIPC_ERR_INVALID_ARGUMENT (no reservation open,
 * len above the reserved length: the reservation stays open),
 * GOIPC_ERR_CLOSED (the connection was closed meanwhile: nothing sent, the
 * reservation is ended). */
int32_t goipc_commit(goipc_conn c, size_t len);

/* Drops the open reservation without sending anything. Errors:
 * GOIPC_ERR_INVALID_ARGUMENT (no reservation open), GOIPC_ERR_CLOSED (the
 * connection was closed meanwhile; the reservation is ended all the same). */
int32_t goipc_abort_reserve(goipc_conn c);

/* ---- Zero-copy receive: view, read, release ---------------------------- */

/* Waits up to timeout_ms for the next message and returns it in place:
 * *out_ptr points into shared memory, *out_len is its size. The bytes stay
 * valid and unchanged by our side until goipc_release(c); the peer cannot
 * reuse the space before. For an empty message *out_ptr is non-NULL.
 * Do not write through the pointer. The peer process can still modify the
 * bytes (as with any shared memory): copy before validating if that
 * matters.
 * The view holds the connection's receive side (see Thread safety); the
 * same thread receiving again before goipc_release gets
 * GOIPC_ERR_INVALID_ARGUMENT.
 * Errors: as goipc_recv, except GOIPC_ERR_BUFFER_TOO_SMALL. */
int32_t goipc_recv_view(goipc_conn c, const void **out_ptr, size_t *out_len, int64_t timeout_ms);

/* Releases the view returned by goipc_recv_view, giving its space back to
 * the peer; the pointer must not be used afterwards. May be called from
 * another thread than the one that took the view. Errors:
 * GOIPC_ERR_INVALID_ARGUMENT (no view open), GOIPC_ERR_CLOSED (the
 * connection was closed meanwhile; the view is ended all the same). */
int32_t goipc_release(goipc_conn c);

/* ---- Typed messages: Ping and Pong (schema/goipc.fbs) ------------------
 *
 * The kit's own FlatBuffers messages, for C peers without a FlatBuffers
 * library: a Message whose body is a Ping {seq, sent_ns, payload} or a
 * Pong {seq, ping_sent_ns, received_ns, payload}. Sends build the message
 * in place in the ring; receives verify it in place and copy out only the
 * payload. One call into Go each. Times are CLOCK_MONOTONIC nanoseconds.
 *
 * Sizes: a Ping with an n-byte payload is 64 + ((n + 11) & ~7) bytes, a
 * Pong 72 + ((n + 11) & ~7) bytes; that must not exceed the connection's
 * maximum message size (else GOIPC_ERR_MESSAGE_TOO_LARGE, nothing sent).
 *
 * Receiving: a message that fails verification, or whose body is of the
 * other type, is dropped and reported as GOIPC_ERR_PROTOCOL for that
 * message only: the connection stays usable, call again for the next one.
 * (A GOIPC_ERR_PROTOCOL that keeps coming back on every call is the
 * connection-level kind: close the connection.) A message whose body type
 * this version does not know (from a newer peer) is skipped silently. If
 * the payload is larger than cap, the call returns
 * GOIPC_ERR_BUFFER_TOO_SMALL, sets *len to the payload size and leaves the
 * message queued for the next receive of any kind on the connection.
 * Thread safety and other errors: as goipc_send / goipc_recv. */

/* Sends a Ping with the given seq and payload (len bytes; payload may be
 * NULL only if len is 0); sent_ns is set to CLOCK_MONOTONIC now. */
int32_t goipc_send_ping(goipc_conn c, uint64_t seq, const void *payload, size_t len, int64_t timeout_ms);

/* Receives the next Pong: sets *seq, copies its payload into buf (cap
 * bytes; buf may be NULL only if cap is 0) and sets *len to its size. seq
 * and len must not be NULL. */
int32_t goipc_recv_pong(goipc_conn c, uint64_t *seq, void *buf, size_t cap, size_t *len, int64_t timeout_ms);

/* Receives the next Ping: sets *seq and, if sent_ns is not NULL, *sent_ns;
 * copies its payload into buf and sets *len (as goipc_recv_pong). */
int32_t goipc_recv_ping(goipc_conn c, uint64_t *seq, int64_t *sent_ns, void *buf, size_t cap, size_t *len,
                        int64_t timeout_ms);

/* Sends a Pong answering the Ping (seq, ping_sent_ns) with the given
 * payload; received_ns is when the Ping was read (0: CLOCK_MONOTONIC now). */
int32_t goipc_send_pong(goipc_conn c, uint64_t seq, int64_t ping_sent_ns, int64_t received_ns, const void *payload,
                        size_t len, int64_t timeout_ms);

/* ---- Statistics -------------------------------------------------------
 *
 * Each end counts what it moved in the connection's shared segment (plain
 * stores next to the ring positions it writes anyway: no extra cost per
 * message worth measuring, docs/STAT.md). `goipc stat` reads the same
 * counters from outside the process. A hostile peer could overwrite the
 * segment: treat the numbers as statistics, not accounting. */

/* One direction of a connection, as this end counts it. */
typedef struct goipc_direction_stats {
    uint64_t messages;        /* messages this end sent (sent) or received (received) */
    uint64_t bytes;           /* their payload bytes */
    uint64_t parks;           /* times this end slept: waiting for ring space (sent) or for a message (received) */
    uint64_t wakeups;         /* wakeups this end sent its peer (futex wakes and doorbell rings) */
    uint64_t capacity;        /* the ring's capacity in bytes */
    uint64_t in_use;          /* ring bytes published and not yet consumed, now */
    uint32_t sender_parked;   /* 1 if the sending end of this direction is parked now (ring full), else 0 */
    uint32_t receiver_parked; /* 1 if the receiving end of this direction is parked now (ring empty), else 0 */
} goipc_direction_stats;

/* A connection end's counters. Versioned like goipc_options: the struct may
 * grow at its end in later versions. Version 1 is 136 bytes. */
typedef struct goipc_stats {
    /* Set by the caller to sizeof(goipc_stats) before the call; on success
     * the library sets it to the number of bytes it wrote (less than the
     * caller's size when the library is older than the caller's goipc.h:
     * fields from that offset on were not written). */
    uint32_t struct_size;
    uint32_t dialer;                /* 1 if this end dialed (it created the segment), 0 if it accepted */
    int64_t peer_pid;               /* the peer's process id */
    int64_t opened_unix_ns;         /* when this end completed the handshake (CLOCK_REALTIME ns) */
    goipc_direction_stats sent;     /* this end -> peer */
    goipc_direction_stats received; /* peer -> this end */
} goipc_stats;

/* Fills *out with the connection's counters. Set out->struct_size to
 * sizeof(goipc_stats) first (or goipc_stats s = {.struct_size = sizeof s}):
 * the library writes min(struct_size, the size of its own goipc_stats)
 * bytes and sets struct_size to that number. Never waits; thread-safe (any
 * thread, at any time, also while other threads send or receive).
 * Errors: GOIPC_ERR_INVALID_ARGUMENT (bad handle, out NULL, struct_size
 * below 136 or above 4096: *out unchanged), GOIPC_ERR_CLOSED. */
int32_t goipc_conn_stats(goipc_conn c, goipc_stats *out);

/* ---- Calls: requests and replies with call ids -------------------------
 *
 * A call is a request answered by exactly one reply, routed back to its
 * caller by a call id (docs/PROTOCOL.md, "Calls"). Any number of threads
 * may call at once on one connection: each gets the reply to its own
 * request, whatever the order in which the peer answers. Plain messages
 * (goipc_send / goipc_recv) keep working on the same connection.
 *
 * Sizes: a request or reply is at most goipc_conn_max_message_size() - 8
 * bytes (the frame also carries the 8-byte call id); a larger one returns
 * GOIPC_ERR_MESSAGE_TOO_LARGE and sends nothing.
 *
 * In flight: at most goipc_options.max_inflight_calls calls (default 64)
 * per connection at once; a call beyond them waits for one to end,
 * within its timeout.
 *
 * Head of line: the connection's receive side is shared. Whoever waits
 * on it (a goipc_recv, a goipc_recv_request, a caller) reads the ring for
 * everyone and routes replies to their callers; a plain message or a
 * request at the head waits for a receiver of its kind, and the replies
 * behind it wait too. So if the peer sends plain messages or requests on
 * a connection you make calls on, keep a thread receiving them. A view
 * (goipc_recv_view) or a message left queued by a too-small buffer holds
 * the receive side too: calls wait until it is released or received.
 *
 * Timeouts: timeout_ms bounds the whole call (a free call slot, ring
 * space for the request, the reply). A call that times out is over: its
 * reply, if it comes later, is dropped (goipc_conn_dropped_replies counts
 * it) and never delivered to another call. To wait in slices without
 * giving the call up, use goipc_call_ex.
 *
 * Thread safety: every function here may be called from any thread. The
 * thread that holds a reservation or a view on the connection gets
 * GOIPC_ERR_INVALID_ARGUMENT from the calls that would wait on it. One
 * pending call (goipc_call_ex) is ended by one thread: concurrent
 * goipc_call_end / goipc_call_cancel on the same id get
 * GOIPC_ERR_INVALID_ARGUMENT, never a crash.
 */

/* Sends req (req_len bytes; req may be NULL only if req_len is 0) as a
 * call request, waits for its reply, and copies the reply into resp
 * (resp_cap bytes; resp may be NULL only if resp_cap is 0), setting
 * *resp_len to its size. One call into Go per round trip; the reply is
 * copied once, from shared memory into resp.
 * If the reply is larger than resp_cap: returns GOIPC_ERR_BUFFER_TOO_SMALL
 * and sets *resp_len to the size needed; the reply is dropped (the call is
 * over: calling again sends the request again). A resp_cap of
 * goipc_conn_max_message_size() - 8 never sees this; goipc_call_ex keeps
 * such a reply instead.
 * Errors: GOIPC_ERR_INVALID_ARGUMENT (resp_len NULL, NULL buffers with
 * non-zero sizes, bad handle, this thread holds a reservation or view),
 * GOIPC_ERR_CLOSED, GOIPC_ERR_TIMEOUT (the call is over; a late reply is
 * dropped), GOIPC_ERR_PEER_CLOSED (the peer closed or died before
 * replying: every call in flight returns it promptly),
 * GOIPC_ERR_MESSAGE_TOO_LARGE, GOIPC_ERR_BUFFER_TOO_SMALL,
 * GOIPC_ERR_PROTOCOL. */
int32_t goipc_call(goipc_conn c, const void *req, size_t req_len, void *resp, size_t resp_cap, size_t *resp_len,
                   int64_t timeout_ms);

/* goipc_call that can leave the call in flight. pending may be NULL (then
 * this is goipc_call); otherwise *pending is always written: 0 when the
 * call is over (success, or an error that ended it, or a request that was
 * never sent), or the call's id when it is still in flight, which happens
 * on GOIPC_ERR_TIMEOUT after the request was sent, and on
 * GOIPC_ERR_BUFFER_TOO_SMALL (*resp_len = the size needed; the reply is
 * kept). Continue a pending call with goipc_call_end, or end it with
 * goipc_call_cancel; resp is not written after this function returns.
 * For waits in slices (interruptible loops, event loops: timeout_ms 0
 * sends the request and returns at once). */
int32_t goipc_call_ex(goipc_conn c, const void *req, size_t req_len, void *resp, size_t resp_cap, size_t *resp_len,
                      int64_t timeout_ms, uint64_t *pending);

/* Sends req (req_len bytes, as goipc_call's) as a call request and
 * returns without looking for the reply: *pending (not NULL) is set to the
 * call's id, to continue with goipc_call_end or end with
 * goipc_call_cancel. timeout_ms bounds the wait for a free call slot and
 * for ring space (0: never waits). With timeout 0, GOIPC_ERR_TIMEOUT for
 * ring space arms goipc_conn_fd as a send does; for a call slot it arms
 * nothing: a slot is freed when a call of c ends (goipc_call_end's
 * result, goipc_call_cancel), which the caller sees. For event loops: a
 * goipc_call_ex with timeout 0 also looks for the reply once, which
 * cannot be there yet and, on a connection with a sweeper, lists the
 * receive wait on it; this does neither. *pending is 0 unless it returns
 * GOIPC_OK. Errors: as goipc_call (GOIPC_ERR_TIMEOUT: nothing was sent);
 * GOIPC_ERR_INVALID_ARGUMENT also for pending NULL. Thread-safe. */
int32_t goipc_call_start(goipc_conn c, const void *req, size_t req_len, int64_t timeout_ms, uint64_t *pending);

/* Waits up to timeout_ms for the reply of the pending call `call` (from
 * goipc_call_ex or goipc_call_start) and copies it into resp, setting
 * *resp_len. On GOIPC_ERR_TIMEOUT and GOIPC_ERR_BUFFER_TOO_SMALL
 * (*resp_len = the size needed) the call stays pending: call again. Any
 * other result ends it.
 * Errors: as goipc_call; GOIPC_ERR_INVALID_ARGUMENT also for an id that
 * does not name a pending call of c (ended, cancelled, never issued). */
int32_t goipc_call_end(goipc_conn c, uint64_t call, void *resp, size_t resp_cap, size_t *resp_len, int64_t timeout_ms);

/* Ends the pending call `call` without its reply: the reply, if it comes,
 * is dropped. Errors: GOIPC_ERR_INVALID_ARGUMENT (not a pending call of c),
 * GOIPC_ERR_CLOSED. */
int32_t goipc_call_cancel(goipc_conn c, uint64_t call);

/* Sets *out to the number of replies c received that no call was waiting
 * for (late replies of calls that timed out or were cancelled, and
 * replies to ids never issued): they were dropped. Errors:
 * GOIPC_ERR_INVALID_ARGUMENT, GOIPC_ERR_CLOSED. */
int32_t goipc_conn_dropped_replies(goipc_conn c, uint64_t *out);

/* Server side: receives the next call request into buf (cap bytes) and
 * sets *call to its id and *len to its size. Plain messages are left for
 * goipc_recv (head of line, above). Answer with goipc_reply(c, *call, ...)
 * from any thread, in any order. If the request is larger than cap:
 * GOIPC_ERR_BUFFER_TOO_SMALL, *len = the size needed, the request stays
 * queued. call and len must not be NULL.
 * Errors: as goipc_recv. */
int32_t goipc_recv_request(goipc_conn c, uint64_t *call, void *buf, size_t cap, size_t *len, int64_t timeout_ms);

/* Sends data (len bytes, at most goipc_conn_max_message_size() - 8) as the
 * reply to the request whose id is call. Waits for ring space up to
 * timeout_ms. Replying twice, or to an id the peer never sent, is not an
 * error here: the peer drops replies no call waits for.
 * Errors: as goipc_send. */
int32_t goipc_reply(goipc_conn c, uint64_t call, const void *data, size_t len, int64_t timeout_ms);

/* Typed call: sends a Ping {seq, sent_ns = CLOCK_MONOTONIC now, payload}
 * as a call request, waits for the reply, which must be a Pong, and copies
 * the Pong's payload into buf (cap bytes), setting *pong_seq and *out_len. One
 * call into Go; the Ping is built in place in the ring. A reply that is
 * not a valid Pong returns GOIPC_ERR_PROTOCOL for this call only (the
 * connection stays usable); a payload larger than cap returns
 * GOIPC_ERR_BUFFER_TOO_SMALL with *out_len set, and the reply is dropped.
 * `goipc pong` answers a Ping call with a Pong. pong_seq and out_len must
 * not be NULL. Errors: as goipc_call. */
int32_t goipc_call_ping(goipc_conn c, uint64_t seq, const void *payload, size_t len, uint64_t *pong_seq, void *buf,
                        size_t cap, size_t *out_len, int64_t timeout_ms);

/* Typed server side: receives the next call request as a Ping. Sets *call
 * to its id (for goipc_reply_pong), *seq and, if sent_ns is not NULL,
 * *sent_ns to the Ping's fields; copies its payload into buf (cap bytes;
 * buf may be NULL only if cap is 0) and sets *len to its size. call, seq
 * and len must not be NULL. One call into Go; the Ping is verified in
 * place in the ring and only its payload is copied.
 * The payload larger than cap: GOIPC_ERR_BUFFER_TOO_SMALL, *len = the
 * payload size, and the request stays queued for the next
 * goipc_recv_ping_request or goipc_recv_request on the connection
 * (a copy kept by the library: plain receives and calls go on
 * meanwhile).
 * A request that is not a valid Ping: GOIPC_ERR_PROTOCOL for that request
 * only (the connection stays usable). The request leaves the queue, and,
 * unlike other failures, *call is set to its id, *len to its size and buf
 * holds its first min(*len, cap) bytes: its caller waits for a reply, so
 * answer it (goipc_reply, e.g. with an error of your protocol or the
 * echo) or let its call time out. Call ids are never 0: set *call to 0
 * before the call to tell this case from a GOIPC_ERR_PROTOCOL of the
 * connection, which leaves *call unmodified.
 * Thread safety, head of line and other errors: as goipc_recv_request. */
int32_t goipc_recv_ping_request(goipc_conn c, uint64_t *call, uint64_t *seq, int64_t *sent_ns, void *buf, size_t cap,
                                size_t *len, int64_t timeout_ms);

/* Answers the call request `call` with a Pong {seq, ping_sent_ns,
 * received_ns, payload (len bytes; payload may be NULL only if len is 0)}
 * built in place in the ring: usually the Ping's seq, sent_ns and payload
 * from goipc_recv_ping_request. received_ns is when the Ping was read
 * (0: CLOCK_MONOTONIC now). One call into Go; payload is only read during
 * the call. Any thread, any order, as goipc_reply.
 * Sizes: the Pong (72 + ((len + 11) & ~7) bytes) must be at most
 * goipc_conn_max_message_size() - 8, else GOIPC_ERR_MESSAGE_TOO_LARGE and
 * nothing is sent.
 * Errors: as goipc_reply; GOIPC_ERR_INVALID_ARGUMENT also for call 0,
 * which is never a call id. Like goipc_reply, answering twice or an id
 * the peer never sent is not detected here: the peer drops replies no
 * call waits for. */
int32_t goipc_reply_pong(goipc_conn c, uint64_t call, uint64_t seq, int64_t ping_sent_ns, int64_t received_ns,
                         const void *payload, size_t len, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* GOIPC_H */
