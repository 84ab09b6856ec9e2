"""faye_sync.net, the client's dialer, against real peers: TLS servers, tinyproxy, the kernel.

Certificates come from ``trustme``; the proxy is the real ``tinyproxy`` program
(``apt-get install -y tinyproxy``), fronted by a TLS terminator for the ``https:``
proxy cases. Tests that need tinyproxy skip, saying so, when it is not installed.
"""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h11
import pytest
import trustme

from faye_sync import net
from faye_sync.exceptions import (
    FayeSyncError,
    HandshakeError,
    NetworkError,
    NetworkTimeoutError,
    ProxyError,
)
from faye_sync.net import (
    ResponseHead,
    TLSTunnelSocket,
    connect,
    proxy_for,
    receive_response_head,
)
from tests.net.peers import (
    HOST,
    OK_101,
    ScriptedServer,
    Tinyproxy,
    TLSFront,
    free_port,
    saturated_listener,
)

PROXY_VARIABLES = [
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUEST_METHOD",
]


def upgrade_request(host: str = "localhost", path: str = "/chat") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode()


def get_request(host: str = "localhost", path: str = "/events") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()


FRAME = b"\x81\x05hello"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def clean_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own proxy settings must not leak into these tests."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_path(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("localhost", HOST))).configure_cert(context)
    return context


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[ScriptedServer]:
    with ScriptedServer(OK_101 + FRAME, tls=server_context(ca)) as server:
        yield server


@pytest.fixture
def plain_server() -> Iterator[ScriptedServer]:
    with ScriptedServer(OK_101 + FRAME) as server:
        yield server


def _tinyproxy(tmp_path_factory: pytest.TempPathFactory, auth: tuple[str, str] | None) -> Tinyproxy:
    try:
        return Tinyproxy(tmp_path_factory.mktemp("tinyproxy"), auth)
    except FileNotFoundError:
        pytest.skip("tinyproxy is not installed (CI: apt-get install -y tinyproxy)")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tinyproxy]:
    with _tinyproxy(tmp_path_factory, None) as running:
        yield running


@pytest.fixture(scope="module")
def auth_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tinyproxy]:
    with _tinyproxy(tmp_path_factory, ("alice", "s3cret")) as running:
        yield running


@pytest.fixture
def https_proxy(proxy: Tinyproxy, ca: trustme.CA) -> Iterator[TLSFront]:
    # tinyproxy cannot listen on TLS; this front terminates TLS and relays the bytes.
    # Its certificate names only "proxy.test", so the client must use that name.
    with TLSFront(server_context(ca, "proxy.test"), proxy.port) as front:
        yield front


def read_response_head(sock: socket.socket, request: bytes, **options: Any) -> ResponseHead:
    head, _ = receive_response_head(sock, request, **options)
    return head


def exchange_101(sock: socket.socket, host: str = "localhost") -> ResponseHead:
    head = read_response_head(sock, upgrade_request(host), timeout=5)
    assert head.status == 101
    return head


# --------------------------------------------------------------------------- direct


def test_direct_plain_connect_returns_the_frame_after_the_101(
    plain_server: ScriptedServer,
) -> None:
    sock = connect(HOST, plain_server.port, secure=False, proxy=False)
    with sock:
        assert sock.gettimeout() is None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        head = exchange_101(sock)
    assert head == (
        101,
        "Switching Protocols",
        {
            "upgrade": "websocket",
            "connection": "Upgrade",
            "sec-websocket-accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        },
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ],
        FRAME,
    )
    assert plain_server.requests == [upgrade_request()]


def test_leftover_is_intact_when_the_response_arrives_one_byte_at_a_time() -> None:
    with ScriptedServer(OK_101 + FRAME, chunk=1) as server:
        with connect(HOST, server.port, secure=False, proxy=False) as sock:
            head = exchange_101(sock)
            rest = head.leftover
            while len(rest) < len(FRAME):  # the tail may come after the head was complete
                sock.settimeout(5)
                rest += sock.recv(100)
    assert rest == FRAME


