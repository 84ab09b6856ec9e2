"""Taking the connection over from the WSGI server (layer L3).

:func:`hijack` finds the socket of the current request on the server that called the
application, recovers the bytes the server had already read past the request headers,
and returns a :class:`~faye_sync.adapters.base.Hijack` whose
:meth:`~faye_sync.adapters.base.Hijack.finish` ends the WSGI call without the server
writing anything more. A refusal raises
:class:`~faye_sync.exceptions.HijackError` before anything is touched, so a caller can
still answer with an HTTP error (``error.respond(start_response)``).

Servers are told apart by the environ keys they document and by ``SERVER_SOFTWARE``;
importing this package imports no server.
"""

from __future__ import annotations

import io

from faye_sync.adapters.base import Adapter, Environ, Hijack
from faye_sync.adapters.eventlet import EventletAdapter
from faye_sync.adapters.gevent_pywsgi import GeventPyWSGIAdapter, hijack_reader
from faye_sync.adapters.gunicorn import GunicornAdapter
from faye_sync.adapters.refused import refusal, unsupported_server
from faye_sync.adapters.testing import TestingAdapter
from faye_sync.adapters.werkzeug import WerkzeugAdapter
from faye_sync.adapters.wsgiref import WsgirefAdapter

__all__ = ["ADAPTERS", "Hijack", "hijack"]

#: Tried in order; the first that recognises the environ is used. gunicorn's pywsgi
#: worker says "gevent/…" in SERVER_SOFTWARE and has its own key, so order only
#: matters for environs that carry several servers' keys.
ADAPTERS: tuple[Adapter, ...] = (
    WerkzeugAdapter(),
    GeventPyWSGIAdapter(),
    GunicornAdapter(),
    EventletAdapter(),
    WsgirefAdapter(),
    TestingAdapter(),
)


def hijack(environ: Environ) -> Hijack:
    """Take the request's connection over from the WSGI server.

    The caller writes the ``101`` response itself with ``sendall`` (never through
    ``start_response``), runs the session on ``hijack.socket`` after feeding it
    ``hijack.buffered``, and returns ``hijack.finish(start_response)`` from the WSGI
    application.

    Args:
        environ: The WSGI environ of the request.

    Returns:
        The socket (blocking, no timeout), the read-ahead bytes and the teardown.

    Raises:
        HijackError: The request is not an HTTP/1.1 GET, or this server does not hand
            out its connections (waitress, mod_wsgi, uWSGI, unknown servers); nothing
            has been touched then.
    """
    get = environ.get
    reader = get("wsgi.input")
    if type(reader) is io.BufferedReader:
        # gevent.pywsgi's own reader for an upgrade: its usual shape, told apart here at
        # once by what refusal() and the adapters' recognises() would each look up.
        software = get("SERVER_SOFTWARE")
        if (
            type(software) is str
            and software.startswith("gevent/")
            and get("REQUEST_METHOD") == "GET"
            and get("SERVER_PROTOCOL") == "HTTP/1.1"
            and "werkzeug.socket" not in environ  # WerkzeugAdapter comes first
            and "gunicorn.sock" not in environ
            and "waitress.client_disconnected" not in environ
            and "mod_wsgi.version" not in environ
            and "uwsgi.version" not in environ
        ):
            hijacked = hijack_reader(reader)
            if hijacked is not None:
                return hijacked
    error = refusal(environ)
    if error is not None:
        raise error
    for adapter in ADAPTERS:
        if adapter.recognises(environ):
            return adapter.hijack(environ)
    raise unsupported_server(environ)
