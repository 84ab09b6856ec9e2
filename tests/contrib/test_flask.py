"""``faye_sync.contrib.flask`` on real servers: what only Flask's helpers do.

What the Flask and Django helpers do alike (the wire, the framework's hooks, a
view that raises, waitress) is in ``test_frameworks.py``. One test runs
``flask run --debug`` itself, with the reloader and the debugger on.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import sys
import time

import pytest
from websockets.sync.client import connect

from faye_sync.testing import TestClient
from tests.apps.contrib_flask import app as flask_app
from tests.contrib import http_get
from tests.contrib.conftest import APPS, KINDS, ContribServer
from tests.processes import free_port, run
from tests.servers import Server, is_available, serve

APP = APPS["flask"]
SSE = {"Accept": "text/event-stream"}


@pytest.fixture(params=KINDS["flask"])
def server(request: pytest.FixtureRequest, contrib_server: ContribServer) -> Server:
    return contrib_server("flask", request.param)


def log_since(server: Server, start: int) -> str:
    return server.log()[start:]


def test_event_style_view_has_the_request_context(capfd: pytest.CaptureFixture[str]) -> None:
    # Flask's logic, not the server's: the test client is enough (faye_sync.testing).
    with TestClient(flask_app) as client, client.websocket("/room/blue") as ws:
        ws.send("hi")
        assert ws.receive(timeout=5) == "blue /room/blue ada hi"
    assert "room closed 1000\nafter_request /room/blue 101\nteardown /room/blue None\n" in (
        capfd.readouterr().err
    )


def test_a_websocket_route_and_an_ordinary_route_share_a_path(server: Server) -> None:
    start = len(server.log())
    assert http_get(server, "/shared")[::2] == (200, b"page")
    with connect(f"ws://127.0.0.1:{server.port}/shared", open_timeout=5) as ws:
        assert ws.recv(timeout=5) == "ws"
    server.wait_for_log(r"^teardown /shared None$", timeout=5, start=start)
    assert "Traceback" not in log_since(server, start)


# -- waitress: no hijack, a clear refusal -----------------------------------


# -- flask run --debug, reloader and debugger on ---------------------------


def test_flask_run_debug_with_reloader() -> None:
    port = free_port()
    command = [sys.executable, "-m", "flask", "--app", "tests.apps.contrib_flask"]
    command += ["run", "--debug", "--host", "127.0.0.1", "--port", str(port)]
    with run(command, None) as flask_run:
        flask_run.wait_for(r"Debugger is active", timeout=15)
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
        flask_run.wait_for(r"^teardown /echo None$", timeout=5)
        flask_run.wait_for(r'"GET /echo HTTP/1\.1" 101', timeout=5)
        output = flask_run.log()
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


def test_event_source_takes_every_option_the_django_helper_takes() -> None:
    from flask import Flask

    from faye_sync.contrib.flask import event_source

    app = Flask(__name__)
    with app.test_request_context("/events", headers=SSE):
        es, response = event_source(headers={"X-A": "1"}, retry=0, ping=5, max_buffered=100)
        assert response.headers["X-A"] == "1"
        stream = iter(response.response)
        assert next(stream) == b"retry: 0\r\n\r\n"
        assert es.send("x" * 60)
        assert not es.send("y" * 60)  # over max_buffered=100: the stream ends