def test_leftover_after_a_200_is_the_start_of_the_body_and_h11_decodes_the_rest() -> None:
    body = b"5\r\ndata:\r\n5\r\n hi\n\n\r\n0\r\n\r\n"
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + body
    )
    with ScriptedServer(response) as server:
        with connect(HOST, server.port, secure=False, proxy=False) as sock:
            head, conn = receive_response_head(sock, get_request(), timeout=5)
            assert head.status == 200
            assert head.leftover == body[: len(head.leftover)]
            conn.receive_data(head.leftover)
            received = b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    sock.settimeout(5)
                    conn.receive_data(sock.recv(4096))
                    continue
                if isinstance(event, h11.Data):
                    received += event.data
                if isinstance(event, h11.EndOfMessage):
                    break
    assert received == b"data: hi\n\n"


def test_duplicate_headers_are_joined_and_100_continue_is_skipped() -> None:
    response = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 403 Forbidden\r\nSet-Cookie: a=1\r\nX-Thing: one\r\n"
        b"set-cookie: b=2\r\nContent-Length: 0\r\n\r\n"
    )
    with ScriptedServer(response) as server:
        with connect(HOST, server.port, secure=False, proxy=False) as sock:
            head = read_response_head(sock, upgrade_request(), timeout=5)
    assert head.status == 403
    assert head.reason == "Forbidden"
    assert head.headers["set-cookie"] == "a=1, b=2"
    assert ("set-cookie", "b=2") in head.raw_headers
    assert head.leftover == b""


def test_interim_responses_are_bounded_in_number() -> None:
    # A flood of 100 Continue used to be read until the timeout.
    flood = b"HTTP/1.1 100 Continue\r\n\r\n" * 10_000
    with ScriptedServer(flood) as server:
        with connect(HOST, server.port, secure=False, proxy=False) as sock:
            started = time.monotonic()
            with pytest.raises(HandshakeError, match=r"more than 8 interim \(1xx\) responses"):
                read_response_head(sock, get_request(), timeout=30)
            assert time.monotonic() - started < 5


def test_interim_heads_count_towards_max_head() -> None:
    big = b"HTTP/1.1 103 Early Hints\r\nLink: <" + b"a" * 20_000 + b">\r\n\r\n"
    with ScriptedServer(big * 4 + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as server:
        with connect(HOST, server.port, secure=False, proxy=False) as sock:
            with pytest.raises(HandshakeError, match="larger than 65536 bytes"):
                read_response_head(sock, get_request(), timeout=5)


def test_no_interim_response_allowed_is_an_unexpected_response_code() -> None:
    response = b"HTTP/1.1 100 Continue\r\nX-Why: flood\r\n\r\n" + OK_101
    with ScriptedServer(response) as server:
        with connect(HOST, server.port, secure=False, proxy=False) as sock:
            with pytest.raises(HandshakeError, match=r"^Unexpected response code: 100$") as caught:
                read_response_head(sock, upgrade_request(), timeout=5, max_interim=0)
    assert caught.value.status == 100
    assert caught.value.headers == {"x-why": "flood"}


def test_garbled_response_is_a_parse_error() -> None:
    with ScriptedServer(b"HTTP/1.1 abc Nope\r\nwhat\r\n\r\n") as server:
        with connect(HOST, server.port, secure=False, proxy=False) as sock:
            with pytest.raises(HandshakeError, match=r"^Parse Error$"):
                read_response_head(sock, upgrade_request(), timeout=5)


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Many: header\r\n" * 10_000,  # no end
    ],
    ids=["complete-but-large", "never-ending"],
)
def test_oversized_response_head_is_an_error(response: bytes) -> None:
    with ScriptedServer(response) as server:
        with connect(HOST, server.port, secure=False, proxy=False) as sock:
            with pytest.raises(HandshakeError, match="larger than 65536 bytes"):
                read_response_head(sock, upgrade_request(), timeout=5)


