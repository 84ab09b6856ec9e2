"""mypyc's build of the frame layer in this checkout, for tox's compiled run (py310).

``python -m tests.compiled build`` compiles setup.py's ``COMPILED`` modules in place
(the ``.so`` files beside their ``.py``, where the suite and the servers it starts
import them); ``python -m tests.compiled clean`` removes them and ``build/``. tests/conftest.py
refuses to run when a ``.py`` is newer than its ``.so`` (an edit the build shadows).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def compiled_files() -> list[Path]:
    """The ``.so`` files an in-place build left in this checkout."""
    found = set()
    for suffix in EXTENSION_SUFFIXES:
        found.update((ROOT / "faye_sync").rglob(f"*{suffix}"))
        found.update(ROOT.glob(f"faye_sync__mypyc{suffix}"))  # mypyc's shared library
    return sorted(found)


def stale() -> list[Path]:
    """Compiled modules older than their source: the import would run old code."""
    found = []
    for path in compiled_files():
        source = path.with_name(path.name.split(".")[0] + ".py")
        if source.exists() and source.stat().st_mtime > path.stat().st_mtime:
            found.append(source)
    return found


def build() -> None:
    from setuptools import setup

    os.chdir(ROOT)  # setup.py's paths are from the root
    spec = importlib.util.spec_from_file_location("faye_sync_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its setup() runs only as __main__
    extensions = module.frame_layer_extensions()
    setup(
        name="faye_sync",
        script_args=["build_ext", "--inplace"],
        ext_modules=extensions,
        packages=[],
    )
    for path in compiled_files():  # copied with build/'s times, which may predate an edit
        path.touch()


def clean() -> None:
    for path in compiled_files():
        path.unlink()
    # mypyc's C and setuptools' copies: a later wheel build in this checkout
    # (pip builds in place) must not pick them up.
    shutil.rmtree(ROOT / "build", ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["build", "clean"])
    args = parser.parse_args()
    if args.action == "build":
        build()
        print(f"compiled in place: {len(compiled_files())} files", file=sys.stderr)
    else:
        clean()
    return 0


if __name__ == "__main__":
    sys.exit(main())
