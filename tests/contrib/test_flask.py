"""``faye_sync.contrib.flask`` on real servers: werkzeug with its debugger, gunicorn, waitress.

Each check reads the wire (nothing after the close frame, a prompt FIN) and the
server's log (Flask's ``after_request`` and ``teardown_request`` ran, ``101`` in
the access line, no traceback). One test runs ``flask run --debug`` itself, with
the reloader and the debugger on.
"""

from __future__ import annotations

import contextlib
import http.client
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
from websockets.sync.client import connect

from faye_sync.testing import TestClient
from tests.apps.contrib_flask import app as flask_app
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

APP = "tests.apps.contrib_flask:app"
KINDS = ["werkzeug", "gunicorn-gthread", "gunicorn-gevent"]
SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    kind = request.param
    if not is_available(kind):
        pytest.skip(f"{kind} is not installed")
    # werkzeug as `flask run --debug` serves it: inside DebuggedApplication.
    options: dict[str, object] = {"debugger": True} if kind == "werkzeug" else {"timeout": 30}
    with serve(kind, APP, **options) as running:
        yield running


def log_since(server: Server, start: int) -> str:
    return server.log()[start:]


def test_echo_runs_flask_hooks_and_leaves_no_traceback(server: Server) -> None:
    start = len(server.log())
    with connect(f"ws://127.0.0.1:{server.port}/echo", open_timeout=5) as ws:
        # Sock(extensions=[PerMessageDeflate()]) reached the WebSocket.
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        ws.send("héllo")
        assert ws.recv(timeout=5) == "héllo"
        ws.send(b"\x00\xff" * 1000)
        assert ws.recv(timeout=5) == b"\x00\xff" * 1000
    server.wait_for_log(r"^close 1000 $", timeout=5, start=start)
    server.wait_for_log(r"^handler-end$", timeout=5, start=start)
    server.wait_for_log(r"^after_request /echo 101$", timeout=5, start=start)
    server.wait_for_log(r"^teardown /echo None$", timeout=5, start=start)
    server.wait_for_log(r'"GET /echo HTTP/1\.1" 101', timeout=5, start=start)
    assert "Traceback" not in log_since(server, start)


def test_server_close_is_the_last_thing_on_the_wire(server: Server) -> None:
    start = len(server.log())
    sock, head, rest = open_websocket(server, "/echo")
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
    server.wait_for_log(r"^teardown /echo None$", timeout=5, start=start)
    assert "Traceback" not in log_since(server, start)


def test_event_style_view_has_the_request_context(capfd: pytest.CaptureFixture[str]) -> None:
    # Flask's logic, not the server's: the test client is enough (faye_sync.testing).
    with TestClient(flask_app) as client, client.websocket("/room/blue") as ws:
        ws.send("hi")
        assert ws.receive(timeout=5) == "blue /room/blue ada hi"
    assert "room closed 1000\nafter_request /room/blue 101\nteardown /room/blue None\n" in (
        capfd.readouterr().err
    )


def test_plain_request_to_a_websocket_route_gets_400(server: Server) -> None:
    start = len(server.log())
    status, _, body = http_get(server, "/echo")
    assert status == 400
    assert body.startswith(b"This URL is a WebSocket endpoint: connect with a WebSocket client")
    # A WebSocket route and an ordinary route can share a path.
    assert http_get(server, "/shared")[::2] == (200, b"page")
    with connect(f"ws://127.0.0.1:{server.port}/shared", open_timeout=5) as ws:
        assert ws.recv(timeout=5) == "ws"
    server.wait_for_log(r"^teardown /shared None$", timeout=5, start=start)
    assert "Traceback" not in log_since(server, start)


