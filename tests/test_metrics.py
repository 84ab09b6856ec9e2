"""Issue 15 item 5: ``faye_sync.stats()``, its Prometheus exporter and the README's endpoint.

In the test process through ``faye_sync.testing`` (the counters are the
process's own, so each check compares before and after), and on a real
gunicorn server through the Flask endpoint (``tests/apps/metrics_app.py``).
"""

from __future__ import annotations

import http.client
import json
import re

import pytest

import faye_sync
from faye_sync import HandshakeError, set_connection_limit
from faye_sync.exceptions import ConnectionClosed
from faye_sync.testing import TestClient
from tests.servers import Server, serve

pytest.importorskip("prometheus_client")

TIMEOUT = 5.0


def test_stats_count_sockets_messages_bytes_closes_and_refusals() -> None:
    from tests.apps.metrics_app import app

    before = faye_sync.stats()
    with TestClient(app) as client:
        with client.websocket("/echo") as ws:
            during = faye_sync.stats()
            for text in ("one", "two", "three"):
                ws.send(text)
                assert ws.receive(timeout=TIMEOUT) == text
            ws.send("bye")
            with pytest.raises(ConnectionClosed):
                ws.receive(timeout=TIMEOUT)
        with client.event_stream("/events") as stream:
            assert next(stream).data == "open"
            streaming = faye_sync.stats()
        set_connection_limit(0)
        try:
            with pytest.raises(HandshakeError), client.websocket("/echo"):
                pass
        finally:
            set_connection_limit()
    after = faye_sync.stats()
    assert during.websockets_open == before.websockets_open + 1
    assert streaming.event_streams_open == before.event_streams_open + 1
    assert after.websockets_open == before.websockets_open
    assert after.messages_in - before.messages_in == 4
    assert after.messages_out - before.messages_out == 3
    # Masked client frames: 6 bytes of header; the close frames come on top.
    assert after.bytes_in - before.bytes_in >= 4 * 6 + len("onetwothreebye")
    assert after.bytes_out - before.bytes_out >= 3 * 2 + len("onetwothree")
    assert after.closes.get(4000, 0) == before.closes.get(4000, 0) + 1
    assert after.refused.get("websocket", 0) == before.refused.get("websocket", 0) + 1
    assert after.gauges["answer"] == 42.0
    assert json.loads(json.dumps(after.as_dict()))["websockets_open"] == after.websockets_open


def test_a_gauge_that_fails_is_left_out() -> None:
    def broken() -> float:
        raise RuntimeError("no hub")

    faye_sync.add_gauge("broken", broken)
    try:
        assert "broken" not in faye_sync.stats().gauges
    finally:
        faye_sync.metrics.remove_gauge("broken")


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} not in:\n{text}"
    return float(match.group(1))


def get(server: Server, path: str) -> tuple[int, str, str]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=TIMEOUT)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.getheader("Content-Type") or "", response.read().decode()


def test_prometheus_endpoint_on_a_real_server() -> None:
    with serve("gunicorn-gthread", "tests.apps.metrics_app:app", threads=8) as server:
        ws = faye_sync.connect(f"ws://{server.host}:{server.port}/echo", timeout=TIMEOUT)
        ws.send("hello")
        assert ws.receive(timeout=TIMEOUT) == "hello"
        status, content_type, text = get(server, "/metrics")
        assert status == 200 and content_type.startswith("text/plain")
        assert metric(text, "faye_sync_websockets_open") == 1
        assert metric(text, 'faye_sync_messages_total{direction="in"}') == 1
        assert metric(text, 'faye_sync_gauge{name="answer"}') == 42
        ws.send("bye")
        with pytest.raises(ConnectionClosed):
            ws.receive(timeout=TIMEOUT)
        # The server's side has closed once its close is reported; poll briefly.
        for _ in range(100):
            _, _, text = get(server, "/metrics")
            if metric(text, "faye_sync_websockets_open") == 0:
                break
        assert metric(text, "faye_sync_websockets_open") == 0
        assert metric(text, 'faye_sync_websocket_closes_total{code="4000"}') == 1
        status, _, body = get(server, "/stats")
        assert status == 200
        assert json.loads(body)["closes"] == {"4000": 1}
        assert "Traceback" not in server.log()


def test_registering_twice_in_one_registry_is_harmless() -> None:
    """An app factory or a reloader runs its set-up twice: the same collector, no error."""
    from prometheus_client import CollectorRegistry, generate_latest

    from faye_sync.contrib.prometheus import register

    registry = CollectorRegistry()
    first = register(registry)
    assert register(registry) is first
    assert generate_latest(registry).count(b"# TYPE faye_sync_websockets_open gauge") == 1
    assert register(CollectorRegistry()) is not first
