"""Issue 15 item 2: a per-process cap on open WebSockets and event streams.

On gunicorn's gthread worker the default cap leaves a quarter of ``--threads``
(at least one) for ordinary requests: with ``--threads 4``, three sockets; a
plain GET still gets its thread, and a fourth socket or stream gets 503 with
``Retry-After`` at once, logged once.
"""

from __future__ import annotations

import gc
import http.client
import time

import pytest

import faye_sync
from faye_sync import Client, HandshakeError, connect, set_connection_limit
from faye_sync.exceptions import ConnectionClosed
from faye_sync.testing import TestClient
from tests.apps.admission_app import app
from tests.servers import Server, serve

TIMEOUT = 5.0


def get(
    server: Server, path: str, headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
    connection.request("GET", path, headers=headers or {})
    return connection.getresponse()


def test_gthread_keeps_threads_for_plain_requests() -> None:
    with serve("gunicorn-gthread", "tests.apps.admission_app:app", threads=4) as server:
        url = f"ws://{server.host}:{server.port}/ws"
        sockets = [connect(url, timeout=TIMEOUT) for _ in range(3)]  # idle, each holds a thread
        try:
            response = get(server, "/")
            assert (response.status, response.read()) == (200, b"page")
            with pytest.raises(HandshakeError) as refused:
                connect(url, timeout=TIMEOUT)
            assert refused.value.status == 503
            assert refused.value.headers["retry-after"] == "5"
            stream = get(server, "/events", {"Accept": "text/event-stream"})
            assert stream.status == 503
            assert stream.getheader("Retry-After") == "5"
            # The sockets still work, and a closed one frees its slot.
            sockets[0].send("still here")
            assert sockets[0].receive(timeout=TIMEOUT) == "still here"
            sockets.pop(0).close()
            sockets.append(connect_when_admitted(url))
        finally:
            for ws in sockets:
                ws.close()
        log = server.log()
        assert log.count("at most 3 open WebSockets and event streams") == 1
        assert log.count("further ones get 503") == 1
        assert "Traceback" not in log


def connect_when_admitted(url: str) -> Client:
    """The slot is freed when the server's side has seen the close: retry briefly."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return connect(url, timeout=TIMEOUT)
        except HandshakeError as error:
            if error.status != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def open_now() -> int:
    now = faye_sync.stats()
    return now.websockets_open + now.event_streams_open


def test_set_connection_limit_applies_to_any_server() -> None:
    set_connection_limit(open_now() + 1, retry_after=7)  # one more than this process holds
    try:
        with TestClient(app) as client, client.websocket("/ws") as ws:
            ws.send("one")
            assert ws.receive(timeout=TIMEOUT) == "one"
            with pytest.raises(HandshakeError) as refused, client.websocket("/ws"):
                pass
            assert refused.value.status == 503
            assert refused.value.headers["retry-after"] == "7"
        # Closed: the slot is free again.
        with TestClient(app) as client, client.websocket("/ws") as ws:
            ws.send("two")
            assert ws.receive(timeout=TIMEOUT) == "two"
    finally:
        set_connection_limit()


def test_limit_is_checked() -> None:
    with pytest.raises(ValueError, match="limit"):
        set_connection_limit(-1)
    with pytest.raises(ValueError, match="retry_after"):
        set_connection_limit(3, retry_after=0)


def test_a_handler_that_raises_frees_its_slot_when_collected() -> None:
    before = open_now()
    with TestClient(app) as client, pytest.raises(RuntimeError, match="handler failed"):
        with client.websocket("/raise") as ws:
            ws.send("go")
            with pytest.raises(ConnectionClosed):
                ws.receive(timeout=TIMEOUT)
    gc.collect()  # the WebSocket the handler dropped, and its finaliser
    assert open_now() == before


def test_a_handler_that_returns_something_else_is_told_to_return_ws_response(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with TestClient(app) as client, client.websocket("/forgets") as ws:
        ws.send("hi")
        assert ws.receive(timeout=TIMEOUT) == "hi"
    gc.collect()  # the WebSocket the handler dropped, and its finaliser
    assert "must return ws.response" in caplog.text
