"""A WebSocket handler that raises after the handshake, in the README's form.

It echoes, and raises ``KeyError('boom')`` when it receives ``boom``, inside
``with WebSocket(...) as ws``. ``/plain`` runs the same handler without the ``with``
block (the form that lets the server write its 500 into the socket).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faye_sync import WebSocket


def echo_until_boom(ws: WebSocket) -> None:
    for message in ws:
        if message == "boom":
            raise KeyError("boom")
        ws.send(message)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if not WebSocket.is_websocket(environ):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"not a websocket\n"]
    if environ.get("PATH_INFO") == "/plain":
        ws = WebSocket(environ, start_response)
        echo_until_boom(ws)
        return ws.response
    with WebSocket(environ, start_response) as ws:
        echo_until_boom(ws)
    return ws.response
