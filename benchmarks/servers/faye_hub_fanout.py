"""faye_sync's side of the fan-out benchmark: the chat demo's URLs without its presence events.

    CHAT_BROKER=redis://127.0.0.1:6379/0 gunicorn -k gevent -w 4 \\
        benchmarks.servers.faye_hub_fanout:app

``/chat`` is a WebSocket fed by ``hub.attach`` (JSON ``{"id", "name", "text"}``, resuming
after ``?lastEventId=``), ``/events`` an EventSource fed by ``hub.stream`` (resuming after
``Last-Event-ID``), both on the demo's ``chat`` channel, published with the demo's
``publish_chat``. The demo itself (``--servers faye-chat``) also sends every join and leave
of its chat sockets to every feed, which the Socket.IO peer does not do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from faye_sync import WebSocket
from faye_sync.eventsource import EventSource
from faye_sync.hub import Hub
from wsgi_examples.chat import BROKER_ENV, CHAT, RETRY, chat_json, make_hub

HUB_ID = re.compile(r"\d{1,20}-\d{1,20}")
_hub: list[Hub] = []  # made in the worker, after the fork


def hub() -> Hub:
    if not _hub:
        _hub.append(make_hub(os.environ[BROKER_ENV]))
    return _hub[0]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/events":
        return hub().stream(EventSource(environ, start_response, retry=RETRY), [CHAT])
    last_id = parse_qs(environ.get("QUERY_STRING", "")).get("lastEventId", [""])[0]
    ws = WebSocket(environ, start_response)
    resume = last_id if HUB_ID.fullmatch(last_id) else None
    ws.on("open", lambda event: hub().attach(ws, [CHAT], last_id=resume, format=chat_json))
    for _message in ws:  # subscribers only listen
        pass
    return ws.response
