"""Issue 15 item 14: a client whose ``connect()`` returned can talk at once.

The view's set-up (joining a room) is done before the 101 goes out, so a message
sent to the room right after a client connected reaches it. Before the fix the
101 was written by the constructor, and on a threaded server the newcomer missed
every message sent during the view's set-up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from faye_sync import connect
from tests.servers import Server, serve

APP = "tests.apps.rooms:app"
TRIALS = 8
TIMEOUT = 5.0
SENT = [f"hello {trial}" for trial in range(TRIALS)]


@pytest.fixture(scope="module", params=["gunicorn-gthread", "werkzeug"])
def server(request: pytest.FixtureRequest) -> Server:
    options = {"threads": 16} if request.param == "gunicorn-gthread" else {}
    with serve(request.param, APP, **options) as running:
        yield running  # type: ignore[misc]


@pytest.mark.parametrize("path", ["/raw", "/raw-events", "/flask", "/accept"])
def test_a_newcomer_gets_a_message_sent_right_after_connect(server: Server, path: str) -> None:
    assert newcomers_received(server, path) == SENT


def test_a_newcomer_gets_it_from_a_django_view(tmp_path: Path) -> None:
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.apps.django_site_settings",
        "FAYE_SYNC_TEST_DB_DIR": str(tmp_path),
    }
    with serve("gunicorn-gthread", "tests.apps.django_site:application", env=env, threads=16) as s:
        assert newcomers_received(s, "/ws/room") == SENT


def newcomers_received(server: Server, path: str) -> list[str | bytes | None]:
    """What each of TRIALS newcomers got of the message sent right after it connected.

    ``None`` marks a newcomer that got nothing within TIMEOUT.
    """
    url = f"ws://{server.host}:{server.port}{path}"
    first = connect(url)
    received: list[str | bytes | None] = []
    try:
        first.send("first is in")
        assert first.receive(timeout=TIMEOUT) == "first is in"  # first has joined
        for trial in range(TRIALS):
            newcomer = connect(url)
            try:
                first.send(f"hello {trial}")
                assert first.receive(timeout=TIMEOUT) == f"hello {trial}"
                try:
                    received.append(newcomer.receive(timeout=TIMEOUT))
                except TimeoutError:
                    received.append(None)
            finally:
                newcomer.close()
    finally:
        first.close()
    assert "Traceback" not in server.log()
    return received


def test_open_listeners_run_before_the_101_and_their_frames_follow_it() -> None:
    from faye_sync import WebSocket
    from faye_sync.testing import TestClient

    seen: list[str] = []

    def app(environ: dict[str, object], start_response: object) -> object:
        ws = WebSocket(environ, start_response)  # type: ignore[arg-type]
        ws.on("open", lambda event: (seen.append("open"), ws.send("welcome")))
        if environ["PATH_INFO"] == "/accept":
            ws.accept()
            ws.accept()  # once is enough: nothing more happens
            seen.append("accepted")
        return ws.response

    with TestClient(app) as client:
        with client.websocket("/") as ws:
            assert ws.receive(timeout=TIMEOUT) == "welcome"
        with client.websocket("/accept") as ws:
            assert ws.receive(timeout=TIMEOUT) == "welcome"
    assert seen == ["open", "open", "accepted"]


def test_accept_on_a_refused_handshake_does_nothing() -> None:
    from faye_sync import HandshakeError, WebSocket
    from faye_sync.testing import TestClient

    def app(environ: dict[str, object], start_response: object) -> object:
        ws = WebSocket(environ, start_response, allowed_origins=[])  # type: ignore[arg-type]
        ws.accept()
        return ws.response

    with TestClient(app) as client, pytest.raises(HandshakeError) as refused:
        with client.websocket("/"):
            pass
    assert refused.value.status == 403
