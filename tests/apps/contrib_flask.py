"""The Flask app the contrib tests drive, through ``faye_sync.contrib.flask``.

Every request writes ``after_request <path> <status>`` and ``teardown <path>
<exception>`` to stderr (the server's log), so tests can see that Flask's hooks
ran. The WebSockets:

* ``/echo``: echoes; ``close <code> <reason>`` makes the server close with that
  code. Writes ``close <code> <reason>`` and ``handler-end``.
* ``/room/<name>``: event style; answers each message with the room name, the
  request path and ``g.user`` (set in ``before_request``), from a listener.
* ``/shared``: a WebSocket that says ``ws``; an ordinary GET gets ``page``.
* ``/fail``: raises after the first message.

``/events`` is an event stream: three ``tick`` events with ids 1–3 (or from
``Last-Event-ID`` on), then the stream closes.
"""

from __future__ import annotations

import sys

from flask import Flask, Response, g, request

from faye_sync import PerMessageDeflate
from faye_sync.contrib.flask import Sock, event_source
from faye_sync.eventsource import EventSource
from faye_sync.websocket import WebSocket

app = Flask(__name__)
app.config["FAYE_SYNC_OPTIONS"] = {"max_length": 2**24}
sock = Sock(extensions=[PerMessageDeflate()])  # init_app below, as in an app factory


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@app.before_request
def set_user() -> None:
    g.user = "ada"


@app.after_request
def log_after(response: Response) -> Response:
    say(f"after_request {request.path} {response.status_code}")
    return response


@app.teardown_request
def log_teardown(error: BaseException | None) -> None:
    say(f"teardown {request.path} {error!r}")


@sock.route("/echo")
def echo(ws: WebSocket) -> None:
    ws.on("close", lambda event: say(f"close {event.code} {event.reason}"))
    for message in ws:
        if isinstance(message, str) and message.startswith("close "):
            _, code, reason = message.split(" ", 2)
            ws.close(int(code), reason)
        else:
            ws.send(message)
    say("handler-end")


@sock.route("/room/<name>", ping=5)
def room(ws: WebSocket, name: str) -> None:
    path = request.path
    ws.on("message", lambda event: ws.send(f"{name} {path} {g.user} {event.data!s}"))
    ws.on("close", lambda event: say(f"room closed {event.code}"))


@app.route("/shared")
def shared_page() -> str:
    return "page"


@sock.route("/shared")
def shared_socket(ws: WebSocket) -> None:
    ws.send("ws")
    ws.close()


@sock.route("/fail")
def fail(ws: WebSocket) -> None:
    ws.receive(timeout=5)
    raise RuntimeError("boom in the view")


@app.route("/events")
def events() -> Response:
    if not EventSource.is_eventsource(request.environ):
        return Response("not an event stream request\n", status=406, mimetype="text/plain")
    es, response = event_source(retry=1, ping=1, headers={"X-Accel-Buffering": "no"})
    start = int(es.last_event_id or 0)

    def produce() -> None:
        for n in range(start + 1, start + 4):
            if not es.send(f"tick {n}", event="tick", id=n):
                return
            es.wait_closed(0.05)
        es.close()

    es.spawn(produce)
    return response


sock.init_app(app)