def test_eof_before_the_head_is_complete_is_a_network_error() -> None:
    with ScriptedServer(b"HTTP/1.1 101 Switching\r\nUpgr", then_close=True) as server:
        with connect(HOST, server.port, secure=False, proxy=False) as sock:
            with pytest.raises(NetworkError) as caught:
                read_response_head(sock, upgrade_request(), timeout=5, url="ws://u:pw@h/")
    assert str(caught.value) == (
        "Network error: ws://h/: connection closed before the response head was complete"
    )


def test_response_head_timeout_is_bounded() -> None:
    with ScriptedServer(silent=True) as server:
        with connect(HOST, server.port, secure=False, proxy=False) as sock:
            sock.settimeout(7.0)
            started = time.monotonic()
            with pytest.raises(NetworkTimeoutError) as caught:
                read_response_head(sock, upgrade_request(), timeout=0.4)
            assert 0.3 < time.monotonic() - started < 3
            assert sock.gettimeout() == 7.0  # the caller's timeout is restored
    assert isinstance(caught.value, TimeoutError)


def test_connect_refused_is_a_network_error_with_the_url_and_errno() -> None:
    port = free_port()
    with pytest.raises(NetworkError) as caught:
        connect(HOST, port, secure=False, proxy=False, target_url=f"ws://bob:pw@{HOST}:{port}/x")
    message = str(caught.value)
    assert message.startswith(f"Network error: ws://{HOST}:{port}/x: connect ECONNREFUSED")
    assert "pw" not in message
    assert isinstance(caught.value, OSError)
    assert isinstance(caught.value, FayeSyncError)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_unknown_host_is_a_network_error() -> None:
    with pytest.raises(NetworkError, match="getaddrinfo"):
        connect("no-such-host.invalid", 80, secure=False, proxy=False)


def test_connect_timeout_is_bounded() -> None:
    with saturated_listener() as port:
        started = time.monotonic()
        with pytest.raises(NetworkTimeoutError, match="connect ETIMEDOUT"):
            connect(HOST, port, secure=False, proxy=False, timeout=0.5)
        assert time.monotonic() - started < 3
        started = time.monotonic()
        with pytest.raises(NetworkTimeoutError):
            connect(HOST, port, secure=False, proxy=False, timeout=30, net={"timeout": 0.3})
        assert time.monotonic() - started < 3


def test_tls_handshake_timeout_is_bounded() -> None:
    with ScriptedServer(silent_tls=True) as server:
        started = time.monotonic()
        with pytest.raises(NetworkTimeoutError, match=r"TLS handshake with .* timed out"):
            connect(HOST, server.port, secure=True, proxy=False, timeout=0.5)
        assert time.monotonic() - started < 3


def test_local_address_and_port_are_bound(plain_server: ScriptedServer) -> None:
    local_port = free_port()
    net = {"local_address": HOST, "local_port": local_port, "timeout": 5}
    with connect(HOST, plain_server.port, secure=False, proxy=False, net=net) as sock:
        assert sock.getsockname() == (HOST, local_port)
        exchange_101(sock)
    assert plain_server.peers == [(HOST, local_port)]


def test_unknown_option_names_are_refused() -> None:
    with pytest.raises(TypeError, match="Unrecognized option: localAddress"):
        connect(HOST, 1, secure=False, proxy=False, net={"localAddress": HOST})
    with pytest.raises(TypeError, match="Unrecognized option: rejectUnauthorized"):
        connect(HOST, 1, secure=True, proxy=False, tls={"rejectUnauthorized": False})
    with pytest.raises(TypeError, match="Unrecognized option: auth"):
        connect(HOST, 1, secure=False, proxy={"origin": "http://p:1", "auth": "x"})
    with pytest.raises(ValueError, match="http: or https:"):
        connect(HOST, 1, secure=False, proxy="socks5://p:1")
    with pytest.raises(ValueError, match="CR, LF"):
        proxy_for("ws://h/", {"origin": "http://p:1", "headers": {"X": "a\r\nEvil: 1"}})


