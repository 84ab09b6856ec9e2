"""``faye_sync.contrib.django`` on real servers: Django's runserver, gunicorn, waitress.

Each check reads the wire (nothing after the close frame, a prompt FIN) and the
server's log (the middleware's response phase ran and saw a 101, no
traceback). The database checks use two SQLite files, one with persistent
connections and ``ATOMIC_REQUESTS``: see ``tests/apps/contrib_django_settings.py``.
One test runs the example project with ``runserver`` and its autoreloader.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.contrib import (
    http_get,
    masked,
    open_websocket,
    read_body,
    read_frame,
    read_head,
    read_to_eof,
)
from tests.servers import ROOT, Server, is_available, serve

APP = "tests.apps.contrib_django:application"
SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.apps.contrib_django_settings"}
KINDS = ["django", "gunicorn-gthread", "gunicorn-gevent"]
SSE = {"Accept": "text/event-stream"}

pytestmark = pytest.mark.skipif(not is_available("django"), reason="Django is not installed")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The settings module, and a directory for its SQLite files."""
    database_dir = tmp_path_factory.mktemp("django-db")
    return {**SETTINGS, "FAYE_SYNC_TEST_DB_DIR": str(database_dir)}


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest, env: dict[str, str]) -> Iterator[Server]:
    kind = request.param
    if not is_available(kind):
        pytest.skip(f"{kind} is not installed")
    options: dict[str, object] = {"timeout": 30} if kind.startswith("gunicorn") else {}
    with serve(kind, APP, env=env, **options) as running:
        yield running


def log_since(server: Server, start: int) -> str:
    return server.log()[start:]


def wait_for_access_line(server: Server, path: str, start: int) -> None:
    # runserver (wsgiref) writes no access line once the client has gone first.
    if server.kind != "django":
        server.wait_for_log(rf'"GET {re.escape(path)} HTTP/1\.1" 101', timeout=5, start=start)


def test_echo_runs_the_middleware_and_leaves_no_traceback(server: Server) -> None:
    start = len(server.log())
    with connect(f"ws://127.0.0.1:{server.port}/ws/echo", open_timeout=5) as ws:
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        ws.send("héllo")
        assert ws.recv(timeout=5) == "héllo"
        ws.send(b"\x00\xff" * 1000)
        assert ws.recv(timeout=5) == b"\x00\xff" * 1000
    server.wait_for_log(r"^close 1000 $", timeout=5, start=start)
    server.wait_for_log(r"^handler-end$", timeout=5, start=start)
    server.wait_for_log(r"^response /ws/echo 101 ", timeout=5, start=start)
    wait_for_access_line(server, "/ws/echo", start)
    assert "Traceback" not in log_since(server, start)


def test_server_close_is_the_last_thing_on_the_wire(server: Server) -> None:
    start = len(server.log())
    sock, head, rest = open_websocket(server, "/ws/echo")
    with sock:
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), head
        sock.sendall(masked(0x1, b"close 4001 bye"))
        opcode, payload, rest = read_frame(sock, rest)
        assert (opcode, payload, rest) == (0x8, struct.pack("!H", 4001) + b"bye", b"")
        sock.sendall(masked(0x8, payload))
        trailing, elapsed = read_to_eof(sock)
    assert trailing == b"", f"bytes after the close frame: {trailing!r}"
    assert elapsed < 1.0
    server.wait_for_log(r"^close 4001 bye$", timeout=5, start=start)
    server.wait_for_log(r"^response /ws/echo 101 ", timeout=5, start=start)
    assert "Traceback" not in log_since(server, start)


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


def test_plain_request_to_a_websocket_view_gets_400(server: Server) -> None:
    start = len(server.log())
    status, headers, body = http_get(server, "/ws/echo")
    assert status == 400
    assert headers["Content-Type"].startswith("text/plain")
    assert b"This URL is a WebSocket endpoint" in body
    assert "Traceback" not in log_since(server, start)


