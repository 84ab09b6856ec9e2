"""Security: header injection refused, and ``allowed_origins`` answered with 403
before any 101, checked on the wire of a real server.
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from faye_sync import Client, WebSocket
from faye_sync.protocol.handshake import ClientHandshake
from faye_sync.websocket import origin_allowed
from tests.servers import Server, serve
from tests.wire import WAIT, open_websocket, parse_head

from .helpers import Snapshot

APP = "tests.hardening.fault_app:app"

UPGRADE = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "wsgi.url_scheme": "http",
    "HTTP_HOST": "127.0.0.1",
    "HTTP_CONNECTION": "Upgrade",
    "HTTP_UPGRADE": "websocket",
    "HTTP_SEC_WEBSOCKET_VERSION": "13",
    "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
}

BAD_HEADERS: list[Any] = [
    {"X-Ok": "a\r\nSet-Cookie: session=stolen"},
    {"X-Ok": "a\nX-Injected: 1"},
    {"X-Ok": "a\rX-Injected: 1"},
    {"X-Ok": "a\0b"},
    {"X-Injected: 1\r\nX-Ok": "b"},
    {"X Space": "b"},
    {"X-Colon:": "b"},
    {"": "b"},
    [("X-Ok", "fine"), ("X-Bad", "evil\r\n\r\n<html>")],
]


def refuses(call: Any) -> ValueError:
    """The ``ValueError`` that ``call()`` raises."""
    with pytest.raises(ValueError) as refused:
        call()
    return refused.value


@pytest.mark.parametrize("headers", BAD_HEADERS, ids=repr)
def test_server_headers_with_cr_lf_or_bad_names_are_refused(headers: Any) -> None:
    # Refused while checking the handshake, before the socket is looked for (this
    # environ has none: a HijackError would mean the check came too late).
    def build() -> None:
        WebSocket(dict(UPGRADE), lambda *args: None, headers=headers)

    assert "HTTP header" in str(refuses(build))  # says what was wrong


@pytest.mark.parametrize("headers", BAD_HEADERS, ids=repr)
def test_client_headers_with_cr_lf_or_bad_names_are_refused_before_connecting(
    headers: Any,
) -> None:
    before = Snapshot.take()
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        listener.settimeout(0.05)
        refuses(lambda: Client(f"ws://127.0.0.1:{listener.getsockname()[1]}/", headers=headers))
        refuses(lambda: ClientHandshake("ws://example.com/", headers=headers))
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected
    before.assert_no_leaks()


def test_proxy_headers_with_cr_lf_are_refused() -> None:
    error = refuses(
        lambda: Client(
            "ws://127.0.0.1:9/",
            proxy={"origin": "http://127.0.0.1:9", "headers": {"X-Ok": "a\r\nX-Bad: 1"}},
        )
    )
    assert str(error) == "HTTP header 'X-Ok' holds CR, LF or NUL"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serve("gevent", APP) as running:
        yield running


def exchange(server: Server, path: str, extra: str = "") -> tuple[bytes, socket.socket]:
    """Send an upgrade request; return every byte of the response head and body."""
    sock, head, body = open_websocket(server, path, headers=extra)
    _, headers = parse_head(head)
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body, sock


@pytest.mark.parametrize(
    "value", ["a\r\nSet-Cookie: x=1", "a\nX-Injected: 1", "a\rb"], ids=["crlf", "lf", "cr"]
)
def test_a_real_server_never_sends_an_injected_header(server: Server, value: str) -> None:
    response, sock = exchange(server, f"/ws?id=inject&header={quote(value)}")
    sock.close()
    assert response.startswith(b"HTTP/1.1 500"), response
    assert b"101" not in response.split(b"\r\n")[0]
    assert b"Set-Cookie" not in response and b"X-Injected" not in response
    server.wait_for_log(r"refused id=inject ValueError", timeout=WAIT)


ORIGIN_CASES = [
    # (allowed_origins, Origin header or None, admitted)
    (["https://good.example"], "https://good.example", True),
    (["https://good.example"], "https://evil.example", False),
    (["https://good.example"], "https://good.example.evil.com", False),
    (["https://good.example"], "https://good.example:443", False),
    (["https://good.example"], "HTTPS://GOOD.EXAMPLE", False),
    (["https://good.example"], "null", False),
    (["https://good.example"], None, False),
    (["re:https://[a-z]+\\.good\\.example"], "https://chat.good.example", True),
    (["re:https://[a-z]+\\.good\\.example"], "https://chat.good.example.evil.com", False),
    (["re:https://[a-z]+\\.good\\.example"], "https://evil.com/https://a.good.example", False),
    (["re:https://[a-z]+\\.good\\.example"], "https://good.example", False),
    ([None], None, True),
    ([None], "https://good.example", False),
    ([None, "https://good.example"], "https://good.example", True),
    ([], None, False),
    ([], "https://good.example", False),
]


@pytest.mark.parametrize(("allowed", "origin", "admitted"), ORIGIN_CASES)
def test_origin_allowed_table(allowed: list[Any], origin: str | None, admitted: bool) -> None:
    entries = [
        re.compile(e[3:]) if isinstance(e, str) and e.startswith("re:") else e for e in allowed
    ]
    assert origin_allowed(origin, entries) is admitted


@pytest.mark.parametrize(("allowed", "origin", "admitted"), ORIGIN_CASES)
def test_refused_origins_get_403_before_any_101(
    server: Server, allowed: list[Any], origin: str | None, admitted: bool
) -> None:
    tag = uuid.uuid4().hex[:12]
    extra = f"Origin: {origin}\r\n" if origin is not None else ""
    response, sock = exchange(server, f"/ws?id={tag}&origins={quote(json.dumps(allowed))}", extra)
    try:
        status = response.split(b"\r\n", 1)[0]
        if admitted:
            assert status.startswith(b"HTTP/1.1 101"), response
            sock.sendall(b"\x88\x80abcd")  # close, masked, empty
            sock.settimeout(WAIT)
            while sock.recv(4096):
                pass
            server.wait_for_log(rf'^event id={tag} \["close", 1000', timeout=WAIT)
            return
        assert status.startswith(b"HTTP/1.1 403"), response
        assert b"101" not in response and b"Sec-WebSocket-Accept" not in response
        assert f"Origin not allowed: {origin}".encode() in response
        # faye's events for a refused handshake: error, then close 1002, never open.
        server.wait_for_log(rf"^handler-end id={tag}$", timeout=WAIT)
        log = server.log()
        assert f'event id={tag} ["open"]' not in log
        assert re.search(rf'^event id={tag} \["close", 1002', log, re.MULTILINE)
        # The server kept the connection (keep-alive): it was never taken over.
        sock.sendall(f"GET /stats HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
        sock.settimeout(WAIT)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        sock.close()


def test_a_non_ascii_key_gets_a_400_not_a_500(server: Server) -> None:
    sock = server.connect(timeout=WAIT)
    with sock:
        sock.sendall(
            b"GET /ws?id=badkey HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\xe9=\r\n\r\n"
        )
        sock.settimeout(WAIT)
        status = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 400"), status