# --------------------------------------------------------------------------- TLS


def test_tls_is_verified_by_default(tls_server: ScriptedServer) -> None:
    with pytest.raises(NetworkError, match="certificate verify failed") as caught:
        connect(HOST, tls_server.port, secure=True, proxy=False)
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)


def test_tls_without_verification(tls_server: ScriptedServer) -> None:
    with connect(HOST, tls_server.port, secure=True, proxy=False, tls={"verify": False}) as sock:
        assert isinstance(sock, ssl.SSLSocket)
        assert exchange_101(sock).leftover == FRAME


@pytest.mark.parametrize("how", ["tls-ca-path", "tls-ca-pem", "legacy-ca", "ssl-context"])
def test_tls_with_the_test_ca(
    how: str, ca: trustme.CA, ca_path: str, tls_server: ScriptedServer
) -> None:
    options: dict[str, object] = {}
    if how == "tls-ca-path":
        options["tls"] = {"ca": ca_path}
    elif how == "tls-ca-pem":
        options["tls"] = {"ca": ca.cert_pem.bytes().decode()}
    elif how == "legacy-ca":
        options["ca"] = ca_path
    else:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        options["tls"] = context
    with connect(
        "localhost",
        tls_server.port,
        secure=True,
        proxy=False,
        **options,  # type: ignore[arg-type]
    ) as sock:
        assert exchange_101(sock).leftover == FRAME
        assert sock.getpeercert() is not None  # type: ignore[attr-defined]
    assert tls_server.sni == ["localhost"]  # SNI is the host connected to


def test_tls_host_name_is_checked_and_can_be_overridden(ca: trustme.CA, ca_path: str) -> None:
    with ScriptedServer(OK_101, tls=server_context(ca, "example.test")) as server:
        with pytest.raises(NetworkError, match="mismatch"):
            connect(HOST, server.port, secure=True, proxy=False, tls={"ca": ca_path})
        tls = {"ca": ca_path, "server_hostname": "example.test"}
        with connect(HOST, server.port, secure=True, proxy=False, tls=tls) as sock:
            exchange_101(sock)
    assert server.sni[-1] == "example.test"


# --------------------------------------------------------------------------- proxies


def test_proxy_tunnel_to_a_plain_server(proxy: Tinyproxy, plain_server: ScriptedServer) -> None:
    with connect(HOST, plain_server.port, secure=False, proxy={"origin": proxy.origin()}) as sock:
        assert exchange_101(sock).leftover == FRAME
    assert plain_server.requests == [upgrade_request()]


def test_proxy_tunnel_then_tls_to_the_target_with_its_name_as_sni(
    proxy: Tinyproxy, tls_server: ScriptedServer, ca_path: str
) -> None:
    with connect(
        "localhost",
        tls_server.port,
        secure=True,
        proxy=proxy.origin(),
        tls={"ca": ca_path},
        target_url=f"wss://localhost:{tls_server.port}/chat",
    ) as sock:
        assert isinstance(sock, ssl.SSLSocket)
        assert exchange_101(sock).leftover == FRAME
    assert tls_server.sni == ["localhost"]


def test_proxy_with_basic_auth(auth_proxy: Tinyproxy, plain_server: ScriptedServer) -> None:
    # "%73" is "s": credentials are percent-decoded, as Node's url.parse does.
    origin = auth_proxy.origin("alice:%733cret")
    with connect(HOST, plain_server.port, secure=False, proxy=origin) as sock:
        assert exchange_101(sock).leftover == FRAME  # the target's answer, through the proxy


