"""What the nginx tests put behind nginx, at the README's paths.

``/chat`` is a WebSocket echo; ``?ping=S`` sends keep-alive pings every S seconds
(``?ping=off``: none; without it, the default).
``/events`` sends one event at once, then keeps the stream open and quiet (so an
event that arrives at the client cannot have been pushed out by the stream's end).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from faye_sync import WebSocket
from faye_sync.eventsource import EventSource


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/chat" and WebSocket.is_websocket(environ):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        options: dict[str, Any] = {}
        if "ping" in query:
            options["ping"] = None if query["ping"][0] == "off" else float(query["ping"][0])
        with WebSocket(environ, start_response, **options) as ws:
            for message in ws:
                ws.send(message)
        return ws.response
    if path == "/events" and EventSource.is_eventsource(environ):
        es = EventSource(environ, start_response, ping=60)
        es.spawn(first_event_then_quiet, es)
        return es.response
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not here\n"]


def first_event_then_quiet(es: EventSource) -> None:
    es.send("first", event="hello", id=1)
    es.wait_closed(30.0)
