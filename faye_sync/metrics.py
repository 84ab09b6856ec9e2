"""``faye_sync.stats()``: what this process's WebSockets and event streams are doing.

::

    >>> import faye_sync
    >>> faye_sync.stats().websockets_open
    0

Counting costs an integer add where a message or a read or write passes (see
``benchmarks/micro.py --connection``); the rest is counted when sockets open and
close. Numbers are per process: with several workers, sum them (the Prometheus
exporter, :mod:`faye_sync.contrib.prometheus`, is per process too, as
``prometheus_client`` expects). Other parts add gauges with :func:`add_gauge`,
e.g. the hub's lag and queue depths.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .blocking import stats as counters
from .blocking.live import live_connections
from .websocket import WebSocket

__all__ = ["Stats", "add_gauge", "remove_gauge", "stats"]

log = logging.getLogger("faye_sync")


@dataclass(frozen=True)
class Stats:
    """A snapshot of the process's counters (``dataclasses.asdict`` makes it a dict).

    Attributes:
        websockets_open: server WebSockets open now.
        event_streams_open: event streams open now (made and not yet closed).
        messages_in, messages_out: WebSocket messages received and sent since
            the process started (server side; clients are not counted).
        bytes_in, bytes_out: WebSocket bytes read from and written to the
            sockets, frame headers and control frames included.
        closes: closed WebSockets by close code (1000, 1001, 1006, …).
        refused: handshakes and streams answered 503 by the connection limit,
            by kind (``"websocket"``, ``"eventsource"``).
        gauges: the values of the gauges added with :func:`add_gauge`.
    """

    websockets_open: int = 0
    event_streams_open: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    closes: dict[int, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as a plain dict (for JSON)."""
        return dataclasses.asdict(self)


def add_gauge(name: str, read: Callable[[], float]) -> None:
    """Report ``read()`` (a number) as ``gauges[name]`` in every :func:`stats`.

    A gauge of the same name is replaced; one that raises is left out of that
    snapshot (and logged at debug level).
    """
    counters.add_gauge(name, read)


def remove_gauge(name: str) -> None:
    """Stop reporting a gauge; no error if it is absent."""
    counters.GAUGES.pop(name, None)


def stats() -> Stats:
    """The counters now: open sockets and streams, messages, bytes, closes, refusals."""
    totals = counters.counts()
    live = [c for c in live_connections() if isinstance(c, WebSocket)]
    # Live connections' own counts, read without their locks: each is an int.
    messages_in = totals["messages_in"] + sum(c._messages_in for c in live)
    messages_out = totals["messages_out"] + sum(c._messages_out for c in live)
    bytes_in = totals["bytes_in"] + sum(c._bytes_in for c in live)
    bytes_out = totals["bytes_out"] + sum(c._written for c in live)
    gauges: dict[str, float] = {}
    for name, read in list(counters.GAUGES.items()):
        try:
            gauges[name] = float(read())
        except Exception:
            log.debug("gauge %s failed", name, exc_info=True)
    return Stats(
        websockets_open=totals["open"].get("websocket", 0),
        event_streams_open=totals["open"].get("eventsource", 0),
        messages_in=messages_in,
        messages_out=messages_out,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        closes=totals["closes"],
        refused=totals["refused"],
        gauges=gauges,
    )
