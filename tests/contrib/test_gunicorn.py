"""``faye_sync.contrib.gunicorn``: SIGTERM closes every WebSocket with 1001 at once,
and ends every event stream with a jittered ``retry``.

gunicorn is started as the README says (``-c python:faye_sync.contrib.gunicorn``)
and sent SIGTERM, as systemd, Docker and Kubernetes stop it. Without the hooks the
client hears nothing until the graceful timeout and then gets 1006 (issue 15,
item 10).
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import sys
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from faye_sync.eventsource import SHUTDOWN_RETRY_SPREAD
from tests.processes import run

APP = "tests.apps.handler_errors:app"
LISTENING = r"Listening at: http://127\.0\.0\.1:(\d+)"


def gunicorn(worker: str, *options: str, app: str = APP) -> list[str]:
    threads = ["--threads", "4"] if worker == "gthread" else []
    listen = ["-b", "127.0.0.1:0"]
    return [sys.executable, "-m", "gunicorn", "-k", worker, *threads, *listen, *options, app]


@pytest.mark.parametrize("worker", ["gevent", "gthread"])
def test_sigterm_closes_websockets_with_1001_at_once(worker: str) -> None:
    command = gunicorn(worker, "-c", "python:faye_sync.contrib.gunicorn")
    with run(command, LISTENING) as server:
        with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5, close_timeout=5) as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
            os.kill(server.process.pid, signal.SIGTERM)
            started = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None, server.log()
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                1001,
                "server shutting down",
            )
            assert time.monotonic() - started < 5  # gunicorn's graceful timeout is 30 s
        server.process.wait(timeout=10)  # and the server stops within seconds
        assert "Traceback" not in server.log()


@pytest.mark.parametrize("worker", ["gevent", "gthread"])
def test_sigterm_ends_event_streams_at_once_with_a_jittered_retry(worker: str) -> None:
    # Without the hooks gunicorn's graceful shutdown waits 30 s on an open stream.
    app = "tests.apps.eventsource_app:app"
    command = gunicorn(worker, "-c", "python:faye_sync.contrib.gunicorn", app=app)
    with run(command, LISTENING) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("GET", "/stream?name=sigterm", headers={"Accept": "text/event-stream"})
            response = conn.getresponse()
            assert response.read1(65536) == b"retry: 5000\r\n\r\n"
            os.kill(server.process.pid, signal.SIGTERM)
            started = time.monotonic()
            rest = b""
            while chunk := response.read1(65536):  # bounded by the 10 s socket timeout
                rest += chunk
            assert time.monotonic() - started < 5, rest  # gunicorn's graceful timeout is 30 s
        finally:
            conn.close()
        assert re.fullmatch(rb"(:\r\n\r\n)*retry: (\d+)\r\n\r\n", rest), rest
        retry = int(rest.rsplit(b"retry: ", 1)[1].strip())
        assert 5000 <= retry <= 5000 + SHUTDOWN_RETRY_SPREAD * 1000
        server.process.wait(timeout=10)  # and the server stops within seconds
        assert "Traceback" not in server.log()


def test_without_the_hooks_sigterm_leaves_the_client_waiting() -> None:
    """The control: the same worker without the hooks sends no close frame."""
    with run(gunicorn("gthread", "--graceful-timeout", "3"), LISTENING) as server:
        with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5, close_timeout=5) as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
            os.kill(server.process.pid, signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is None  # 1006: cut after the graceful timeout