def test_rejected_handshake_gets_fayes_error_without_the_view(server: Server) -> None:
    sock = server.connect()
    with sock:
        sock.sendall(
            b"GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head, rest = read_head(sock)
        body = read_body(sock, head, rest)
    assert head.startswith(b"HTTP/1.1 426 "), head
    assert b"Sec-WebSocket-Version: 13" in head
    assert body == b"Unsupported WebSocket version: 8"


def test_view_that_raises_closes_1011_and_django_logs_it(server: Server) -> None:
    start = len(server.log())
    sock, head, rest = open_websocket(server, "/ws/fail")
    with sock:
        assert head.startswith(b"HTTP/1.1 101 "), head
        sock.sendall(masked(0x1, b"go"))
        opcode, payload, rest = read_frame(sock, rest)
        assert (opcode, payload[:2], rest) == (0x8, struct.pack("!H", 1011), b"")
        sock.sendall(masked(0x8, payload[:2]))
        trailing, _ = read_to_eof(sock)
    assert trailing == b"", f"Django's error page reached the wire: {trailing!r}"
    server.wait_for_log(r"Internal Server Error: /ws/fail", timeout=5, start=start)
    server.wait_for_log(r"RuntimeError: boom in the view", timeout=5, start=start)
    server.wait_for_log(r"^response /ws/fail 500 ", timeout=5, start=start)


def test_event_source_streams_and_releases_the_database(server: Server) -> None:
    start = len(server.log())
    status, headers, body = http_get(server, "/events", SSE)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert body.startswith(b"retry: 1000\r\n\r\n")
    # The middleware's connection was closed when the stream opened.
    assert b"event: db\r\ndata: db False\r\n" in body
    assert re.findall(rb"id: (\d+)\r\ndata: tick \1", body) == [b"1", b"2", b"3"]
    _, _, body = http_get(server, "/events", {**SSE, "Last-Event-ID": "5"})
    assert re.findall(rb"id: (\d+)\r\n", body) == [b"6", b"7", b"8"]
    server.wait_for_log(r"^response /events 200 ", timeout=5, start=start)
    assert "Traceback" not in log_since(server, start)


@pytest.mark.skipif(not is_available("waitress"), reason="waitress is not installed")
def test_waitress_refuses_with_501_and_logs_once(env: dict[str, str]) -> None:
    with serve("waitress", APP, env=env) as server:
        for _ in range(2):
            sock, head, rest = open_websocket(server, "/ws/echo")
            with sock:
                body = read_body(sock, head, rest)
            assert head.startswith(b"HTTP/1.1 501 Not Implemented\r\n"), head
            assert b"waitress cannot hand a WebSocket its socket" in body
        server.wait_for_log(r"^response /ws/echo 501 ", timeout=5)
        log = server.log()
        assert len(re.findall(r"ERROR faye_sync: WebSocket refused .*waitress", log)) == 1
        status, _, body = http_get(server, "/events", SSE)
        assert status == 200
        assert body.count(b"event: tick") == 3
        assert "Traceback" not in server.log()


# -- the example project under `runserver`, autoreloader on ------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _runserver(port: int) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="faye_sync-runserver-", suffix=".log")
    log_path = Path(name)
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, "-m", "wsgi_examples.django_chat", "runserver", f"127.0.0.1:{port}"]
    try:
        with os.fdopen(fd, "wb") as log_file:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the autoreloader's child is in the same group
            )
        try:
            yield log_path
        finally:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
                try:
                    process.wait(timeout=3)
                    break
                except subprocess.TimeoutExpired:
                    continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    finally:
        log_path.unlink(missing_ok=True)


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
    port = _free_port()
    base = f"ws://127.0.0.1:{port}"
    with _runserver(port) as log_path:
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
        output = log_path.read_text("utf-8", "replace")
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
    with pytest.raises(TypeError, match="async"):

        @websocket_view
        async def async_view(request: object, ws: object) -> None: ...
