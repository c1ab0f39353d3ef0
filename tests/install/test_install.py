"""make test-install: goipc used the way a user outside the repository uses it.

- `make install` into a temporary prefix; a C program built with
  pkg-config against that prefix (shared, and fully static) runs with the
  clone's build/lib moved away, against the installed `goipc pong`;
- the wheel of `make wheel` installed into a fresh venv of another Python
  version, outside the repository, round-trips a message with no
  environment variable;
- its second wheel, with the C extension goipc._speedups, installed into a
  fresh venv of the same Python, round-trips a message through the
  extension of the installed package;
- a throwaway cargo project whose Cargo.toml only has a path dependency on
  bindings/rust builds, and its program runs with build/lib moved away;
- `make uninstall` removes every installed file.

The Makefile builds build/lib (shared and static) and the wheels first.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD_LIB = REPO / "build" / "lib"
# Where build/lib waits while the programs run (the Makefile puts it back
# if a killed run left it there).
BUILD_LIB_AWAY = REPO / "build" / "lib.moved-by-test-install"
MAKE = os.environ.get("MAKE", "make")

# Variables that would let a program find the build tree's library.
HINTS = ("GOIPC_LIBRARY_DIR", "LD_LIBRARY_PATH", "PKG_CONFIG_PATH", "PYTHONPATH", "CARGO_TARGET_DIR")


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in HINTS}
    env.update(extra)
    return env


def run(cmd, cwd=None, env=None, timeout=300) -> str:
    """Runs cmd and returns its stdout; fails the test with its output if
    it exits non-zero."""
    r = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, "%s exited %d\nstdout:\n%s\nstderr:\n%s" % (
        " ".join(map(str, cmd)), r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    return r.stdout


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    """A prefix that `make install` filled."""
    p = tmp_path_factory.mktemp("prefix") / "usr"
    run([MAKE, "-C", REPO, "--no-print-directory", "install", "PREFIX=%s" % p])
    return p


@pytest.fixture(scope="module")
def cargo_app(tmp_path_factory) -> Path:
    """A cargo project outside the repository with only a path dependency,
    built while build/lib is still there (the crate's build.rs makes and
    links the static library); returns its binary."""
    proj = tmp_path_factory.mktemp("cargo-app")
    (proj / "src").mkdir()
    (proj / "Cargo.toml").write_text(
        '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2024"\n\n'
        "[dependencies]\n"
        'goipc = { path = "%s" }\n\n[workspace]\n' % (REPO / "bindings" / "rust")
    )
    shutil.copy(HERE / "app.rs", proj / "src" / "main.rs")
    # The binding's lock file pins the same dependency versions.
    shutil.copy(REPO / "bindings" / "rust" / "Cargo.lock", proj / "Cargo.lock")
    # No installed goipc for pkg-config to find: the crate builds the library.
    env = clean_env(PKG_CONFIG_PATH=str(proj / "no-pkgconfig"))
    run([os.environ.get("CARGO", "cargo"), "build", "--quiet"], cwd=proj, env=env, timeout=600)
    return proj / "target" / "debug" / "app"


@pytest.fixture(scope="module")
def wheel() -> Path:
    wheels = sorted((REPO / "build" / "dist").glob("goipc-*.whl"))
    assert len(wheels) == 1, "want one wheel from make wheel in build/dist, found %s" % wheels
    assert re.search(r"-py3-none-(manylinux_\d+_\d+|linux)_x86_64\.whl$", wheels[0].name), wheels[0].name
    # Any CPython: no extension module in it (not even one an earlier
    # build left in bindings/python/build).
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert not [n for n in names if "_speedups" in n], names
    return wheels[0]


@pytest.fixture(scope="module")
def without_build_lib(prefix, cargo_app):
    """build/lib moved away for the tests that run programs (after
    everything that needs it was built)."""
    assert BUILD_LIB.is_dir() and not BUILD_LIB_AWAY.exists()
    BUILD_LIB.rename(BUILD_LIB_AWAY)
    try:
        yield
    finally:
        BUILD_LIB_AWAY.rename(BUILD_LIB)


@pytest.fixture(scope="module")
def pong(prefix, without_build_lib, tmp_path_factory):
    """The installed CLI's consumer; returns its socket path."""
    sock = tmp_path_factory.mktemp("sock") / "pong.sock"
    p = subprocess.Popen(
        [str(prefix / "bin" / "goipc"), "pong", "--listen", str(sock)],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = p.stdout.readline()  # printed once it listens
        assert "listening on" in line, "goipc pong did not start: %r %s" % (line, p.stderr.read() if p.poll() is not None else "")
        yield sock
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_installed_files(prefix):
    lib = prefix / "lib"
    assert (lib / "libgoipc.so.1.0.0").is_file()
    assert os.readlink(lib / "libgoipc.so.1") == "libgoipc.so.1.0.0"
    assert os.readlink(lib / "libgoipc.so") == "libgoipc.so.1"
    assert (lib / "libgoipc.a").is_file()
    assert (prefix / "include" / "goipc.h").read_bytes() == (REPO / "include" / "goipc.h").read_bytes()
    assert os.access(prefix / "bin" / "goipc", os.X_OK)
    soname = re.search(r"SONAME\s+(\S+)", run(["objdump", "-p", lib / "libgoipc.so.1.0.0"]))
    assert soname and soname.group(1) == "libgoipc.so.1"
    pc = (lib / "pkgconfig" / "goipc.pc").read_text()
    assert "prefix=%s\n" % prefix in pc
    assert str(REPO) not in pc and "rpath" not in pc, pc


def pkg_config(prefix: Path, *args: str) -> list:
    env = clean_env(PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    return run(["pkg-config", *args, "goipc"], env=env).split()


def test_c_program_shared(prefix, without_build_lib, pong, tmp_path):
    """Built with `pkg-config --cflags --libs goipc` (plus an rpath to the
    prefix, which is not in the loader's path): loads libgoipc.so.1 from
    the prefix."""
    exe = tmp_path / "app"
    libdir = pkg_config(prefix, "--variable=libdir")[0]
    run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", *pkg_config(prefix, "--cflags"), "-o", exe,
         HERE / "app.c", *pkg_config(prefix, "--libs"), "-Wl,-rpath," + libdir])
    ldd = run(["ldd", exe])
    assert "libgoipc.so.1 => %s/libgoipc.so.1" % libdir in ldd, ldd
    assert str(REPO) not in ldd
    assert run([exe, pong, "hello from C"]) == "hello from C\n"


