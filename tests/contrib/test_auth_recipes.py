"""Issue 15 item 7: the README's Flask authentication recipes (``tests.apps.flask_auth``).

A session cookie set by an ordinary login reaches the WebSocket view; without
it the handshake gets 403 and the view never runs; a signed token in the query
string serves clients that cannot send cookies. The Django recipes are in
``test_django_testing.py``.
"""

from __future__ import annotations

import pytest

from faye_sync import HandshakeError
from faye_sync.testing import TestClient
from tests.apps.flask_auth import app

TIMEOUT = 5.0


def logged_in_cookie() -> str:
    browser = app.test_client()
    assert browser.post("/login", data={"user": "ada"}).status_code == 200
    cookie = browser.get_cookie("session")
    assert cookie is not None
    return f"session={cookie.value}"


def test_session_cookie_identifies_the_user() -> None:
    with TestClient(app, headers={"Cookie": logged_in_cookie()}) as client:
        with client.websocket("/ws/whoami") as ws:
            assert ws.receive(timeout=TIMEOUT) == "hello ada"
            ws.send("hi")
            assert ws.receive(timeout=TIMEOUT) == "ada: hi"


def test_without_a_session_the_handshake_gets_403() -> None:
    with TestClient(app) as client:
        with pytest.raises(HandshakeError) as refused, client.websocket("/ws/whoami"):
            pass
    assert refused.value.status == 403


def test_token_in_the_query_for_clients_without_cookies() -> None:
    browser = app.test_client()
    browser.post("/login", data={"user": "ada"})
    token = browser.get("/token").get_data(as_text=True)
    with TestClient(app) as client:  # no cookie: a client that cannot send one
        with client.websocket(f"/socket?token={token}") as ws:
            assert ws.receive(timeout=TIMEOUT) == "hello ada"
        for forged in (token[:-2] + "xx", ""):
            with pytest.raises(HandshakeError) as refused:
                with client.websocket(f"/socket?token={forged}"):
                    pass
            assert refused.value.status == 403
