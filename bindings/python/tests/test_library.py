"""Loading libgoipc.so, the declarations of the C ABI, the status table."""

from __future__ import annotations

import builtins
import ctypes
import os
import re
import shutil
import sys
import threading
from pathlib import Path

import pytest

import goipc
from goipc import _lib, errors

from conftest import REPO, run_python

HEADER = REPO / "include" / "goipc.h"


def header_functions() -> set:
    text = HEADER.read_text()
    return set(re.findall(r"^\S.*?\b(goipc_\w+)\(", text, re.M))


def header_statuses() -> dict:
    text = HEADER.read_text()
    return {name: int(v) for name, v in re.findall(r"#define (GOIPC_(?:OK|ERR_\w+)) (\d+)", text)}


def test_load_and_abi_version():
    path = goipc.load_library()
    assert Path(path).is_file()
    assert goipc.library_path() == path
    assert goipc.abi_version() == goipc.ABI_VERSION == 1


def test_every_header_function_is_declared():
    """argtypes and restype for every function of include/goipc.h."""
    declared = (
        set(_lib._FUNCTIONS)
        | set(_lib._TYPED_FUNCTIONS)
        | set(_lib._CALL_FUNCTIONS)
        | set(_lib._CALL_START_FUNCTIONS)
        | set(_lib._TYPED_SERVER_FUNCTIONS)
        | set(_lib._BATCH_FUNCTIONS)
        | set(_lib._SWEEPER_FUNCTIONS)
    )
    in_header = header_functions()
    assert in_header, "no function found in the header"
    assert in_header - declared == set(), "declare these in goipc/_lib.py"
    assert declared - in_header == set(), "not in include/goipc.h"
    lib = _lib.load()
    for name in _lib._FUNCTIONS:
        fn = getattr(lib, name)
        assert fn.argtypes is not None, name
        assert fn.restype == _lib._FUNCTIONS[name][0], name
    if goipc.has_typed_messages():
        for name in _lib._TYPED_FUNCTIONS:
            assert getattr(lib, name).argtypes is not None, name
    if goipc.has_calls():
        for name in _lib._CALL_FUNCTIONS:
            assert getattr(lib, name).argtypes is not None, name
    assert _lib.state.has_typed_server  # this repository's library has them
    for name in _lib._TYPED_SERVER_FUNCTIONS:
        assert getattr(lib, name).argtypes is not None, name
    assert _lib.state.has_batch
    for name in _lib._BATCH_FUNCTIONS:
        assert getattr(lib, name).argtypes is not None, name


def test_status_table_mirrors_header():
    """Every status code of the header has a class and a name, and the
    library's strerror knows it."""
    codes = header_statuses()
    assert codes["GOIPC_OK"] == errors.OK
    for name, value in codes.items():
        assert errors.STATUS_NAMES[value] == name
        if value:
            cls = errors.STATUS_ERRORS[value]
            assert issubclass(cls, goipc.Error)
            s = _lib.strerror(value)
            assert s.startswith(name), (name, s)
    assert set(errors.STATUS_ERRORS) == {v for v in codes.values() if v}
    assert "unknown" in _lib.strerror(12345)


def test_error_classes_and_builtins():
    assert issubclass(goipc.TimeoutError, builtins.TimeoutError)
    assert issubclass(goipc.PeerClosedError, ConnectionError)
    assert issubclass(goipc.MessageTooLargeError, ValueError)
    assert issubclass(goipc.InvalidArgumentError, ValueError)
    assert issubclass(goipc.PermissionDeniedError, PermissionError)
    assert issubclass(goipc.SystemCallError, OSError)
    assert issubclass(goipc.ForkError, goipc.Error)
    e = errors.make_error(errors.ERR_SYSTEM, "goipc: dial: no such file", 2)
    assert isinstance(e, goipc.SystemCallError) and e.errno == 2 and e.status == 9
    assert str(e) == "goipc: dial: no such file"
    e = errors.make_error(99, "")
    assert type(e) is goipc.Error and e.status == 99 and "99" in str(e)


def test_options_layout_matches_header():
    """The offsets that capi/goipc_shim.c asserts with _Static_assert."""
    text = (REPO / "capi" / "goipc_shim.c").read_text()
    pairs = re.findall(r"offsetof\(goipc_options, (\w+)\) == (\d+)", text)
    assert len(pairs) == len(_lib.Options._fields_) == 15
    for field, off in pairs:
        assert getattr(_lib.Options, field).offset == int(off), field
    size = re.search(r"sizeof\(goipc_options\) == (\d+)", text)
    assert size is not None
    assert ctypes.sizeof(_lib.Options) == _lib.OPTIONS_BUFFER_SIZE == int(size.group(1)) == 96


