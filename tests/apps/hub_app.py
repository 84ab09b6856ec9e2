"""The hub's test app: EventSource and WebSocket fan-out, publishing, and a quick answer.

Configured by the environment: ``HUB_URL`` (default ``memory://``), ``HUB_PREFIX``,
``HUB_BLOCK`` (the reader's block time), ``HUB_MAX_MESSAGES`` (per subscriber).

* ``/events?channels=a,b[&last_id=ID]``: ``hub.stream`` (ping every second);
* ``/ws?channels=a,b[&last_id=ID]``: ``hub.attach``, each message sent as JSON
  ``{"id", "channel", "event", "data"}``;
* ``/publish?channel=C&data=D[&event=E]``: publishes, answers the id;
* ``/ping``: ``pong`` at once (to show the process is not blocked).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from faye_sync import EventSource, WebSocket
from faye_sync.hub import Hub, HubMessage

hub = Hub.from_url(
    os.environ.get("HUB_URL", "memory://"),
    prefix=os.environ.get("HUB_PREFIX", "faye_sync"),
    block=float(os.environ.get("HUB_BLOCK", "0.5")),
)
MAX_MESSAGES = int(os.environ.get("HUB_MAX_MESSAGES", "1000"))


def envelope(message: HubMessage) -> str:
    return json.dumps(
        {"id": message.id, "channel": message.channel, "event": message.event, "data": message.data}
    )


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    query = {key: values[0] for key, values in parse_qs(environ.get("QUERY_STRING", "")).items()}
    channels = query.get("channels", "chat").split(",")
    if path == "/events":
        es = EventSource(environ, start_response, ping=1, retry=0.1)
        return hub.stream(es, channels, last_id=query.get("last_id"), max_messages=MAX_MESSAGES)
    if path == "/ws":
        ws = WebSocket(environ, start_response)
        hub.attach(
            ws, channels, last_id=query.get("last_id"), format=envelope, max_messages=MAX_MESSAGES
        )
        return ws.response
    if path == "/publish":
        body = hub.publish(query["channel"], query["data"], event=query.get("event")).encode()
    elif path == "/ping":
        body = b"pong"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
