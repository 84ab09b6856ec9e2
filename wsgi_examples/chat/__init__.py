"""A chat room: WebSocket for the chat, EventSource for a live activity feed, on the hub.

    python -m wsgi_examples.chat --port 8000        # gevent.pywsgi on 127.0.0.1
    gunicorn -k gevent -b 127.0.0.1:8000 wsgi_examples.chat:app

    # one room across workers, masters and hosts: every process on one Redis
    CHAT_BROKER=redis://127.0.0.1:6379/0 gunicorn -k gevent -w 4 wsgi_examples.chat:app
    python -m wsgi_examples.chat --broker redis://127.0.0.1:6379/0 --port 8001

Then open http://127.0.0.1:8000/ in two browser tabs.

* ``GET /`` is the page (``static/index.html``: plain HTML and JavaScript).
* ``/chat?name=NAME`` is a WebSocket. Every text message a client sends is
  broadcast, as JSON ``{"id", "name", "text"}``, to every connected chat
  socket, the sender included, in one order. ``&lastEventId=ID`` (optional)
  first sends the chat messages after ID: a client that reconnects misses
  nothing, or is sent ``{"id", "reset": {"channel", "reason", "last_id"}}``
  first when what it asks for is no longer kept. A message the room cannot
  take (the broker is down) is answered to its sender alone with
  ``{"error": ...}``.
* ``GET /events`` is an event stream of everything that happens: ``chat``
  (``{"name", "text"}``), ``join`` and ``leave`` (``{"name"}``), each with the
  hub's id. A client that reconnects with ``Last-Event-ID: ID`` (or
  ``?lastEventId=ID``) is sent the events after ID, then the live ones; a
  first connection gets the retained history. An id older than what is
  retained (or from before the broker restarted empty) gets a ``reset``
  event first (:data:`faye_sync.hub.RESET`), never a silent gap.

The room is a :class:`faye_sync.hub.Hub`: ``CHAT_BROKER`` (environment) or
``--broker URL`` picks its engine, ``memory://`` (one process) by default.
Each chat socket gets its messages through ``hub.attach``, so a member that
never reads is cut off (close 1013) instead of stalling the room; the feed
goes through ``hub.stream``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from faye_sync import HubUnavailable, PerMessageDeflate, WebSocket
from faye_sync.eventsource import EventSource
from faye_sync.hub import RESET, Hub, HubMessage

__all__ = [
    "BROKER_ENV",
    "CHANNELS",
    "HISTORY",
    "Room",
    "app",
    "chat_json",
    "make_hub",
    "publish_chat",
    "room",
]

BROKER_ENV = "CHAT_BROKER"  # the hub's URL; memory:// when unset
DEFAULT_BROKER = "memory://"
CHAT = "chat"  # the channel of chat messages (the WebSockets' and the feed's)
PRESENCE = "presence"  # joins and leaves (the feed's only)
CHANNELS = (CHAT, PRESENCE)
HISTORY = 200  # messages each channel keeps for clients that reconnect (about)
MAX_TEXT = 2000  # characters of one chat message; the rest is cut off
MAX_NAME = 32  # characters of a name
RETRY = 1  # seconds a browser waits before reconnecting its event stream
CLOSE_TIMEOUT = 5  # seconds a socket closed by the room (too slow: 1013) has to answer

PAGE = (Path(__file__).parent / "static" / "index.html").read_bytes()
HUB_ID = re.compile(r"\d{1,20}-\d{1,20}")  # the shape of the hub's ids
UNAVAILABLE = json.dumps({"error": "the room is unavailable: your message was not sent"})

log = logging.getLogger(__name__)


def make_hub(url: str) -> Hub:
    """The hub the demo runs on; a process that only publishes makes it the same way."""
    return Hub.from_url(url, max_len=HISTORY)


def publish_chat(hub: Hub, name: str, text: str) -> str:
    """Say ``text`` as ``name`` in the room (from any process); returns the message's id.

    Raises:
        HubUnavailable: the broker cannot be reached; nothing was sent.
    """
    return hub.publish(CHAT, json.dumps({"name": name, "text": text}), event="chat")


# Made once per message, not once per socket: every chat socket of a worker is sent the
# same text (10 µs of JSON per socket per message otherwise).
@functools.lru_cache(maxsize=256)
def chat_json(message: HubMessage) -> str:
    """What a chat socket is sent for one message of the chat channel."""
    if message.event == RESET:  # some messages are gone: say so, with the resume point
        return json.dumps({"id": message.id, "reset": json.loads(message.data)})
    return json.dumps({"id": message.id, **json.loads(message.data)})


class Room:
    """The hub (made on first use, so in each worker after the fork) and the open feeds.

    Every method may be called from any thread or greenlet.
    """

    def __init__(self, broker: str | None = None) -> None:
        self._broker = broker
        self._hub: Hub | None = None
        self._lock = threading.Lock()
        self._feeds: set[EventSource] = set()

    def use(self, broker: str) -> None:
        """Choose the broker's URL (before the first request)."""
        with self._lock:
            if self._hub is not None:
                raise RuntimeError("the room's hub is already running: call use() before serving")
            self._broker = broker

    @property
    def hub(self) -> Hub:
        with self._lock:
            if self._hub is None:
                self._hub = make_hub(self._broker or os.environ.get(BROKER_ENV) or DEFAULT_BROKER)
            return self._hub

    # -- the chat ------------------------------------------------------------

    def enter(self, ws: WebSocket, name: str, last_id: str | None) -> bool:
        """Attach ``ws`` to the chat (after ``last_id``, else live) and announce it.

        False when the broker is down: the hub has closed the socket (1013).
        """
        if self.hub.attach(ws, [CHAT], last_id=last_id, format=chat_json).ended:
            return False
        self._announce("join", name)
        return True

    def leave(self, name: str) -> None:
        self._announce("leave", name)

    def say(self, ws: WebSocket, name: str, text: str) -> None:
        """Publish to the room; every chat socket (the sender's too) gets it from the hub."""
        try:
            publish_chat(self.hub, name, text)
        except HubUnavailable:
            ws.send(UNAVAILABLE)  # to the sender alone: it may try again

    def _announce(self, event: str, name: str) -> None:
        try:
            self.hub.publish(PRESENCE, json.dumps({"name": name}), event=event)
        except HubUnavailable:
            log.info("chat: %s of %r not announced: the broker is unavailable", event, name)

    # -- the feed --------------------------------------------------------------

    def stream(self, es: EventSource) -> Iterable[bytes]:
        """The events after the client's last id (all retained ones at first), then live."""
        last = es.last_event_id
        with self._lock:
            self._feeds.add(es)
        es.on("close", lambda event: self._forget(es))
        return self.hub.stream(es, list(CHANNELS), last_id=last if HUB_ID.fullmatch(last) else "0")

    def _forget(self, es: EventSource) -> None:
        with self._lock:
            self._feeds.discard(es)

    def close_feeds(self) -> None:
        """End every feed stream (at shutdown); browsers reconnect after RETRY."""
        with self._lock:
            feeds = list(self._feeds)
        for es in feeds:
            es.close()  # outside the lock: it calls _forget

    def close(self) -> None:
        """End the feeds and stop the hub's reader (at shutdown)."""
        self.close_feeds()
        with self._lock:
            hub, self._hub = self._hub, None
        if hub is not None:
            hub.close()


