"""The load and soak scripts as tests; skipped unless ``FAYE_SYNC_LOAD=1``.

Each script runs in its own process (it monkey-patches with gevent) and is
bounded by its own ``--max-seconds``; the subprocess timeout adds a margin.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.environ.get("FAYE_SYNC_LOAD") != "1", reason="load tests run with FAYE_SYNC_LOAD=1"
)


def run_script(module: str, *args: str, max_seconds: float) -> str:
    """Run a script that exits 0 on success; return its report."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args, "--max-seconds", str(max_seconds)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=max_seconds + 60,
        check=False,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def figure(report: str, name: str) -> str:
    """The value a report prints for ``name`` (``  name   value`` lines)."""
    found = re.search(rf"^  {re.escape(name)} +(.+)$", report, re.MULTILINE)
    if found is None:
        pytest.fail(f"no {name!r} in the report:\n{report}")
    return found.group(1)


def test_5000_gevent_connections_echo_without_errors() -> None:
    report = run_script(
        "tests.load.load_gevent", "--connections", "5000", "--messages", "10", max_seconds=300
    )
    assert figure(report, "messages echoed") == "50000"


def test_a_million_messages_with_flat_rss() -> None:
    report = run_script("tests.load.soak", "--messages", "1000000", max_seconds=600)
    assert figure(report, "messages echoed") == "1000000"
    assert float(figure(report, "server RSS growth after warm-up (MiB)")) <= 5.0
