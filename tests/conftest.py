"""Suite-wide settings.

Property tests must not depend on the machine's speed: on a loaded 2-core CI machine a
Hypothesis deadline or a ``too_slow``/``data_too_large`` health check fails a test that found
nothing wrong. One profile, loaded before any test module is imported, so every ``@given`` and
every ``settings(...)`` made at import time inherits it (tests/test_hypothesis_profile.py checks).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

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
