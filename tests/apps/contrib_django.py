"""The Django app the contrib tests drive (URLconf, views, middleware, WSGI app).

Run with ``DJANGO_SETTINGS_MODULE=tests.apps.contrib_django_settings``. A
middleware opens both databases' connections before each view and writes
``response <path> <status> default=<open> other=<open>`` to stderr (the server's
log) in its response phase. The WebSockets:

* ``/ws/echo``: echoes; ``close <code> <reason>`` makes the server close with
  that code; ``db?`` is answered with what the view's thread holds. Writes
  ``close <code> <reason>`` and ``handler-end``.
* ``/ws/db``: says whether the connections the middleware opened are still
  open and whether the view runs in a transaction, then queries both
  databases and echoes until closed.
* ``/ws/room/<name>``: event style, with a URL keyword argument.
* ``/ws/fail``: raises after the first message.

``/events`` is an event stream: ``db <open>`` (whether ``default`` is still
open once the stream opened), then three ``tick`` events, then the end.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from django.core.wsgi import get_wsgi_application
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.urls import path

from faye_sync import PerMessageDeflate
from faye_sync.contrib.django import event_source_response, websocket_view
from faye_sync.eventsource import EventSource, EventSourceEvent
from faye_sync.websocket import WebSocket


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def is_open(alias: str) -> bool:
    return connections[alias].connection is not None


def query(alias: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")


class DatabaseTouchingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query("default")
        query("other")
        response = self.get_response(request)
        say(
            f"response {request.path} {response.status_code} "
            f"default={is_open('default')} other={is_open('other')}"
        )
        return response


@websocket_view(extensions=[PerMessageDeflate()])
def echo(request: HttpRequest, ws: WebSocket) -> None:
    ws.on("close", lambda event: say(f"close {event.code} {event.reason}"))
    for message in ws:
        if isinstance(message, str) and message.startswith("close "):
            _, code, reason = message.split(" ", 2)
            ws.close(int(code), reason)
        elif message == "db?":
            ws.send(f"default={is_open('default')} other={is_open('other')}")
        else:
            ws.send(message)
    say("handler-end")


@websocket_view
def database(request: HttpRequest, ws: WebSocket) -> None:
    ws.send(
        f"default={is_open('default')} other={is_open('other')} "
        f"atomic={connections['default'].in_atomic_block}"
    )
    query("default")
    query("other")
    ws.send(f"queried default={is_open('default')} other={is_open('other')}")
    for message in ws:
        ws.send(message)


@websocket_view(max_length=1024)
def room(request: HttpRequest, ws: WebSocket, name: str) -> None:
    ws.on("message", lambda event: ws.send(f"{name} {request.path} {event.data!s}"))
    ws.on("close", lambda event: say(f"room closed {event.code}"))


@websocket_view
def fail(request: HttpRequest, ws: WebSocket) -> None:
    ws.receive(timeout=5)
    raise RuntimeError("boom in the view")


def events(request: HttpRequest) -> HttpResponse:
    if not EventSource.is_eventsource(request.META):
        return HttpResponse("not an event stream request\n", status=406)
    es, response = event_source_response(request, retry=1, ping=1)
    start = int(es.last_event_id or 0)

    def report(event: EventSourceEvent) -> None:
        es.send(f"db {is_open('default')}", event="db")

    def produce() -> None:
        for n in range(start + 1, start + 4):
            if not es.send(f"tick {n}", event="tick", id=n):
                return
            es.wait_closed(0.05)
        es.close()

    es.on("open", report)  # after the helper's own listener
    es.spawn(produce)
    return response


urlpatterns = [
    path("ws/echo", echo),
    path("ws/db", database),
    path("ws/room/<str:name>", room),
    path("ws/fail", fail),
    path("events", events),
]

application = get_wsgi_application()
