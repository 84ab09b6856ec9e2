"""``faye_sync.testing``: WebSocket and EventSource views tested without a server.

A bare WSGI app and the Flask test app (``tests.apps.contrib_flask``), driven by
the test client over a socket pair; the Django project is in
``tests/contrib/test_django_testing.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from faye_sync import EventSource, HandshakeError, PerMessageDeflate, WebSocket
from faye_sync.exceptions import ConnectionClosed
from faye_sync.testing import TestClient

TIMEOUT = 5.0
closed: list[tuple[str, int]] = []
closed_signal = threading.Event()


def bare_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/events":
        es = EventSource(environ, start_response, retry=0.1)
        es.send(f"after {es.last_event_id}", id=int(es.last_event_id or 0) + 1)
        es.send("query " + environ["QUERY_STRING"])
        if environ.get("HTTP_X_END") == "yes":
            es.close()
        es.on("close", lambda event: _closed("stream", 0))
        return es.response
    if not WebSocket.is_websocket(environ):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"plain"]
    ws = WebSocket(
        environ,
        start_response,
        ["chat", "superchat"],
        extensions=[PerMessageDeflate()],
        allowed_origins=["http://testserver", None],
    )
    ws.on("close", lambda event: _closed(path, event.code))
    if path == "/raise":
        ws.receive(timeout=TIMEOUT)
        raise RuntimeError("boom in the app")
    for message in ws:
        if message == "who":
            ws.send(f"{environ.get('HTTP_X_USER')} {ws.protocol} {environ['QUERY_STRING']}")
        else:
            ws.send(message)
    return ws.response


def _closed(what: str, code: int) -> None:
    closed.append((what, code))
    closed_signal.set()


@pytest.fixture
def client() -> Iterator[TestClient]:
    closed.clear()
    closed_signal.clear()
    with TestClient(bare_app, headers={"X-User": "ada"}, timeout=TIMEOUT) as test_client:
        yield test_client


def test_echo_with_subprotocol_headers_query_and_deflate(client: TestClient) -> None:
    with client.websocket(
        "/echo?room=1", subprotocols=["superchat"], extensions=[PerMessageDeflate()]
    ) as ws:
        ws.send("x")
        assert ws.receive(timeout=1) == "x"
        ws.send(b"\x00\xff" * 10000)
        assert ws.receive(timeout=1) == b"\x00\xff" * 10000
        ws.send("who")
        assert ws.receive(timeout=1) == "ada superchat room=1"
        assert ws.protocol == "superchat"
        assert "permessage-deflate" in ws.extensions
        assert ws.status_code == 101
    # The app saw the client's close handshake: the session ended cleanly.
    assert closed == [("/echo", 1000)]


def test_server_close_reaches_the_client(client: TestClient) -> None:
    with client.websocket("/echo") as ws:
        ws.close(4000, "done")
        with pytest.raises(ConnectionClosed):
            ws.receive(timeout=1)
    assert closed == [("/echo", 4000)]


def test_refused_handshake_raises_with_the_status(client: TestClient) -> None:
    with pytest.raises(HandshakeError) as refused:
        with client.websocket("/echo", headers={"Origin": "http://evil.example"}):
            pass
    assert refused.value.status == 403


def test_an_exception_in_the_app_is_raised_at_the_end_of_the_block(client: TestClient) -> None:
    with pytest.raises(RuntimeError, match="boom in the app"):
        with client.websocket("/raise") as ws:
            ws.send("go")
            # The app raised after the handshake; its thread ends, the socket with it.
            with pytest.raises(ConnectionClosed):
                ws.receive(timeout=TIMEOUT)


def test_event_stream_with_last_event_id(client: TestClient) -> None:
    with client.event_stream("/events?x=1", last_event_id="41") as stream:
        first = next(stream)
        assert (first.data, first.id) == ("after 41", "42")
        assert next(stream).data == "query x=1"
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
    # Leaving the block ends the stream on the server's side.
    assert closed_signal.wait(TIMEOUT)
    assert closed == [("stream", 0)]


def test_event_stream_reconnects_with_the_last_id(client: TestClient) -> None:
    with client.event_stream("/events", headers={"X-End": "yes"}) as stream:
        events = [next(stream) for _ in range(4)]
    assert [(event.data, event.id) for event in events] == [
        ("after ", "1"),
        ("query ", "1"),
        ("after 1", "2"),  # the second connection sent Last-Event-ID: 1
        ("query ", "2"),
    ]


# -- Flask: the contrib test app ----------------------------------------------


def test_flask_echo_and_a_view_that_raises(capfd: pytest.CaptureFixture[str]) -> None:
    from tests.apps.contrib_flask import app

    with TestClient(app) as flask_client:
        with flask_client.websocket("/echo") as ws:
            ws.send("hello")
            assert ws.receive(timeout=TIMEOUT) == "hello"
        with flask_client.websocket("/fail") as ws:
            ws.send("go")
            with pytest.raises(ConnectionClosed) as closing:
                ws.receive(timeout=TIMEOUT)
            assert closing.value.code == 1011
    # Flask's error handling had the exception (the app is not in testing mode).
    assert "teardown /fail RuntimeError('boom in the view')" in capfd.readouterr().err


def test_flask_event_stream_resumes_after_last_event_id() -> None:
    from tests.apps.contrib_flask import app

    with TestClient(app) as flask_client:
        with flask_client.event_stream("/events", last_event_id="41") as stream:
            event = next(stream)
    assert (event.type, event.data, event.id) == ("tick", "tick 42", "42")


# -- Flask: only its own origin by default (issue 15 item 8) ------------------


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (None, True),  # not a browser
        ("http://testserver", True),
        ("https://testserver", True),  # TLS ended by a proxy: the app sees http
        ("http://testserver:8080", False),
        ("http://evil.example", False),
        ("null", False),  # a sandboxed page
    ],
)
def test_flask_route_accepts_only_its_own_origin(origin: str | None, accepted: bool) -> None:
    from tests.apps.contrib_flask import app

    headers = {} if origin is None else {"Origin": origin}
    with TestClient(app) as flask_client:
        if accepted:
            with flask_client.websocket("/echo", headers=headers) as ws:
                ws.send("in")
                assert ws.receive(timeout=TIMEOUT) == "in"
        else:
            with pytest.raises(HandshakeError) as refused:
                with flask_client.websocket("/echo", headers=headers):
                    pass
            assert refused.value.status == 403


def test_flask_allowed_origins_replaces_the_default() -> None:
    from flask import Flask

    from faye_sync.contrib.flask import Sock

    app = Flask(__name__)
    sock = Sock(app, allowed_origins=["https://partner.example"])

    @sock.route("/echo")
    def echo(ws: WebSocket) -> None:
        ws.send("welcome")

    with TestClient(app) as flask_client:
        with flask_client.websocket("/echo", headers={"Origin": "https://partner.example"}) as ws:
            assert ws.receive(timeout=TIMEOUT) == "welcome"
        for origin in ("http://testserver", None):  # the list is the whole rule now
            headers = {} if origin is None else {"Origin": origin}
            with pytest.raises(HandshakeError), flask_client.websocket("/echo", headers=headers):
                pass
