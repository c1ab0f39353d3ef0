/*
 * goipc._speedups: the binding's per-message calls without ctypes.
 *
 * The Python binding calls libgoipc through ctypes, which costs 0.4-0.6 us
 * of argument conversion and libffi per call on the test machine (a C
 * caller's call into Go: under 0.1 us); a round trip makes two of them.
 * Making them here cut the client's CPU per round trip, 1000 connections
 * in one asyncio loop, from 5.7-6.9 us to 3.7-4.8 us (docs/PERFORMANCE.md,
 * section 21). This
 * module makes the same calls from C: the Python code of goipc.conn still
 * does every check and every slow path (waits in slices, errors, messages
 * that do not fit), and uses these functions only for its one-call fast
 * paths, when the module is there. It also runs goipc.aio's send and
 * recv (AioOp, below).
 *
 * It does not link libgoipc: goipc._lib loads the library (with ctypes, as
 * always) and hands this module the addresses of its functions (bind), so
 * that both use the one library that was loaded, whichever file it is.
 *
 * Optional by design: `pip install` builds it when a C compiler and the
 * Python headers are there (setup.py, optional=True); the source tree
 * builds it with `make python-speedups`; without it, or with
 * GOIPC_PYTHON_SPEEDUPS=0, the binding uses ctypes for everything.
 *
 * The GIL: a call with timeout 0 never waits (include/goipc.h), so it is
 * made holding the GIL, which saves releasing and taking it again; any
 * other call releases it, as ctypes does, and holds the buffer it reads
 * or writes through the buffer protocol (a bytearray cannot be resized
 * while it is exported).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

typedef int32_t (*send_fn)(uint64_t c, const void *data, size_t len, int64_t timeout_ms);
typedef int32_t (*recv_fn)(uint64_t c, void *buf, size_t cap, size_t *len, int64_t timeout_ms);
typedef int32_t (*call_ex_fn)(uint64_t c, const void *req, size_t req_len, void *resp, size_t resp_cap,
                              size_t *resp_len, int64_t timeout_ms, uint64_t *pending);
typedef int32_t (*call_start_fn)(uint64_t c, const void *req, size_t req_len, int64_t timeout_ms, uint64_t *pending);
typedef int32_t (*call_end_fn)(uint64_t c, uint64_t call, void *resp, size_t resp_cap, size_t *resp_len,
                               int64_t timeout_ms);

/* The library's functions, set by bind() under the GIL before any call;
 * NULL until then (a call then raises RuntimeError). */
static send_fn lib_send;
static recv_fn lib_recv;
static call_ex_fn lib_call_ex;
static call_end_fn lib_call_end;
static call_start_fn lib_call_start;
/* GOIPC_ERR_BUFFER_TOO_SMALL, from bind(): the message stays queued and
 * its size is in *len. */
static int32_t status_buffer_too_small = -1;

/* Runs stmt (a library call) holding the GIL when ms is 0, which never
 * waits, and with the GIL released otherwise. */
#define CALL_LIB(ms, stmt)                                                                                             \
    do {                                                                                                               \
        if ((ms) == 0) {                                                                                               \
            stmt;                                                                                                      \
        } else {                                                                                                       \
            Py_BEGIN_ALLOW_THREADS stmt;                                                                               \
            Py_END_ALLOW_THREADS                                                                                       \
        }                                                                                                              \
    } while (0)

/* A message up to this size is received into the C stack and copied into
 * a new bytes object; a larger one straight into a bytes object of its
 * size (a second call). Small: a Python thread's stack can be 32 KiB. */
#define STACK_BUFFER 2048

static int
arg_u64(PyObject *o, uint64_t *out)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int
arg_i64(PyObject *o, int64_t *out)
{
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = (int64_t)v;
    return 0;
}

static int
check_bound(void *fn, const char *name)
{
    if (fn == NULL) {
        PyErr_Format(PyExc_RuntimeError, "goipc._speedups: %s is not bound (goipc._lib binds it)", name);
        return -1;
    }
    return 0;
}

static int
check_nargs(Py_ssize_t nargs, Py_ssize_t want, const char *name)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "goipc._speedups.%s takes %zd arguments (%zd given)", name, want, nargs);
        return -1;
    }
    return 0;
}

/* The checks every per-message function starts with: want arguments,
 * the library's function fn (fn_name) bound, the handle (first argument)
 * and the timeout (last) read as C integers. -1 with a Python exception
 * set on failure. */
static int
call_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t want, const char *name, void *fn, const char *fn_name,
          uint64_t *h, int64_t *ms)
{
    if (check_nargs(nargs, want, name) < 0 || check_bound(fn, fn_name) < 0)
        return -1;
    if (arg_u64(args[0], h) < 0 || arg_i64(args[want - 1], ms) < 0)
        return -1;
    return 0;
}

/* bind(send, recv, call_ex, call_end, call_start, buffer_too_small): the
 * functions' addresses (ints; 0 for one the library lacks) and the status
 * code. */
static PyObject *
speedups_bind(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    void *p[5];
    int64_t too_small;
    if (check_nargs(nargs, 6, "bind") < 0)
        return NULL;
    for (int i = 0; i < 5; i++) {
        uint64_t v;
        if (arg_u64(args[i], &v) < 0)
            return NULL;
        p[i] = (void *)(uintptr_t)v;
    }
    if (arg_i64(args[5], &too_small) < 0)
        return NULL;
    lib_send = (send_fn)p[0];
    lib_recv = (recv_fn)p[1];
    lib_call_ex = (call_ex_fn)p[2];
    lib_call_end = (call_end_fn)p[3];
    lib_call_start = (call_start_fn)p[4];
    status_buffer_too_small = (int32_t)too_small;
    Py_RETURN_NONE;
}

/* send(handle, data, timeout_ms) -> status: goipc_send of data (any
 * contiguous bytes-like object). */
static PyObject *
speedups_send(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t h;
    int64_t ms;
    Py_buffer view;
    int32_t st;
    if (call_args(args, nargs, 3, "send", (void *)lib_send, "goipc_send", &h, &ms) < 0)
        return NULL;
    if (PyBytes_CheckExact(args[1])) {
        /* Immutable, and the caller's reference keeps it alive: no
         * buffer export needed. */
        const char *p = PyBytes_AS_STRING(args[1]);
        size_t n = (size_t)PyBytes_GET_SIZE(args[1]);
        CALL_LIB(ms, st = lib_send(h, p, n, ms));
        return PyLong_FromLong(st);
    }
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    CALL_LIB(ms, st = lib_send(h, view.buf, (size_t)view.len, ms));
    PyBuffer_Release(&view);
    return PyLong_FromLong(st);
}

