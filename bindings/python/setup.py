"""Build hook of the goipc Python package (everything else is in
pyproject.toml).

When `pip install ./bindings/python` builds the package, this copies
libgoipc.so into the built package (next to goipc/_lib.py, where the
binding looks second) if it exists at build time, taken from:

1. $GOIPC_LIBRARY_DIR/libgoipc.so, else
2. build/lib/libgoipc.so of the repository around this file (`make lib`).

It also records that repository's build/lib in goipc/_build_info.py, so an
installed package still finds a library built later. With a bundled
library the wheel is tagged as platform-specific. Nothing is written into
src/.
"""

import os
import shutil
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
REPO_LIB_DIR = HERE.parent.parent / "build" / "lib"
LIB = "libgoipc.so"


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
        lib = library_to_bundle()
        if lib is not None:
            shutil.copy2(lib, pkg / LIB)
            print("goipc: bundled %s" % lib)
        else:
            print("goipc: no %s at build time; the package will look in $GOIPC_LIBRARY_DIR "
                  "and %s at run time" % (LIB, REPO_LIB_DIR))
        (pkg / "_build_info.py").write_text(
            '"""Written by setup.py at build time."""\n'
            "# build/lib of the repository the package was built from.\n"
            "SOURCE_LIBRARY_DIR = %r\n" % str(REPO_LIB_DIR)
        )


class MaybeBinaryDistribution(Distribution):
    """A wheel that carries libgoipc.so is not pure Python."""

    def has_ext_modules(self):
        return library_to_bundle() is not None


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=MaybeBinaryDistribution)