@pytest.mark.parametrize(
    ("userinfo", "status"),
    [
        (None, "407 Proxy Authentication Required"),
        # tinyproxy answers wrong credentials with 401; any non-200 is a refusal.
        ("alice:wrong-Pa55", "401 Unauthorized"),
    ],
)
def test_proxy_refusal_names_the_status_and_hides_credentials(
    auth_proxy: Tinyproxy,
    plain_server: ScriptedServer,
    userinfo: str | None,
    status: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"ws://carol:TargetPw@{HOST}:{plain_server.port}/chat"
    with pytest.raises(ProxyError) as caught:
        connect(
            HOST, plain_server.port, secure=False, proxy=auth_proxy.origin(userinfo), target_url=url
        )
    error = caught.value
    assert str(error) == (
        f"Can't establish a connection to the server at ws://{HOST}:{plain_server.port}/chat: "
        f"proxy answered {status}"
    )
    assert error.status == int(status[:3])
    if error.status == 407:
        assert error.headers["proxy-authenticate"] == 'Basic realm="Tinyproxy"'
    assert error.proxy == f"http://{HOST}:{auth_proxy.port}"
    assert isinstance(error, HandshakeError)
    text = str(error) + repr(error) + caplog.text
    for secret in ("wrong-Pa55", "TargetPw", base64.b64encode(b"alice:wrong-Pa55").decode()):
        assert secret not in text
    assert plain_server.requests == []


def test_connect_request_is_fayes_with_custom_headers() -> None:
    # A scripted "proxy" to see the exact bytes (tinyproxy's view is checked above).
    with ScriptedServer(b"HTTP/1.1 200 Connection established\r\n\r\n") as fake:
        proxy = {
            "origin": f"http://u%40x:p%3Aw@{HOST}:{fake.port}",
            "headers": {"User-Agent": "faye", "Host": "ignored", "X-Trace": " 1 "},
        }
        with connect(
            "example.com", 8080, secure=False, proxy=proxy, target_url="ws://example.com:8080/"
        ):
            pass
    auth = base64.b64encode(b"u@x:p:w").decode()
    assert fake.requests == [
        b"CONNECT example.com:8080 HTTP/1.1\r\n"
        b"Host: example.com:8080\r\n"
        b"Connection: keep-alive\r\n"
        b"Proxy-Connection: keep-alive\r\n"
        b"Proxy-Authorization: Basic " + auth.encode() + b"\r\n"
        b"User-Agent: faye\r\n"
        b"X-Trace: 1\r\n"
        b"\r\n"
    ]


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", "proxy answered 204 No Content"),
        (b"HTTP/1.1 200 OK\r\n\r\nsurprise", "data after its 200"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", r"invalid response \(Parse Error\)"),
    ],
)
def test_only_a_clean_200_opens_the_tunnel(answer: bytes, match: str) -> None:
    with ScriptedServer(answer) as fake:
        with pytest.raises(ProxyError, match=match):
            connect("example.com", 80, secure=False, proxy=f"http://{HOST}:{fake.port}")


def test_unreachable_proxy_is_a_network_error() -> None:
    port = free_port()
    with pytest.raises(NetworkError, match="ECONNREFUSED") as caught:
        connect("example.com", 80, secure=False, proxy=f"http://user:hunter2@{HOST}:{port}")
    assert "hunter2" not in str(caught.value)


def test_proxy_that_never_answers_is_bounded() -> None:
    with ScriptedServer(silent=True) as fake:
        started = time.monotonic()
        with pytest.raises(NetworkTimeoutError):
            connect(
                "example.com", 80, secure=False, proxy=f"http://{HOST}:{fake.port}", timeout=0.5
            )
        assert time.monotonic() - started < 3


