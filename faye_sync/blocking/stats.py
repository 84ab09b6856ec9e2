"""Process-wide counts of WebSockets and event streams, for ``faye_sync.stats()``.

Open sockets and streams, and refusals by the connection limit, are counted
here as they happen (under a lock: they are rare). Messages and bytes are
counted by each connection on its own (an integer add, no lock: a connection's
reads happen on one thread at a time and its writes under its send lock) and
added here when it closes, so that :func:`snapshot` adds the live ones to these
totals.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = [
    "GAUGES",
    "add_gauge",
    "closed",
    "counts",
    "opened",
    "refused",
    "retire",
]

_lock = threading.Lock()
_open: Counter[str] = Counter()  # "websocket", "eventsource": open now
_refused: Counter[str] = Counter()  # by the connection limit
_closes: Counter[int] = Counter()  # WebSocket closes by code


# Messages in and out, bytes in and out, of the connections that have closed. A list:
# adding to a class's attributes (the ``Totals`` class before) cost four times as much.
_totals = [0, 0, 0, 0]


#: Named callables returning a number, read by ``faye_sync.stats()`` (the hub
#: registers its lag and queue depths here). A gauge that raises is skipped.
GAUGES: dict[str, Callable[[], float]] = {}


def add_gauge(name: str, read: Callable[[], float]) -> None:
    """Report ``read()`` as ``name`` in every ``faye_sync.stats()``; replaces a same-named one."""
    GAUGES[name] = read


def opened(kind: str) -> None:
    with _lock:
        _open[kind] += 1


def closed(kind: str) -> None:
    with _lock:
        _open[kind] -= 1


def refused(kind: str) -> None:
    with _lock:
        _refused[kind] += 1


def retire(code: int, messages_in: int, messages_out: int, bytes_in: int, bytes_out: int) -> None:
    """A WebSocket closed with ``code``: keep its counts in the totals."""
    with _lock:
        _closes[code] += 1
        totals = _totals
        totals[0] += messages_in
        totals[1] += messages_out
        totals[2] += bytes_in
        totals[3] += bytes_out


def counts() -> dict[str, Any]:
    """The counters kept here, copied under the lock."""
    with _lock:
        return {
            "open": dict(_open),
            "refused": dict(_refused),
            "closes": dict(_closes),
            "messages_in": _totals[0],
            "messages_out": _totals[1],
            "bytes_in": _totals[2],
            "bytes_out": _totals[3],
        }
