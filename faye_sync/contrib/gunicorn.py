"""gunicorn hooks that close every WebSocket (1001) and event stream when a worker stops.

::

    gunicorn -c python:faye_sync.contrib.gunicorn -k gevent myapp:app

or, in your own ``gunicorn.conf.py``::

    from faye_sync.contrib.gunicorn import post_worker_init, worker_exit, worker_int

On SIGTERM (what systemd, Docker and Kubernetes send) gunicorn's worker stops
accepting and waits up to ``--graceful-timeout`` (30 s) for its requests to
finish; an open WebSocket or event stream never finishes by itself, so without
these hooks the client waits that long and then gets 1006. ``post_worker_init``
adds :func:`~faye_sync.close_all` in front of the worker's own SIGTERM handler:
every socket is sent a close frame at once, each session ends within a round
trip, every event stream ends with a ``retry`` that spreads its browser's return,
and the worker exits as soon as they have. SIGINT and SIGQUIT (``worker_int``) and a
worker's exit (``worker_exit``) close them too.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from ..blocking.live import close_all

__all__ = ["REASON", "post_worker_init", "worker_exit", "worker_int"]

#: The close reason sent with 1001.
REASON = "server shutting down"


def post_worker_init(worker: Any) -> None:
    """Close every WebSocket with 1001 first when the worker gets SIGTERM."""
    worker_sigterm = signal.getsignal(signal.SIGTERM)

    def close_then_stop(signum: int, frame: FrameType | None) -> None:
        close_all(1001, REASON)  # never blocks: safe in a signal handler
        if callable(worker_sigterm):
            worker_sigterm(signum, frame)

    signal.signal(signal.SIGTERM, close_then_stop)


def worker_int(worker: Any) -> None:
    """SIGINT or SIGQUIT: close every WebSocket with 1001."""
    close_all(1001, REASON)


def worker_exit(server: Any, worker: Any) -> None:
    """The worker is exiting: close whatever is still open with 1001."""
    close_all(1001, REASON)