def test_https_proxy_then_tls_to_the_target_through_the_tunnel(
    https_proxy: TLSFront, tls_server: ScriptedServer, ca_path: str
) -> None:
    proxy = {
        "origin": f"https://{HOST}:{https_proxy.port}",
        "tls": {"ca": ca_path, "server_hostname": "proxy.test"},
    }
    with connect(
        "localhost", tls_server.port, secure=True, proxy=proxy, tls={"ca": ca_path}
    ) as sock:
        assert isinstance(sock, TLSTunnelSocket)
        assert sock.server_hostname == "localhost"
        assert sock.version() is not None
        assert exchange_101(sock).leftover == FRAME
    assert https_proxy.sni == ["proxy.test"]
    assert tls_server.sni == ["localhost"]


def test_https_proxy_to_a_plain_target(https_proxy: TLSFront, ca_path: str) -> None:
    with ScriptedServer(OK_101 + FRAME) as server:
        proxy = {
            "origin": f"https://{HOST}:{https_proxy.port}",
            "tls": {"ca": ca_path, "server_hostname": "proxy.test"},
        }
        with connect(HOST, server.port, secure=False, proxy=proxy) as sock:
            assert exchange_101(sock).leftover == FRAME


def test_https_proxy_certificate_is_verified(https_proxy: TLSFront) -> None:
    with pytest.raises(NetworkError, match=r"TLS handshake with proxy .* certificate verify"):
        connect("localhost", 443, secure=True, proxy=f"https://{HOST}:{https_proxy.port}")


def test_tls_in_tls_carries_a_large_stream_both_ways_at_once(
    https_proxy: TLSFront, ca: trustme.CA, ca_path: str
) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    with ScriptedServer(OK_101, tls=server_context(ca), echo=True) as server:
        proxy = {
            "origin": f"https://{HOST}:{https_proxy.port}",
            "tls": {"ca": ca_path, "server_hostname": "proxy.test"},
        }
        with connect(
            "localhost", server.port, secure=True, proxy=proxy, tls={"ca": ca_path}
        ) as sock:
            assert isinstance(sock, TLSTunnelSocket)
            exchange_101(sock)
            sock.settimeout(10)
            writer = threading.Thread(target=sock.sendall, args=(payload,))
            writer.start()
            received = bytearray()
            buffer = bytearray(70_000)
            while len(received) < len(payload):
                count = sock.recv_into(buffer)
                assert count
                received += buffer[:count]
            writer.join(10)
            assert not writer.is_alive()
            assert sock.pending() == 0
    assert bytes(received) == payload


# --------------------------------------------------------------------------- environment


