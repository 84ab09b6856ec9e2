"""The open connections of this process, WebSockets and event streams: what close_all ends.

A connection registers itself when it starts serving and leaves when it has
closed; the set holds it weakly, so one dropped without a close leaves too. The
engine (``connection.py``) and ``eventsource.py`` both register here, and nothing
here knows either: each brings its own ``go_away``.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Protocol

from ..protocol.base import validate_close_arguments

__all__ = ["GoesAway", "add", "close_all", "discard", "live_connections"]

log = logging.getLogger("faye_sync")


class GoesAway(Protocol):
    """What a registered connection does when the process shuts down."""

    def go_away(self, code: int, reason: str) -> object:
        """Start ending without blocking: a close frame, or the end of an event stream."""


# Plain weak references, not a WeakSet: ``weakref.ref(obj)`` without a callback is
# made once per object and shared (the ping sweep holds the same one), where a
# WeakSet makes its own, with a callback. References to connections collected
# unclosed are swept out as the set grows. No lock around add and discard: each is
# one set operation, atomic under the GIL; the sweep removes only dead references,
# in one operation too, so an add while it runs is not lost.
_live: set[weakref.ref[GoesAway]] = set()
_sweep_lock = threading.Lock()  # one sweep at a time
_sweep_at = 64  # the size at which add() next drops dead references


def add(connection: GoesAway) -> None:
    """Count ``connection`` among the open ones until :func:`discard`."""
    _live.add(weakref.ref(connection))
    if len(_live) >= _sweep_at:
        _sweep()


def _sweep() -> None:
    global _sweep_at
    with _sweep_lock:
        _live.difference_update([ref for ref in list(_live) if ref() is None])
        _sweep_at = max(64, 2 * len(_live))  # amortised: O(1) an add


def discard(connection: GoesAway) -> None:
    """``connection`` has closed; no error if it was not there."""
    _live.discard(weakref.ref(connection))


def live_connections() -> list[GoesAway]:
    """The connections open now (a copy: they may close while it is read)."""
    refs = list(_live)  # one operation, atomic under the GIL
    return [connection for connection in (ref() for ref in refs) if connection is not None]


def close_all(code: int = 1001, reason: str = "") -> int:
    """Start closing every open WebSocket and event stream of this process; return how many.

    Never blocks, so it may run from a signal handler or a gunicorn
    ``worker_int``/``worker_exit`` hook. Each WebSocket is sent a close frame
    with ``code`` and ``reason`` (1001 means "going away", RFC 6455 §7.4.1) and
    ends within its close timeout. Each event stream ends after what is queued,
    with a ``retry`` field that spreads its browser's return over the next
    seconds (see :meth:`EventSource.go_away <faye_sync.EventSource.go_away>`).

    Raises:
        ValueError: ``code`` may not be sent, or ``reason`` is too long.
    """
    validate_close_arguments(code, reason, strict=False)
    connections = live_connections()
    for connection in connections:
        try:
            connection.go_away(code, reason)
        except Exception:  # one broken connection must not spare the others
            log.exception("close_all: could not close %r", connection)
    return len(connections)