def test_rejected_handshake_gets_fayes_error_without_the_view(server: Server) -> None:
    sock = server.connect()
    with sock:
        sock.sendall(
            b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head, rest = read_head(sock)
        body = read_body(sock, head, rest)
    assert head.startswith(b"HTTP/1.1 426 "), head
    assert b"Sec-WebSocket-Version: 13" in head
    assert body == b"Unsupported WebSocket version: 8"


def test_view_that_raises_closes_1011_and_flask_logs_it(server: Server) -> None:
    start = len(server.log())
    sock, head, rest = open_websocket(server, "/fail")
    with sock:
        assert head.startswith(b"HTTP/1.1 101 "), head
        sock.sendall(masked(0x1, b"go"))
        opcode, payload, rest = read_frame(sock, rest)
        assert (opcode, payload[:2], rest) == (0x8, struct.pack("!H", 1011), b"")
        sock.sendall(masked(0x8, payload[:2]))
        trailing, _ = read_to_eof(sock)
    assert trailing == b"", f"Flask's error page reached the wire: {trailing!r}"
    # Flask's own error handling saw the exception: logged, and given to teardown.
    server.wait_for_log(r"RuntimeError: boom in the view", timeout=5, start=start)
    server.wait_for_log(r"^teardown /fail RuntimeError", timeout=5, start=start)


def test_event_source_streams_and_resumes(server: Server) -> None:
    start = len(server.log())
    status, headers, body = http_get(server, "/events", SSE)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["X-Accel-Buffering"] == "no"
    assert body.startswith(b"retry: 1000\r\n\r\n")
    assert re.findall(rb"id: (\d+)\r\ndata: tick \1", body) == [b"1", b"2", b"3"]
    _, _, body = http_get(server, "/events", {**SSE, "Last-Event-ID": "5"})
    assert re.findall(rb"id: (\d+)\r\n", body) == [b"6", b"7", b"8"]
    server.wait_for_log(r"^after_request /events 200$", timeout=5, start=start)
    assert "Traceback" not in log_since(server, start)


# -- waitress: no hijack, a clear refusal -----------------------------------


@pytest.mark.skipif(not is_available("waitress"), reason="waitress is not installed")
def test_waitress_refuses_with_501_and_logs_once() -> None:
    with serve("waitress", APP) as server:
        for _ in range(2):
            sock, head, rest = open_websocket(server, "/echo")
            with sock:
                body = read_body(sock, head, rest)
            assert head.startswith(b"HTTP/1.1 501 Not Implemented\r\n"), head
            assert b"waitress cannot hand a WebSocket its socket" in body
            assert b"gunicorn" in body  # the fix
        server.wait_for_log(r"^teardown /echo None$", timeout=5)
        log = server.log()
        assert len(re.findall(r"ERROR faye_sync: WebSocket refused .*waitress", log)) == 1
        # EventSource needs no hijack: it streams on waitress too.
        status, _, body = http_get(server, "/events", SSE)
        assert status == 200
        assert body.count(b"event: tick") == 3
        assert "Traceback" not in server.log()


# -- flask run --debug, reloader and debugger on ---------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def _flask_run_debug(port: int) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix="faye_sync-flask-run-", suffix=".log")
    log_path = Path(name)
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "flask", "--app", "tests.apps.contrib_flask"]
    command += ["run", "--debug", "--host", "127.0.0.1", "--port", str(port)]
    try:
        with os.fdopen(fd, "wb") as log_file:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the reloader's child is in the same group
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


