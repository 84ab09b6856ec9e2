"""Handshakes against faye's spec (faye-behaviour.md §1.3, §2.1 "connecting", §2.2).

Ported from §2.1 "in the connecting state": the exact 101, subprotocol choice,
the invalid extensions header (400 with Content-Length 57), custom headers
written first. The boxes about ``frame``/``ping``/``close`` before ``start``
do not apply: here the 101 is written when the WebSocket is made, before user
code can send (tests/blocking covers ``close`` before open on a client).
From §2.2: the exact request, subprotocols, credentials, invalid URLs, ports in
Host, custom headers, and every response check with faye's message. The proxy
boxes are in tests/net/test_net.py.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faye_sync.exceptions import HandshakeError
from faye_sync.extensions import Extensions, PerMessageDeflate
from faye_sync.protocol.handshake import (
    Acceptance,
    ClientHandshake,
    Rejection,
    Request,
    accept_key,
    is_websocket,
    select_subprotocol,
    server_handshake,
)

KEY = "JFBCWHksyIpXV+6Wlq/9pw=="
ACCEPT = "JdiiuafpBKRqD7eol0y4vJDTsTs="


def request(**headers: str | None) -> Request:
    base = {
        "host": "www.example.com",  # faye's spec has none; RFC 6455 §4.2.1 requires it
        "connection": "Upgrade",
        "upgrade": "websocket",
        "origin": "http://www.example.com",
        "sec-websocket-key": KEY,
        "sec-websocket-version": "13",
    }
    base.update(headers)  # type: ignore[arg-type]
    return Request("GET", "/socket", {k: v for k, v in base.items() if v is not None})


def test_accept_key_vectors() -> None:
    assert accept_key(KEY) == ACCEPT
    assert accept_key("2vBVWg4Qyk3ZoM/5d3QD9Q==") == "QV3I5XUXU2CdhtjixE7QCkCcMZM="
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455


def test_101_is_byte_exact() -> None:
    outcome = server_handshake(request())
    assert isinstance(outcome, Acceptance)
    assert outcome.response == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\n\r\n"
    )
    assert outcome.version == "hybi-13"
    assert outcome.protocol.state == 1


def test_subprotocol_is_the_clients_first_supported_choice() -> None:
    outcome = server_handshake(
        request(**{"sec-websocket-protocol": "foo, bar, xmpp"}), protocols=["xmpp", "bar"]
    )
    assert isinstance(outcome, Acceptance)
    assert outcome.subprotocol == "bar"
    assert b"Sec-WebSocket-Protocol: bar\r\n" in outcome.response


def test_no_common_subprotocol_omits_the_header() -> None:
    outcome = server_handshake(request(**{"sec-websocket-protocol": "irc"}), protocols=["xmpp"])
    assert isinstance(outcome, Acceptance)
    assert outcome.subprotocol == ""
    assert b"Sec-WebSocket-Protocol" not in outcome.response


def test_select_subprotocol_accepts_strings() -> None:
    assert select_subprotocol("a, b", "b,a") == "a"
    assert select_subprotocol(None, ["a"]) == ""


def test_custom_headers_come_first_and_win() -> None:
    outcome = server_handshake(
        request(), headers={"Authorization": "Bearer WAT", "upgrade": "mine"}
    )
    assert isinstance(outcome, Acceptance)
    assert outcome.response.startswith(
        b"HTTP/1.1 101 Switching Protocols\r\nAuthorization: Bearer WAT\r\nupgrade: mine\r\n"
        b"Connection: Upgrade\r\n"
    )


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "a\0"])
def test_header_injection_refused(value: str) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        server_handshake(request(), headers={"X-Thing": value})
    with pytest.raises(ValueError, match="invalid HTTP header name"):
        server_handshake(request(), headers={"X-Bad\r\nName": "v"})


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({"upgrade": None}, "400 Bad Request", "Not a WebSocket request"),
        ({"connection": "keep-alive"}, "400 Bad Request", "Not a WebSocket request"),
        (
            {"sec-websocket-version": "8"},
            "426 Upgrade Required",
            "Unsupported WebSocket version: 8",
        ),
        (
            {"sec-websocket-version": "13, 8"},
            "426 Upgrade Required",
            "Unsupported WebSocket version: 13, 8",
        ),
        (
            {"sec-websocket-version": None},
            "426 Upgrade Required",
            "Unsupported WebSocket version: undefined",
        ),
        (
            {"sec-websocket-key": None},
            "400 Bad Request",
            "Missing handshake request header: Sec-WebSocket-Key",
        ),
        # faye answers 101; RFC 6455 §4.2.1 and RFC 9112 §3.2: a 400.
        ({"host": None}, "400 Bad Request", "Missing handshake request header: Host"),
    ],
)
def test_rejections_in_fayes_order(
    headers: dict[str, str | None], status: str, message: str
) -> None:
    outcome = server_handshake(request(**headers))  # type: ignore[arg-type]
    assert isinstance(outcome, Rejection)
    assert (outcome.status, outcome.message) == (status, message)
    assert outcome.body == message.encode()
    assert ("Content-Length", str(len(message))) in outcome.response_headers()
    if status.startswith("426"):
        assert ("Sec-WebSocket-Version", "13") in outcome.response_headers()


def test_invalid_extensions_header_is_400_with_faye_length() -> None:
    outcome = server_handshake(
        request(**{"sec-websocket-extensions": "x-webkit- -frame"}),
        extensions=Extensions([PerMessageDeflate()]),
    )
    assert isinstance(outcome, Rejection)
    assert outcome.message == "Invalid Sec-WebSocket-Extensions header: x-webkit- -frame"
    assert ("Content-Length", "57") in outcome.response_headers()


def test_deflate_accepted_when_offered() -> None:
    outcome = server_handshake(
        request(**{"sec-websocket-extensions": "permessage-deflate; client_max_window_bits"}),
        extensions=Extensions([PerMessageDeflate()]),
    )
    assert isinstance(outcome, Acceptance)
    assert outcome.extensions.startswith("permessage-deflate")
    assert b"Sec-WebSocket-Extensions: permessage-deflate" in outcome.response


@pytest.mark.parametrize(
    ("method", "connection", "upgrade", "expected"),
    [
        ("GET", "Upgrade", "websocket", True),
        ("GET", "keep-alive, Upgrade", "WebSocket", True),
        ("GET", "upgrade", "websocket", True),
        ("GET", "Upgrade, keep-alive", " WEBSOCKET ", True),
        ("POST", "Upgrade", "websocket", False),
        ("GET", "keep-alive", "websocket", False),
        ("GET", "Upgrade", "websocket, h2c", False),
        ("GET", None, "websocket", False),
    ],
)
def test_is_websocket(method: str, connection: str | None, upgrade: str, expected: bool) -> None:
    assert is_websocket(method, connection, upgrade) is expected


# ------------------------------------------------------------------ client

CLIENT_KEY = "2vBVWg4Qyk3ZoM/5d3QD9Q=="
CLIENT_ACCEPT = "QV3I5XUXU2CdhtjixE7QCkCcMZM="


def client(url: str = "ws://www.example.com/socket", **options: object) -> ClientHandshake:
    return ClientHandshake(url, key=CLIENT_KEY, **options)  # type: ignore[arg-type]


def test_client_request_is_exact() -> None:
    assert client().request_bytes() == (
        b"GET /socket HTTP/1.1\r\n"
        b"Host: www.example.com\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + CLIENT_KEY.encode() + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )


def test_client_request_with_protocols_credentials_and_headers() -> None:
    handshake = client(
        "ws://user:pass@www.example.com/socket?a=1",
        protocols=["foo", "bar", "xmpp"],
        headers={"User-Agent": "Chrome"},
    )
    raw = handshake.request_bytes()
    assert raw.startswith(b"GET /socket?a=1 HTTP/1.1\r\n")
    assert raw.endswith(
        b"Sec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: foo, bar, xmpp\r\n"
        b"Authorization: Basic dXNlcjpwYXNz\r\n"
        b"User-Agent: Chrome\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("ws://www.example.com:3000/", "www.example.com:3000"),
        ("ws://www.example.com:80/", "www.example.com"),
        ("wss://www.example.com/", "www.example.com"),
        ("wss://www.example.com:443/", "www.example.com"),
        ("wss://www.example.com:3000/", "www.example.com:3000"),
        ("ws://[::1]:9000/", "[::1]:9000"),
    ],
)
def test_client_host_header(url: str, host: str) -> None:
    assert f"Host: {host}\r\n".encode() in client(url).request_bytes()


@pytest.mark.parametrize("url", ["stream.wikimedia.org/rc", "http://127.0.0.1/", "ws:///nohost"])
def test_client_refuses_non_websocket_urls(url: str) -> None:
    with pytest.raises(ValueError, match="is not a valid WebSocket URL"):
        ClientHandshake(url)


def ok_headers(**extra: str) -> dict[str, str]:
    headers = {
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-accept": CLIENT_ACCEPT,
    }
    headers.update(extra)
    return headers


def test_client_accepts_a_valid_101() -> None:
    outcome = client(protocols=["foo", "xmpp"]).process_response(
        101, ok_headers(**{"sec-websocket-protocol": "xmpp"})
    )
    assert outcome.subprotocol == "xmpp"
    assert outcome.protocol.is_client


@pytest.mark.parametrize(
    ("status", "headers", "why"),
    [
        (404, ok_headers(), "Unexpected response code: 404"),
        (302, ok_headers(), "Unexpected response code: 302"),
        (
            101,
            {"connection": "Upgrade", "sec-websocket-accept": CLIENT_ACCEPT},
            "'Upgrade' header is missing",
        ),
        (101, ok_headers(upgrade="h2c"), "'Upgrade' header value is not 'WebSocket'"),
        # faye also refuses "Upgrade, keep-alive"; RFC 6455 §4.1 asks for the token only
        (101, ok_headers(connection="keep-alive"), "'Connection' header value is not 'Upgrade'"),
        (101, ok_headers(**{"sec-websocket-accept": "nope"}), "Sec-WebSocket-Accept mismatch"),
        (101, ok_headers(**{"sec-websocket-protocol": "irc"}), "Sec-WebSocket-Protocol mismatch"),
    ],
)
def test_client_response_failures_carry_fayes_message(
    status: int, headers: dict[str, str], why: str
) -> None:
    with pytest.raises(HandshakeError) as info:
        client(protocols=["foo", "xmpp"]).process_response(status, headers)
    assert str(info.value) == f"Error during WebSocket handshake: {why}"
    assert info.value.status == status
    assert dict(info.value.headers) == headers


@pytest.mark.parametrize("connection", ["upgrade", "Upgrade, keep-alive", "keep-alive,UPGRADE"])
def test_client_accepts_upgrade_among_the_connection_tokens(connection: str) -> None:
    # faye wants the whole value to be "Upgrade"; RFC 6455 §4.1 a token list holding it.
    outcome = client().process_response(101, ok_headers(connection=connection))
    assert outcome.protocol.is_client


def test_client_deflate_offer_and_activation() -> None:
    handshake = client(extensions=Extensions([PerMessageDeflate()]))
    assert b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" in (
        handshake.request_bytes()
    )
    outcome = handshake.process_response(
        101, ok_headers(**{"sec-websocket-extensions": "permessage-deflate"})
    )
    assert outcome.extensions == "permessage-deflate"


def test_client_refuses_an_extension_it_did_not_offer() -> None:
    with pytest.raises(HandshakeError, match='unknown extension "x-foo"'):
        client().process_response(101, ok_headers(**{"sec-websocket-extensions": "x-foo"}))


def test_failed_protocol_reports_error_then_close_and_refuses_everything() -> None:
    from faye_sync.protocol.base import FailedProtocol
    from faye_sync.protocol.events import Close, Error

    failed = FailedProtocol("Unsupported WebSocket version: 8")
    assert failed.events_received() == [
        Error("Unsupported WebSocket version: 8", 1002),
        Close(1002, "Unsupported WebSocket version: 8"),
    ]
    assert failed.events_received() == []
    failed.receive_data(b"\x81\x00")
    failed.receive_eof()
    assert not failed.send_text("x")
    assert not failed.send_binary(b"x")
    assert not failed.send_ping()
    assert not failed.send_pong()
    assert not failed.send_close()
    with pytest.raises(ValueError):
        failed.send_close(1005)
    failed.fail(1006, "")
    assert failed.data_to_send() == b""
    assert failed.close_expected()
    assert failed.state == 3


def test_101_with_subprotocol_and_extension_is_byte_exact() -> None:
    outcome = server_handshake(
        request(
            **{
                "sec-websocket-protocol": "soap, chat",
                "sec-websocket-extensions": "permessage-deflate; client_max_window_bits",
            }
        ),
        protocols=["chat"],
        extensions=Extensions([PerMessageDeflate()]),
    )
    plain = server_handshake(request())  # byte-exact in test_101_is_byte_exact
    assert isinstance(outcome, Acceptance) and isinstance(plain, Acceptance)
    assert outcome.response == plain.response[:-2] + (
        b"Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    )


@given(st.text(alphabet="AQgw+/=aZ09 \u00e9", min_size=20, max_size=28))
def test_a_key_is_accepted_exactly_when_it_is_16_bytes_of_base64(key: str) -> None:
    try:
        valid = len(base64.b64decode(key.encode("ascii"), validate=True)) == 16
    except (UnicodeEncodeError, ValueError):
        valid = False
    outcome = server_handshake(request(**{"sec-websocket-key": key}))
    assert isinstance(outcome, Acceptance) is (valid and bool(key))


@pytest.mark.parametrize("key", ["not base64!", "dG9vIHNob3J0", "dGhlIHNhbXBsZSBub25jZQ\u00e9="])
def test_a_key_that_is_not_16_bytes_of_base64_gets_400(key: str) -> None:
    outcome = server_handshake(request(**{"sec-websocket-key": key}))
    assert isinstance(outcome, Rejection)
    assert (outcome.status, outcome.message) == (
        "400 Bad Request",
        f"Invalid Sec-WebSocket-Key header: {key}",
    )
