"""``eventlet.wsgi`` (deprecated upstream; gunicorn removed its eventlet worker in 26.0).

eventlet keeps the connection in ``environ["eventlet.input"]`` and hands it out with
``get_socket()``; the input's ``.rfile`` is the buffered reader over it. Two steps are
eventlet's own: ``environ["eventlet.set_idle"]()`` so a graceful stop does not wait
for the WebSocket to end, and the thread-local ``WSGI_LOCAL.already_handled`` flag,
which ``eventlet.wsgi`` checks after iterating the app's result to skip its response
(without it, its ``write()`` of a response with no ``start_response`` asserts). The
flag survives middleware that wraps the result, unlike the old ``ALREADY_HANDLED``
sentinel (eventlet#543). eventlet is never imported here: the flag is set on the
already-loaded ``eventlet.wsgi`` module.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable

from faye_sync.adapters.base import Adapter, Environ, buffered_reader_of, drain_buffered_reader

__all__ = ["EventletAdapter"]


def _mark_already_handled() -> None:
    eventlet_wsgi = sys.modules.get("eventlet.wsgi")
    local = getattr(eventlet_wsgi, "WSGI_LOCAL", None)
    if local is not None:
        local.already_handled = True


class EventletAdapter(Adapter):
    """``eventlet.wsgi``: the socket is ``environ["eventlet.input"].get_socket()``."""

    name = "eventlet"

    def recognises(self, environ: Environ) -> bool:
        return "eventlet.input" in environ

    def find_socket(self, environ: Environ) -> socket.socket | None:
        get_socket = getattr(environ.get("eventlet.input"), "get_socket", None)
        sock: socket.socket | None = get_socket() if callable(get_socket) else None
        return sock

    def missing_socket_hint(self) -> str:
        return "environ['eventlet.input'] has no get_socket()"

    def take_buffered(self, environ: Environ, sock: socket.socket) -> bytes:
        reader = buffered_reader_of(environ.get("eventlet.input"))
        return b"" if reader is None else drain_buffered_reader(reader, sock)

    def before_hijack(self, environ: Environ) -> None:
        set_idle = environ.get("eventlet.set_idle")
        if callable(set_idle):
            set_idle()

    def on_finish(self, environ: Environ) -> Callable[[], None] | None:
        return _mark_already_handled