/* One goipc_recv into buf, holding or releasing the GIL by timeout. */
static int32_t
recv_once(uint64_t h, void *buf, size_t cap, size_t *len, int64_t ms)
{
    int32_t st;
    CALL_LIB(ms, st = lib_recv(h, buf, cap, len, ms));
    return st;
}

/* One message as a new bytes object, or the status (an int) when there
 * is none; NULL with an exception (MemoryError: the message stays
 * queued). A message larger than the stack buffer is taken with a second
 * call (timeout 0: it is queued) into a bytes object of its size; if
 * another thread took it first, the status of that second call (the
 * caller's general path goes on from there). */
static PyObject *
recv_message(uint64_t h, int64_t ms)
{
    char small[STACK_BUFFER];
    size_t len = 0;
    int32_t st = recv_once(h, small, sizeof small, &len, ms);
    if (st == 0)
        return PyBytes_FromStringAndSize(small, (Py_ssize_t)len);
    while (st == status_buffer_too_small && len > sizeof small && len <= (size_t)PY_SSIZE_T_MAX) {
        size_t need = len;
        PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)need);
        if (out == NULL)
            return NULL;
        st = lib_recv(h, PyBytes_AS_STRING(out), need, &len, 0);
        if (st == 0) {
            if (len < need && _PyBytes_Resize(&out, (Py_ssize_t)len) < 0)
                return NULL;
            return out;
        }
        Py_DECREF(out);
    }
    return PyLong_FromLong(st);
}

/* recv(handle, timeout_ms) -> bytes, or the status (an int) when there
 * is no message (recv_message). */
static PyObject *
speedups_recv(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t h;
    int64_t ms;
    if (call_args(args, nargs, 2, "recv", (void *)lib_recv, "goipc_recv", &h, &ms) < 0)
        return NULL;
    return recv_message(h, ms);
}

/* recv_into(handle, buffer, timeout_ms) -> the message's size (>= 0), or
 * minus the status. buffer: any writable contiguous bytes-like object. */
static PyObject *
speedups_recv_into(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t h;
    int64_t ms;
    Py_buffer view;
    size_t len = 0;
    int32_t st;
    if (call_args(args, nargs, 3, "recv_into", (void *)lib_recv, "goipc_recv", &h, &ms) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_WRITABLE) < 0)
        return NULL;
    st = recv_once(h, view.buf, (size_t)view.len, &len, ms);
    PyBuffer_Release(&view);
    if (st != 0)
        return PyLong_FromLong(-(long)st);
    return PyLong_FromSize_t(len);
}

/* The result of a call that did not end with its reply: (status, pending
 * call id, length) as goipc_call_ex or goipc_call_end set them. */
static PyObject *
call_unfinished(int32_t st, uint64_t pending, size_t len)
{
    return Py_BuildValue("(iKn)", (int)st, (unsigned long long)pending, (Py_ssize_t)len);
}

/* call(handle, request, timeout_ms) -> the reply (bytes), or (status,
 * pending, length): goipc_call_ex with the reply in the stack buffer. A
 * larger reply is kept by the library (status BUFFER_TOO_SMALL, pending
 * set, length its size): the caller takes it with goipc_call_end. */
static PyObject *
speedups_call(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t h, pending = 0;
    int64_t ms;
    Py_buffer req;
    char small[STACK_BUFFER];
    size_t len = 0;
    int32_t st;
    if (call_args(args, nargs, 3, "call", (void *)lib_call_ex, "goipc_call_ex", &h, &ms) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &req, PyBUF_SIMPLE) < 0)
        return NULL;
    CALL_LIB(ms, st = lib_call_ex(h, req.buf, (size_t)req.len, small, sizeof small, &len, ms, &pending));
    PyBuffer_Release(&req);
    if (st == 0)
        return PyBytes_FromStringAndSize(small, (Py_ssize_t)len);
    return call_unfinished(st, pending, len);
}

/* call_into(handle, request, buffer, timeout_ms) -> the reply's size
 * (>= 0), or (status, pending, length) as call(). */
static PyObject *
speedups_call_into(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t h, pending = 0;
    int64_t ms;
    Py_buffer req, out;
    size_t len = 0;
    int32_t st;
    if (call_args(args, nargs, 4, "call_into", (void *)lib_call_ex, "goipc_call_ex", &h, &ms) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &req, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[2], &out, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&req);
        return NULL;
    }
    CALL_LIB(ms, st = lib_call_ex(h, req.buf, (size_t)req.len, out.buf, (size_t)out.len, &len, ms, &pending));
    PyBuffer_Release(&out);
    PyBuffer_Release(&req);
    if (st == 0)
        return PyLong_FromSize_t(len);
    return call_unfinished(st, pending, len);
}

/* call_start(handle, request, timeout_ms) -> the pending call's id (> 0),
 * or minus the status: goipc_call_start. */
static PyObject *
speedups_call_start(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t h, pending = 0;
    int64_t ms;
    Py_buffer req;
    int32_t st;
    if (call_args(args, nargs, 3, "call_start", (void *)lib_call_start, "goipc_call_start", &h, &ms) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &req, PyBUF_SIMPLE) < 0)
        return NULL;
    CALL_LIB(ms, st = lib_call_start(h, req.buf, (size_t)req.len, ms, &pending));
    PyBuffer_Release(&req);
    if (st != 0)
        return PyLong_FromLong(-(long)st);
    return PyLong_FromUnsignedLongLong((unsigned long long)pending);
}

/* call_end(handle, pending, timeout_ms) -> the reply (bytes), or (status,
 * pending, length): goipc_call_end into the stack buffer. A status other
 * than TIMEOUT and BUFFER_TOO_SMALL ends the call (pending 0 then). */
static PyObject *
speedups_call_end(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t h, pending;
    int64_t ms;
    char small[STACK_BUFFER];
    size_t len = 0;
    int32_t st;
    if (call_args(args, nargs, 3, "call_end", (void *)lib_call_end, "goipc_call_end", &h, &ms) < 0 ||
        arg_u64(args[1], &pending) < 0)
        return NULL;
    CALL_LIB(ms, st = lib_call_end(h, pending, small, sizeof small, &len, ms));
    if (st == 0)
        return PyBytes_FromStringAndSize(small, (Py_ssize_t)len);
    return call_unfinished(st, pending, len);
}

