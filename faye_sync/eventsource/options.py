"""The EventSource constructor's options, checked once per stream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from wsgiref.util import request_uri

from ..protocol import sse
from ..protocol.options import seconds


def ping_interval(ping: float | None) -> float:
    if ping is None or ping == 0:
        return float(sse.DEFAULT_PING)
    return seconds("ping", ping, allow_zero=False)


def byte_limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"max_buffered must be a number of bytes or None, not {limit!r}")
    if limit <= 0:
        raise ValueError(f"max_buffered must be > 0 bytes or None, not {limit!r}")
    return limit


def request_url(environ: Mapping[str, Any]) -> str:
    try:
        return request_uri(dict(environ))
    except KeyError:  # a hand-made environ without the URL's parts
        return str(environ.get("PATH_INFO", ""))
