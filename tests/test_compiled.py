"""The compiled hot path (setup.py, tests/compiled.py): which build runs, and that it is whole.

tox's py310 run compiles the frame layer in place and sets ``FAYE_SYNC_EXPECT_COMPILED=1``;
py313 runs the pure-Python package with ``=0``. The rest of the suite runs on whichever
it is, so every test checks the compiled modules in one run and the pure ones in the other.
"""

from __future__ import annotations

import ast
import importlib
import os
from importlib.machinery import ExtensionFileLoader
from pathlib import Path

import pytest

import faye_sync
from tests.compiled import ROOT


def setup_compiled() -> list[str]:
    """The module names setup.py's COMPILED lists (read from its source: it is a script)."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    assignment = next(
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "COMPILED"
    )
    names = [node.value for node in ast.walk(assignment.value) if isinstance(node, ast.Constant)]
    return [f"faye_sync.protocol.{name}" for name in names if name.isidentifier()]


def is_compiled(name: str) -> bool:
    return isinstance(importlib.import_module(name).__loader__, ExtensionFileLoader)


EXPECTED = os.environ.get("FAYE_SYNC_EXPECT_COMPILED")


@pytest.mark.skipif(EXPECTED is None, reason="tox says which build it made")
def test_the_build_tox_made_is_in_use() -> None:
    assert faye_sync.__compiled__ is (EXPECTED == "1")


def test_the_flag_says_what_the_frame_layer_is() -> None:
    modules = setup_compiled()
    assert "faye_sync.protocol.hybi" in modules
    assert len(modules) == 8
    # All of them or none: one compiled module cannot import a pure sibling's classes.
    assert {is_compiled(name) for name in modules} == {faye_sync.__compiled__}


def test_what_mypyc_does_not_compile_stays_pure() -> None:
    for name in ("faye_sync.protocol._mypyc", "faye_sync.protocol.events", "faye_sync.websocket"):
        assert not is_compiled(name), name
    # The decorator is the identity at run time; mypy_extensions is not needed.
    from faye_sync.protocol._mypyc import trait

    assert trait(int) is int


@pytest.mark.skipif(not faye_sync.__compiled__, reason="the compiled build only")
def test_compiled_modules_ship_their_sources() -> None:
    for name in setup_compiled():
        path = Path(importlib.import_module(name).__file__ or "")
        assert (path.parent / (path.name.split(".")[0] + ".py")).exists(), path