/*
 * goipc.aio's send, recv and call without a coroutine.
 *
 * Among many connections in one loop, a round trip is `await conn.send(m)`
 * and `await conn.recv()` (or `await conn.call(m)`): each an `async def`
 * whose common case makes one library call (recv after one pass of the
 * loop; call: a start, a pass, a look). With 1000 connections those
 * coroutines ran at 66-77% of the rate of a program making the same calls
 * inline; this code runs at that program's rate (docs/PYTHON.md,
 * "Sixteenth session"; PERFORMANCE.md section 30). aio_methods() returns
 * the three as method descriptors of AsyncConn that return an AioOp: an
 * awaitable that runs those common cases in C when it is first sent to
 * (at the await, as a coroutine would), and otherwise creates AsyncConn's
 * own coroutine for the case and delegates to it. Everything but the
 * common case, every error and every wait stays in goipc/aio.py.
 *
 * The state read and written is AsyncConn's __slots__ (_busy, _sent,
 * _closed, _h, _queued, _sx) and _LoopShared's (parked, passing, passed),
 * exactly as aio.py's recv and send use them, read at their offsets (see
 * below).
 *
 * An AioOp passes for a coroutine (send, throw, close, __await__; aio.py
 * registers it as a collections.abc.Coroutine), so create_task(),
 * wait_for() and gather() take it. Cancelled during recv's pass (throw),
 * closed or dropped (close, finalizer), it undoes the pass as aio.py's
 * recv does (nothing was taken), and a call's pass as aio.py's call does
 * (the call is cancelled: its reply is dropped).
 */

enum { OP_SEND, OP_RECV, OP_CALL };
enum { OP_START, OP_PASSING, OP_DELEGATING, OP_DONE };
/* aio.py's direction indexes (_RECV, _SEND). */
enum { DIR_RECV = 0, DIR_SEND = 1 };

typedef struct {
    PyObject_HEAD
    PyObject *conn; /* the AsyncConn */
    PyObject *data; /* send: the message; recv: NULL */
    PyObject *sub;  /* OP_DELEGATING: AsyncConn's coroutine doing the rest */
    uint64_t pending; /* OP_CALL while OP_PASSING: the call started */
    int kind;
    int state;
} AioOp;

static PyTypeObject AioOp_Type;

/*
 * The state is read and written in the instances' __slots__ directly, at
 * the offsets of their member descriptors, which aio_methods() looks up
 * once in AsyncConn and _LoopShared: among 1000 connections a lookup by
 * name (type lookup, descriptor, member read) cost the loop's thread
 * more than the coroutine it replaces. An unset slot (NULL) raises
 * AttributeError, as the name would.
 */
static Py_ssize_t off_busy, off_sent, off_closed, off_h, off_queued, off_shared, off_sx, off_parked_futs,
    off_callers; /* AsyncConn */
static Py_ssize_t off_parked, off_passing, off_passed;                            /* _LoopShared */
static PyTypeObject *shared_type, *conn_type; /* the classes they are of */
/* goipc.conn's module dict: its _forked flag. */
static PyObject *aio_conn_dict;
static PyObject *s_forked, *s_pass_turn, *s_send_co, *s_send_after, *s_recv_co, *s_recv_after_pass, *s_throw,
    *s_close, *s_call_co, *s_call_general, *s_call_after_look, *s_call_interrupted, *s_call_ended;
/* GOIPC_ERR_TIMEOUT, from goipc.conn's _TIMEOUT (aio_methods). */
static long status_timeout = -1;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* obj's slot at off (borrowed), or NULL with AttributeError. */
static PyObject *
slot_get(PyObject *obj, Py_ssize_t off)
{
    PyObject *v = SLOT(obj, off);
    if (v == NULL)
        PyErr_Format(PyExc_AttributeError, "goipc._speedups: a slot of %R is not set", (PyObject *)Py_TYPE(obj));
    return v;
}

/* Stores v (a new reference is taken) in obj's slot at off. */
static void
slot_set(PyObject *obj, Py_ssize_t off, PyObject *v)
{
    PyObject *old = SLOT(obj, off);
    Py_INCREF(v);
    SLOT(obj, off) = v;
    Py_XDECREF(old);
}

/* 1 if the slot holds a true value, 0 if false, -1 with an exception. */
static int
slot_true(PyObject *obj, Py_ssize_t off)
{
    PyObject *v = slot_get(obj, off);
    if (v == NULL)
        return -1;
    if (v == Py_True)
        return 1;
    if (v == Py_False)
        return 0;
    return PyObject_IsTrue(v);
}

