"""WebSockets and event streams that stay open, beside an ordinary page: for the connection cap.

``/ws`` echoes, ``/raise`` raises after the handshake, ``/forgets``
returns something else than ``ws.response``, ``/events`` sends one event
and stays open, anything else is a plain ``page``. faye_sync's log goes to stderr (the
server's log).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from faye_sync import EventSource, WebSocket

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/raise":
        ws = WebSocket(environ, start_response)
        ws.receive(timeout=5)
        raise RuntimeError("handler failed")  # never returns ws.response
    if path == "/forgets":
        ws = WebSocket(environ, start_response)
        ws.send(ws.receive(timeout=5))
        ws.close()
        return [b"not ws.response"]  # the mistake the operator is told about
    if path == "/ws":
        ws = WebSocket(environ, start_response)
        for message in ws:
            ws.send(message)
        return ws.response
    if path == "/events":
        es = EventSource(environ, start_response, ping=1)
        es.send("open")
        return es.response
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"page"]
