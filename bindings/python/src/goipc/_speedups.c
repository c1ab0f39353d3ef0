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
 * paths, when the module is there.
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

/* recv(handle, timeout_ms) -> bytes, or the status (an int) when there
 * is no message. A message larger than the stack buffer is taken with a
 * second call (timeout 0: it is queued) into a bytes object of its size;
 * if another thread took it first, the status of that second call (the
 * caller's general path goes on from there). */
static PyObject *
speedups_recv(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t h;
    int64_t ms;
    char small[STACK_BUFFER];
    size_t len = 0;
    int32_t st;
    if (call_args(args, nargs, 2, "recv", (void *)lib_recv, "goipc_recv", &h, &ms) < 0)
        return NULL;
    st = recv_once(h, small, sizeof small, &len, ms);
    if (st == 0)
        return PyBytes_FromStringAndSize(small, (Py_ssize_t)len);
    while (st == status_buffer_too_small && len > sizeof small && len <= (size_t)PY_SSIZE_T_MAX) {
        size_t need = len;
        PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)need);
        if (out == NULL)
            return NULL; /* MemoryError; the message stays queued */
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
 * the binding (a stale build) is not used. */
#define SPEEDUPS_VERSION 2

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *m = PyModule_Create(&speedups_module);
    if (m != NULL && PyModule_AddIntConstant(m, "VERSION", SPEEDUPS_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