/* slot += delta, for an int counter. */
static int
slot_add(PyObject *obj, Py_ssize_t off, long delta)
{
    PyObject *v = slot_get(obj, off), *n;
    long x;
    if (v == NULL)
        return -1;
    x = PyLong_AsLong(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    if ((n = PyLong_FromLong(x + delta)) == NULL)
        return -1;
    slot_set(obj, off, n);
    Py_DECREF(n);
    return 0;
}

/* conn._shared, checked to be a _LoopShared (borrowed), or NULL. */
static PyObject *
conn_shared(PyObject *conn)
{
    PyObject *sh = slot_get(conn, off_shared);
    if (sh != NULL && !PyObject_TypeCheck(sh, shared_type)) {
        PyErr_SetString(PyExc_TypeError, "goipc._speedups: AsyncConn._shared is not a _LoopShared");
        return NULL;
    }
    return sh;
}

/* conn._busy (a list, borrowed), or NULL. */
static PyObject *
conn_busy(PyObject *conn)
{
    PyObject *busy = slot_get(conn, off_busy);
    if (busy != NULL && (!PyList_CheckExact(busy) || PyList_GET_SIZE(busy) < 2)) {
        PyErr_SetString(PyExc_TypeError, "goipc._speedups: AsyncConn._busy is not a list of two");
        return NULL;
    }
    return busy;
}

/* This module, once initialized (the process keeps it). */
static PyObject *speedups_self;

/* 1 if conn's calls go through this module (conn._sx is it), 0 if not
 * (None without the extension, or a stand-in a test put there: then
 * aio.py's coroutines make the calls, through it), -1. */
static int
conn_uses_speedups(PyObject *conn)
{
    PyObject *sx = slot_get(conn, off_sx);
    return sx == NULL ? -1 : sx == speedups_self;
}

/* conn._h as a C integer. Read modulo 2**64, which skips the range check
 * that cost 2% of the loop's thread (goipc's handles use the top bits):
 * the slot holds what Conn.handle returned, and the library validates
 * every handle it is given anyway. */
static int
conn_handle(PyObject *conn, uint64_t *h)
{
    PyObject *v = slot_get(conn, off_h);
    unsigned long long x;
    if (v == NULL)
        return -1;
    x = PyLong_AsUnsignedLongLongMask(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *h = (uint64_t)x;
    return 0;
}

/* goipc.conn's fork flag: 1 in a child of a fork (every call then goes
 * through aio.py, which raises the fork error), 0, or -1. */
static int
aio_forked(void)
{
    PyObject *v = PyDict_GetItemWithError(aio_conn_dict, s_forked);
    if (v == NULL)
        return PyErr_Occurred() ? -1 : 0;
    return PyObject_IsTrue(v);
}

/* DIR_RECV as a Python int (a small int: never freed). */
static PyObject *
aio_dir_recv(void)
{
    static PyObject *v;
    if (v == NULL)
        v = PyLong_FromLong(DIR_RECV);
    return v;
}

/* conn.name(arg) for its effect, keeping a pending exception (the one
 * being raised) unless the call itself fails (then its exception). */
static int
call_for_effect(PyObject *conn, PyObject *name, PyObject *arg)
{
    PyObject *exc_type, *exc_value, *exc_tb, *r;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    r = arg == NULL ? NULL : PyObject_CallMethodOneArg(conn, name, arg);
    if (r == NULL) {
        Py_XDECREF(exc_type);
        Py_XDECREF(exc_value);
        Py_XDECREF(exc_tb);
        return -1;
    }
    Py_DECREF(r);
    PyErr_Restore(exc_type, exc_value, exc_tb);
    return 0;
}

/* conn._pass_turn(_RECV): the receive direction handed on. */
static int
recv_pass_turn(PyObject *conn)
{
    return call_for_effect(conn, s_pass_turn, aio_dir_recv());
}

/* conn._call_interrupted(pending): the call started is cancelled (its
 * reply dropped when it comes), as aio.py's call does when its pass is
 * interrupted. */
static int
call_interrupted(AioOp *op)
{
    PyObject *p = PyLong_FromUnsignedLongLong((unsigned long long)op->pending);
    int r = call_for_effect(op->conn, s_call_interrupted, p);
    Py_XDECREF(p);
    if (r == 0)
        op->pending = 0;
    return r;
}

/* Undoes a pass: _shared.passing -= 1, then for recv conn._pass_turn(_RECV)
 * and for call conn._call_interrupted(pending), as aio.py does when the
 * pass is interrupted. */
static int
op_undo_pass(AioOp *op)
{
    PyObject *exc_type, *exc_value, *exc_tb, *sh;
    int ok = 0;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    if ((sh = conn_shared(op->conn)) == NULL || slot_add(sh, off_passing, -1) < 0) {
        PyErr_WriteUnraisable(op->conn);
        ok = -1;
    }
    PyErr_Restore(exc_type, exc_value, exc_tb);
    if ((op->kind == OP_CALL ? call_interrupted(op) : recv_pass_turn(op->conn)) < 0)
        ok = -1;
    return ok;
}

/* The op is done: it lets go of what it held (the connection, the
 * message, the coroutine it delegated to), as a finished coroutine lets
 * go of its frame. */
static void
op_finish(AioOp *op)
{
    op->state = OP_DONE;
    Py_CLEAR(op->sub);
    Py_CLEAR(op->data);
    Py_CLEAR(op->conn);
}

/* Starts delegating to sub (a coroutine, stolen): sends it arg. */
static PySendResult
op_delegate(AioOp *op, PyObject *sub, PyObject *arg, PyObject **result)
{
    PySendResult r;
    if (sub == NULL) {
        op_finish(op);
        return PYGEN_ERROR;
    }
    op->sub = sub;
    op->state = OP_DELEGATING;
    r = PyIter_Send(sub, arg, result);
    if (r != PYGEN_NEXT)
        op_finish(op);
    return r;
}

/* A finished op's value (stolen), or NULL for the exception set. */
static PySendResult
op_return(AioOp *op, PyObject *value, PyObject **result)
{
    op_finish(op);
    *result = value;
    return value == NULL ? PYGEN_ERROR : PYGEN_RETURN;
}

/* The gate of send's and call's common cases: 1 when conn's calls go
 * through this module, no fork happened and nobody waits to send on it,
 * 0 when aio.py's coroutine must run instead, -1 with an exception. */
static int
send_side_free(PyObject *conn)
{
    PyObject *busy;
    int uses, forked;
    if ((uses = conn_uses_speedups(conn)) < 0 || (forked = aio_forked()) < 0 || (busy = conn_busy(conn)) == NULL)
        return -1;
    return uses && !forked && PyList_GET_ITEM(busy, DIR_SEND) == Py_False;
}

/* 1 if other waiters of the loop are parked or passing (then the answer
 * to what this connection just sent cannot be there yet, and a pass of
 * the loop runs their work meanwhile), 0 if not (or not ints, as aio.py
 * makes them: its coroutine decides), -1 with an exception. */
static int
loop_has_waiters(PyObject *sh)
{
    PyObject *parked = slot_get(sh, off_parked), *passing;
    if (parked == NULL || (passing = slot_get(sh, off_passing)) == NULL)
        return -1;
    if (!PyLong_CheckExact(parked) || !PyLong_CheckExact(passing))
        return 0;
    return PyObject_IsTrue(parked) == 1 || PyObject_IsTrue(passing) == 1;
}

/* Lets the loop pass once: the op yields None (a bare yield: the task is
 * scheduled again at once) and resumes in op_after_pass or
 * op_after_call_pass. The caller has counted it in _shared.passing. */
static PySendResult
op_pass(AioOp *op, PyObject **result)
{
    op->state = OP_PASSING;
    Py_INCREF(Py_None);
    *result = Py_None;
    return PYGEN_NEXT;
}

/* Delegates to conn.name(a, b): aio.py's coroutine for what C does not
 * do. a is a status or pending id as a C integer. */
static PySendResult
op_delegate_to(AioOp *op, PyObject *name, long long a, PyObject *b, PyObject **result)
{
    PyObject *a_obj = PyLong_FromLongLong(a), *sub = NULL;
    if (a_obj != NULL)
        sub = PyObject_CallMethodObjArgs(op->conn, name, a_obj, b, NULL);
    Py_XDECREF(a_obj);
    return op_delegate(op, sub, Py_None, result);
}

/* send's common case: bytes, nobody waiting to send on this connection,
 * and the ring has room: one library call. */
static PySendResult
op_start_send(AioOp *op, PyObject **result)
{
    int free;
    uint64_t h;
    int32_t st;
    if (!PyBytes_CheckExact(op->data) || lib_send == NULL)
        goto general;
    if ((free = send_side_free(op->conn)) < 0 || (free && conn_handle(op->conn, &h) < 0))
        return op_return(op, NULL, result);
    if (!free)
        goto general;
    st = lib_send(h, PyBytes_AS_STRING(op->data), (size_t)PyBytes_GET_SIZE(op->data), 0);
    if (st == 0) {
        slot_set(op->conn, off_sent, Py_True);
        Py_INCREF(Py_None);
        return op_return(op, Py_None, result);
    }
    /* The ring is full (its wait) or an error (raised): aio.py. */
    return op_delegate_to(op, s_send_after, st, op->data, result);
general:
    return op_delegate(op, PyObject_CallMethodOneArg(op->conn, s_send_co, op->data), Py_None, result);
}

/* recv's common case among many connections: this connection sent since
 * its last receive and other waiters of the loop are parked or passing,
 * so the reply cannot be there yet: take the direction, let the loop
 * pass once (yield None), then look (op_after_pass). */
static PySendResult
op_start_recv(AioOp *op, PyObject **result)
{
    PyObject *busy, *sh;
    int sent, uses, waiters;
    if (lib_recv == NULL)
        goto general;
    if ((uses = conn_uses_speedups(op->conn)) < 0)
        return op_return(op, NULL, result);
    if (!uses)
        goto general;
    if ((busy = conn_busy(op->conn)) == NULL || (sent = slot_true(op->conn, off_sent)) < 0 ||
        (sh = conn_shared(op->conn)) == NULL || (waiters = loop_has_waiters(sh)) < 0)
        return op_return(op, NULL, result);
    if (PyList_GET_ITEM(busy, DIR_RECV) != Py_False || !sent || !waiters)
        goto general; /* without waiters aio.py's recv clears _sent and looks at once */
    if (slot_add(sh, off_passing, 1) < 0)
        return op_return(op, NULL, result);
    slot_set(op->conn, off_sent, Py_False);
    Py_INCREF(Py_True);
    PyList_SetItem(busy, DIR_RECV, Py_True); /* steals; exact list, index checked */
    return op_pass(op, result);
general:
    return op_delegate(op, PyObject_CallMethodNoArgs(op->conn, s_recv_co), Py_None, result);
}

/* After recv's pass: the look, and the direction handed on. */
static PySendResult
op_after_pass(AioOp *op, PyObject **result)
{
    PyObject *sh, *m, *queued, *busy;
    int closed, forked, uses;
    uint64_t h;

    if ((sh = conn_shared(op->conn)) == NULL || slot_add(sh, off_passing, -1) < 0) {
        recv_pass_turn(op->conn);
        return op_return(op, NULL, result);
    }
    if ((closed = slot_true(op->conn, off_closed)) < 0 || (forked = aio_forked()) < 0 ||
        (uses = conn_uses_speedups(op->conn)) < 0 || conn_handle(op->conn, &h) < 0) {
        recv_pass_turn(op->conn);
        return op_return(op, NULL, result);
    }
    if (closed || forked || !uses) {
        /* Not looked: aio.py raises the closed or fork error, or looks
         * through conn._sx. */
        return op_delegate(op, PyObject_CallMethodOneArg(op->conn, s_recv_after_pass, Py_None), Py_None, result);
    }
    if ((m = recv_message(h, 0)) == NULL) {
        /* MemoryError, the message still queued, as aio.py's would. */
        recv_pass_turn(op->conn);
        return op_return(op, NULL, result);
    }
    if (!PyBytes_CheckExact(m)) {
        /* Nothing yet, a message taken by another thread meanwhile, or an
         * error: aio.py goes on from the look's status. */
        PySendResult r =
            op_delegate(op, PyObject_CallMethodOneArg(op->conn, s_recv_after_pass, m), Py_None, result);
        Py_DECREF(m);
        return r;
    }
    /* Taken: from here on m is returned whatever fails. */
    if (slot_add(sh, off_passed, 1) < 0)
        PyErr_Clear(); /* a counter for tests and diagnostics only */
    queued = slot_get(op->conn, off_queued);
    busy = conn_busy(op->conn);
    if (queued != NULL && busy != NULL && PyList_CheckExact(queued) && PyList_GET_SIZE(queued) > DIR_RECV) {
        Py_ssize_t n = PyObject_Length(PyList_GET_ITEM(queued, DIR_RECV));
        if (n == 0) {
            Py_INCREF(Py_False);
            PyList_SetItem(busy, DIR_RECV, Py_False);
            return op_return(op, m, result);
        }
    }
    /* Someone is queued behind (or an error above): aio.py hands the
     * turn on. */
    PyErr_Clear();
    if (recv_pass_turn(op->conn) < 0)
        PyErr_WriteUnraisable(op->conn);
    return op_return(op, m, result);
}

/* 1 if loop waiters of conn other than this call may need waking when a
 * call ends (a head parked on the descriptor, or callers waiting for
 * replies), 0 if none, -1. */
static int
call_end_wakes(PyObject *conn)
{
    PyObject *parked = slot_get(conn, off_parked_futs), *callers;
    if (parked == NULL || (callers = slot_get(conn, off_callers)) == NULL)
        return -1;
    if (!PyList_CheckExact(parked) || PyList_GET_SIZE(parked) < 2 || !PyList_CheckExact(callers))
        return 1; /* not as aio.py makes them: let it decide */
    return PyList_GET_ITEM(parked, 0) != Py_None || PyList_GET_ITEM(parked, 1) != Py_None ||
           PyList_GET_SIZE(callers) > 0;
}

/* call's common case among many connections: bytes, nobody waiting to
 * send on this connection, other waiters of the loop parked or passing:
 * start the call (goipc_call_start), let the loop pass once, then look
 * for the reply (op_after_call_pass). */
static PySendResult
op_start_call(AioOp *op, PyObject **result)
{
    PyObject *sh;
    int free, waiters;
    uint64_t h, pending = 0;
    int32_t st;
    if (lib_call_start == NULL || lib_call_end == NULL || !PyBytes_CheckExact(op->data))
        goto general;
    if ((free = send_side_free(op->conn)) < 0 || (sh = conn_shared(op->conn)) == NULL ||
        (waiters = loop_has_waiters(sh)) < 0)
        return op_return(op, NULL, result);
    if (!free || !waiters)
        goto general;
    if (conn_handle(op->conn, &h) < 0)
        return op_return(op, NULL, result);
    st = lib_call_start(h, PyBytes_AS_STRING(op->data), (size_t)PyBytes_GET_SIZE(op->data), 0, &pending);
    if (st == 0) {
        op->pending = pending;
        if (slot_add(sh, off_passing, 1) < 0) {
            call_interrupted(op);
            return op_return(op, NULL, result);
        }
        return op_pass(op, result);
    }
    if (st == status_timeout) /* no free call slot, or the ring is full */
        return op_delegate(op, PyObject_CallMethodObjArgs(op->conn, s_call_general, op->data, Py_True, NULL),
                           Py_None, result);
    {
        /* An error: raised by aio.py (no call is pending). */
        PyObject *st_obj = PyLong_FromLong(st);
        PySendResult r;
        if (st_obj == NULL)
            return op_return(op, NULL, result);
        r = op_delegate_to(op, s_call_after_look, 0, st_obj, result);
        Py_DECREF(st_obj);
        return r;
    }
general:
    return op_delegate(op, PyObject_CallMethodOneArg(op->conn, s_call_co, op->data), Py_None, result);
}

/* After call's pass: one look for the reply; otherwise aio.py's wait. */
static PySendResult
op_after_call_pass(AioOp *op, PyObject **result)
{
    PyObject *sh, *m, *p, *st_obj, *sub;
    int closed, forked, uses, wakes;
    uint64_t h;
    char small[STACK_BUFFER];
    size_t len = 0;
    int32_t st;

    if ((sh = conn_shared(op->conn)) == NULL || slot_add(sh, off_passing, -1) < 0 ||
        (closed = slot_true(op->conn, off_closed)) < 0 || (forked = aio_forked()) < 0 ||
        (uses = conn_uses_speedups(op->conn)) < 0 || conn_handle(op->conn, &h) < 0) {
        call_interrupted(op);
        return op_return(op, NULL, result);
    }
    if (closed || forked || !uses) {
        /* Closed: aio.py raises ClosedError. Forked, or a stand-in for
         * this module: its general wait (which raises the fork error, or
         * looks through the stand-in). The call is cancelled on the way
         * out either way. */
        st_obj = closed ? Py_None : PyLong_FromLong(status_timeout);
        goto rest;
    }
    st = lib_call_end(h, op->pending, small, sizeof small, &len, 0);
    if (st == 0) {
        PyObject *exc_type, *exc_value, *exc_tb;
        op->pending = 0; /* ended with its reply */
        m = PyBytes_FromStringAndSize(small, (Py_ssize_t)len);
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb); /* m NULL: MemoryError, raised below */
        if (slot_add(sh, off_passed, 1) < 0)
            PyErr_Clear(); /* a counter for tests and diagnostics only */
        if ((wakes = call_end_wakes(op->conn)) != 0) {
            /* The call's slot is free: a start waiting for one, or
             * waiters whose readiness the look reset, look again. */
            PyObject *r = PyObject_CallMethodNoArgs(op->conn, s_call_ended);
            if (r == NULL)
                PyErr_WriteUnraisable(op->conn);
            Py_XDECREF(r);
        }
        PyErr_Restore(exc_type, exc_value, exc_tb);
        return op_return(op, m, result);
    }
    if ((st_obj = PyLong_FromLong(st)) == NULL) {
        call_interrupted(op);
        return op_return(op, NULL, result);
    }
rest:
    if (st_obj == NULL || (p = PyLong_FromUnsignedLongLong((unsigned long long)op->pending)) == NULL) {
        if (st_obj != Py_None)
            Py_XDECREF(st_obj);
        call_interrupted(op);
        return op_return(op, NULL, result);
    }
    op->pending = 0; /* aio.py's _call_after_look owns the call now */
    sub = PyObject_CallMethodObjArgs(op->conn, s_call_after_look, p, st_obj, NULL);
    Py_DECREF(p);
    if (st_obj != Py_None)
        Py_DECREF(st_obj);
    return op_delegate(op, sub, Py_None, result);
}

static PySendResult
aioop_am_send(PyObject *self, PyObject *arg, PyObject **result)
{
    AioOp *op = (AioOp *)self;
    PySendResult r;
    *result = NULL;
    switch (op->state) {
    case OP_START:
        if (arg != Py_None) {
            PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
            return PYGEN_ERROR;
        }
        if (op->kind == OP_CALL)
            return op_start_call(op, result);
        return op->kind == OP_SEND ? op_start_send(op, result) : op_start_recv(op, result);
    case OP_PASSING:
        return op->kind == OP_CALL ? op_after_call_pass(op, result) : op_after_pass(op, result);
    case OP_DELEGATING:
        r = PyIter_Send(op->sub, arg, result);
        if (r != PYGEN_NEXT)
            op_finish(op);
        return r;
    default:
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        return PYGEN_ERROR;
    }
}

/* Raises StopIteration(value) (an instance: a tuple value stays one). */
static void
set_stop_iteration(PyObject *value)
{
    PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (e != NULL) {
        PyErr_SetObject(PyExc_StopIteration, e);
        Py_DECREF(e);
    }
}

static PyObject *
aioop_iternext(PyObject *self)
{
    PyObject *result;
    PySendResult r = aioop_am_send(self, Py_None, &result);
    if (r == PYGEN_NEXT)
        return result;
    if (r == PYGEN_RETURN) {
        if (result != Py_None)
            set_stop_iteration(result);
        Py_DECREF(result);
    }
    return NULL;
}

static PyObject *
aioop_send(PyObject *self, PyObject *arg)
{
    PyObject *result;
    PySendResult r = aioop_am_send(self, arg, &result);
    if (r == PYGEN_NEXT)
        return result;
    if (r == PYGEN_RETURN) {
        set_stop_iteration(result);
        Py_DECREF(result);
    }
    return NULL;
}

/* throw(exc) or throw(type[, value[, traceback]]), as a coroutine's. */
static PyObject *
aioop_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    AioOp *op = (AioOp *)self;
    PyObject *typ, *val = NULL, *tb = NULL;
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return NULL;
    }
    typ = args[0];
    if (nargs > 1)
        val = args[1];
    if (nargs > 2)
        tb = args[2];
    if (op->state == OP_DELEGATING) {
        PyObject *r = PyObject_VectorcallMethod(s_throw, (PyObject *[]){op->sub, typ, val, tb}, (size_t)nargs + 1, NULL);
        if (r == NULL)
            op_finish(op);
        return r;
    }
    /* Raise it here, as a coroutine raises what is thrown at its yield. */
    if (PyExceptionInstance_Check(typ)) {
        if (val != NULL && val != Py_None) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            return NULL;
        }
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    } else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val != NULL ? val : Py_None);
    } else {
        PyErr_Format(PyExc_TypeError, "exceptions must be classes or instances deriving from BaseException, not %s",
                     Py_TYPE(typ)->tp_name);
        return NULL;
    }
    (void)tb;
    if (op->state == OP_PASSING)
        op_undo_pass(op);
    op_finish(op);
    return NULL;
}

