"""What the Flask and Django helpers share: the options and ending a session."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..websocket import WebSocket

__all__ = [
    "NOT_A_WEBSOCKET",
    "WEBSOCKET_OPTIONS",
    "close_after_failure",
    "finish_session",
    "is_same_host",
    "same_origin_only",
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


def finish_session(ws: WebSocket) -> tuple[str, list[tuple[str, str]], bytes]:
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
