"""Checks of the options the façades share, with one wording."""

from __future__ import annotations

import math

__all__ = ["seconds"]


def seconds(name: str, value: float, *, allow_zero: bool, most: float = math.inf) -> float:
    """Check a duration option and return it as a ``float``.

    Raises:
        TypeError: ``value`` is not a number (``bool`` included).
        ValueError: it is negative, infinite, NaN, zero where ``allow_zero`` is
            false, or above ``most``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        least = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number of seconds {least}, not {value!r}")
    if value > most:
        raise ValueError(f"{name} must be at most {most:g} seconds, not {value!r}")
    return float(value)
