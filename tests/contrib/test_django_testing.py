"""``faye_sync.testing`` on a Django project, in the test process: WSGI handler,
middleware, sessions and auth included (``tests.apps.django_site``).

The handshake recipes of the README (issue 15 item 7) are run here: a session
cookie gives ``request.user`` in a ``@websocket_view``, anonymous users get 403
before any 101, and a signed token in the query serves clients without cookies.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from faye_sync import HandshakeError
from faye_sync.testing import TestClient
from tests.servers import is_available

pytestmark = pytest.mark.skipif(not is_available("django"), reason="Django is not installed")

SETTINGS = "tests.apps.django_site_settings"
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Django set up in this process on a fresh database, with one user."""
    import django
    from django.conf import settings

    if settings.configured and os.environ.get("DJANGO_SETTINGS_MODULE") != SETTINGS:
        pytest.skip("Django is already configured with other settings in this process")
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ["FAYE_SYNC_TEST_DB_DIR"] = str(tmp_path_factory.mktemp("django-site"))
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    get_user_model().objects.create_user("ada", password="lovelace")
    from tests.apps.django_site import application

    return application


@pytest.fixture
def client(site: Any) -> Iterator[TestClient]:
    with TestClient(site, timeout=TIMEOUT) as test_client:
        yield test_client


@pytest.fixture
def session_cookie(site: Any) -> str:
    """Logged in through Django's own test client, as the user's browser would be."""
    from django.test import Client

    browser = Client()
    assert browser.login(username="ada", password="lovelace")
    return f"sessionid={browser.cookies['sessionid'].value}"


def test_echo_through_the_wsgi_handler_and_middleware(client: TestClient) -> None:
    with client.websocket("/ws/echo") as ws:
        ws.send("hello")
        assert ws.receive(timeout=TIMEOUT) == "hello"


def test_session_cookie_gives_request_user(client: TestClient, session_cookie: str) -> None:
    with client.websocket("/ws/whoami", headers={"Cookie": session_cookie}) as ws:
        assert ws.receive(timeout=TIMEOUT) == "hello ada"
        ws.send("hi")
        assert ws.receive(timeout=TIMEOUT) == "ada: hi"


def test_anonymous_user_gets_403_before_any_101(client: TestClient) -> None:
    with pytest.raises(HandshakeError) as refused, client.websocket("/ws/whoami"):
        pass
    assert refused.value.status == 403


def test_token_in_query_for_clients_without_cookies(
    client: TestClient, session_cookie: str
) -> None:
    from django.test import Client

    browser = Client(HTTP_COOKIE=session_cookie)
    token = browser.get("/token").content.decode()
    with client.websocket(f"/ws/token?token={token}") as ws:
        assert ws.receive(timeout=TIMEOUT) == "hello ada"
    with pytest.raises(HandshakeError) as refused, client.websocket("/ws/token?token=forged"):
        pass
    assert refused.value.status == 403


def test_event_stream_resumes_after_last_event_id(client: TestClient) -> None:
    with client.event_stream("/events", last_event_id="41") as stream:
        events = [next(stream) for _ in range(3)]
    assert [event.data for event in events] == ["tick 42", "tick 43", "tick 44"]


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (None, True),  # not a browser
        ("http://testserver", True),  # the request's own host (ALLOWED_HOSTS)
        ("https://app.example.com", True),  # CSRF_TRUSTED_ORIGINS
        ("https://eu.cdn.example.com", True),  # CSRF_TRUSTED_ORIGINS wildcard
        ("http://app.example.com", False),  # the trusted origin's scheme is https
        ("https://evil.example", False),
        ("http://localhost", False),  # in ALLOWED_HOSTS, but not this request's host
    ],
)
def test_only_trusted_origins_by_default(
    client: TestClient, origin: str | None, accepted: bool
) -> None:
    headers = {} if origin is None else {"Origin": origin}
    if accepted:
        with client.websocket("/ws/echo", headers=headers) as ws:
            ws.send("in")
            assert ws.receive(timeout=TIMEOUT) == "in"
    else:
        with (
            pytest.raises(HandshakeError) as refused,
            client.websocket("/ws/echo", headers=headers),
        ):
            pass
        assert refused.value.status == 403


def test_metrics_endpoints(client: TestClient) -> None:
    pytest.importorskip("prometheus_client")
    import json

    from django.test import Client

    from faye_sync.contrib.prometheus import FayeSyncCollector

    with client.websocket("/ws/echo") as ws:
        ws.send("counted")
        assert ws.receive(timeout=TIMEOUT) == "counted"
        stats = json.loads(Client().get("/stats").content)
        assert stats["websockets_open"] >= 1
    from prometheus_client import REGISTRY

    collector: FayeSyncCollector | None = FayeSyncCollector()
    try:
        REGISTRY.register(collector)
    except ValueError:  # another test's app registered one in this process already
        collector = None
    try:
        text = Client().get("/metrics").content.decode()
    finally:
        if collector is not None:
            REGISTRY.unregister(collector)
    assert "faye_sync_websockets_open " in text
    assert 'faye_sync_messages_total{direction="in"}' in text
