"""Suite-wide settings.

Property tests must not depend on the machine's speed: on a loaded 2-core CI machine a
Hypothesis deadline or a ``too_slow``/``data_too_large`` health check fails a test that found
nothing wrong. One profile, loaded before any test module is imported, so every ``@given`` and
every ``settings(...)`` made at import time inherits it (tests/test_hypothesis_profile.py checks).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from tests.compiled import stale

if stale():  # tox's compiled run builds in place (tests/compiled.py); an edit since then
    pytest.exit(f"compiled modules older than {stale()}: python -m tests.compiled clean", 4)

settings.register_profile(
    "faye_sync",
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
settings.load_profile("faye_sync")
