"""A Flask app with a WebSocket echo, a WebSocket chat room and an EventSource clock.

    flask --app wsgi_examples.flask_echo run --debug          # reloader and debugger on
    gunicorn -k gevent -b 127.0.0.1:8000 wsgi_examples.flask_echo:app
    gunicorn -k gthread --threads 32 -b 127.0.0.1:8000 wsgi_examples.flask_echo:app

Run from the repository root, then open the server's ``/`` in a browser.

* ``/echo``: a WebSocket that sends every message back (text as text, binary
  as binary).
* ``/chat/<room>``: a WebSocket per room; every text message goes to everyone
  in the room. Event style: the view attaches listeners and returns.
* ``/clock``: an event stream with the server's time every second.

Each WebSocket and each stream holds one server thread (or greenlet) while it is
open; the rooms live in one process's memory, so run one worker.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

from flask import Flask, Response, request

from faye_sync import PerMessageDeflate
from faye_sync.contrib.flask import Sock, event_source
from faye_sync.eventsource import EventSource
from faye_sync.websocket import WebSocket

app = Flask(__name__)
# Options for every WebSocket route of this app; Sock(...) and each route may add more.
app.config["FAYE_SYNC_OPTIONS"] = {"max_length": 1024 * 1024}
sock = Sock(app, extensions=[PerMessageDeflate()], ping=20)

_rooms: dict[str, set[WebSocket]] = defaultdict(set)
_rooms_lock = threading.Lock()


@sock.route("/echo")
def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


@sock.route("/chat/<room>")
def chat(ws: WebSocket, room: str) -> None:
    def broadcast(text: str) -> None:
        with _rooms_lock:
            members = list(_rooms[room])
        for member in members:  # outside the lock: a send waits for the network
            member.send(text)

    def on_message(event: Any) -> None:
        if isinstance(event.data, str):
            broadcast(event.data)

    def leave(event: Any) -> None:
        with _rooms_lock:
            _rooms[room].discard(ws)

    with _rooms_lock:
        _rooms[room].add(ws)
    ws.on("message", on_message)
    ws.on("close", leave)


@app.route("/clock")
def clock() -> Response:
    if not EventSource.is_eventsource(request.environ):
        return Response("an event stream: ask for text/event-stream\n", status=406)
    es, response = event_source(retry=2)

    def tick() -> None:
        while not es.wait_closed(1.0):
            es.send(time.strftime("%H:%M:%S"), event="tick")

    es.spawn(tick)
    return response


@app.route("/")
def index() -> str:
    return PAGE


PAGE = """<!doctype html>
<meta charset="utf-8">
<title>faye_sync Flask example</title>
<p>Server time: <span id="time">…</span></p>
<p><input id="text" placeholder="say something"> <button id="send">Send</button></p>
<pre id="log"></pre>
<script>
const log = (line) => { document.getElementById("log").prepend(line + "\\n"); };
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const ws = new WebSocket(`${scheme}//${location.host}/chat/lobby`);
ws.onmessage = (event) => log(event.data);
ws.onclose = (event) => log(`(closed: ${event.code})`);
document.getElementById("send").onclick = () => {
  const input = document.getElementById("text");
  if (input.value) ws.send(input.value);
  input.value = "";
};
new EventSource("/clock").addEventListener("tick", (event) => {
  document.getElementById("time").textContent = event.data;
});
</script>
"""
