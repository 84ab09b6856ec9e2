"""What the Flask and Django helpers share: ending a session and refusing cleanly."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from ..exceptions import HijackError
from ..websocket import WebSocket

__all__ = ["WEBSOCKET_OPTIONS", "close_after_failure", "finish_session", "log_refusal"]

#: The keyword options :class:`~faye_sync.websocket.WebSocket` takes.
WEBSOCKET_OPTIONS = frozenset(
    name
    for name, parameter in inspect.signature(WebSocket).parameters.items()
    if name not in ("environ", "start_response")
    and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
)

log = logging.getLogger("faye_sync.contrib")


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
    """Close with 1011 after the view raised, and shut the socket before the framework answers.

    The framework then writes its error response into a shut socket, where it
    fails quietly instead of following the WebSocket frames on the wire.
    """
    ws.go_away(1011, "")
    while True:  # bounded: the close timeout ends the session whatever the peer does
        try:
            ws.run()
            break
        except Exception:
            log.warning("WebSocket listener failed while closing", exc_info=True)
    ws.respond(lambda *_: None)


_logged_refusals: set[str] = set()


def log_refusal(error: HijackError, logger: logging.Logger) -> None:
    """Log a server's refusal to hand over its socket, once per distinct message."""
    message = str(error)
    if message in _logged_refusals:
        logger.debug("WebSocket refused: %s", message)
        return
    _logged_refusals.add(message)
    logger.error("WebSocket refused (%s): %s", error.status, message)
