"""Flask: WebSocket routes and EventSource responses.

::

    from flask import Flask
    from faye_sync.contrib.flask import Sock, event_source

    app = Flask(__name__)
    sock = Sock(app, ping=20)            # options for every WebSocket route

    @sock.route("/echo")                 # the view gets the WebSocket first
    def echo(ws):
        for message in ws:
            ws.send(message)

    @app.route("/events")
    def events():
        es, response = event_source(retry=2)
        es.spawn(produce, es)            # runs once the stream opens
        return response

A WebSocket view runs in the request's own thread or greenlet, inside Flask's
request context, for the whole session: ``request``, ``g`` and ``current_app``
work in it and in event listeners. When the session is over (the view returned
and the close handshake finished) the socket is shut down and the view's
response reports ``101 Switching Protocols`` to the server, so ``after_request``
and ``teardown_request`` run as for any request and nothing they or the server
write reaches the client. Nothing is raised to end the request, so the werkzeug
debugger (``flask run --debug``) and error trackers see no exception.

A view that raises closes the WebSocket with 1011 first; the exception then
goes through Flask's error handling as usual (logged, or the debugger under
``--debug``), and whatever error page results goes nowhere.

Servers: werkzeug (``flask run``), gunicorn ``-k gthread`` or ``-k gevent``,
gevent.pywsgi. Under waitress (and other servers that keep their sockets) a
WebSocket route answers ``501`` with a message that names the fix, and logs it
once; EventSource responses work on every server.
"""

from __future__ import annotations

import functools
import inspect
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.routing import WebsocketMismatch

from ..eventsource import EventSource
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

__all__ = ["CONFIG_KEY", "Sock", "WebSocketResponse", "event_source"]

log = logging.getLogger(__name__)

#: ``app.config`` key holding WebSocket options for every route of that app.
CONFIG_KEY = "FAYE_SYNC_OPTIONS"

WebSocketView = Callable[..., object]

_SWITCHING_PROTOCOLS = "101 Switching Protocols"


class WebSocketResponse(Response):
    """What a WebSocket route returns to Flask once the session is over.

    The connection has already been shut down, so nothing written after it can
    reach the client. Called by the server, it only reports ``101`` (for the
    access log) with an empty body. Its status code is 101, so
    ``after_request`` functions can tell WebSocket requests apart.
    """

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__(status=101)
        self.websocket = websocket

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        # No headers: they would never reach the wire, and some servers assert on
        # hop-by-hop names an after_request function might have added.
        start_response(_SWITCHING_PROTOCOLS, [])
        return []


