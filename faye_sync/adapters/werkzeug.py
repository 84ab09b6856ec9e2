"""Werkzeug's development server (``flask run``, ``app.run()``, ``run_simple``).

Werkzeug ≥ 2.0 puts the handler's connection in ``environ["werkzeug.socket"]``
(``serving.py`` ``make_environ``). ``wsgi.input`` is the handler's ``rfile`` over that
socket, so a pipelined first frame is recovered from its buffer. Werkzeug always
answers ``Connection: close``, so after :meth:`Hijack.finish` its late header write
fails with ``EPIPE``, which it counts among ``connection_dropped_errors``, and it closes
the connection; the access log shows ``101``. The same holds under
``DebuggedApplication``: nothing is raised for it to render.
"""

from __future__ import annotations

import logging
import socket

from faye_sync.adapters.base import (
    Adapter,
    Environ,
    buffered_reader_of,
    drain_buffered_reader,
    socket_of,
)

__all__ = ["WerkzeugAdapter"]

log = logging.getLogger("faye_sync.adapters")


class WerkzeugAdapter(Adapter):
    """``werkzeug.serving``: the socket is ``environ["werkzeug.socket"]``."""

    name = "werkzeug"

    def recognises(self, environ: Environ) -> bool:
        return "werkzeug.socket" in environ

    def find_socket(self, environ: Environ) -> socket.socket | None:
        sock: socket.socket | None = environ.get("werkzeug.socket")
        return sock

    def missing_socket_hint(self) -> str:
        return "environ['werkzeug.socket'] is empty"

    def take_buffered(self, environ: Environ, sock: socket.socket) -> bytes:
        reader = buffered_reader_of(environ.get("wsgi.input"))
        if reader is None or socket_of(reader) is not sock:
            # A chunked request body (DechunkedInput) or a middleware hides the rfile;
            # a WebSocket handshake has no body, so nothing was read ahead in practice.
            log.debug("werkzeug: wsgi.input is not the connection's reader; no read-ahead")
            return b""
        return drain_buffered_reader(reader, sock)
