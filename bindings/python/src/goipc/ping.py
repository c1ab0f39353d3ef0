"""``python -m goipc.ping``: the ping-pong example's Python ping, run as a
module of the package.

    python -m goipc.ping --dial /tmp/pong.sock -n 100000 --size 64 [--typed] [--call]

The program is examples/ping-pong/python/ping.py (examples/README.md):
its command line, its checks (every answer must equal what was sent) and
its output (one JSON line with the round-trip percentiles, or one with
``"error"`` and exit status 1) are this module's. It is written once, in
the example; this module only finds it and runs its ``main``:

* in a checkout of the repository (``PYTHONPATH=bindings/python/src``),
  the example itself;
* in an installed package (a wheel, ``pip install ./bindings/python``), the
  copy setup.py put next to this module at build time
  (``goipc/_ping_example.py``).

``load_example()`` gives the example's functions to ``goipc.bench``.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

# Where the example is: next to this module in an installed package, else
# in the repository around bindings/python/src/goipc/.
_HERE = Path(__file__).resolve().parent
_CANDIDATES = [_HERE / "_ping_example.py"]
if len(_HERE.parents) > 3:
    _CANDIDATES.append(_HERE.parents[3] / "examples" / "ping-pong" / "python" / "ping.py")


def example_path() -> Path:
    """The ping-pong example's Python ping, or FileNotFoundError naming
    where it was looked for."""
    for p in _CANDIDATES:
        if p.is_file():
            return p
    raise FileNotFoundError(
        "goipc.ping runs the ping-pong example, which is in neither of %s" % ", ".join(map(str, _CANDIDATES))
    )


def load_example() -> Dict[str, Any]:
    """The example's module globals (``main``, ``round_trips``, ...)."""
    return runpy.run_path(str(example_path()), run_name="goipc_ping_example")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the example's ``main``; returns its exit status."""
    try:
        example = load_example()
    except FileNotFoundError as e:
        print("goipc.ping: %s" % e, file=sys.stderr)
        return 2
    return int(example["main"](None if argv is None else list(argv)))


if __name__ == "__main__":
    sys.exit(main())
