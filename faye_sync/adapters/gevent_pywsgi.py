"""gevent's ``pywsgi`` server, standalone or as gunicorn's ``gevent_pywsgi`` worker.

pywsgi puts no socket in environ, but for requests that ask for an upgrade it passes
its raw ``rfile`` as ``wsgi.input`` (``pywsgi.py`` ``get_environ``: "Input refuses to
read if the data isn't chunked, and there is no content_length"); other requests get
an ``Input`` holding it as ``.rfile``. The socket is under that reader. gunicorn's
pywsgi handler also sets ``environ["gunicorn.sock"]`` (note: ``.sock``, not
``.socket``; ``gunicorn/workers/ggevent.py``), preferred when present.

After :meth:`Hijack.finish`, pywsgi's header write fails with ``EPIPE`` (in its
``ignored_socket_errors``), it marks the connection closed and its keep-alive loop
ends, instead of reading frames as the next request (the ``Invalid http version``
and never-closed connection flask-sock gets there); the reader, closed once drained,
ends it too.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from typing import Any

from faye_sync.adapters.base import (
    Adapter,
    Environ,
    Hijack,
    buffered_reader_of,
    drain_buffered_reader,
    hijacked,
    socket_of,
    socket_under,
)

__all__ = ["GeventPyWSGIAdapter"]


class GeventPyWSGIAdapter(Adapter):
    """``gevent.pywsgi``: the socket is under ``wsgi.input`` (or ``gunicorn.sock``)."""

    name = "gevent.pywsgi"

    def recognises(self, environ: Environ) -> bool:
        # pywsgi's SERVER_SOFTWARE is "gevent/X.Y Python/X.Y"; gunicorn's pywsgi
        # worker appends " gunicorn/X" and adds the gunicorn.sock key.
        if "gunicorn.sock" in environ:
            return True
        software = environ.get("SERVER_SOFTWARE")  # server_software(), without its call
        return isinstance(software, str) and software.startswith("gevent/")

    def hijack(self, environ: Environ) -> Hijack:
        """:meth:`Adapter.hijack`, in one step on the standalone server (its usual shape)."""
        reader = environ.get("wsgi.input")
        if type(reader) is io.BufferedReader and "gunicorn.sock" not in environ:
            hijacked = hijack_reader(reader)
            if hijacked is not None:
                return hijacked
        return super().hijack(environ)  # raises if there is no socket, saying where

    def server_name(self, environ: Environ) -> str:
        return "gunicorn.gevent_pywsgi" if "gunicorn.sock" in environ else self.name

    def find_socket(self, environ: Environ) -> socket.socket | None:
        sock: socket.socket | None = environ.get("gunicorn.sock")
        if sock is not None:
            return sock
        return socket_under(environ.get("wsgi.input"))

    def missing_socket_hint(self) -> str:
        return "wsgi.input is not pywsgi's reader over the connection socket"

    def take_buffered(self, environ: Environ, sock: socket.socket) -> bytes:
        reader = buffered_reader_of(environ.get("wsgi.input"))
        if reader is None or socket_of(reader) is not sock:
            return b""
        # Closing the drained reader frees its 8 KiB buffer for as long as the
        # WebSocket lives (a third of an idle connection's memory). The socket
        # stays open (makefile counts its readers), and pywsgi, which checks
        # ``rfile.closed`` after each response, then ends the connection.
        return _drain_and_close(reader, sock)


def hijack_reader(reader: io.BufferedReader) -> Hijack | None:
    """The standalone server's connection, from its reader passed as ``wsgi.input``.

    What find_socket, take_buffered, the timeout reset and server_name do for that
    shape, without looking anything up twice; None if there is no socket under it.
    """
    sock = socket_of(reader)
    if sock is None:
        return None
    buffered = _drain_and_close(reader, sock)
    # gevent's settimeout is a Python call: skipped where pywsgi set none (its default).
    if getattr(sock, "timeout", 0) is not None:
        sock.settimeout(None)
    return hijacked(sock, buffered, GeventPyWSGIAdapter.name)


def _drain_and_close(reader: io.BufferedReader, sock: socket.socket) -> bytes:
    """:func:`drain_buffered_reader`, then close ``reader`` (see take_buffered)."""
    raw = reader.raw
    if type(raw) is not socket.SocketIO or getattr(raw, "_sock", None) is not sock:
        buffered = drain_buffered_reader(reader, sock)
    else:
        # The reader finds ``readinto`` on the raw stream at each read: an instance
        # attribute comes before SocketIO's method. A C function (an empty tuple's
        # ``count``: 0, the end of stream) stands in for it, so that peek() returns
        # the buffer as it is and never enters SocketIO's readinto and readable()
        # (two Python frames, from C). Not in drain_buffered_reader: the new key
        # gives the SocketIO a dict of its own (208 bytes) for as long as the server
        # keeps it, which closing it (IOBase's closed flag) does anyway.
        raw.readinto = _END_OF_STREAM  # type: ignore[method-assign,assignment]
        try:
            peeked = reader.peek()
        finally:
            del raw.readinto
        buffered = reader.read(len(peeked)) if peeked else b""
    reader.close()
    return buffered


_END_OF_STREAM: Callable[[Any], int] = ().count
