"""The WebSocket app the server matrix drives: an echo that can be told to close.

A text message ``close <code> <reason>`` makes the server close with that code;
anything else is echoed. The app writes ``close <code> <reason>`` and then
``handler-end`` to stderr (the server's log) so tests can see what the server saw.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

from faye_sync import PerMessageDeflate, WebSocket


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if not WebSocket.is_websocket(environ):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"not a websocket\n"]
    ws = WebSocket(environ, start_response, extensions=[PerMessageDeflate()], max_length=2**26 - 1)
    ws.on("close", lambda event: say(f"close {event.code} {event.reason}"))
    for message in ws:
        if isinstance(message, str) and message.startswith("close "):
            _, code, reason = message.split(" ", 2)
            ws.close(int(code), reason)
        else:
            ws.send(message)
    say("handler-end")
    return ws.response
