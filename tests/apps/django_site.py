"""A small Django project with sessions and auth: the README's Django recipes, run by tests.

* ``/ws/echo``: echoes. ``/ws/room``: the room of ``tests.apps.rooms``.
* ``/ws/whoami``: answers ``request.user`` (the session cookie's user) with the
  README's recipe: anonymous users get 403 before any 101.
* ``/ws/token``: the token-in-query recipe, for clients that cannot send cookies:
  ``/token`` gives a logged-in user a signed token valid for a minute.
* ``/events``: an event stream that resumes after ``Last-Event-ID``.
* ``/metrics`` and ``/stats``: the README's metrics endpoints (Prometheus, JSON).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core import signing
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.urls import path

import faye_sync
from faye_sync.contrib.django import event_source_response, websocket_view
from faye_sync.websocket import WebSocket


@websocket_view
def echo(request: HttpRequest, ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


@websocket_view
def whoami_socket(request: HttpRequest, ws: WebSocket) -> None:
    ws.send(f"hello {request.user.get_username()}")
    for message in ws:
        ws.send(f"{request.user.get_username()}: {message}")


def whoami(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return HttpResponseForbidden("log in first\n")
    return whoami_socket(request)


def token(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return HttpResponseForbidden("log in first\n")
    return HttpResponse(signing.dumps({"user": request.user.pk}, salt="websocket"))


@websocket_view
def token_socket(request: HttpRequest, ws: WebSocket, user: object) -> None:
    ws.send(f"hello {user}")


def with_token(request: HttpRequest) -> HttpResponse:
    try:
        claims = signing.loads(request.GET.get("token", ""), salt="websocket", max_age=60)
        user = get_user_model().objects.get(pk=claims["user"])
    except (signing.BadSignature, get_user_model().DoesNotExist):
        return HttpResponseForbidden("a valid token is needed\n")
    return token_socket(request, user=user.get_username())


@websocket_view
def room(request: HttpRequest, ws: WebSocket) -> None:
    from tests.apps.rooms import serve_blocking

    serve_blocking(ws)  # set-up, join the room, then broadcast: tests/test_open_before_101.py


def metrics(request: HttpRequest) -> HttpResponse:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def stats(request: HttpRequest) -> JsonResponse:
    return JsonResponse(faye_sync.stats().as_dict())


def events(request: HttpRequest) -> HttpResponse:
    es, response = event_source_response(request, retry=1)
    start = int(es.last_event_id or 0)
    for n in range(start + 1, start + 4):
        es.send(f"tick {n}", id=n)
    es.close()
    return response


urlpatterns = [
    path("ws/echo", echo),
    path("ws/room", room),
    path("ws/whoami", whoami),
    path("ws/token", with_token),
    path("token", token),
    path("events", events),
    path("metrics", metrics),
    path("stats", stats),
]

application = get_wsgi_application()
