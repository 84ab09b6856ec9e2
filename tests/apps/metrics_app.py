"""The README's Flask metrics endpoint, beside an echo WebSocket and an event stream.

``/metrics`` serves Prometheus's text format, ``/stats`` the same numbers as JSON.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import faye_sync
from faye_sync.contrib.flask import Sock, event_source
from faye_sync.contrib.prometheus import register
from faye_sync.websocket import WebSocket

app = Flask(__name__)
sock = Sock(app)
register()  # once per process
faye_sync.add_gauge("answer", lambda: 42)


@app.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)


@app.get("/stats")
def stats() -> Response:
    return jsonify(faye_sync.stats().as_dict())


@sock.route("/echo")
def echo(ws: WebSocket) -> None:
    for message in ws:
        if message == "bye":
            ws.close(4000, "bye")
        else:
            ws.send(message)


@app.get("/events")
def events() -> Response:
    es, response = event_source()
    es.send("open")
    return response
