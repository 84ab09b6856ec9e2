"""find_connection: the client's socket under a streaming response, on every real server."""

from __future__ import annotations

import http.client
import json

import pytest

from faye_sync.adapters.connection import find_connection
from tests.servers import KINDS, is_available, serve

APP = "tests.apps.eventsource_app:app"


@pytest.mark.parametrize("kind", [k for k in KINDS if is_available(k)])
def test_the_socket_found_is_the_clients_connection(kind: str) -> None:
    with serve(kind, APP) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            conn.request("GET", "/connection")
            client = list(conn.sock.getsockname()[:2])
            found = json.loads(conn.getresponse().read())
        finally:
            conn.close()
    # The server's socket for this request: its peer is this client's address.
    assert found["peer"] == client, (kind, found, client)
    assert found["hook"] is (kind == "waitress")


def test_nothing_found_is_none_and_shutting_it_down_is_harmless() -> None:
    found = find_connection({"REQUEST_METHOD": "GET", "wsgi.input": object()})
    assert found.socket is None and found.client_disconnected is None
    found.shut_down()  # nothing to shut: no error
