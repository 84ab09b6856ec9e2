"""protocol/sse_client.py: the EventSource client's request and response checks, as bytes."""

from __future__ import annotations

import pytest

from faye_sync.exceptions import HandshakeError
from faye_sync.protocol.sse_client import EventSourceRequest, check_last_event_id


def test_the_request_a_browser_sends() -> None:
    request = EventSourceRequest("http://u:p@Example.com:8080/events?room=1", {"X-A": " 1 "})
    assert (request.host, request.port, request.secure) == ("example.com", 8080, False)
    assert request.safe_url == "http://Example.com:8080/events?room=1"
    assert request.request_bytes() == (
        b"GET /events?room=1 HTTP/1.1\r\n"
        b"Host: Example.com:8080\r\n"
        b"Accept: text/event-stream\r\n"
        b"Cache-Control: no-cache\r\n"
        b"Authorization: Basic dTpw\r\n"
        b"X-A: 1\r\n\r\n"
    )
    # Browsers send the id in UTF-8.
    assert request.request_bytes("é1").endswith(b"\r\nLast-Event-ID: \xc3\xa91\r\n\r\n")


def test_a_header_named_like_a_default_replaces_it() -> None:
    request = EventSourceRequest("https://h/", [("accept", "text/event-stream;q=1")])
    assert request.port == 443
    assert request.headers == [
        ("Host", "h"),
        ("Cache-Control", "no-cache"),
        ("accept", "text/event-stream;q=1"),
    ]


@pytest.mark.parametrize("name", ["Last-Event-ID", "Content-Length", "transfer-encoding"])
def test_headers_the_client_manages_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=f"header {name}: "):
        EventSourceRequest("http://h/", {name: "1"})


@pytest.mark.parametrize(
    ("status", "headers", "why"),
    [
        (204, {}, "asks the client to stop reconnecting"),
        (500, {"content-type": "text/event-stream"}, "500 Oops; an event stream needs 200"),
        (200, {"content-type": "text/html"}, "Content-Type 'text/html', not text/event-stream"),
        (200, {}, "Content-Type None"),
    ],
)
def test_responses_that_are_not_event_streams(
    status: int, headers: dict[str, str], why: str
) -> None:
    request = EventSourceRequest("http://u:secret@h/e")
    with pytest.raises(HandshakeError, match=why) as caught:
        request.check_response(status, "Oops" if status == 500 else "", headers)
    assert caught.value.status == status
    assert "secret" not in str(caught.value)


def test_an_event_stream_passes() -> None:
    request = EventSourceRequest("http://h/")
    try:
        request.check_response(200, "OK", {"content-type": "Text/Event-Stream; charset=utf-8"})
    except HandshakeError as refused:
        pytest.fail(f"an event stream was refused: {refused}")


def test_last_event_id() -> None:
    assert check_last_event_id("42") == "42"
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        check_last_event_id("4\n2")
