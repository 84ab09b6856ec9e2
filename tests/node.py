"""Node.js peers from npm for the optional interop tests (tox -e node).

The packages are installed once into a cache directory (``FAYE_SYNC_NODE_CACHE``,
default ``~/.cache/faye_sync-node``); the tests skip with the reason when
FAYE_SYNC_NODE=1 is not set, node or npm is missing, or the install fails (which
fails them on CI, where the registry is reached).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

PACKAGES = ("faye-websocket", "ws")


def node_modules() -> Path:
    """A node_modules directory holding faye-websocket and ws."""
    if os.environ.get("FAYE_SYNC_NODE") != "1":
        pytest.skip("set FAYE_SYNC_NODE=1 to run the Node.js interop tests (tox -e node)")
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not on PATH")
    cache = Path(os.environ.get("FAYE_SYNC_NODE_CACHE", Path.home() / ".cache" / "faye_sync-node"))
    if not all((cache / "node_modules" / name).is_dir() for name in PACKAGES):
        cache.mkdir(parents=True, exist_ok=True)
        command = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache), *PACKAGES]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            _cannot_install("npm install timed out (is the registry reachable?)")
        if result.returncode != 0:
            _cannot_install(f"npm install {' '.join(PACKAGES)} failed:\n{result.stderr[-2000:]}")
    return cache / "node_modules"


def _cannot_install(reason: str) -> NoReturn:
    # CI reaches the npm registry: there the interop tests must run, not skip.
    if os.environ.get("CI"):
        pytest.fail(f"{reason}\n(on CI, tox -e node must install the Node peers)")
    pytest.skip(reason)