def _wait_for(log_path: Path, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = re.sub(r"\x1b\[[0-9;]*m", "", log_path.read_text("utf-8", "replace"))
        if re.search(pattern, text, re.MULTILINE):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not in the flask run output:\n{text}")
        time.sleep(0.05)


def test_flask_run_debug_with_reloader() -> None:
    port = _free_port()
    with _flask_run_debug(port) as log_path:
        _wait_for(log_path, r"Debugger is active", timeout=15)
        deadline = time.monotonic() + 10
        while True:  # the reloader's child binds the port a moment after its banner
            try:
                ws = connect(f"ws://127.0.0.1:{port}/echo", open_timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with ws:
            ws.send("under the debugger")
            assert ws.recv(timeout=5) == "under the debugger"
            ws.close(4000, "done")
        output = _wait_for(log_path, r"^teardown /echo None$", timeout=5)
        output = _wait_for(log_path, r'"GET /echo HTTP/1\.1" 101', timeout=5)
        assert re.search(r"^close 4000 done$", output, re.MULTILINE)
        assert re.search(r"^after_request /echo 101$", output, re.MULTILINE)
        assert re.search(r"Restarting with \w+", output)  # the reloader is on
        assert "Traceback" not in output
        assert "Debugging middleware caught exception" not in output


# -- the example app -------------------------------------------------------


@pytest.mark.skipif(not is_available("gunicorn-gevent"), reason="gevent is not installed")
def test_example_app_under_gunicorn_gevent() -> None:
    with serve("gunicorn-gevent", "wsgi_examples.flask_echo:app", timeout=30) as server:
        base = f"ws://127.0.0.1:{server.port}"
        with connect(f"{base}/echo", open_timeout=5) as echo:
            echo.send(b"\x01\x02")
            assert echo.recv(timeout=5) == b"\x01\x02"
        with connect(f"{base}/chat/lobby", open_timeout=5) as ada:
            ada.send("first")  # its echo means ada is in the room
            assert ada.recv(timeout=5) == "first"
            with connect(f"{base}/chat/lobby", open_timeout=5) as bob:
                bob.send("hi")
                assert bob.recv(timeout=5) == ada.recv(timeout=5) == "hi"
        connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
        with contextlib.closing(connection):
            connection.request("GET", "/clock", headers=SSE)
            response = connection.getresponse()
            assert response.status == 200
            assert response.readline() == b"retry: 2000\r\n"
            assert response.readline() == b"\r\n"
            assert response.readline() == b"event: tick\r\n"  # within a second
        assert "Traceback" not in server.log()


# -- in process: registration and options ----------------------------------

UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def test_routes_on_blueprints_and_apps_initialised_later() -> None:
    from flask import Blueprint, Flask

    from faye_sync.contrib.flask import Sock

    sock = Sock()
    blueprint = Blueprint("things", __name__)

    @sock.route("/before/<int:n>")
    def before(ws: object, n: int) -> None: ...

    @sock.route("/on-blueprint", bp=blueprint, endpoint="socket")
    def on_blueprint(ws: object) -> None: ...

    app = Flask(__name__)
    app.register_blueprint(blueprint)
    sock.init_app(app)

    @sock.route("/after", strict_slashes=False, ping=5)
    def after(ws: object) -> None: ...

    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    assert {"/before/<int:n>", "/on-blueprint", "/after"} <= set(rules)
    assert all(rules[path].websocket for path in ("/before/<int:n>", "/on-blueprint", "/after"))
    assert rules["/on-blueprint"].endpoint == "things.socket"
    assert rules["/before/<int:n>"].endpoint == "before"
    # The test client is no server to take a socket from: a clear 501, no 500.
    response = app.test_client().get("/after", headers=UPGRADE)
    assert response.status_code == 501
    assert b"cannot find the connection socket" in response.data
    plain = app.test_client().get("/after")
    assert plain.status_code == 400
    assert b"This URL is a WebSocket endpoint" in plain.data


def test_unknown_options_and_async_views_are_refused_early() -> None:
    from flask import Flask

    from faye_sync.contrib.flask import Sock

    with pytest.raises(TypeError, match="max_lenght"):
        Sock(max_lenght=10)
    sock = Sock()
    app = Flask(__name__)
    app.config["FAYE_SYNC_OPTIONS"] = {"pings": 5}
    with pytest.raises(TypeError, match="pings"):
        sock.init_app(app)
    with pytest.raises(TypeError, match="async"):

        @sock.route("/async")
        async def view(ws: object) -> None: ...
