"""Feed a sans-I/O protocol the same input three ways: whole, byte by byte, and
followed by the incomplete start of another frame (which must change nothing)."""

from __future__ import annotations

from typing import Any

import pytest

FEEDS = ("whole", "bytewise", "trailing")
TRAILER = b"\x81\x85\x00"  # the first 3 bytes of a further, masked text frame


def feed(protocol: Any, data: bytes, how: str) -> None:
    if how == "whole":
        protocol.receive_data(data)
    elif how == "bytewise":
        for i in range(len(data)):
            protocol.receive_data(data[i : i + 1])
    elif how == "trailing":
        protocol.receive_data(data + TRAILER)
    else:  # pragma: no cover
        raise ValueError(how)


each_feed = pytest.mark.parametrize("how", FEEDS)