static PyObject *
aioop_close(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    AioOp *op = (AioOp *)self;
    int ok = 0;
    if (op->state == OP_DELEGATING) {
        PyObject *sub = op->sub, *r;
        op->sub = NULL;
        op_finish(op);
        r = PyObject_CallMethodNoArgs(sub, s_close);
        Py_DECREF(sub);
        return r;
    }
    if (op->state == OP_PASSING) {
        op->state = OP_DONE; /* whatever the undo does, never again */
        ok = op_undo_pass(op);
    }
    op_finish(op);
    if (ok < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
aioop_await(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

/* Dropped while passing (never resumed, never closed): undo the pass, as
 * a coroutine's finalizer closes it. */
static void
aioop_finalize(PyObject *self)
{
    AioOp *op = (AioOp *)self;
    PyObject *exc_type, *exc_value, *exc_tb, *r;
    if (op->state != OP_PASSING && op->state != OP_DELEGATING)
        return;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    r = aioop_close(self, NULL);
    if (r == NULL)
        PyErr_WriteUnraisable(self);
    Py_XDECREF(r);
    PyErr_Restore(exc_type, exc_value, exc_tb);
}

static int
aioop_traverse(PyObject *self, visitproc visit, void *arg)
{
    AioOp *op = (AioOp *)self;
    Py_VISIT(op->conn);
    Py_VISIT(op->data);
    Py_VISIT(op->sub);
    return 0;
}

static int
aioop_clear(PyObject *self)
{
    AioOp *op = (AioOp *)self;
    Py_CLEAR(op->conn);
    Py_CLEAR(op->data);
    Py_CLEAR(op->sub);
    return 0;
}

static void
aioop_dealloc(PyObject *self)
{
    if (PyObject_CallFinalizerFromDealloc(self) < 0)
        return; /* resurrected */
    PyObject_GC_UnTrack(self);
    aioop_clear(self);
    PyObject_GC_Del(self);
}

static PyObject *
aioop_repr(PyObject *self)
{
    AioOp *op = (AioOp *)self;
    static const char *names[] = {"send", "recv", "call"};
    if (op->conn == NULL)
        return PyUnicode_FromFormat("<goipc.aio %s (done)>", names[op->kind]);
    return PyUnicode_FromFormat("<goipc.aio %s of %R>", names[op->kind], op->conn);
}

/* __name__ and __qualname__, as a coroutine has (asyncio's task reprs
 * and debug messages show them). */
static PyObject *
aioop_get_name(PyObject *self, void *qualified)
{
    static const char *names[] = {"send", "recv", "call"};
    return PyUnicode_FromFormat("%s%s", qualified ? "AsyncConn." : "", names[((AioOp *)self)->kind]);
}

static PyGetSetDef aioop_getset[] = {
    {"__name__", aioop_get_name, NULL, "the method's name", NULL},
    {"__qualname__", aioop_get_name, NULL, "AsyncConn.<the method's name>", (void *)1},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyAsyncMethods aioop_as_async = {
    .am_await = aioop_await,
    .am_send = aioop_am_send,
};

static PyMethodDef aioop_methods[] = {
    {"send", aioop_send, METH_O, "send(value): as a coroutine's"},
    {"throw", (PyCFunction)(void (*)(void))aioop_throw, METH_FASTCALL, "throw(exc): as a coroutine's"},
    {"close", aioop_close, METH_NOARGS, "close(): as a coroutine's (undoes a recv's pass)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AioOp_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "goipc._speedups.AioOp",
    .tp_basicsize = sizeof(AioOp),
    .tp_dealloc = aioop_dealloc,
    .tp_repr = aioop_repr,
    .tp_as_async = &aioop_as_async,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "goipc.aio's send or recv in progress: an awaitable that passes for a coroutine (see _speedups.c).",
    .tp_traverse = aioop_traverse,
    .tp_clear = aioop_clear,
    .tp_iter = aioop_await,
    .tp_iternext = aioop_iternext,
    .tp_methods = aioop_methods,
    .tp_getset = aioop_getset,
    .tp_finalize = aioop_finalize,
};

static PyObject *
new_op(PyObject *conn, PyObject *data, int kind)
{
    AioOp *op = PyObject_GC_New(AioOp, &AioOp_Type);
    if (op == NULL)
        return NULL;
    Py_INCREF(conn);
    op->conn = conn;
    Py_XINCREF(data);
    op->data = data;
    op->sub = NULL;
    op->pending = 0;
    op->kind = kind;
    op->state = OP_START;
    PyObject_GC_Track(op);
    return (PyObject *)op;
}

/* AsyncConn.send(data) and AsyncConn.recv(), as method descriptors. */
static PyObject *
aio_send_method(PyObject *self, PyObject *data)
{
    return new_op(self, data, OP_SEND);
}

static PyObject *
aio_recv_method(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return new_op(self, NULL, OP_RECV);
}

static PyObject *
aio_call_method(PyObject *self, PyObject *data)
{
    return new_op(self, data, OP_CALL);
}

static PyMethodDef aio_call_def = {"call", aio_call_method, METH_O,
                                   "call(data): awaitable -> bytes; as goipc.aio.AsyncConn._call_co (goipc._speedups)"};
static PyMethodDef aio_send_def = {"send", aio_send_method, METH_O,
                                   "send(data): awaitable; as goipc.aio.AsyncConn._send_co (goipc._speedups)"};
static PyMethodDef aio_recv_def = {"recv", aio_recv_method, METH_NOARGS,
                                   "recv(): awaitable -> bytes; as goipc.aio.AsyncConn._recv_co (goipc._speedups)"};

/* The offset of cls's __slots__ member name (its member descriptor), or
 * -1 with an exception. */
static Py_ssize_t
slot_offset(PyObject *cls, const char *name)
{
    PyObject *d = PyObject_GetAttrString(cls, name);
    Py_ssize_t off = -1;
    if (d == NULL)
        return -1;
    if (Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX)
        off = ((PyMemberDescrObject *)d)->d_member->offset;
    else
        PyErr_Format(PyExc_TypeError, "goipc._speedups: %R.%s is not a __slots__ member", cls, name);
    Py_DECREF(d);
    return off;
}

/* aio_methods(AsyncConn, _LoopShared, goipc.conn) -> (send, recv, call,
 * AioOp): the three method descriptors for the class, and the awaitable's
 * type (aio.py registers it as a Coroutine). */
static PyObject *
speedups_aio_methods(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *send, *recv, *call, *out, *conn_cls, *shared_cls, *dict;
    if (check_nargs(nargs, 3, "aio_methods") < 0)
        return NULL;
    conn_cls = args[0];
    shared_cls = args[1];
    if (!PyType_Check(conn_cls) || !PyType_Check(shared_cls) || !PyModule_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "goipc._speedups.aio_methods(AsyncConn, _LoopShared, goipc.conn)");
        return NULL;
    }
    /* Into locals first: a failed call leaves the offsets in use as they
     * were. */
    Py_ssize_t busy_, sent_, closed_, h_, queued_, shared_, sx_, parked_futs_, callers_, parked_, passing_, passed_;
    PyObject *timeout_obj;
    long timeout_;
    if ((busy_ = slot_offset(conn_cls, "_busy")) < 0 || (sent_ = slot_offset(conn_cls, "_sent")) < 0 ||
        (closed_ = slot_offset(conn_cls, "_closed")) < 0 || (h_ = slot_offset(conn_cls, "_h")) < 0 ||
        (queued_ = slot_offset(conn_cls, "_queued")) < 0 || (shared_ = slot_offset(conn_cls, "_shared")) < 0 ||
        (sx_ = slot_offset(conn_cls, "_sx")) < 0 || (parked_futs_ = slot_offset(conn_cls, "_parked")) < 0 ||
        (callers_ = slot_offset(conn_cls, "_callers")) < 0 || (parked_ = slot_offset(shared_cls, "parked")) < 0 ||
        (passing_ = slot_offset(shared_cls, "passing")) < 0 || (passed_ = slot_offset(shared_cls, "passed")) < 0)
        return NULL;
    /* The offsets are the process's: one pair of classes only. */
    if ((conn_type != NULL && conn_type != (PyTypeObject *)conn_cls) ||
        (shared_type != NULL && shared_type != (PyTypeObject *)shared_cls)) {
        PyErr_SetString(PyExc_TypeError, "goipc._speedups.aio_methods: already made for other classes");
        return NULL;
    }
    if (s_forked == NULL) {
#define INTERN(var, text)                                                                                              \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                                                              \
        return NULL;
        INTERN(s_forked, "_forked") INTERN(s_pass_turn, "_pass_turn") INTERN(s_send_co, "_send_co")
        INTERN(s_send_after, "_send_after") INTERN(s_recv_co, "_recv_co") INTERN(s_recv_after_pass, "_recv_after_pass")
        INTERN(s_throw, "throw") INTERN(s_close, "close") INTERN(s_call_co, "_call_co")
        INTERN(s_call_general, "_call_general") INTERN(s_call_after_look, "_call_after_look")
        INTERN(s_call_interrupted, "_call_interrupted") INTERN(s_call_ended, "_call_ended")
#undef INTERN
    }
    if ((dict = PyModule_GetDict(args[2])) == NULL)
        return NULL;
    if ((timeout_obj = PyDict_GetItemString(dict, "_TIMEOUT")) == NULL || !PyLong_Check(timeout_obj)) {
        PyErr_SetString(PyExc_TypeError, "goipc._speedups.aio_methods: goipc.conn has no _TIMEOUT status");
        return NULL;
    }
    if ((timeout_ = PyLong_AsLong(timeout_obj)) == -1 && PyErr_Occurred())
        return NULL;
    send = PyDescr_NewMethod((PyTypeObject *)conn_cls, &aio_send_def);
    recv = PyDescr_NewMethod((PyTypeObject *)conn_cls, &aio_recv_def);
    call = PyDescr_NewMethod((PyTypeObject *)conn_cls, &aio_call_def);
    if (send == NULL || recv == NULL || call == NULL) {
        Py_XDECREF(send);
        Py_XDECREF(recv);
        Py_XDECREF(call);
        return NULL;
    }
    status_timeout = timeout_;
    off_parked_futs = parked_futs_, off_callers = callers_;
    off_busy = busy_, off_sent = sent_, off_closed = closed_, off_h = h_, off_queued = queued_;
    off_shared = shared_, off_sx = sx_, off_parked = parked_, off_passing = passing_, off_passed = passed_;
    Py_INCREF(dict);
    Py_XSETREF(aio_conn_dict, dict);
    Py_INCREF(shared_cls);
    Py_XSETREF(shared_type, (PyTypeObject *)shared_cls);
    Py_INCREF(conn_cls);
    Py_XSETREF(conn_type, (PyTypeObject *)conn_cls);
    out = PyTuple_Pack(4, send, recv, call, (PyObject *)&AioOp_Type);
    Py_DECREF(send);
    Py_DECREF(recv);
    Py_DECREF(call);
    return out;
}

#define FASTCALL(f) ((PyCFunction)(void (*)(void))(f)), METH_FASTCALL

static PyMethodDef speedups_methods[] = {
    {"bind", FASTCALL(speedups_bind),
     "bind(send, recv, call_ex, call_end, call_start, buffer_too_small): the library's functions"},
    {"send", FASTCALL(speedups_send), "send(handle, data, timeout_ms) -> status"},
    {"recv", FASTCALL(speedups_recv), "recv(handle, timeout_ms) -> bytes, or the status"},
    {"recv_into", FASTCALL(speedups_recv_into), "recv_into(handle, buffer, timeout_ms) -> size, or -status"},
    {"call", FASTCALL(speedups_call), "call(handle, request, timeout_ms) -> bytes, or (status, pending, length)"},
    {"call_into", FASTCALL(speedups_call_into),
     "call_into(handle, request, buffer, timeout_ms) -> size, or (status, pending, length)"},
    {"call_start", FASTCALL(speedups_call_start), "call_start(handle, request, timeout_ms) -> pending id, or -status"},
    {"call_end", FASTCALL(speedups_call_end), "call_end(handle, pending, timeout_ms) -> bytes, or (status, pending, length)"},
    {"aio_methods", FASTCALL(speedups_aio_methods),
     "aio_methods(AsyncConn, _LoopShared, goipc.conn) -> (send, recv, call, AioOp): goipc.aio's send, recv and call without a coroutine"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "goipc._speedups",
    "The binding's per-message calls without ctypes (optional; see _speedups.c).",
    -1,
    speedups_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

/* What goipc._lib checks before it binds: a module of another version of
 * the binding (a stale build) is not used. 3: aio_methods, which reads
 * goipc.aio's slots by the names of this version. */
#define SPEEDUPS_VERSION 3

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *m;
    if (PyType_Ready(&AioOp_Type) < 0)
        return NULL;
    m = PyModule_Create(&speedups_module);
    speedups_self = m;
    if (m != NULL && PyModule_AddIntConstant(m, "VERSION", SPEEDUPS_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
