"""Process-wide counts of WebSockets and event streams, for ``faye_sync.stats()``.

Open sockets and streams, and refusals by the connection limit, are counted
here as they happen (under a lock: they are rare); :func:`admit` checks the
limit in the same lock round. Messages and bytes are
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
    "Admitted",
    "add_gauge",
    "admit",
    "counts",
]

_lock = threading.Lock()
_open: Counter[str] = Counter()  # "websocket", "eventsource": open now
_open_total = 0  # both kinds, what the connection limit counts
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


class Admitted:
    """One admitted socket or stream, counted open until :meth:`release` (idempotent)."""

    __slots__ = ("_kind",)  # None once released

    _kind: str | None

    def release(
        self,
        code: int | None = None,
        messages_in: int = 0,
        messages_out: int = 0,
        bytes_in: int = 0,
        bytes_out: int = 0,
    ) -> bool:
        """Count it closed; True if this call did.

        A WebSocket gives its close ``code`` and its counts, kept in the totals in
        the same lock round.
        """
        global _open_total
        if self._kind is None:  # the second call (the finaliser after a close): no lock
            return False
        with _lock:
            kind = self._kind
            if kind is None:  # another thread released it meanwhile (mypy cannot know)
                return False  # type: ignore[unreachable]
            self._kind = None
            _open_total -= 1
            _open[kind] -= 1
            if code is not None:
                _closes[code] += 1
                totals = _totals
                totals[0] += messages_in
                totals[1] += messages_out
                totals[2] += bytes_in
                totals[3] += bytes_out
        return True


_new = object.__new__  # a class call would enter Admitted.__init__ from C


def admit(kind: str, limit: int | None) -> Admitted | None:
    """Count one more open ``kind`` if fewer than ``limit`` are open (None: no limit).

    Else count a refusal and return None. One lock round: the limit's check and
    the counts are one step (a handshake's admission used to take four).
    """
    global _open_total
    with _lock:
        if limit is None or _open_total < limit:
            _open_total += 1
            _open[kind] += 1
            admitted: Admitted = _new(Admitted)
            admitted._kind = kind
            return admitted
        _refused[kind] += 1
        return None


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
