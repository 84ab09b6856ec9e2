"""What the Flask and Django helpers must do alike, checked on both, on real servers.

Each test runs for both frameworks on three servers each (``conftest.py``). What
differs is named by :class:`Site`: where the WebSocket views are, and the line
each test app logs once the framework has finished a request (Flask's
``after_request``, the Django middleware's response phase), which shows that the
framework's own hooks ran. Each framework's own behaviour (Flask's request
context and shared routes, Django's database connections) is in
``test_flask.py`` and ``test_django.py``.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import pytest
from websockets.sync.client import connect

from tests.contrib import (
    http_get,
    masked,
    open_websocket,
    read_body,
    read_frame,
    read_head,
    read_to_eof,
)
from tests.contrib.conftest import APPS, KINDS, ContribServer
from tests.servers import Server, is_available, serve

SSE = {"Accept": "text/event-stream"}


@dataclass(frozen=True)
class Site:
    framework: str
    server: Server
    prefix: str  # where the WebSocket views are: "/echo" or "/ws/echo"

    def finished(self, path: str, status: int) -> str:
        """What the app logs once the framework has finished the request (its hooks ran)."""
        if self.framework == "flask":  # after_request, then teardown_request
            return rf"^after_request {re.escape(path)} {status}\nteardown {re.escape(path)} "
        return rf"^response {re.escape(path)} {status} "

    def log_since(self, start: int) -> str:
        return self.server.log()[start:]


SITES = [(framework, kind) for framework in ("flask", "django") for kind in KINDS[framework]]


@pytest.fixture(params=SITES, ids=[f"{f}-{k}" for f, k in SITES])
def site(request: pytest.FixtureRequest, contrib_server: ContribServer) -> Site:
    framework, kind = request.param
    prefix = "/" if framework == "flask" else "/ws/"
    return Site(framework, contrib_server(framework, kind), prefix)


def test_echo_runs_the_frameworks_hooks_and_leaves_no_traceback(site: Site) -> None:
    path = f"{site.prefix}echo"
    start = len(site.server.log())
    with connect(f"ws://127.0.0.1:{site.server.port}{path}", open_timeout=5) as ws:
        # The helper's options (extensions=[PerMessageDeflate()]) reached the WebSocket.
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        ws.send("héllo")
        assert ws.recv(timeout=5) == "héllo"
        ws.send(b"\x00\xff" * 1000)
        assert ws.recv(timeout=5) == b"\x00\xff" * 1000
    site.server.wait_for_log(r"^close 1000 $", timeout=5, start=start)
    site.server.wait_for_log(r"^handler-end$", timeout=5, start=start)
    site.server.wait_for_log(site.finished(path, 101), timeout=5, start=start)
    # runserver (wsgiref) writes no access line once the client has gone first.
    if site.server.kind != "django":
        access = rf'"GET {re.escape(path)} HTTP/1\.1" 101'
        site.server.wait_for_log(access, timeout=5, start=start)
    assert "Traceback" not in site.log_since(start)


def closed_by_the_server(site: Site, path: str, message: bytes) -> tuple[bytes, bytes, float]:
    """Open a WebSocket at ``path``, send ``message`` and answer the server's close.

    Returns the close frame's payload, what came after it, and how long the FIN took.
    """
    sock, head, rest = open_websocket(site.server, path)
    with sock:
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), head
        sock.sendall(masked(0x1, message))
        opcode, payload, rest = read_frame(sock, rest)
        assert (opcode, rest) == (0x8, b""), (opcode, rest)
        sock.sendall(masked(0x8, payload))
        trailing, elapsed = read_to_eof(sock)
    return payload, trailing, elapsed


def test_server_close_is_the_last_thing_on_the_wire(site: Site) -> None:
    path = f"{site.prefix}echo"
    start = len(site.server.log())
    payload, trailing, elapsed = closed_by_the_server(site, path, b"close 4001 bye")
    assert payload == struct.pack("!H", 4001) + b"bye"
    assert trailing == b"", f"bytes after the close frame: {trailing!r}"
    assert elapsed < 1.0
    site.server.wait_for_log(r"^close 4001 bye$", timeout=5, start=start)
    site.server.wait_for_log(site.finished(path, 101), timeout=5, start=start)
    assert "Traceback" not in site.log_since(start)


def test_plain_request_to_a_websocket_view_gets_400(site: Site) -> None:
    start = len(site.server.log())
    status, headers, body = http_get(site.server, f"{site.prefix}echo")
    assert status == 400
    assert headers["Content-Type"].startswith("text/plain")
    assert body.startswith(b"This URL is a WebSocket endpoint: connect with a WebSocket client")
    assert "Traceback" not in site.log_since(start)


def test_rejected_handshake_gets_fayes_error_without_the_view(site: Site) -> None:
    start = len(site.server.log())
    sock = site.server.connect()
    with sock:
        sock.sendall(
            f"GET {site.prefix}echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n".encode()
            + b"Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head, rest = read_head(sock)
        body = read_body(sock, head, rest)
    assert head.startswith(b"HTTP/1.1 426 "), head
    assert b"Sec-WebSocket-Version: 13" in head
    assert body == b"Unsupported WebSocket version: 8"
    site.server.wait_for_log(site.finished(f"{site.prefix}echo", 426), timeout=5, start=start)
    assert "handler-end" not in site.log_since(start)  # the view never ran


def test_view_that_raises_closes_1011_and_the_framework_logs_it(site: Site) -> None:
    path = f"{site.prefix}fail"
    start = len(site.server.log())
    payload, trailing, _ = closed_by_the_server(site, path, b"go")
    assert payload[:2] == struct.pack("!H", 1011)
    assert trailing == b"", f"the framework's error page reached the wire: {trailing!r}"
    # The framework's own error handling saw the exception: logged, and a 500 for its hooks.
    site.server.wait_for_log(r"RuntimeError: boom in the view", timeout=5, start=start)
    site.server.wait_for_log(site.finished(path, 500), timeout=5, start=start)


def test_event_source_streams_and_resumes(site: Site) -> None:
    start = len(site.server.log())
    status, headers, body = http_get(site.server, "/events", SSE)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["X-Accel-Buffering"] == "no"
    assert body.startswith(b"retry: 1000\r\n\r\n")
    assert re.findall(rb"id: (\d+)\r\ndata: tick \1", body) == [b"1", b"2", b"3"]
    _, _, body = http_get(site.server, "/events", {**SSE, "Last-Event-ID": "5"})
    assert re.findall(rb"id: (\d+)\r\n", body) == [b"6", b"7", b"8"]
    site.server.wait_for_log(site.finished("/events", 200), timeout=5, start=start)
    assert "Traceback" not in site.log_since(start)


@pytest.mark.skipif(not is_available("waitress"), reason="waitress is not installed")
@pytest.mark.parametrize("framework", ["flask", "django"])
def test_waitress_refuses_with_501_and_logs_once(
    framework: str, django_env: dict[str, str]
) -> None:
    if not is_available(framework):
        pytest.skip(f"{framework} is not installed")
    env = django_env if framework == "django" else None
    with serve("waitress", APPS[framework], env=env) as server:
        site = Site(framework, server, "/" if framework == "flask" else "/ws/")
        path = f"{site.prefix}echo"
        for _ in range(2):
            start = len(server.log())
            sock, head, rest = open_websocket(server, path)
            with sock:
                body = read_body(sock, head, rest)
            assert head.startswith(b"HTTP/1.1 501 Not Implemented\r\n"), head
            assert b"waitress cannot hand a WebSocket its socket" in body
            assert b"gunicorn" in body  # the fix
            server.wait_for_log(site.finished(path, 501), timeout=5, start=start)
        log = server.log()
        assert len(re.findall(r"ERROR faye_sync: WebSocket refused .*waitress", log)) == 1
        # EventSource needs no hijack: it streams on waitress too.
        status, _, body = http_get(server, "/events", SSE)
        assert status == 200
        assert body.count(b"event: tick") == 3
        assert "Traceback" not in server.log()
