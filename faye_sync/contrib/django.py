"""Django: WebSocket views and EventSource responses, for Django served over WSGI.

::

    from faye_sync.contrib.django import event_source_response, websocket_view

    @websocket_view(ping=20)                  # any WebSocket option
    def echo(request, ws):                    # urls.py: path("ws/echo", echo)
        for message in ws:
            ws.send(message)

    def clock(request):
        es, response = event_source_response(request, retry=2)
        es.spawn(tick, es)                    # runs once the stream opens
        return response

A WebSocket view runs in the request's own thread or greenlet, after the
middleware's request phase, for the whole session. When the session is over
(the view returned and the close handshake finished) the socket is shut down
and the view returns a 101 response to the middleware, so the response phase,
``request_finished`` and the server's access log happen as for any request, and
nothing they write reaches the client. A view that raises closes the WebSocket
with 1011 first; the exception then goes through Django's handling (logged as
usual) and the error page goes nowhere.

Database connections: Django opens them per thread and closes them when a
request ends, which for a WebSocket is when the socket closes. So the thread's
connections are closed before the view gets the socket, whatever
``CONN_MAX_AGE`` says, and ``close_old_connections`` runs again when the view
returns. A view that uses the ORM during a long session should call
``django.db.close_old_connections()`` after each piece of work. The view is
never wrapped in ``ATOMIC_REQUESTS``: a transaction held open for a socket's
life would pin its connection.

Servers: ``manage.py runserver``, gunicorn ``-k gthread`` or ``-k gevent``,
gevent.pywsgi. Elsewhere (waitress, mod_wsgi, uWSGI) a WebSocket view answers
with the :class:`~faye_sync.exceptions.HijackError`'s status (501) and its
message, which names the fix, and logs it once. Under ASGI, use Channels.
EventSource responses work on every WSGI server.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, overload

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.utils.http import is_same_domain

from ..eventsource import EventSource, EventSourceEvent
from ..protocol.base import CLOSING
from ..websocket import WebSocket
from ._common import (
    NOT_A_WEBSOCKET,
    WEBSOCKET_OPTIONS,
    close_after_failure,
    finish_session,
    is_same_host,
    same_origin_only,
)

__all__ = [
    "WebSocketResponse",
    "event_source_response",
    "release_database_connections",
    "websocket_view",
]

log = logging.getLogger(__name__)

WebSocketView = Callable[..., object]
View = Callable[..., HttpResponse]


class WebSocketResponse(HttpResponse):
    """What a WebSocket view returns once its session is over: a bodiless 101.

    The socket has been shut down already: Django's handler reports
    ``101 Switching Protocols`` to the server (for its access log) and the
    server's attempt to write the headers fails quietly.
    """

    status_code = 101

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__()
        self.websocket = websocket


class _EveryDatabase(set[str]):
    """``view._non_atomic_requests`` meaning "all of them" (Django tests ``alias in``)."""

    def __contains__(self, alias: object) -> bool:
        return True


@overload
def websocket_view(view: WebSocketView, /) -> View: ...


@overload
def websocket_view(view: None = None, /, **options: Any) -> Callable[[WebSocketView], View]: ...


def websocket_view(
    view: WebSocketView | None = None, /, **options: Any
) -> View | Callable[[WebSocketView], View]:
    """Make ``view(request, ws, *args, **kwargs)`` a Django view serving a WebSocket.

    Use as ``@websocket_view`` or ``@websocket_view(**options)``; on a
    class-based view's method, through ``method_decorator``. The view gets the
    :class:`~faye_sync.websocket.WebSocket` after the handshake; in blocking
    style it loops over it, in event style it attaches listeners and returns
    (the session then runs before the decorated view returns). Its return value
    is ignored.

    * A request that is not a WebSocket upgrade gets ``400 Bad Request``
      saying so.
    * A handshake faye_sync rejects (a bad key or version, an origin not in
      ``allowed_origins``) gets faye's HTTP error; the view is not called.
    * A server that cannot hand over its socket gets the ``HijackError``'s
      status (501) and message, logged once.

    Args:
        view: the view, when used without arguments.
        **options: :class:`~faye_sync.websocket.WebSocket` options
            (``protocols``, ``extensions``, ``max_length``, ``ping``,
            ``ping_timeout``, ``close_timeout``, ``allowed_origins``, …).
            Browsers send cookies with WebSocket handshakes from any site,
            so unless ``allowed_origins`` is given only the request's own
            host (vouched for by ``ALLOWED_HOSTS``), ``CSRF_TRUSTED_ORIGINS``
            and clients without ``Origin`` are accepted; others get 403
            before the view runs (faye accepts every origin).

    Raises:
        TypeError: an unknown option, or an ``async def`` view (a WebSocket
            here lives in the request's thread; under ASGI use Channels).
    """
    unknown = sorted(set(options) - WEBSOCKET_OPTIONS)
    if unknown:
        raise TypeError(
            f"websocket_view(): unknown WebSocket option(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(sorted(WEBSOCKET_OPTIONS))}"
        )

    def decorate(view: WebSocketView) -> View:
        if inspect.iscoroutinefunction(view):
            raise TypeError(
                f"websocket_view() needs a plain function, not async {view.__qualname__}: "
                "the WebSocket runs in the request's own thread"
            )

        @functools.wraps(view)
        def websocket_endpoint(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            return _serve(view, options, request, args, kwargs)

        # ATOMIC_REQUESTS would hold a transaction, and its connection, for the
        # socket's whole life; release_database_connections must not break one.
        websocket_endpoint._non_atomic_requests = _EveryDatabase()  # type: ignore[attr-defined]
        return websocket_endpoint

    return decorate if view is None else decorate(view)


def _serve(
    view: WebSocketView,
    options: Mapping[str, Any],
    request: HttpRequest,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> HttpResponse:
    environ = request.META
    if not WebSocket.is_websocket(environ):
        return HttpResponseBadRequest(NOT_A_WEBSOCKET, content_type="text/plain; charset=utf-8")
    options = same_origin_only(options, request.headers.get("Origin"), _trusts(request))
    ws = WebSocket(environ, None, **options)  # a server that keeps its socket: a 501 below
    if ws.ready_state < CLOSING:  # accepted: a rejected handshake is already closing
        release_database_connections()
        try:
            view(request, ws, *args, **kwargs)
            ws.run()  # an event-style view returns at once; its session runs here
        except Exception:
            close_after_failure(ws)
            raise
        finally:
            _close_old_connections()
    return _finish(ws)


def _trusts(request: HttpRequest) -> Callable[[str], bool]:
    """Django's own rule for a trusted ``Origin`` (``CsrfViewMiddleware``'s).

    The request's host (which ``ALLOWED_HOSTS`` vouches for), or an entry of
    ``CSRF_TRUSTED_ORIGINS``, where ``https://*.example.com`` admits subdomains.
    """

    def is_trusted(origin: str) -> bool:
        if is_same_host(origin, request.get_host()):
            return True
        scheme, _, netloc = origin.partition("://")
        for trusted in getattr(settings, "CSRF_TRUSTED_ORIGINS", ()):
            trusted_scheme, _, trusted_netloc = trusted.partition("://")
            if trusted == origin:
                return True
            if trusted_netloc.startswith("*") and trusted_scheme == scheme:
                if is_same_domain(netloc, trusted_netloc[1:]):
                    return True
        return False

    return is_trusted


def event_source_response(
    request: HttpRequest,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    retry: float | None = None,
    ping: float | None = None,
) -> tuple[EventSource, StreamingHttpResponse]:
    """An event stream for ``request``, and the streaming response to return.

    ::

        def clock(request):
            if not EventSource.is_eventsource(request.META):
                return HttpResponse(status=406)
            es, response = event_source_response(request, ping=15)
            es.spawn(tick, es)
            return response

    The stream opens when the server starts sending the response, after the
    middleware's response phase (its headers apply). The request thread's
    database connections are closed then, since it holds the stream until the
    client leaves. A producer started with ``es.spawn`` runs in its own thread
    or greenlet, which Django never cleans up after: if it uses the ORM, call
    ``django.db.connection.close()`` before it returns. ``GZipMiddleware``
    buffers streams: keep it off event-stream URLs (``X-Accel-Buffering: no``
    is sent for nginx). Works on every WSGI server, waitress included.

    Args:
        request: the request.
        headers: extra response headers; one named like a default replaces it.
        retry: seconds a client waits before reconnecting (default 5).
        ping: seconds between keep-alive comments (default 10).

    Returns:
        The :class:`~faye_sync.eventsource.EventSource` and a
        ``StreamingHttpResponse`` over it.
    """
    es = EventSource(request.META, None, headers=headers, retry=retry, ping=ping)
    es.on("open", _release_on_open)
    response = StreamingHttpResponse(es.response, status=int(es.status.partition(" ")[0]))
    for name, value in es.headers:
        response.headers[name] = value
    return es, response


def release_database_connections() -> None:
    """Close this thread's database connections, unless a transaction holds one.

    ``close_old_connections`` keeps a connection younger than ``CONN_MAX_AGE``;
    before a socket that may stay open for hours, it is closed whatever its age
    (or given back to its pool), and reopened on the next query.
    """
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


def _close_old_connections() -> None:
    # django.db.close_old_connections, minus connections inside a transaction
    # (a middleware's atomic block): closing one there would doom the transaction.
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


def _release_on_open(event: EventSourceEvent) -> None:
    release_database_connections()


def _finish(ws: WebSocket) -> HttpResponse:
    """End the session now; answer 101, or the rejection's HTTP error."""
    status, headers, body = finish_session(ws)
    code, _, reason = status.partition(" ")
    if code == "101":
        return WebSocketResponse(ws)
    response = HttpResponse(body, status=int(code), reason=reason)
    for name, value in headers:
        response.headers[name] = value
    return response
