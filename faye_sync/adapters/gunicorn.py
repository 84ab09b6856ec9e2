"""gunicorn's ``sync``, ``gthread`` and ``gevent`` workers.

gunicorn documents ``environ["gunicorn.socket"]`` (``gunicorn/http/wsgi.py``
``default_environ``). It reads the request through an ``Unreader`` whose buffer keeps
whatever arrived past the headers; gunicorn ≥ 27 hands it out with
``Unreader.take_buffered()`` (added for ``Upgrade: h2c``), reached from
``wsgi.input`` (a ``Body``) through its reader. Older gunicorn has the same buffer as
``Unreader.buf`` (a ``BytesIO``), which is read the same way.

After :meth:`Hijack.finish`, gunicorn's late header write fails with ``EPIPE``,
logged at debug level ("Ignoring EPIPE"), the access log shows ``101`` and the worker
closes the connection. Raising ``StopIteration`` (flask-sock) or returning gunicorn's
``ALREADY_HANDLED`` instead loses the access-log line or lets the async workers parse
frames as the next keep-alive request.

The ``sync`` worker serves one connection at a time and the arbiter kills it after
``--timeout`` (default 30 s) without a heartbeat, writing ``500`` into the live stream:
hijacking there works, with a warning in the server's error log, once per process.
"""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import Callable

from faye_sync.adapters.base import Adapter, Environ, server_software
from faye_sync.adapters.operator import tell_operator

__all__ = ["GunicornAdapter"]

log = logging.getLogger("faye_sync.adapters")

SYNC_WORKER_WARNING = (
    "gunicorn's sync worker serves one connection at a time: this WebSocket blocks the "
    "whole worker, and the arbiter kills it after --timeout without a heartbeat. Run "
    "gunicorn with -k gthread --threads N, or -k gevent, for WebSockets."
)


def _is_cooperative(sock: object) -> bool:
    """gevent's or eventlet's socket: its worker serves many connections at once."""
    module = type(sock).__module__
    return module.startswith(("gevent", "eventlet"))


def _buffer_taker(environ: Environ) -> Callable[[], bytes] | None:
    """``take_buffered`` of the request's ``Unreader``, or an equivalent for older gunicorn."""
    body_reader = getattr(environ.get("wsgi.input"), "reader", None)
    # LengthReader and EOFReader keep the unreader; ChunkedReader keeps it on .req.
    unreader = getattr(body_reader, "unreader", None) or getattr(
        getattr(body_reader, "req", None), "unreader", None
    )
    take_buffered: Callable[[], bytes] | None = getattr(unreader, "take_buffered", None)
    if take_buffered is not None:
        return take_buffered
    buffer = getattr(unreader, "buf", None)
    if isinstance(buffer, io.BytesIO) and unreader is not None:
        owner = unreader

        def take_from_older_gunicorn() -> bytes:
            data = buffer.getvalue()
            owner.buf = io.BytesIO()
            return data

        return take_from_older_gunicorn
    return None


class GunicornAdapter(Adapter):
    """gunicorn's HTTP/1.1 workers: the socket is ``environ["gunicorn.socket"]``."""

    name = "gunicorn"

    def recognises(self, environ: Environ) -> bool:
        return "gunicorn.socket" in environ

    def server_name(self, environ: Environ) -> str:
        module = type(environ.get("gunicorn.socket")).__module__
        if module.startswith(("gevent", "eventlet")):
            return "gunicorn." + module.partition(".")[0]
        # The async and threaded workers set wsgi.multithread; sync leaves base_environ's False.
        return "gunicorn.gthread" if environ.get("wsgi.multithread") else "gunicorn.sync"

    def find_socket(self, environ: Environ) -> socket.socket | None:
        sock: socket.socket | None = environ.get("gunicorn.socket")
        return sock

    def missing_socket_hint(self) -> str:
        return "environ['gunicorn.socket'] is empty"

    def take_buffered(self, environ: Environ, sock: socket.socket) -> bytes:
        take = _buffer_taker(environ)
        if take is None:
            log.debug("gunicorn: wsgi.input has no Unreader; bytes read ahead are lost")
            return b""
        return take()

    def before_hijack(self, environ: Environ) -> None:
        is_sync_worker = (
            server_software(environ).startswith("gunicorn/")
            and not environ.get("wsgi.multithread")
            and not _is_cooperative(environ.get("gunicorn.socket"))
        )
        if is_sync_worker:
            tell_operator(environ, SYNC_WORKER_WARNING, once=True)
