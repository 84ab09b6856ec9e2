"""The standard library's ``wsgiref.simple_server``, and Django's ``runserver`` built on it.

Both set ``SERVER_SOFTWARE`` to ``WSGIServer/0.2 CPython/X.Y`` and put no socket in
environ. wsgiref passes the handler's ``rfile`` as ``wsgi.input``; Django's
``ServerHandler`` wraps it in a ``LimitedStream`` that keeps only the bound
``rfile.read`` (``django/core/handlers/wsgi.py``), so the reader is its ``__self__``
(dwebsocket's ``.stream`` path no longer exists). The socket is under the reader.

After :meth:`Hijack.finish`, ``BaseHandler.run`` gets ``BrokenPipeError`` writing the
headers and returns quietly, so these servers write no access-log line for the
connection. The 101 must not go through ``start_response`` with its headers:
wsgiref asserts that ``Upgrade`` and ``Connection`` (hop-by-hop) are absent.
``wsgiref.simple_server.WSGIServer`` itself handles one connection at a time; use it
with ``socketserver.ThreadingMixIn`` (as Django's ``runserver`` does). Without it,
the server's error log says so once.
"""

from __future__ import annotations

import socket
import socketserver
import sys

from faye_sync.adapters.base import Adapter, Environ, drain_stream, server_software, socket_under
from faye_sync.adapters.operator import tell_operator

__all__ = ["WsgirefAdapter"]

ONE_AT_A_TIME_WARNING = (
    "this wsgiref server handles one connection at a time: while this WebSocket is open, "
    "every other client waits. Serve with a threading server "
    "(class Server(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer)), "
    "Django's runserver without --nothreading, or gunicorn -k gthread or -k gevent."
)

_checked_threading = False


def _serves_one_at_a_time() -> bool:
    """Whether the ``socketserver`` server up the stack handles requests in its own thread.

    The environ does not say (wsgiref sets ``wsgi.multithread`` even when the server
    never starts a thread), but the server is ``self`` in one of the frames that
    called the application: ``serve_forever``, or ``process_request_thread`` on a
    ``ThreadingMixIn`` server.
    """
    frame = sys._getframe(1)
    for _ in range(64):  # the server's frames are a dozen or so up
        server = frame.f_locals.get("self")
        if isinstance(server, socketserver.BaseServer):
            return not isinstance(server, socketserver.ThreadingMixIn)
        if frame.f_back is None:
            break
        frame = frame.f_back
    return False


class WsgirefAdapter(Adapter):
    """``wsgiref.simple_server`` and Django ``runserver``: the socket is under ``wsgi.input``."""

    name = "wsgiref"

    def recognises(self, environ: Environ) -> bool:
        # wsgiref.simple_server.WSGIRequestHandler.server_version, inherited by Django.
        return server_software(environ).startswith("WSGIServer/")

    def server_name(self, environ: Environ) -> str:
        stream_module = type(environ.get("wsgi.input")).__module__
        return "django" if stream_module.startswith("django.") else self.name

    def find_socket(self, environ: Environ) -> socket.socket | None:
        return socket_under(environ.get("wsgi.input"))

    def missing_socket_hint(self) -> str:
        return "wsgi.input is not the handler's reader over the connection socket"

    def take_buffered(self, environ: Environ, sock: socket.socket) -> bytes:
        return drain_stream(environ.get("wsgi.input"), sock)

    def before_hijack(self, environ: Environ) -> None:
        global _checked_threading
        if not _checked_threading:  # one look per process: the server does not change
            _checked_threading = True
            if _serves_one_at_a_time():
                tell_operator(environ, ONE_AT_A_TIME_WARNING, once=True)