def test_c_program_static(prefix, without_build_lib, pong, tmp_path):
    """Fully static with `pkg-config --static --libs goipc`: no library at
    run time at all."""
    exe = tmp_path / "app-static"
    run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", *pkg_config(prefix, "--cflags"), "-o", exe,
         HERE / "app.c", "-static", *pkg_config(prefix, "--static", "--libs")])
    assert "NEEDED" not in run(["readelf", "-d", exe])
    assert run([exe, pong, "hello from static C"]) == "hello from static C\n"
    print("\ntest-install: C programs from the installed prefix (shared and static) round-trip")


def other_python() -> Path:
    """A CPython 3 interpreter of another minor version than this one (the
    newest found: pyenv's versions, python3.N on PATH), else this one's
    base interpreter, with a warning."""
    found = {}
    candidates = []
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(pyenv_root.glob("versions/3.*/bin/python3"))
    candidates += [Path(p) for n in range(8, 20) if (p := shutil.which("python3.%d" % n))]
    for c in candidates:
        r = subprocess.run([str(c), "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            found.setdefault(tuple(map(int, r.stdout.split("."))), c)
    mine = sys.version_info[:2]
    others = sorted(v for v in found if v != mine and v >= (3, 8))
    if others:
        return found[others[-1]]
    warnings.warn("no CPython other than %d.%d here: the wheel is tested with a fresh venv of it" % mine)
    return Path(getattr(sys, "_base_executable", sys.executable))


def test_wheel_in_fresh_venv_of_another_python(wheel, without_build_lib, pong, tmp_path):
    python = other_python()
    venv = tmp_path / "venv"
    run([python, "-m", "venv", venv])
    vpy = venv / "bin" / "python"
    version = run([vpy, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).strip()
    run([vpy, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel], timeout=600)
    # From a folder outside the repository, with no goipc variable set.
    out = run([vpy, HERE / "app.py", pong, "hello from Python %s" % version], cwd=tmp_path).splitlines()
    assert out[0] == "hello from Python %s" % version
    site = run([vpy, "-c", "import goipc, os; print(os.path.dirname(goipc.__file__))"], cwd=tmp_path).strip()
    assert out[1] == os.path.join(site, "libgoipc.so"), out
    assert site.startswith(str(venv))
    print("\ntest-install: %s round-trips in a fresh Python %s venv (%s)" % (wheel.name, version, python))


@pytest.fixture(scope="module")
def speedups_wheel() -> Path:
    wheels = sorted((REPO / "build" / "dist" / "speedups").glob("goipc-*.whl"))
    assert len(wheels) == 1, "want one wheel with the C extension in build/dist/speedups, found %s" % wheels
    tag = "cp%d%d" % sys.version_info[:2]
    assert re.search(r"-%s-%s-(manylinux_\d+_\d+|linux)_x86_64\.whl$" % (tag, tag), wheels[0].name), wheels[0].name
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert [n for n in names if n.startswith("goipc/_speedups")], names
    return wheels[0]


def test_speedups_wheel_in_fresh_venv(speedups_wheel, without_build_lib, pong, tmp_path):
    """The wheel with goipc._speedups, in a fresh venv of the Python that
    built it: the extension is the one in the installed package, bound,
    and a message round-trips."""
    python = Path(getattr(sys, "_base_executable", sys.executable))
    venv = tmp_path / "venv"
    run([python, "-m", "venv", venv])
    vpy = venv / "bin" / "python"
    run([vpy, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", speedups_wheel], timeout=600)
    out = run([vpy, HERE / "app.py", pong, "hello, extension"], cwd=tmp_path).splitlines()
    assert out[0] == "hello, extension"
    where = run([vpy, "-c", "import goipc, goipc._lib as l; l.load(); print(l.state.speedups_path)"], cwd=tmp_path).strip()
    site = run([vpy, "-c", "import goipc, os; print(os.path.dirname(goipc.__file__))"], cwd=tmp_path).strip()
    assert site.startswith(str(venv)) and where.startswith(os.path.join(site, "_speedups")), (site, where)
    print("\ntest-install: %s round-trips with its C extension in a fresh venv" % speedups_wheel.name)


def test_cargo_program_with_only_a_path_dependency(cargo_app, without_build_lib, pong):
    ldd = run(["ldd", cargo_app])
    assert "goipc" not in ldd, "the crate should link libgoipc statically by default:\n" + ldd
    assert run([cargo_app, pong, "hello from Rust"]) == "hello from Rust\n"
    print("\ntest-install: a cargo project with only a path dependency round-trips (libgoipc linked statically)")


def test_uninstall_removes_every_file(prefix):
    run([MAKE, "-C", REPO, "--no-print-directory", "uninstall", "PREFIX=%s" % prefix])
    left = [p for p in prefix.rglob("*") if not p.is_dir()]
    assert left == [], left
