"""Build hook of the goipc Python package (everything else is in
pyproject.toml).

When `pip install ./bindings/python` builds the package, this copies
libgoipc.so into the built package (next to goipc/_lib.py, where the
binding looks second) if it exists at build time, taken from:

1. $GOIPC_LIBRARY_DIR/libgoipc.so, else
2. build/lib/libgoipc.so of the repository around this file (`make lib`).

It also builds the optional extension module goipc._speedups
(src/goipc/_speedups.c: the per-message calls without ctypes, about twice
as fast a Python round trip) when a C compiler and the Python headers are
there; if they are not, the build goes on without it (optional=True) and
the binding uses ctypes for everything. GOIPC_PYTHON_SPEEDUPS=0 at build
time leaves it out.

A wheel without the extension (`make wheel` sets GOIPC_PYTHON_SPEEDUPS=0)
that bundles the library is tagged py3-none-<platform>: it holds no Python
extension, only a C library loaded with ctypes, so it fits every CPython 3
on that platform (`make wheel` writes it under build/dist/, with a
manylinux tag when auditwheel confirms one). A wheel with the extension
keeps the tag of the Python that built it. Without a library, the package
records that repository's build/lib in goipc/_build_info.py, so that it
still finds a library built later. Nothing is written into src/.

It also copies the ping-pong example's Python ping
(examples/ping-pong/python/ping.py) into the built package as
goipc/_ping_example.py: `python -m goipc.ping` runs it (goipc/ping.py), so
that the program is written once, in the example, and still ships with
the package.
"""

import os
import shutil
from pathlib import Path

from setuptools import Distribution, Extension, setup
from setuptools.command.build_py import build_py

try:  # setuptools >= 70.1 has its own; older ones use the wheel package's
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:
    from wheel.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
REPO_LIB_DIR = HERE.parent.parent / "build" / "lib"
LIB = "libgoipc.so"
PING_EXAMPLE = HERE.parent.parent / "examples" / "ping-pong" / "python" / "ping.py"
# goipc._speedups is built unless GOIPC_PYTHON_SPEEDUPS=0 (the same variable
# disables it at run time).
BUILD_SPEEDUPS = os.environ.get("GOIPC_PYTHON_SPEEDUPS", "") != "0"
SPEEDUPS = Extension(
    "goipc._speedups",
    sources=["src/goipc/_speedups.c"],
    optional=True,  # no compiler or headers: a package without it
)


def library_to_bundle():
    """The libgoipc.so to copy into the package, or None."""
    env = os.environ.get("GOIPC_LIBRARY_DIR")
    for d in ([Path(env)] if env else []) + [REPO_LIB_DIR]:
        p = d / LIB
        if p.is_file():
            return p
    return None


class BuildPyWithLibrary(build_py):
    """build_py that also copies libgoipc.so and writes _build_info.py."""

    def run(self):
        super().run()
        pkg = Path(self.build_lib) / "goipc"
        pkg.mkdir(parents=True, exist_ok=True)
        if not BUILD_SPEEDUPS:
            # setuptools reuses bindings/python/build/: an extension that an
            # earlier build compiled there must not end up in this package.
            for stale in pkg.glob("_speedups*"):
                stale.unlink()
        if PING_EXAMPLE.is_file():
            shutil.copy2(PING_EXAMPLE, pkg / "_ping_example.py")
        lib = library_to_bundle()
        info = pkg / "_build_info.py"
        if lib is not None:
            shutil.copy2(lib, pkg / LIB)  # the file, not a symlink to it
            print("goipc: bundled %s" % lib)
            # A self-contained package: no path of the build machine in it.
            if info.exists():
                info.unlink()
            return
        print("goipc: no %s at build time; the package will look in $GOIPC_LIBRARY_DIR "
              "and %s at run time" % (LIB, REPO_LIB_DIR))
        info.write_text(
            '"""Written by setup.py at build time."""\n'
            "# build/lib of the repository the package was built from.\n"
            "SOURCE_LIBRARY_DIR = %r\n" % str(REPO_LIB_DIR)
        )


class BdistWheelAnyPython(bdist_wheel):
    """Tags a wheel that bundles libgoipc.so py3-none-<platform>: the
    library is loaded with ctypes, not imported as an extension module, so
    neither the Python version nor its ABI matters, only the platform."""

    def get_tag(self):
        python, abi, plat = super().get_tag()
        if library_to_bundle() is not None and not BUILD_SPEEDUPS:
            return "py3", "none", plat
        return python, abi, plat


class MaybeBinaryDistribution(Distribution):
    """A wheel that carries libgoipc.so is not pure Python."""

    def has_ext_modules(self):
        return BUILD_SPEEDUPS or library_to_bundle() is not None


setup(
    ext_modules=[SPEEDUPS] if BUILD_SPEEDUPS else [],
    cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": BdistWheelAnyPython},
    distclass=MaybeBinaryDistribution,
)
