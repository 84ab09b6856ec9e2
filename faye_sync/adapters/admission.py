"""Admission control: a per-process cap on open WebSockets and event streams.

Each open WebSocket or event stream holds a thread (or greenlet) of the server
until it closes. On a server with a fixed pool of threads, sockets that fill
the pool starve every ordinary request of the worker. Above the cap, a request
is answered ``503 Service Unavailable`` with ``Retry-After`` at once, instead
of taking a thread.

The default cap comes from the server. On gunicorn's gthread worker it leaves a
quarter of ``--threads`` (at least one) for ordinary requests: ``--threads 4``
allows 3 sockets, ``--threads 100`` allows 75; with one thread (gthread's default)
there is nothing to share, so no cap, and a warning. gunicorn puts no setting in the
environ, so the worker is found on the request's own call stack (its
``handle_request`` frame), once per process, and the cap is logged then. Other
servers (gevent's greenlets, werkzeug's and wsgiref's thread per connection)
have no pool to starve and get no default cap. :func:`set_connection_limit`
sets one for every server.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from types import FrameType
from typing import Any

from faye_sync.adapters.operator import tell_operator
from faye_sync.blocking import stats

__all__ = [
    "REFUSAL_STATUS",
    "Slot",
    "admit",
    "connection_limit",
    "refusal_headers",
    "set_connection_limit",
]

log = logging.getLogger("faye_sync")

REFUSAL_STATUS = "503 Service Unavailable"
REFUSAL_MESSAGE = "too many open WebSockets and event streams in this process; retry later"
_RETRY_AFTER = 5  # seconds

_AUTO = "auto"
_lock = threading.Lock()
_limit: int | str | None = _AUTO  # set_connection_limit()'s value
_retry_after = _RETRY_AFTER
_derived: tuple[int, int | None] | None = None  # (pid, limit) found from the server
_pid = os.getpid()  # this process's, kept up to date across fork: no system call a request


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):  # no fork (Windows): the pid never changes
    os.register_at_fork(after_in_child=_forked)
_warned_full = False

#: One admitted socket or stream; ``release()`` it when it closes (idempotent).
Slot = stats.Admitted


def set_connection_limit(
    limit: int | str | None = _AUTO, *, retry_after: int = _RETRY_AFTER
) -> None:
    """Cap the open WebSockets and event streams of this process.

    Args:
        limit: the most open at once; ``None`` for no cap; ``"auto"`` (the
            default) to derive it from the server (gunicorn gthread only).
        retry_after: seconds the ``Retry-After`` header of a refusal asks for.

    Raises:
        ValueError: ``limit`` is negative, or ``retry_after`` is not positive.
    """
    global _limit, _retry_after, _derived
    if limit is not None and limit != _AUTO and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be an int >= 0, None or 'auto', not {limit!r}")
    if not isinstance(retry_after, int) or retry_after <= 0:
        raise ValueError(f"retry_after must be a positive number of seconds, not {retry_after!r}")
    with _lock:
        _limit, _retry_after, _derived = limit, retry_after, None


def connection_limit(environ: Mapping[str, Any] | None = None) -> int | None:
    """The cap in force for requests like ``environ`` (``None``: no cap)."""
    if _limit != _AUTO:
        return _limit if isinstance(_limit, int) else None
    derived = _derived
    if derived is not None and derived[0] == _pid:
        return derived[1]
    if environ is None:
        return None
    return _derive(environ)


def refusal_headers() -> list[tuple[str, str]]:
    """The headers of a refusal: ``Retry-After``."""
    return [("Retry-After", str(_retry_after))]


def admit(environ: Mapping[str, Any], kind: str) -> Slot | None:
    """A slot for a new WebSocket or event stream, or None if the cap is reached.

    Args:
        environ: the request's WSGI environ (to find the server's default cap).
        kind: ``"websocket"`` or ``"eventsource"``, for ``faye_sync.stats()``.
    """
    global _warned_full
    derived = _derived  # the cap found from the server, without connection_limit's call
    if _limit == _AUTO and derived is not None and derived[0] == _pid:
        limit = derived[1]
    else:
        limit = connection_limit(environ)
    slot = stats.admit(kind, limit)
    if slot is not None:
        return slot
    with _lock:
        first_refusal, _warned_full = not _warned_full, True
    if first_refusal:
        log.warning(
            "%d WebSockets and event streams are open, the most this process "
            "allows: further ones get 503 with Retry-After (logged once; see "
            "faye_sync.set_connection_limit)",
            limit,
        )
    return None


def _derive(environ: Mapping[str, Any]) -> int | None:
    """The default cap for this process, found from the server once and logged."""
    global _derived
    threads = _gunicorn_threads(environ)
    # One thread (gthread's default) leaves nothing to share: a cap of 0 would refuse
    # every socket, so there is none, and the operator is told, as for the sync worker.
    limit = None if threads is None or threads < 2 else threads - max(1, threads // 4)
    with _lock:
        _derived = (_pid, limit)
    if threads == 1:
        tell_operator(
            environ,
            "gunicorn gthread worker with one thread (--threads 1): each open WebSocket "
            "or event stream holds the worker's only thread; use --threads N or -k gevent",
            once=True,
        )
    elif threads is not None:
        log.info(
            "at most %d open WebSockets and event streams in this gunicorn "
            "gthread worker, leaving %d of its %d threads (--threads) for other requests",
            limit,
            threads - (limit or 0),
            threads,
        )
    return limit


def _gunicorn_threads(environ: Mapping[str, Any]) -> int | None:
    """``--threads`` of the gunicorn gthread worker serving this request, or None."""
    software = environ.get("SERVER_SOFTWARE")
    if not (isinstance(software, str) and software.startswith("gunicorn/")):
        return None
    if not environ.get("wsgi.multithread"):
        return None  # sync worker: one connection at a time, warned about elsewhere
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        worker = frame.f_locals.get("self")
        if type(worker).__module__ == "gunicorn.workers.gthread":
            threads = getattr(getattr(worker, "cfg", None), "threads", None)
            return threads if isinstance(threads, int) and threads > 0 else None
        frame = frame.f_back
    return None
