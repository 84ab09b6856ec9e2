"""The upgrade request as the server handshake reads it from a WSGI environ."""

from __future__ import annotations

from typing import Any

import pytest

from faye_sync import PerMessageDeflate
from faye_sync.protocol.base import CLOSED
from faye_sync.websocket import EnvironHeaders, WebSocket, request_from_environ


def environ(**extra: Any) -> dict[str, Any]:
    base = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/chat",
        "QUERY_STRING": "",
        "SERVER_NAME": "example.org",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "CONTENT_TYPE": "text/plain",
        "HTTP_HOST": "example.org:8000",
        "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
        "HTTP_X_CUSTOM_THING": "1",
    }
    base.update(extra)
    return base


def test_headers_are_read_by_lower_case_name() -> None:
    headers = EnvironHeaders(environ())
    assert headers.get("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ=="
    assert headers["host"] == "example.org:8000"
    assert headers.get("origin") is None and headers.get("origin", "-") == "-"
    assert "x-custom-thing" in headers and "origin" not in headers
    with pytest.raises(KeyError):
        headers["origin"]
    # Only the HTTP_* keys are headers, as the server received them.
    assert sorted(headers) == ["host", "sec-websocket-key", "x-custom-thing"]
    assert len(headers) == 3
    assert dict(headers)["x-custom-thing"] == "1"


PLAIN_PATH = "/a;b=c,d@e:f!g$h&i'(j)*k+l~m.n_o-p"


@pytest.mark.parametrize(
    ("extra", "url", "target"),
    [
        ({}, "ws://example.org:8000/chat", "/chat"),
        (
            {"QUERY_STRING": "room=1&x=%20"},
            "ws://example.org:8000/chat?room=1&x=%20",
            "/chat?room=1&x=%20",
        ),
        ({"wsgi.url_scheme": "https"}, "wss://example.org:8000/chat", "/chat"),
        ({"HTTP_X_FORWARDED_PROTO": "https"}, "wss://example.org:8000/chat", "/chat"),
        ({"HTTP_X_FORWARDED_SSL": "on"}, "wss://example.org:8000/chat", "/chat"),
        ({"HTTP_HOST": ""}, "ws://example.org/chat", "/chat"),
        # WSGI paths are decoded: what is not plain is quoted again, a plain one kept.
        (
            {"SCRIPT_NAME": "/app", "PATH_INFO": "/a b/ü"},
            "ws://example.org:8000/app/a%20b/%C3%BC",
            "/app/a%20b/%C3%BC",
        ),
        ({"PATH_INFO": PLAIN_PATH}, f"ws://example.org:8000{PLAIN_PATH}", PLAIN_PATH),
    ],
)
def test_url_and_target(extra: dict[str, Any], url: str, target: str) -> None:
    request = request_from_environ(environ(**extra))
    assert request.target == target
    assert request.url == url
    assert request.method == "GET"


def test_a_rejected_handshake_has_the_accepted_attributes_empty() -> None:
    answered: list[str] = []
    # No Upgrade header: refused with 400 before the socket is touched.
    ws = WebSocket(environ(), lambda status, headers: answered.append(status))
    assert (ws.protocol, ws.extensions) == ("", "")
    list(ws.response)
    assert answered and answered[0].startswith("400")
    assert ws.ready_state == CLOSED


UPGRADE = {"HTTP_CONNECTION": "Upgrade", "HTTP_UPGRADE": "websocket"}
UPGRADE |= {"HTTP_SEC_WEBSOCKET_VERSION": "13"}


def _construct(extensions: list[Any], offer: str | None, max_length: int = 2**20) -> None:
    """A WebSocket for a valid upgrade request (no server: it is then refused with 501)."""
    extra = dict(UPGRADE)
    if offer is not None:
        extra["HTTP_SEC_WEBSOCKET_EXTENSIONS"] = offer
    ws = WebSocket(environ(**extra), lambda *_: None, extensions=extensions, max_length=max_length)
    list(ws.response)


def _bad(field: str, value: object) -> PerMessageDeflate:
    extension = PerMessageDeflate()
    setattr(extension, field, value)
    return extension


@pytest.mark.parametrize("offer", [None, "", "permessage-deflate"])
@pytest.mark.parametrize(
    ("extensions", "max_length", "error"),
    [
        ([_bad("name", 42)], 100, "extension.name must be a string"),
        ([_bad("name", "not a token")], 100, "extension.name must be a header token"),
        ([_bad("type", "perframe")], 100, 'extension.type must be "permessage"'),
        ([_bad("rsv1", 1)], 100, "extension.rsv1 must be True or False"),
        ([_bad("rsv3", None)], 100, "extension.rsv3 must be True or False"),
        ([PerMessageDeflate(), PerMessageDeflate()], 100, "is already registered"),
        ([PerMessageDeflate()], -1, "max_length must not be negative"),
        ([PerMessageDeflate()], 1.5, "max_length must be an integer"),
    ],
)
def test_a_bad_extension_raises_at_construction_whether_offered_or_not(
    offer: str | None, extensions: list[Any], max_length: int, error: str
) -> None:
    # A request without an offer builds no pipeline, but the extensions are still
    # checked, and the pipeline's error raised, as with one: seen valid ones first.
    _construct([PerMessageDeflate()], None)
    _construct([PerMessageDeflate()], "permessage-deflate")
    with pytest.raises((TypeError, ValueError), match=error):
        _construct(extensions, offer, max_length)
