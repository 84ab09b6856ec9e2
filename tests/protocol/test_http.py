"""protocol/http.py: the HTTP rules the server and both clients share, byte for byte."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from faye_sync.protocol.handshake import ClientHandshake
from faye_sync.protocol.http import (
    TOKEN,
    HeaderList,
    authority,
    basic_auth,
    check_header,
    host_and_port,
    host_header,
    redact_url,
    split_url,
)


@pytest.mark.parametrize("name", ["X-Custom", "Sec-WebSocket-Key", "!#$%&'*+-.^_`|~09azAZ"])
def test_token_names(name: str) -> None:
    assert TOKEN.fullmatch(name)
    check_header(name, "value")


@pytest.mark.parametrize("name", ["", "Bad Name", "X:Y", "Ünicode", "X\r\nY", "(x)"])
def test_non_token_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid HTTP header name"):
        check_header(name, "value")


@pytest.mark.parametrize("value", ["a\r\nEvil: 1", "a\nb", "a\rb", "a\0b"])
def test_values_that_would_break_the_message_are_refused_without_showing_them(
    value: str,
) -> None:
    with pytest.raises(ValueError, match="CR, LF or NUL") as caught:
        check_header("Proxy-Authorization", value)
    assert value not in str(caught.value)  # it may be a credential


def test_values_must_be_latin_1() -> None:
    check_header("X", "café")  # latin-1: HTTP/1.1 and PEP 3333 carry it
    with pytest.raises(ValueError, match="not latin-1"):
        check_header("X", "€")


def test_header_list_keeps_order_and_the_first_of_a_name() -> None:
    headers = HeaderList()
    headers.update([("X-A", " 1 "), ("x-a", "2"), ("Set-Cookie", "a=1")])
    headers.set("Set-Cookie", "b=2")
    headers.add("Upgrade", "websocket")
    assert list(headers) == [
        ("X-A", "1"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Upgrade", "websocket"),
    ]
    assert (
        headers.to_bytes()
        == b"X-A: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nUpgrade: websocket\r\n"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ws://u:secret@example.com:81/p?q", "ws://example.com:81/p?q"),
        ("http://example.com/", "http://example.com/"),
        ("http://u:secret@[::1/", "<invalid URL>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_split_url_checks_port_scheme_and_host_and_hides_credentials() -> None:
    parts = split_url("https://u:p@Example.com:8443/x", ("http", "https"), expected="HTTP")
    assert (parts.hostname, parts.port) == ("example.com", 8443)
    with pytest.raises(ValueError, match=r"^http://h:99999/ is not a valid URL$"):
        split_url("http://u:secret@h:99999/", ("http",), expected="HTTP")
    with pytest.raises(ValueError, match=r"^proxy origin socks5://p:1 is not an http: URL$"):
        split_url("socks5://p:1", ("http",), expected="an http: URL", what="proxy origin ")
    with pytest.raises(ValueError, match=r"^http:///x is not HTTP$"):
        split_url("http:///x", ("http",), expected="HTTP")


def test_a_websocket_url_error_never_shows_the_password() -> None:
    # It did before protocol/http.py: "http://u:secret@h/ is not a valid WebSocket URL".
    with pytest.raises(ValueError, match=r"^http://h/ is not a valid WebSocket URL$"):
        ClientHandshake("http://u:secret@h/")
    with pytest.raises(ValueError, match=r"^ws://h:x/ is not a valid URL$"):
        ClientHandshake("ws://u:secret@h:x/")


def test_hosts_and_ports() -> None:
    assert host_and_port("example.com", 80) == "example.com:80"
    assert host_and_port("::1", 443) == "[::1]:443"
    assert host_header("example.com", 80, 80) == "example.com"
    assert host_header("::1", 8080, 80) == "[::1]:8080"
    assert authority(urlsplit("http://u:p@Example.com:80/")) == "Example.com:80"


def test_basic_auth_from_userinfo_decodes_percent_escapes() -> None:
    assert basic_auth(urlsplit("ws://example.com/")) is None
    assert basic_auth(urlsplit("ws://al%40ice:p%3Ass@h/")) == "Basic YWxAaWNlOnA6c3M="
    assert basic_auth(urlsplit("ws://bob@h/")) == "Basic Ym9iOg=="
