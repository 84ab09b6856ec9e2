"""A chat room whose views take a while to join it: the 101 must wait for them.

Each WebSocket view first does its set-up (a ``SETUP_DELAY`` sleep standing for a
database lookup), then joins the room, then broadcasts every message it receives
to every member, itself included. A client whose ``connect()`` has returned must
get every message sent after that.

* ``/raw``: a plain WSGI view, blocking style: set-up, join, then iterate.
* ``/raw-events``: a plain WSGI view, event style: joins in its ``open`` listener.
* ``/flask``: a Flask view through ``Sock``.
* ``/accept``: blocking style, waiting on something else after ``ws.accept()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from faye_sync.contrib.flask import Sock
from faye_sync.websocket import WebSocket

SETUP_DELAY = 0.2

_members: set[WebSocket] = set()
_lock = threading.Lock()


def join(ws: WebSocket) -> None:
    with _lock:
        _members.add(ws)
    ws.on("close", lambda event: leave(ws))


def leave(ws: WebSocket) -> None:
    with _lock:
        _members.discard(ws)


def broadcast(message: str | bytes) -> None:
    with _lock:
        members = list(_members)
    for member in members:
        member.send(message)


def serve_blocking(ws: WebSocket) -> None:
    time.sleep(SETUP_DELAY)
    join(ws)
    for message in ws:
        broadcast(message)


flask_app = Flask(__name__)
sock = Sock(flask_app)


@sock.route("/flask")
def flask_room(ws: WebSocket) -> None:
    serve_blocking(ws)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/flask":
        return flask_app(environ, start_response)  # type: ignore[no-any-return]
    ws = WebSocket(environ, start_response)
    if path == "/raw-events":
        time.sleep(SETUP_DELAY)
        ws.on("open", lambda event: join(ws))
        ws.on("message", lambda event: broadcast(event.data))
    elif path == "/accept":
        time.sleep(SETUP_DELAY)
        join(ws)
        ws.accept()
        threading.Event().wait(SETUP_DELAY)  # waits on something else: the 101 is out
        for message in ws:
            broadcast(message)
    else:
        serve_blocking(ws)
    return ws.response
