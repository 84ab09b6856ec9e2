"""The example's views: a chat room over WebSockets, with an EventSource feed.

``websocket_view`` hands each WebSocket view the socket after the handshake;
the view runs in the request's own thread (or greenlet) for as long as the
socket is open, and the HTTP side of the request ends when it returns.
"""

from __future__ import annotations

import re
import threading

from django.http import HttpRequest, HttpResponse

from faye_sync import PerMessageDeflate
from faye_sync.contrib.django import event_source, websocket_view
from faye_sync.eventsource import EventSource
from faye_sync.websocket import WebSocket

MAX_TEXT = 2000  # characters of one chat message; the rest is cut off

# Browsers send cookies with a WebSocket handshake from any site, so a view that
# trusts the session must check Origin. Pages served here, and clients that send
# no Origin (not browsers), are let in.
LOCAL_ORIGINS = [None, re.compile(r"https?://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?")]


class Room:
    """The chat sockets and the feed streams; safe from any thread or greenlet.

    The lock guards the sets only: sends happen outside it, since a WebSocket
    send waits for the network. A slow client slows its sender's broadcast.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[WebSocket] = set()
        self._feeds: set[EventSource] = set()

    def join(self, ws: WebSocket) -> None:
        with self._lock:
            self._sockets.add(ws)
        self._presence()

    def leave(self, ws: WebSocket) -> None:
        with self._lock:
            self._sockets.discard(ws)
        self._presence()

    def follow(self, es: EventSource) -> None:
        with self._lock:
            self._feeds.add(es)
            online = len(self._sockets)
        es.send(str(online), event="presence")  # queued until the stream opens
        es.on("close", lambda event: self._unfollow(es))

    def say(self, text: str) -> None:
        with self._lock:
            sockets, feeds = list(self._sockets), list(self._feeds)
        for ws in sockets:
            ws.send(text)  # False if that socket is closing: nothing to do
        for es in feeds:
            es.send(text, event="chat")

    def _unfollow(self, es: EventSource) -> None:
        with self._lock:
            self._feeds.discard(es)

    def _presence(self) -> None:
        with self._lock:
            online, feeds = len(self._sockets), list(self._feeds)
        for es in feeds:
            es.send(str(online), event="presence")


room = Room()


@websocket_view(
    extensions=[PerMessageDeflate()], max_length=64 * 1024, ping=20, allowed_origins=LOCAL_ORIGINS
)
def chat(request: HttpRequest, ws: WebSocket) -> None:
    """``/ws/chat?name=ada``: every text message goes to everyone, the sender included."""
    name = request.GET.get("name", "").strip()[:32] or "anonymous"
    room.join(ws)
    try:
        for message in ws:
            if isinstance(message, str):
                room.say(f"{name}: {message[:MAX_TEXT]}")
    finally:
        room.leave(ws)


@websocket_view(extensions=[PerMessageDeflate()])
def echo(request: HttpRequest, ws: WebSocket) -> None:
    """``/ws/echo``: every message back to its sender, text as text, binary as binary."""
    for message in ws:
        ws.send(message)


def events(request: HttpRequest) -> HttpResponse:
    """``/events``: ``chat`` events (every chat line) and ``presence`` (how many chat)."""
    if not EventSource.is_eventsource(request.META):
        return HttpResponse("an event stream: ask for text/event-stream\n", status=406)
    es, response = event_source(request, retry=2, ping=15)
    room.follow(es)
    return response


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE)


PAGE = """<!doctype html>
<meta charset="utf-8">
<title>faye_sync Django chat</title>
<style>body{font:16px system-ui;max-width:40em;margin:2em auto}#log{white-space:pre-wrap}</style>
<h1>Chat <small id="online"></small></h1>
<form id="form">
  <input id="text" autocomplete="off" size="50" autofocus> <button>Send</button>
</form>
<div id="log"></div>
<script>
const log = (line) => { document.getElementById("log").prepend(line + "\\n"); };
const name = prompt("Your name?") || "anonymous";
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const ws = new WebSocket(`${scheme}//${location.host}/ws/chat?name=${encodeURIComponent(name)}`);
ws.onopen = () => log("(connected)");
ws.onmessage = (event) => log(event.data);
ws.onclose = (event) => log(`(closed: ${event.code})`);
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  const input = document.getElementById("text");
  if (input.value) ws.send(input.value);
  input.value = "";
};
const feed = new EventSource("/events");
feed.addEventListener("presence", (event) => {
  document.getElementById("online").textContent = `(${event.data} online)`;
});
</script>
"""