def test_options_init_sized_sets_our_size():
    """goipc_options_init_sized zeroes the whole struct we mirror and
    records its size (goipc_options_init would record only 48 bytes)."""
    lib = _lib.load()
    raw = (ctypes.c_char * _lib.OPTIONS_BUFFER_SIZE)(*([b"\xff"] * _lib.OPTIONS_BUFFER_SIZE))
    lib.goipc_options_init_sized(raw, _lib.OPTIONS_BUFFER_SIZE)
    o = _lib.Options.from_buffer(raw)
    assert o.struct_size == 96
    assert bytes(raw)[4:] == bytes(_lib.OPTIONS_BUFFER_SIZE - 4)


def test_candidate_order(monkeypatch, tmp_path):
    """The bundled copy first, then GOIPC_LIBRARY_DIR, then build/lib."""
    bundled = Path(_lib.__file__).resolve().parent / "libgoipc.so"
    monkeypatch.setenv(_lib.ENV_LIBRARY_DIR, str(tmp_path))
    c = _lib.candidate_paths()
    assert c[0] == bundled
    assert c[1] == tmp_path / "libgoipc.so"
    if bundled.exists():  # installed with its library: no build path recorded
        assert c[2:] == [], c
    else:  # the source tree: then the repository's build/lib
        assert c[2:] == [REPO / "build" / "lib" / "libgoipc.so"], c
    monkeypatch.delenv(_lib.ENV_LIBRARY_DIR)
    assert _lib.candidate_paths()[0] == bundled
    assert tmp_path / "libgoipc.so" not in _lib.candidate_paths()


def test_not_found_lists_every_path(tmp_path):
    cands = [tmp_path / "a" / "libgoipc.so", tmp_path / "b" / "libgoipc.so"]
    with pytest.raises(goipc.LibraryError) as ei:
        _lib.find_library(cands)
    assert ei.value.tried == [str(p) for p in cands]
    for p in cands:
        assert str(p) in str(ei.value)
    assert "GOIPC_LIBRARY_DIR" in str(ei.value)


def unbundled_package_copy(dest: Path) -> Path:
    """A copy of the goipc package without a bundled library, outside the
    repository (so it finds no build/lib either); returns its sys.path
    entry."""
    src = Path(goipc.__file__).resolve().parent
    shutil.copytree(src, dest / "goipc", ignore=shutil.ignore_patterns("libgoipc.so", "_build_info.py", "__pycache__"))
    return dest