room = Room()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI application."""
    path = environ.get("PATH_INFO") or "/"
    if path == "/chat" and WebSocket.is_websocket(environ):
        return _chat(environ, start_response)
    if path == "/events" and environ.get("REQUEST_METHOD") == "GET":
        # Any GET streams, not only Accept: text/event-stream, so curl works.
        return room.stream(EventSource(environ, start_response, retry=RETRY))
    if path == "/" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
        start_response(
            "200 OK",
            [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-cache")],
        )
        return [PAGE]
    if path == "/chat":
        return _text(start_response, "400 Bad Request", "/chat is a WebSocket\n")
    return _text(start_response, "404 Not Found", "Not Found: the chat is at /\n")


def _chat(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    name = _name(query)
    last_id = query.get("lastEventId", [""])[0]
    with WebSocket(
        environ,
        start_response,
        extensions=[PerMessageDeflate()],
        max_length=16384,
        close_timeout=CLOSE_TIMEOUT,
    ) as ws:
        entered: list[bool] = []

        # "open" never comes for a refused handshake; "close" comes exactly once,
        # from whichever thread or greenlet sees the end first.
        def on_open(event: object) -> None:
            entered.append(room.enter(ws, name, last_id if HUB_ID.fullmatch(last_id) else None))

        def on_close(event: object) -> None:
            if entered == [True]:  # joined, so leaves
                room.leave(name)

        ws.on("open", on_open)
        ws.on("close", on_close)
        for message in ws:  # ends when the socket closes
            if isinstance(message, str) and message.strip():
                room.say(ws, name, message[:MAX_TEXT])
    return ws.response


def _name(query: dict[str, list[str]]) -> str:
    name = " ".join(query.get("name", [""])[0].split())  # no newlines or runs of spaces
    return name[:MAX_NAME] or "anonymous"


def _text(start_response: Callable[..., Any], status: str, body: str) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [body.encode()]