class Sock:
    """WebSocket routes for a Flask app, or for several (``init_app``).

    Args:
        app: the app; or None, and :meth:`init_app` later (app factories).
        **options: :class:`~faye_sync.websocket.WebSocket` options for every
            route (``protocols``, ``extensions``, ``max_length``, ``ping``,
            ``ping_timeout``, ``close_timeout``, ``allowed_origins``, …).

    Options are merged per request, the most specific winning: first
    ``app.config["FAYE_SYNC_OPTIONS"]`` (a dict), then these, then the route's.

    Unless ``allowed_origins`` is given, a route accepts only its own origin
    (an ``Origin`` whose host and port are the request's ``Host``) and clients
    that send no ``Origin``: browsers send cookies with cross-site WebSocket
    handshakes, so another site's page could otherwise use the user's session.
    Others get 403 before any 101. (faye accepts every origin by default.)

    Raises:
        TypeError: an option that ``WebSocket`` does not take.
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        _check_options(options, "Sock()")
        self.options = options
        self._routes: list[tuple[str, str | None, Callable[..., Response], dict[str, Any]]] = []
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the routes declared so far (and any declared later) on ``app``.

        Raises:
            TypeError: ``app.config["FAYE_SYNC_OPTIONS"]`` holds an unknown option.
        """
        _check_options(app.config.get(CONFIG_KEY) or {}, f'app.config["{CONFIG_KEY}"]')
        self._apps.add(app)
        app.register_error_handler(WebsocketMismatch, _explain_websocket_mismatch)
        for rule, endpoint, view, rule_options in self._routes:
            app.add_url_rule(rule, endpoint, view, websocket=True, **rule_options)

    def route(
        self, rule: str, *, bp: Blueprint | None = None, **options: Any
    ) -> Callable[[WebSocketView], WebSocketView]:
        """Decorate a view ``view(ws, **url_values)`` as the WebSocket at ``rule``.

        The rule is registered with werkzeug's ``websocket=True``: only upgrade
        requests match it, so an ordinary route may share the path, and an
        ordinary request gets a ``400 Bad Request`` saying that this is a
        WebSocket endpoint when nothing else matches. A handshake that
        faye_sync rejects (a bad key or version, an origin not allowed) gets
        faye's HTTP error without calling the view.
        The view's return value is ignored.

        Args:
            rule: the URL rule, e.g. ``"/chat/<room>"``.
            bp: register on this blueprint instead of the app(s).
            **options: ``WebSocket`` options for this route, and Flask's rule
                options (``endpoint``, ``defaults``, ``host``, ``subdomain``,
                ``strict_slashes``, …), told apart by name.

        Returns:
            A decorator that registers the view and returns it unchanged.
        """
        websocket_options = {k: v for k, v in options.items() if k in WEBSOCKET_OPTIONS}
        rule_options = {k: v for k, v in options.items() if k not in WEBSOCKET_OPTIONS}
        if "websocket" in rule_options:
            raise TypeError("Sock.route() registers websocket=True itself")
        endpoint: str | None = rule_options.pop("endpoint", None)

        def decorator(view: WebSocketView) -> WebSocketView:
            if inspect.iscoroutinefunction(view):
                raise TypeError(
                    f"Sock.route() needs a plain function, not async {view.__qualname__}: "
                    "the WebSocket runs in the request's own thread"
                )

            @functools.wraps(view)
            def websocket_endpoint(**url_values: Any) -> Response:
                return self._serve(view, websocket_options, url_values)

            if bp is not None:
                bp.add_url_rule(rule, endpoint, websocket_endpoint, websocket=True, **rule_options)
                return view
            self._routes.append((rule, endpoint, websocket_endpoint, rule_options))
            for app in list(self._apps):
                app.add_url_rule(rule, endpoint, websocket_endpoint, websocket=True, **rule_options)
            return view

        return decorator

    def _serve(
        self, view: WebSocketView, route_options: Mapping[str, Any], url_values: dict[str, Any]
    ) -> Response:
        options = {
            **(current_app.config.get(CONFIG_KEY) or {}),
            **self.options,
            **route_options,
        }
        origin = request.headers.get("Origin")
        options = same_origin_only(options, origin, lambda o: is_same_host(o, request.host))
        ws = WebSocket(request.environ, None, **options)  # a server that keeps its socket: 501
        if ws.ready_state < CLOSING:  # accepted: a rejected handshake is already closing
            try:
                view(ws, **url_values)
                ws.run()  # an event-style view returns at once; its session runs here
            except Exception:
                close_after_failure(ws)
                raise
        return _finish(ws)


def event_source(
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    retry: float | None = None,
    ping: float | None = None,
) -> tuple[EventSource, Response]:
    """An event stream for the current request, and the response to return.

    ::

        @app.route("/clock")
        def clock():
            es, response = event_source(ping=15)
            es.spawn(tick, es)
            return response

        def tick(es):
            while not es.wait_closed(1.0):
                es.send(time.strftime("%H:%M:%S"))

    The stream opens when the server starts sending the response, after the
    view and ``after_request`` have run (their headers apply, e.g. CORS). A
    producer started with ``es.spawn`` runs in its own thread or greenlet,
    outside the request context: read what it needs from ``request`` in the
    view, or wrap it with ``flask.copy_current_request_context``. Works on
    every WSGI server, waitress included. Check
    ``EventSource.is_eventsource(request.environ)`` first if the URL also
    serves other requests.

    Args:
        headers: extra response headers; one named like a default replaces it.
        retry: seconds a client waits before reconnecting (default 5).
        ping: seconds between keep-alive comments (default 10).

    Returns:
        The :class:`~faye_sync.eventsource.EventSource` and a Flask response
        streaming it.
    """
    es = EventSource(request.environ, None, headers=headers, retry=retry, ping=ping)
    # The response's close(), which the server calls when the client leaves or the
    # stream ends, closes the stream (and runs call_on_close functions).
    return es, Response(es.response, status=es.status, headers=es.headers)


def _explain_websocket_mismatch(error: WebsocketMismatch) -> Response:
    """Say what went wrong where werkzeug's 400 says only "Bad Request"."""
    if WebSocket.is_websocket(request.environ):
        why = "This URL is not a WebSocket endpoint: request it with plain HTTP.\n"
    else:
        why = NOT_A_WEBSOCKET
    return Response(why, status=400, mimetype="text/plain")


def _check_options(options: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(options) - WEBSOCKET_OPTIONS)
    if unknown:
        raise TypeError(
            f"{where}: unknown WebSocket option(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(sorted(WEBSOCKET_OPTIONS))}"
        )


def _finish(ws: WebSocket) -> Response:
    """End the session now; answer 101, or the rejection's HTTP error."""
    status, headers, body = finish_session(ws)
    if status == _SWITCHING_PROTOCOLS:
        return WebSocketResponse(ws)
    return Response(body, status=status, headers=headers)