def test_env_dir_serves_a_package_without_a_bundled_library(tmp_path):
    """GOIPC_LIBRARY_DIR is where a package with no bundled copy (a source
    tree) finds the library (in a fresh interpreter: the library is loaded
    once per process)."""
    libdir = tmp_path / "lib"
    libdir.mkdir()
    shutil.copy(goipc.library_path(), libdir / "libgoipc.so")
    pkg = unbundled_package_copy(tmp_path / "pkg")
    r = run_python(
        "import goipc; print(goipc.library_path())",
        env={"GOIPC_LIBRARY_DIR": str(libdir), "PYTHONPATH": os.pathsep.join([str(pkg)] + [p for p in sys.path if p])},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == str(libdir / "libgoipc.so")


def test_load_failure_is_library_error(tmp_path):
    """A broken file is reported as LibraryError, naming it."""
    bogus = tmp_path / "libgoipc.so"
    bogus.write_bytes(b"not an ELF file")
    code = (
        "import sys, goipc\n"
        "try:\n"
        "    goipc.load_library(sys.argv[1])\n"
        "except goipc.LibraryError as e:\n"
        "    print('LibraryError', e.tried)\n"
    )
    r = run_python(code, str(bogus))
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.startswith("LibraryError"), out
    assert str(bogus) in out


def test_installed_package_uses_its_bundled_library(tmp_path):
    """Installed with `pip install ./bindings/python` after `make lib` (or
    from `make wheel`), the package carries libgoipc.so and loads that copy,
    whatever GOIPC_LIBRARY_DIR says."""
    pkg = Path(goipc.__file__).resolve().parent
    if pkg == REPO / "bindings" / "python" / "src" / "goipc":
        assert Path(goipc.library_path()) == REPO / "build" / "lib" / "libgoipc.so" or os.environ.get("GOIPC_LIBRARY_DIR")
        return
    assert Path(goipc.library_path()) == pkg / "libgoipc.so"
    assert not (pkg / "_build_info.py").exists(), "a package with a bundled library records no build path"
    r = run_python("import goipc; print(goipc.library_path())", env={"GOIPC_LIBRARY_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == str(pkg / "libgoipc.so")


def test_import_does_not_load_library():
    """Importing goipc starts no Go runtime (so forking after import is
    fine); the first use does."""
    r = run_python("import goipc, goipc._lib as l; assert l.state.lib is None; goipc.load_library(); assert l.state.lib is not None; print('ok')")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == b"ok"


def _checking(name, declared):
    """A stand-in for a fast (argtypes-free) function that checks that
    every argument is already of the declared C type, then calls the
    declared function."""
    from ctypes import Array, c_char, c_void_p

    restype, argtypes = {
        **_lib._FUNCTIONS,
        **_lib._TYPED_FUNCTIONS,
        **_lib._CALL_FUNCTIONS,
        **_lib._CALL_START_FUNCTIONS,
        **_lib._SWEEPER_FUNCTIONS,
    }[name]
    calls = []

    def call(*args):
        assert len(args) == len(argtypes), name
        for i, (a, t) in enumerate(zip(args, argtypes)):
            where = "%s argument %d" % (name, i)
            if t is c_void_p:
                assert a is None or type(a) is bytes or type(a).__name__ == "CArgObject", (where, a)
            elif hasattr(t, "_type_") and isinstance(t._type_, type):  # POINTER(x)
                if isinstance(a, Array):
                    assert a._type_ is t._type_, (where, a)
                else:
                    assert type(a).__name__ == "CArgObject", (where, a)
                    assert type(a._obj) is t._type_ or (t._type_ is c_char and type(a._obj) is c_char), (where, a._obj)
            else:
                assert type(a) is t, (where, a, t)
        calls.append(name)
        return declared(*args)

    call.calls = calls
    return call


def test_fast_calls_pass_declared_types(monkeypatch, sockdir):
    """The per-message fast paths call functions without argtypes (see
    goipc/_lib.py, "Fast calls"): every argument they pass must already be
    of the type the declaration gives."""
    from conftest import make_pair

    lib = _lib.load()
    checked = {n: _checking(n, getattr(lib, n)) for n in _lib.state.fast}
    monkeypatch.setattr(_lib.state, "fast", checked)
    # The ctypes fast paths: goipc._speedups, when built, takes them over.
    monkeypatch.setattr(_lib.state, "speedups", None)
    ln, c, s = make_pair(os.path.join(sockdir, "fast.sock"))  # binds the checked functions
    try:
        c.send(b"abc")
        assert s.recv() == b"abc"
        c.send(b"defg")
        buf = bytearray(16)
        assert s.recv_into(buf) == 4 and buf[:4] == b"defg"
        c.send(b"0123456789")
        with pytest.raises(goipc.BufferTooSmallError):
            s.recv_into(bytearray(2))
        assert s.recv() == b"0123456789"
        if goipc.has_typed_messages():
            c.send_ping(5, b"p")
            p = s.recv_ping(timeout=5)
            s.send_pong(p.seq, p.sent_ns, p.payload)
            assert c.recv_pong() == goipc.Pong(5, b"p")
        if goipc.has_calls():
            def serve() -> None:
                for _ in range(3):
                    cid, req = s.recv_request(timeout=10)
                    s.reply(cid, req)

            t = threading.Thread(target=serve)
            t.start()
            assert c.call(b"call") == b"call"
            buf = bytearray(8)
            assert c.call_into(b"into", buf) == 4 and buf[:4] == b"into"
            with pytest.raises(goipc.ProtocolError):  # an echo is no Pong
                c.call_ping(1, b"p", timeout=10)
            t.join(10)
        used = {n for f in checked.values() for n in f.calls}
        assert {"goipc_send", "goipc_recv"} <= used
        if goipc.has_typed_messages():
            assert {"goipc_send_ping", "goipc_recv_pong"} <= used
        if goipc.has_calls():
            assert {"goipc_call_ex", "goipc_call_ping"} <= used
    finally:
        c.close()
        s.close()
        ln.close()


def test_typed_calls_switch():
    """GOIPC_PYTHON_TYPED_CALLS=1 routes the fast paths through the
    declared functions (same results)."""
    code = (
        "import goipc, goipc._lib as l\n"
        "goipc.load_library()\n"
        "assert all(f.argtypes is not None for f in l.state.fast.values())\n"
        "print('ok')\n"
    )
    r = run_python(code, env={"GOIPC_PYTHON_TYPED_CALLS": "1"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == b"ok"