def test_http_proxy_from_the_environment_is_used_for_ws(
    auth_proxy: Tinyproxy, plain_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", auth_proxy.origin())  # no credentials: tinyproxy says 407
    with pytest.raises(ProxyError, match="407"):
        connect(HOST, plain_server.port, secure=False)
    monkeypatch.setenv("http_proxy", auth_proxy.origin("alice:s3cret"))  # lower case wins
    with connect(HOST, plain_server.port, secure=False) as sock:
        exchange_101(sock)


def test_https_proxy_from_the_environment_is_used_for_wss(
    auth_proxy: Tinyproxy,
    tls_server: ScriptedServer,
    ca_path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://{HOST}:{free_port()}")  # not for wss
    monkeypatch.setenv("HTTPS_PROXY", auth_proxy.origin("alice:s3cret"))
    with connect("localhost", tls_server.port, secure=True, tls={"ca": ca_path}) as sock:
        exchange_101(sock)
    monkeypatch.setenv("HTTPS_PROXY", auth_proxy.origin())
    with pytest.raises(ProxyError, match="407"):
        connect("localhost", tls_server.port, secure=True, tls={"ca": ca_path})


def test_no_proxy_and_proxy_false_bypass_the_environment(
    auth_proxy: Tinyproxy, plain_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", auth_proxy.origin())  # would answer 407
    with connect(HOST, plain_server.port, secure=False, proxy=False) as sock:
        assert exchange_101(sock).leftover == FRAME  # not the proxy's 407
    monkeypatch.setenv("NO_PROXY", f"example.com, {HOST}")
    with connect(HOST, plain_server.port, secure=False) as sock:
        assert exchange_101(sock).leftover == FRAME


def test_all_proxy_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "proxy.corp:3128")
    assert proxy_for("wss://example.com/", None) == {
        "origin": "http://proxy.corp:3128",
        "headers": {},
        "tls": None,
    }
    monkeypatch.setenv("ALL_PROXY", "socks5://proxy.corp:1080")  # not ours to use
    assert proxy_for("wss://example.com/", None) is None


def test_upper_case_http_proxy_is_ignored_under_cgi(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpoxy: a request's "Proxy:" header becomes HTTP_PROXY in a CGI environment.
    monkeypatch.setenv("HTTP_PROXY", "http://attacker:1")
    assert proxy_for("ws://example.com/", None) is not None
    monkeypatch.setenv("REQUEST_METHOD", "GET")
    assert proxy_for("ws://example.com/", None) is None
    monkeypatch.setenv("http_proxy", "http://good:1")
    settings = proxy_for("ws://example.com/", None)
    assert settings is not None and settings["origin"] == "http://good:1"


@pytest.mark.parametrize(
    ("no_proxy", "url", "bypassed"),
    [
        ("*", "ws://anything/", True),
        ("example.com", "ws://example.com/", True),
        ("example.com", "ws://api.example.com/", True),
        (".example.com", "ws://api.example.com/", True),
        ("*.example.com", "ws://api.example.com/", True),
        ("example.com", "ws://notexample.com/", False),
        ("example.com:8080", "ws://example.com:8080/", True),
        ("example.com:8080", "ws://example.com/", False),
        ("EXAMPLE.com", "wss://Example.COM./", True),
        ("10.0.0.0/8", "ws://10.1.2.3/", True),
        ("10.0.0.0/8", "ws://11.1.2.3/", False),
        ("127.0.0.1", "ws://127.0.0.1:9000/", True),
        ("::1", "ws://[::1]:9000/", True),
        ("[::1]:9000", "ws://[::1]:9000/", True),
        ("fd00::/8", "ws://[fd12::1]/", True),
        ("a.com b.com,,c.com", "ws://b.com/", True),
        ("", "ws://example.com/", False),
    ],
)
def test_no_proxy_matching(
    no_proxy: str, url: str, bypassed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("https_proxy", "http://proxy:1")
    monkeypatch.setenv("http_proxy", "http://proxy:1")
    monkeypatch.setenv("no_proxy", no_proxy)
    assert (proxy_for(url, None) is None) is bypassed


def test_proxy_option_forms() -> None:
    assert proxy_for("ws://h/", False) is None
    assert proxy_for("ws://h/", "https://p") == {"origin": "https://p", "headers": {}, "tls": None}
    settings = proxy_for("ws://h/", {"origin": "http://p:1", "headers": {"A": "b"}})
    assert settings == {"origin": "http://p:1", "headers": {"A": "b"}, "tls": None}
    with pytest.raises(TypeError):
        proxy_for("ws://h/", {"headers": {}})
    with pytest.raises(TypeError):
        proxy_for("ws://h/", 3)  # type: ignore[arg-type]


def test_tls_context_options(ca: trustme.CA, ca_path: str, tmp_path: Path) -> None:
    context, name = net.tls_context({"ca": [ca_path, ca.cert_pem.bytes()]})
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert name is None
    context, name = net.tls_context({"verify": False, "server_hostname": "x.test"})
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    assert name == "x.test"
    client = ca.issue_cert("client.test")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    client.cert_chain_pems[0].write_to_path(str(cert_path))
    client.private_key_pem.write_to_path(str(key_path))
    net.tls_context({"cert": cert_path, "key": key_path})
    given = ssl.create_default_context()
    assert net.tls_context(given) == (given, None)
    with pytest.raises(TypeError):
        net.tls_context(given, ca=ca_path)
