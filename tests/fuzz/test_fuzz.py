"""The bounded fuzz run as a test; skipped unless ``FAYE_SYNC_FUZZ=1``.

``FAYE_SYNC_FUZZ_SECONDS`` sets the total budget (default 60). The default run
already replays the same oracles on Hypothesis inputs (tests/hardening).
"""

from __future__ import annotations

import os

import pytest

from tests.fuzz import run

pytestmark = pytest.mark.skipif(
    os.environ.get("FAYE_SYNC_FUZZ") != "1", reason="fuzzing runs with FAYE_SYNC_FUZZ=1"
)


def test_bounded_fuzz_run_finds_nothing() -> None:
    seconds = os.environ.get("FAYE_SYNC_FUZZ_SECONDS", "60")
    assert run.main(["--seconds", seconds]) == 0
