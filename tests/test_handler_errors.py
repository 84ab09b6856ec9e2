"""A handler that raises after the handshake, on every server (issue 15, item 9).

After the 101 a server's 500 page can only land inside the WebSocket, where a client
reads it as a broken frame (1002, "reserved bits"). In the README's form,
``with WebSocket(...) as ws``, the client gets 1011 and the server's log one report
(the line and the traceback), nothing else.
"""

from __future__ import annotations

import re

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.servers import is_available, serve

APP = "tests.apps.handler_errors:app"
KINDS = ["werkzeug", "gevent", "gunicorn-sync", "gunicorn-gthread", "gunicorn-gevent", "wsgiref"]
REPORT = (
    r"WebSocket handler for ws://\S+/echo raised KeyError\('boom'\); "
    "closed the WebSocket with 1011"
)


@pytest.mark.parametrize("kind", KINDS)
def test_an_exception_in_the_handler_closes_with_1011(kind: str) -> None:
    if not is_available(kind):
        pytest.skip(f"{kind} is not installed")
    options = {"timeout": 10} if kind.startswith("gunicorn") else {}
    with serve(kind, APP, **options) as server:
        url = f"ws://{server.host}:{server.port}/echo"
        with connect(url, open_timeout=5, close_timeout=5) as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
            ws.send("boom")
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        assert closed.value.rcvd is not None, closed.value
        assert closed.value.rcvd.code == 1011
        server.wait_for_log(REPORT, timeout=5)
        log = server.log()
        assert len(re.findall(REPORT, log)) == 1, log
        assert log.count("Traceback") == 1, log
        assert " 500 " not in log, log


def test_without_the_with_block_the_server_writes_into_the_socket() -> None:
    """Why the README uses ``with``: the plain form lets gevent write its 500 page."""
    with serve("gevent", APP) as server:
        url = f"ws://{server.host}:{server.port}/plain"
        with connect(url, open_timeout=5, close_timeout=5) as ws:
            ws.send("boom")
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
        assert closed.value.rcvd is None
        assert closed.value.sent is not None and closed.value.sent.code == 1002
