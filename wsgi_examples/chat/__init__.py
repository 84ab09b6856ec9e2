"""A chat room: WebSocket for the chat, EventSource for a live activity feed.

    python -m wsgi_examples.chat --port 8000        # gevent.pywsgi on 127.0.0.1
    gunicorn -k gevent -b 127.0.0.1:8000 wsgi_examples.chat:app

Then open http://127.0.0.1:8000/ in two browser tabs.

* ``GET /`` is the page (``static/index.html``: plain HTML and JavaScript).
* ``/chat?name=NAME`` is a WebSocket. Every text message a client sends is
  broadcast, as JSON ``{"id", "name", "text"}``, to every connected chat
  socket, the sender included.
* ``GET /events`` is an event stream of everything that happens: ``chat``
  (``{"name", "text"}``), ``join`` and ``leave`` (``{"name"}``), each with an
  increasing id. The last :data:`HISTORY` events are kept in memory, so a client
  that reconnects with ``Last-Event-ID: N`` (or ``?lastEventId=N``) is sent
  the events after N, then the live ones; a first connection gets them all.

The room lives in this process's memory: run one process (gunicorn's default
of one worker), or the chat is split between workers.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from faye_sync import PerMessageDeflate, WebSocket
from faye_sync.eventsource import EventSource

__all__ = ["HISTORY", "Room", "app", "room"]

HISTORY = 200  # feed events kept for clients that reconnect
MAX_TEXT = 2000  # characters of one chat message; the rest is cut off
MAX_NAME = 32  # characters of a name
RETRY = 1  # seconds a browser waits before reconnecting its event stream

PAGE = (Path(__file__).parent / "static" / "index.html").read_bytes()


@dataclass(frozen=True)
class FeedEvent:
    id: int
    event: str  # the event type: "chat", "join" or "leave"
    data: str  # JSON


class Room:
    """The chat sockets, the feed streams and the feed's recent history.

    Every method may be called from any thread or greenlet. The lock guards
    only in-memory work (``EventSource.send`` just queues), never a network
    write, so it is never held across a gevent switch: that keeps it correct
    with or without gevent's monkey-patching.
    """

    def __init__(self, history: int = HISTORY) -> None:
        self._lock = threading.Lock()
        self._sockets: set[WebSocket] = set()
        self._feeds: set[EventSource] = set()
        self._history: deque[FeedEvent] = deque(maxlen=history)
        self._last_id = 0

    # -- the chat ------------------------------------------------------------

    def enter(self, ws: WebSocket, name: str) -> None:
        with self._lock:
            self._sockets.add(ws)
        self.publish("join", {"name": name})

    def leave(self, ws: WebSocket, name: str) -> None:
        with self._lock:
            if ws not in self._sockets:
                return  # never entered (a refused handshake), or already left
            self._sockets.discard(ws)
        self.publish("leave", {"name": name})

    def say(self, name: str, text: str) -> None:
        """Send a chat message to every chat socket and to the feed."""
        event = self.publish("chat", {"name": name, "text": text})
        message = json.dumps({"id": event.id, "name": name, "text": text})
        # Send outside the lock, to a snapshot: sends block while the socket
        # is full, and a socket may leave while we loop. Two messages said at
        # the same moment may reach two sockets in different orders; the feed
        # keeps id order.
        with self._lock:
            sockets = list(self._sockets)
        for ws in sockets:
            ws.send(message)  # False once closing; its "close" event removes it

    # -- the feed --------------------------------------------------------------

    def publish(self, event_type: str, data: dict[str, str]) -> FeedEvent:
        """Add an event to the history and queue it on every feed stream."""
        with self._lock:
            self._last_id += 1
            event = FeedEvent(self._last_id, event_type, json.dumps(data))
            self._history.append(event)
            # Queued under the lock, so that every stream gets events in id
            # order and a stream that is subscribing sees each event once:
            # either in its replay or live, never both.
            for es in self._feeds:
                es.send(event.data, event=event.event, id=event.id)
        return event

    def subscribe(self, es: EventSource) -> None:
        """Queue the events after the client's Last-Event-ID, then the live ones."""
        last = es.last_event_id
        after = int(last) if last.isascii() and last.isdigit() else 0  # "²" is a digit too
        es.on("close", lambda event: self._unsubscribe(es))
        with self._lock:
            if after > self._last_id:
                after = 0  # an id from before a restart: this history is all new
            for event in self._history:
                if event.id > after:
                    es.send(event.data, event=event.event, id=event.id)
            self._feeds.add(es)

    def _unsubscribe(self, es: EventSource) -> None:
        with self._lock:
            self._feeds.discard(es)

    def close_feeds(self) -> None:
        """End every feed stream (at shutdown); browsers reconnect after RETRY."""
        with self._lock:
            feeds = list(self._feeds)
        for es in feeds:
            es.close()  # outside the lock: it calls _unsubscribe


room = Room()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI application."""
    path = environ.get("PATH_INFO") or "/"
    if path == "/chat" and WebSocket.is_websocket(environ):
        return _chat(environ, start_response)
    if path == "/events" and environ.get("REQUEST_METHOD") == "GET":
        # Any GET streams, not only Accept: text/event-stream, so curl works.
        es = EventSource(environ, start_response, retry=RETRY)
        room.subscribe(es)
        return es.response
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
    name = _name(environ)
    with WebSocket(
        environ, start_response, extensions=[PerMessageDeflate()], max_length=16384
    ) as ws:
        # "open" never comes for a refused handshake; "close" comes exactly once,
        # from whichever thread or greenlet sees the end first.
        ws.on("open", lambda event: room.enter(ws, name))
        ws.on("close", lambda event: room.leave(ws, name))
        for message in ws:  # ends when the socket closes
            if isinstance(message, str) and message.strip():
                room.say(name, message[:MAX_TEXT])
    return ws.response


def _name(environ: dict[str, Any]) -> str:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    name = " ".join(query.get("name", [""])[0].split())  # no newlines or runs of spaces
    return name[:MAX_NAME] or "anonymous"


def _text(start_response: Callable[..., Any], status: str, body: str) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [body.encode()]
