"""What the Flask and Django helpers share: the options and ending a session."""

from __future__ import annotations

import inspect
from typing import Any

from ..websocket import WebSocket

__all__ = ["NOT_A_WEBSOCKET", "WEBSOCKET_OPTIONS", "close_after_failure", "finish_session"]

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
