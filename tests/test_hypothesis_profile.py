"""Every property test runs under the suite's profile (tests/conftest.py): no deadline and no
speed- or size-based health check, so a loaded machine cannot fail a test that found nothing."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

TESTS = Path(__file__).parent
SPEED_CHECKS = {HealthCheck.too_slow, HealthCheck.data_too_large}


def property_tests() -> Iterator[tuple[str, Any]]:
    for path in sorted(TESTS.rglob("test_*.py")):
        if "hypothesis" not in path.read_text(encoding="utf-8"):
            continue
        module = importlib.import_module(
            ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)
        )
        for name, value in vars(module).items():
            members = [(name, value)]
            if inspect.isclass(value):
                members += [(f"{name}.{n}", v) for n, v in vars(value).items()]
            for label, member in members:
                use = getattr(member, "_hypothesis_internal_use_settings", None)
                if getattr(member, "is_hypothesis_test", False) and use is not None:
                    yield f"{module.__name__}.{label}", use
                elif inspect.isclass(member) and isinstance(
                    getattr(member, "settings", None), settings
                ):
                    yield f"{module.__name__}.{label}", member.settings


ALL = list(property_tests())


def test_the_suite_has_property_tests() -> None:
    assert len(ALL) >= 10, ALL


@pytest.mark.parametrize(("name", "used"), ALL, ids=[name for name, _ in ALL])
def test_no_deadline_and_no_speed_health_check(name: str, used: settings) -> None:
    assert used.deadline is None, name
    assert SPEED_CHECKS <= set(used.suppress_health_check), name
