"""What the Flask and Django helpers share: checking options and views, and a session's skeleton.

Both frameworks' helpers follow one naming rule: a helper is named after what it
gives the view. ``event_source`` gives an :class:`~faye_sync.eventsource.EventSource`
(and the response to return) in both; the WebSocket decorators follow each
framework's own idiom for routes (Flask's ``@sock.route`` beside ``@app.route``,
Django's ``@websocket_view`` beside its view decorators).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..protocol.base import CLOSING
from ..websocket import WebSocket

__all__ = [
    "NOT_A_WEBSOCKET",
    "WEBSOCKET_OPTIONS",
    "Session",
    "check_options",
    "check_view",
    "close_after_failure",
    "finish_session",
    "is_same_host",
    "same_origin_only",
    "serve_websocket",
]

#: The body of the 400 a plain request to a WebSocket view gets.
NOT_A_WEBSOCKET = (
    "This URL is a WebSocket endpoint: connect with a WebSocket client "
    "(a GET with Connection: Upgrade and Upgrade: websocket).\n"
)

#: The keyword options :class:`~faye_sync.websocket.WebSocket` takes.
WEBSOCKET_OPTIONS = frozenset(
    name
    for name, parameter in inspect.signature(WebSocket).parameters.items()
    if name not in ("environ", "start_response")
    and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
)


def check_options(options: Mapping[str, Any], where: str) -> None:
    """Refuse, where they are given, options that ``WebSocket`` would refuse per request.

    Raises:
        TypeError: an option :class:`~faye_sync.websocket.WebSocket` does not take.
    """
    unknown = sorted(set(options) - WEBSOCKET_OPTIONS)
    if unknown:
        raise TypeError(
            f"{where}: unknown WebSocket option(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(sorted(WEBSOCKET_OPTIONS))}"
        )


def check_view(view: Callable[..., object], where: str) -> None:
    """Refuse an ``async def`` view when it is decorated, not on its first request.

    Raises:
        TypeError: the view is a coroutine function.
    """
    if inspect.iscoroutinefunction(view):
        raise TypeError(
            f"{where} needs a plain function, not async {view.__qualname__}: "
            "the WebSocket runs in the request's own thread"
        )


#: The status, headers and body a framework answers with once the session is over.
Session = tuple[str, list[tuple[str, str]], bytes]


def serve_websocket(
    environ: Any,
    options: Mapping[str, Any],
    run_view: Callable[[WebSocket], object],
    around_view: contextlib.AbstractContextManager[object] | None = None,
) -> tuple[WebSocket, Session]:
    """Both helpers' request: the handshake, the view and its session, then the WSGI end.

    ``run_view(ws)`` runs only for an accepted handshake, inside ``around_view``
    (Django's database connections); an event-style view returns at once and its
    session runs here. A view that raises closes the WebSocket with 1011 and the
    exception goes on to the framework's error handling.
    """
    ws = WebSocket(environ, None, **options)  # a server that keeps its socket: a 501 below
    if ws.ready_state < CLOSING:  # accepted: a rejected handshake is already closing
        with around_view or contextlib.nullcontext():
            try:
                run_view(ws)
                ws.run()
            except Exception:
                close_after_failure(ws)
                raise
    return ws, finish_session(ws)


def finish_session(ws: WebSocket) -> Session:
    """End the WSGI side now: shut the socket, or build the rejection's HTTP error.

    Returns the status, headers and body the framework should answer with
    (``101 Switching Protocols`` and no body for a finished session). Doing it
    before the framework's response phase means nothing the framework, its
    middleware or its hooks write afterwards can reach the client.
    """
    recorded: list[Any] = []
    body = b"".join(ws.respond(lambda status, headers, *_: recorded.extend((status, headers))))
    status, headers = recorded
    return status, headers, body


def close_after_failure(ws: WebSocket) -> None:
    """Close with 1011 after the view raised, and shut the socket before the framework answers."""
    ws._end_after_failure()


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_and_port(netloc: str, scheme: str | None) -> tuple[str, int | None]:
    parts = urlsplit(f"//{netloc}")
    try:
        port = parts.port
    except ValueError:
        return netloc.lower(), None
    if port is None and scheme is not None:
        port = _DEFAULT_PORTS.get(scheme)
    return (parts.hostname or "").lower(), port


def is_same_host(origin: str, host: str) -> bool:
    """Whether ``origin`` (a browser's ``Origin``) names the server at ``host`` (``Host``).

    Schemes are not compared: behind a proxy that ends TLS the application sees
    ``http`` for a page served over ``https``. A port left out means the
    origin's default one.
    """
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:
        return False
    origin_host, origin_port = _host_and_port(parts.netloc, parts.scheme)
    request_host, request_port = _host_and_port(host, None)
    if request_port is None:  # a Host header without a port: the scheme's default
        request_port = origin_port if origin_port in (80, 443) else None
    return (origin_host, origin_port) == (request_host, request_port)


def same_origin_only(
    options: Mapping[str, Any], origin: str | None, is_trusted: Callable[[str], bool]
) -> dict[str, Any]:
    """The WebSocket options with the helpers' default ``allowed_origins``.

    Browsers send cookies with a WebSocket handshake from any site, so a view
    that trusts its session would serve another site's page (cross-site
    WebSocket hijacking). Unless ``allowed_origins`` is given, only requests
    without ``Origin`` (non-browser clients) and from origins ``is_trusted``
    accepts are let in; others get 403 before any 101.
    """
    if "allowed_origins" in options:
        return dict(options)
    allowed: list[str | None] = [None]
    if origin is not None and is_trusted(origin):
        allowed.append(origin)
    return {**options, "allowed_origins": allowed}
