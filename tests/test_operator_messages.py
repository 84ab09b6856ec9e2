"""Warnings and refusals reach the operator on servers started as users start them.

Nothing here configures logging (the servers of tests/servers.py do): gunicorn,
wsgiref and waitress leave the root logger alone, so what faye_sync has to say must
come out on the server's own error stream (issue 15, items 12 and 13).
"""

from __future__ import annotations

import sys
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.processes import run
from tests.servers import is_available

APP = "tests.apps.handler_errors:app"


def echo_once(port: int, path: str = "/echo") -> None:
    with connect(f"ws://127.0.0.1:{port}{path}", open_timeout=5, close_timeout=5) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"


def test_gunicorn_sync_worker_warning_is_in_its_error_log() -> None:
    command = [sys.executable, "-m", "gunicorn", "-k", "sync", "-b", "127.0.0.1:0", APP]
    with run(command, r"Listening at: http://127\.0\.0\.1:(\d+)") as server:
        echo_once(server.port)
        echo_once(server.port)
        server.wait_for("sync worker serves one connection at a time")
        log = server.log()
        assert log.count("gunicorn's sync worker serves one connection at a time") == 1, log
        assert "-k gthread --threads N, or -k gevent" in log


def test_single_threaded_wsgiref_says_it_blocks_other_clients() -> None:
    script = (
        "import sys\n"
        "from wsgiref.simple_server import make_server\n"
        "from tests.apps.handler_errors import app\n"
        "server = make_server('127.0.0.1', 0, app)\n"
        "print('port', server.server_port, file=sys.stderr, flush=True)\n"
        "server.serve_forever()\n"
    )
    with run([sys.executable, "-c", script], r"port (\d+)") as server:
        echo_once(server.port)
        echo_once(server.port)
        server.wait_for("handles one connection at a time")
        log = server.log()
        assert log.count("this wsgiref server handles one connection at a time") == 1, log
        assert "ThreadingMixIn" in log


def test_threaded_wsgiref_says_nothing() -> None:
    script = (
        "import sys, socketserver\n"
        "from wsgiref.simple_server import WSGIServer, make_server\n"
        "from tests.apps.handler_errors import app\n"
        "class Server(socketserver.ThreadingMixIn, WSGIServer):\n"
        "    daemon_threads = True\n"
        "server = make_server('127.0.0.1', 0, app, server_class=Server)\n"
        "print('port', server.server_port, file=sys.stderr, flush=True)\n"
        "server.serve_forever()\n"
    )
    with run([sys.executable, "-c", script], r"port (\d+)") as server:
        echo_once(server.port)
        time.sleep(0.5)  # the server's log line for that request, if any, is written
        assert "faye_sync" not in server.log()


@pytest.mark.skipif(not is_available("waitress"), reason="waitress is not installed")
def test_waitress_answers_the_readme_example_with_501_and_says_so_once() -> None:
    command = [sys.executable, "-m", "waitress", "--listen=127.0.0.1:0", APP]
    with run(command, r"Serving on http://127\.0\.0\.1:(\d+)") as server:
        for _ in range(2):
            with pytest.raises(InvalidStatus) as refused:
                echo_once(server.port)
            response = refused.value.response
            assert response.status_code == 501
            assert b"waitress cannot hand a WebSocket its socket" in response.body
            assert b"gunicorn" in response.body  # the fix
        server.wait_for("WebSocket refused")
        log = server.log()
        assert log.count("WebSocket refused (501 Not Implemented): waitress") == 1, log
        assert "Traceback" not in log


def test_a_handler_exception_is_reported_once_in_gunicorns_error_log() -> None:
    command = [sys.executable, "-m", "gunicorn", "-k", "gthread", "-b", "127.0.0.1:0", APP]
    with run(command, r"Listening at: http://127\.0\.0\.1:(\d+)") as server:
        url = f"ws://127.0.0.1:{server.port}/echo"
        with connect(url, open_timeout=5, close_timeout=5) as ws:
            ws.send("boom")
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        server.wait_for("KeyError: 'boom'")
        log = server.log()
        assert log.count("faye_sync ERROR: WebSocket handler for ws://") == 1, log
        assert "raised KeyError('boom'); closed the WebSocket with 1011" in log
        assert log.count("Traceback") == 1, log
        # gthread's default of one thread: no cap (it would be 0), and the operator is told.
        assert log.count("gthread worker with one thread (--threads 1)") == 1, log
