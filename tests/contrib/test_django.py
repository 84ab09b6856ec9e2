"""``faye_sync.contrib.django`` on real servers: what only Django's helpers do.

What the Flask and Django helpers do alike (the wire, the framework's hooks, a
view that raises, waitress) is in ``test_frameworks.py``. The database checks
use two SQLite files, one with persistent connections and ``ATOMIC_REQUESTS``:
see ``tests/apps/contrib_django_settings.py``.
One test runs the example project with ``runserver`` and its autoreloader.
"""

from __future__ import annotations

import re
import sys
import time

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.contrib import http_get
from tests.contrib.conftest import KINDS, ContribServer
from tests.processes import free_port, run
from tests.servers import Server, is_available

SSE = {"Accept": "text/event-stream"}

pytestmark = pytest.mark.skipif(not is_available("django"), reason="Django is not installed")


@pytest.fixture(params=KINDS["django"])
def server(request: pytest.FixtureRequest, contrib_server: ContribServer) -> Server:
    return contrib_server("django", request.param)


def log_since(server: Server, start: int) -> str:
    return server.log()[start:]


def test_database_connections_are_not_held_by_the_socket(server: Server) -> None:
    start = len(server.log())
    with connect(f"ws://127.0.0.1:{server.port}/ws/db", open_timeout=5) as ws:
        # The middleware opened both; both were closed before the view got the
        # socket (the persistent one too), and the view is outside ATOMIC_REQUESTS.
        assert ws.recv(timeout=5) == "default=False other=False atomic=False"
        assert ws.recv(timeout=5) == "queried default=True other=True"
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"
    # After the session, close_old_connections: the CONN_MAX_AGE=0 connection is
    # closed before the middleware's response phase; the persistent one is kept,
    # as Django keeps it after any request.
    server.wait_for_log(r"^response /ws/db 101 default=True other=False$", timeout=5, start=start)
    assert "Traceback" not in log_since(server, start)


def test_event_style_view_gets_url_arguments(server: Server) -> None:
    start = len(server.log())
    with connect(f"ws://127.0.0.1:{server.port}/ws/room/blue", open_timeout=5) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "blue /ws/room/blue hi"
    server.wait_for_log(r"^room closed 1000$", timeout=5, start=start)
    server.wait_for_log(r"^response /ws/room/blue 101 ", timeout=5, start=start)
    assert "Traceback" not in log_since(server, start)


def test_event_source_releases_the_database_when_it_opens(server: Server) -> None:
    start = len(server.log())
    status, _, body = http_get(server, "/events", SSE)
    assert status == 200
    # The middleware's connection was closed when the stream opened.
    assert b"event: db\r\ndata: db False\r\n" in body
    server.wait_for_log(r"^response /events 200 ", timeout=5, start=start)
    assert "Traceback" not in log_since(server, start)


# -- the example project under `runserver`, autoreloader on ------------------


def _connect_when_up(url: str, timeout: float) -> ClientConnection:
    deadline = time.monotonic() + timeout
    while True:  # the autoreloader's child binds the port a moment after starting
        try:
            return connect(url, open_timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_example_project_under_runserver_with_autoreloader() -> None:
    port = free_port()
    base = f"ws://127.0.0.1:{port}"
    command = [sys.executable, "-m", "wsgi_examples.django_chat", "runserver", f"127.0.0.1:{port}"]
    with run(command, None, env={"DJANGO_SETTINGS_MODULE": None}) as runserver:
        with _connect_when_up(f"{base}/ws/echo", timeout=15) as echo:
            echo.send("echo")
            assert echo.recv(timeout=5) == "echo"
        with connect(f"{base}/ws/chat?name=ada", open_timeout=5) as ada:
            ada.send("first")  # its echo means ada has joined the room
            assert ada.recv(timeout=5) == "ada: first"
            with connect(f"{base}/ws/chat?name=bob", open_timeout=5) as bob:
                bob.send("hi")
                assert bob.recv(timeout=5) == ada.recv(timeout=5) == "bob: hi"
                ada.send("hello")
                assert ada.recv(timeout=5) == bob.recv(timeout=5) == "ada: hello"
        with pytest.raises(Exception, match="HTTP 403"):
            connect(f"{base}/ws/chat", origin="http://elsewhere.example", open_timeout=5)
        output = runserver.log()
        # Django 5 says "Starting development server", 6 "Starting WSGI development server"
        assert re.search(r"Starting (WSGI )?development server", output)
        assert "Traceback" not in output


# -- in process: the decorator itself ----------------------------------------


def test_decorator_forms_and_early_refusals() -> None:
    from faye_sync.contrib.django import websocket_view

    def view(request: object, ws: object) -> None:
        """The view's docstring."""

    bare = websocket_view(view)
    with_options = websocket_view(ping=5)(view)
    for decorated in (bare, with_options):
        assert decorated.__name__ == "view"
        assert decorated.__doc__ == "The view's docstring."
        assert "any alias" in decorated._non_atomic_requests
    with pytest.raises(TypeError, match="max_lenght"):
        websocket_view(max_lenght=10)
    from faye_sync.contrib.django import event_source, event_source_response

    assert event_source_response is event_source  # the old name, kept
    with pytest.raises(TypeError, match="async"):

        @websocket_view
        async def async_view(request: object, ws: object) -> None: ...
