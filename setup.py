"""Builds faye_sync; the metadata lives in setup.cfg.

A wheel (``pip install .``, ``python -m build``, tox) gets the RFC 6455 frame layer
compiled with mypyc where mypy and a C compiler are there; anything that fails leaves
the pure-Python package, which is always complete (the ``.py`` files ship beside the
``.so``). ``FAYE_SYNC_PURE=1`` skips the compilation; editable and in-place builds
never compile (a stale ``.so`` would shadow the ``.py`` being edited).
``faye_sync.__compiled__`` says which one is in use.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

# The frame layer, sans I/O: what every message and handshake goes through. The
# rest stays pure (what it needs from mypyc is in benchmarks/results/2026-12-04-mypyc.md).
COMPILED = [
    f"faye_sync/protocol/{name}.py"
    for name in ("base", "drafts", "framing", "handshake", "http", "hybi", "large", "masking")
]

# Commands that make what gets installed; sdist, egg_info, develop and
# editable_wheel (pip install -e) do not.
BUILDS = {"bdist_wheel", "build", "build_ext", "install"}


def _wanted() -> bool:
    if os.environ.get("FAYE_SYNC_PURE", "") not in ("", "0"):
        return False
    args = set(sys.argv[1:])
    return bool(args & BUILDS) and not args & {"--inplace", "-i", "develop", "editable_wheel"}


def frame_layer_extensions() -> list[Any]:
    """mypyc's extensions for COMPILED (tests/compiled.py builds them in place)."""
    from mypyc.build import mypycify

    # Paths from the project's root, where pip runs this; one shared library,
    # faye_sync__mypyc, beside the package. The build environment has neither h11
    # nor websockets: what the package imports from them is not compiled (Any).
    args = ["--ignore-missing-imports", *COMPILED]
    return list(mypycify(args, opt_level="3", group_name="faye_sync"))


def _extensions() -> list[Any]:
    """The extensions to build, or none where mypyc is missing or fails."""
    if not _wanted():
        return []
    try:
        return frame_layer_extensions()
    except (Exception, SystemExit) as exc:  # no mypy (ImportError); mypyc exits on its errors
        warnings.warn(f"faye_sync: building the pure-Python package ({exc!r})", stacklevel=1)
        return []


class OptionalBuildExt(build_ext):
    """build_ext that falls back to the pure package when the C build fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, missing headers, a compiler error...
            warnings.warn(f"faye_sync: the C build failed, pure Python ({exc!r})", stacklevel=1)
            # One module without the others (or without mypyc's shared library)
            # would not import: none of them then.
            for ext in self.extensions:
                path = Path(self.get_ext_fullpath(ext.name))
                path.unlink(missing_ok=True)
            self.extensions = []


if __name__ == "__main__":  # as pip and build run it; tests/compiled.py imports COMPILED
    setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
