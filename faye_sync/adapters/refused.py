"""Requests and servers where a connection cannot be taken over, and what to say instead.

Each refusal is a :class:`~faye_sync.exceptions.HijackError` whose message names the
server (or the request's problem) and the fix, and whose ``status`` is what the client
should be answered with. Nothing here touches the socket.
"""

from __future__ import annotations

from faye_sync.adapters.base import Environ, server_software
from faye_sync.exceptions import HijackError

__all__ = ["SUPPORTED_SERVERS", "refusal", "unsupported_server"]

#: Where hijacking works, for messages.
SUPPORTED_SERVERS = (
    "werkzeug's dev server, gevent.pywsgi, gunicorn (-k gthread, gevent, gevent_pywsgi "
    "or sync), wsgiref with ThreadingMixIn, Django runserver and eventlet.wsgi"
)

# The fix for a deployment whose server cannot hand out its connections.
_RUN_UNDER = (
    "serve the WebSocket endpoint with gunicorn (-k gthread --threads N, or -k gevent) "
    "or gevent.pywsgi.WSGIServer, behind your proxy with WebSocket upgrades enabled; "
    "EventSource streams need no hijack and work here"
)


def _refuse_request(environ: Environ) -> HijackError | None:
    method = environ.get("REQUEST_METHOD", "")
    if method != "GET":
        # RFC 6455 §4.1: the opening handshake is a GET.
        return HijackError(
            f"a WebSocket handshake must be a GET request, not {method or 'none'}",
            status=405,
            phrase="Method Not Allowed",
        )
    protocol = environ.get("SERVER_PROTOCOL", "")
    if protocol == "HTTP/1.1":
        return None
    if "eventlet.input" in environ and protocol == "HTTP/1.0":
        # eventlet.wsgi writes "HTTP/1.0" whatever the request line said (wsgi.py
        # get_environ) and speaks nothing newer than HTTP/1.1: the value says nothing.
        return None
    if str(protocol).startswith("HTTP/2") or str(protocol).startswith("HTTP/3"):
        # The server's socket carries every stream of the connection: taking it over
        # would kill the others. WebSockets over HTTP/2 (RFC 8441) are not supported.
        return HijackError(
            f"{protocol} multiplexes requests over one connection, so it cannot be handed "
            "to a WebSocket; serve this endpoint over HTTP/1.1 (for gunicorn, a listener "
            "without --http-protocols h2)",
            status=505,
            phrase="HTTP Version Not Supported",
        )
    return HijackError(
        f"a WebSocket handshake needs HTTP/1.1, not {protocol or 'an unknown protocol'}",
        status=505,
        phrase="HTTP Version Not Supported",
    )


def _refuse_server(environ: Environ) -> HijackError | None:
    software = server_software(environ)
    if software.startswith("waitress") or "waitress.client_disconnected" in environ:
        # waitress owns the socket in its I/O thread and gives the app a body buffer
        # (task.py); it also asserts on Upgrade/Connection headers (hop-by-hop).
        return HijackError(f"waitress cannot hand a WebSocket its socket; {_RUN_UNDER}")
    if "mod_wsgi.version" in environ:
        # "mod_wsgi cannot serve a WebSocket endpoint" (its docs): output passes
        # through Apache's filters.
        return HijackError(
            "mod_wsgi cannot hand a WebSocket its socket; run the WebSocket endpoint "
            "under gunicorn -k gthread or -k gevent and forward to it from Apache with "
            "ProxyPass … upgrade=websocket"
        )
    if "uwsgi.version" in environ:
        # uwsgi.connection_fd() exists, but the bytes uWSGI has read ahead are out of
        # reach and its routers (--http without --http-websockets, nginx uwsgi_pass)
        # never forward frames after the 101.
        return HijackError(
            "uWSGI cannot hand a WebSocket its socket; use uWSGI's own websocket API, "
            f"or {_RUN_UNDER}"
        )
    return None


def refusal(environ: Environ) -> HijackError | None:
    """Why this request cannot be hijacked, or ``None`` if nothing rules it out.

    The request is checked first (a WebSocket handshake is an HTTP/1.1 GET), then the
    servers known to keep their sockets to themselves.
    """
    get = environ.get
    software = get("SERVER_SOFTWARE")
    if (
        get("REQUEST_METHOD") == "GET"
        and get("SERVER_PROTOCOL") == "HTTP/1.1"
        and "waitress.client_disconnected" not in environ
        and "mod_wsgi.version" not in environ
        and "uwsgi.version" not in environ
        and not (isinstance(software, str) and software.startswith("waitress"))
    ):
        return None  # the usual request: what the two checks below find, at less cost
    return _refuse_request(environ) or _refuse_server(environ)


def unsupported_server(environ: Environ) -> HijackError:
    """The error for a server no adapter recognises."""
    software = server_software(environ) or "unknown (no SERVER_SOFTWARE)"
    input_type = type(environ.get("wsgi.input")).__qualname__
    return HijackError(
        f"faye_sync cannot find the connection socket on this WSGI server "
        f"(SERVER_SOFTWARE {software}, wsgi.input {input_type}); it supports "
        f"{SUPPORTED_SERVERS}"
    )
