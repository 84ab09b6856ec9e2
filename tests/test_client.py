"""The WebSocket client against our server, against the websockets package's server,
over TLS, through the real tinyproxy, and on every failure path faye names.

faye's client rows (faye-behaviour.md §2.2, §5.4) and where each is checked:
request bytes, subprotocols, credentials, ports in Host, invalid URLs — in
tests/protocol/test_handshake.py; a valid 101 (open, status 101, headers),
a frame in the same read as the 101, bad status/Upgrade/Accept/subprotocol,
404, 302 not followed, refused connection, close(4000) — here; proxy CONNECT
bytes, auth, 407 — here and in tests/net/test_net.py.
"""

from __future__ import annotations

import inspect
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from faye_sync import Client, PerMessageDeflate, connect
from faye_sync.exceptions import HandshakeError, NetworkError, ProxyError
from faye_sync.protocol.handshake import accept_key
from tests.net.peers import ScriptedServer, Tinyproxy, free_port
from tests.servers import serve as serve_wsgi

ROOT = Path(__file__).resolve().parent.parent
WAIT = 5.0


def peer_handler(ws: ServerConnection) -> None:
    """The websockets server's side: echo, or close with 4000 when told to."""
    try:
        for message in ws:
            if message == "close-4000":
                ws.close(4000, "done")
                return
            ws.send(message)
    except ConnectionClosed:
        pass  # a client closing with a code other than 1000/1001


@pytest.fixture(scope="module")
def peer() -> Iterator[int]:
    def select_subprotocol(ws: ServerConnection, offered: Any) -> str | None:
        return next((p for p in offered if p in ("xmpp", "chat")), None)

    with serve(
        peer_handler, "127.0.0.1", 0, select_subprotocol=select_subprotocol, max_size=None
    ) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.socket.getsockname()[1]
        server.shutdown()
        thread.join(WAIT)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_peer(ca: trustme.CA) -> Iterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    with serve(peer_handler, "127.0.0.1", 0, ssl=context) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.socket.getsockname()[1]
        server.shutdown()
        thread.join(WAIT)


def recorded(ws: Client) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    ws.on("open", lambda e: seen.append(("open", None)))
    ws.on("error", lambda e: seen.append(("error", e.message)))
    ws.on("close", lambda e: seen.append(("close", (e.code, e.reason))))
    return seen


def test_against_our_server_on_gevent() -> None:
    with serve_wsgi("gevent", "tests.apps.ws_app:app") as server:
        ws = connect(f"ws://127.0.0.1:{server.port}/chat?room=1", extensions=[PerMessageDeflate()])
        assert ws.status_code == 101
        assert ws.extensions == "permessage-deflate"
        seen = recorded(ws)
        ws.send("héllo")
        assert ws.receive(timeout=WAIT) == "héllo"
        ws.send(b"\x00" * 100_000)
        assert ws.receive(timeout=WAIT) == b"\x00" * 100_000
        ws.send("close 4002 server says bye")
        assert list(ws) == []
        assert seen == [("open", None), ("close", (4002, "server says bye"))]
        server.wait_for_log(r"^close 4002 server says bye$", timeout=WAIT)


def test_against_the_websockets_server(peer: int) -> None:
    ws = connect(f"ws://127.0.0.1:{peer}/", ["irc", "chat"], max_length=8 * 2**20)
    seen = recorded(ws)
    assert ws.protocol == "chat"
    assert ws.headers["upgrade"].lower() == "websocket"
    big = "é" * 2_000_000
    ws.send(big)
    assert ws.receive(timeout=WAIT) == big
    ws.close(4000, "custom")
    assert list(ws) == []
    assert seen == [("open", None), ("close", (4000, "custom"))]
    assert not ws.send("after close")


def test_with_connect_closes_at_the_end_of_the_block(peer: int) -> None:
    with connect(f"ws://127.0.0.1:{peer}/") as ws:
        seen = recorded(ws)
        ws.send("hello")
        assert ws.receive(timeout=WAIT) == "hello"
    # The close handshake is over when the block ends: the server answered 1000.
    assert seen == [("open", None), ("close", (1000, ""))]
    assert ws.ready_state == 3
    with pytest.raises(RuntimeError, match="in the block"), Client(f"ws://127.0.0.1:{peer}/") as ws:
        seen = recorded(ws)
        ws.send("x")
        raise RuntimeError("in the block")  # goes on, after the client is closed
    assert seen[-1] == ("close", (1000, ""))
    with Client(f"ws://127.0.0.1:{free_port()}/") as failed:  # nothing to close: no error
        assert isinstance(failed.failure, NetworkError)


def test_connect_takes_the_options_of_client_by_name() -> None:
    ours = inspect.signature(connect).parameters
    theirs = dict(inspect.signature(Client).parameters)
    assert list(ours) == list(theirs)
    for name, parameter in ours.items():
        assert parameter.kind == theirs[name].kind, name
        assert parameter.default == theirs[name].default, name
        assert parameter.annotation == theirs[name].annotation, name
    with pytest.raises(TypeError, match="unexpected keyword argument 'proxies'"):
        connect("ws://127.0.0.1:1/", proxies=False)  # type: ignore[call-arg]


def test_everything_connect_raises_is_importable_from_the_package() -> None:
    import faye_sync

    for name in ("HandshakeError", "NetworkError", "NetworkTimeoutError", "ProxyError"):
        assert getattr(faye_sync, name) is getattr(faye_sync.exceptions, name)
        assert name in faye_sync.__all__
    with pytest.raises(faye_sync.NetworkError):
        connect(f"ws://127.0.0.1:{free_port()}/")


def test_server_initiated_close_code_arrives(peer: int) -> None:
    ws = connect(f"ws://127.0.0.1:{peer}/")
    seen = recorded(ws)
    ws.send("close-4000")
    assert list(ws) == []
    assert seen[-1] == ("close", (4000, "done"))


def test_event_style_handlers_attached_after_construction_see_open(peer: int) -> None:
    ws = Client(f"ws://127.0.0.1:{peer}/")
    messages: list[Any] = []
    seen = recorded(ws)
    ws.on("message", lambda e: (messages.append(e.data), ws.close()) if e.data == "pong" else None)
    ws.send("pong")
    ws.run()
    assert messages == ["pong"]
    assert seen == [("open", None), ("close", (1000, ""))]


def test_wss_with_a_ca_verifies(tls_peer: int, ca: trustme.CA, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ws = connect(f"wss://localhost:{tls_peer}/", tls={"ca": str(ca_file)})
    ws.send("secure")
    assert ws.receive(timeout=WAIT) == "secure"
    ws.close()
    ws = connect(f"wss://localhost:{tls_peer}/", ca=str(ca_file))  # faye's legacy option
    ws.close()


def test_wss_refuses_an_unknown_certificate_by_default(tls_peer: int) -> None:
    with pytest.raises(NetworkError, match="certificate verify failed"):
        connect(f"wss://localhost:{tls_peer}/")
    ws = connect(f"wss://localhost:{tls_peer}/", tls={"verify": False})
    ws.close()


def test_through_tinyproxy_with_auth(peer: int, tmp_path: Path) -> None:
    try:
        proxy = Tinyproxy(tmp_path, auth=("user", "secret"))
    except FileNotFoundError:
        pytest.skip("tinyproxy is not installed (CI: apt-get install -y tinyproxy)")
    with proxy:
        ws = connect(f"ws://127.0.0.1:{peer}/", proxy={"origin": proxy.origin("user:secret")})
        ws.send("tunnelled")
        assert ws.receive(timeout=WAIT) == "tunnelled"
        ws.close()
        with pytest.raises(ProxyError, match="proxy answered 407") as info:
            connect(f"ws://127.0.0.1:{peer}/", proxy=proxy.origin())
        assert info.value.status == 407
        assert "secret" not in str(info.value)


def accepting(protocol: str | None = None, accept: str | None = None) -> Any:
    def respond(request: bytes) -> bytes:
        key = re.search(rb"Sec-WebSocket-Key: (\S+)", request)
        assert key is not None
        lines = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept or accept_key(key.group(1).decode())}",
        ]
        if protocol:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    return respond


@pytest.mark.parametrize(
    ("response", "status", "why"),
    [
        (
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            404,
            "Unexpected response code: 404",
        ),
        (
            b"HTTP/1.1 302 Found\r\nLocation: ws://elsewhere/\r\nContent-Length: 0\r\n\r\n",
            302,
            "Unexpected response code: 302",
        ),
        (accepting(accept="bad"), 101, "Sec-WebSocket-Accept mismatch"),
        (accepting(protocol="irc"), 101, "Sec-WebSocket-Protocol mismatch"),
        (b"HTTP/1.1 4\r\n\r\n", None, "Parse Error"),
    ],
)
def test_handshake_failures(response: Any, status: int | None, why: str) -> None:
    with ScriptedServer(response) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with pytest.raises(HandshakeError) as info:
            connect(url, ["xmpp"])
        message = f"Error during WebSocket handshake: {why}"
        assert str(info.value) == message
        assert info.value.status == status
        ws = Client(url, ["xmpp"])  # the event style: error, then close 1002
        seen = recorded(ws)
        assert list(ws) == []
        assert seen == [("error", message), ("close", (1002, message))]
        assert ws.status_code == status
        if status == 302:
            assert ws.headers["location"] == "ws://elsewhere/"


@pytest.mark.parametrize("kind", ["werkzeug", "gunicorn-gthread"])
def test_a_refusal_keeps_a_body_written_after_its_head(kind: str) -> None:
    """Servers write the head and the body apart: the body is read after the head.

    (The excerpt once fed h11 the empty rest of the head's read, which h11 takes for
    the end of the connection: every real server's refusal had an empty ``body``.)
    """
    with serve_wsgi(kind, "tests.apps.flask_auth:app") as server:
        with pytest.raises(HandshakeError) as info:
            connect(f"ws://127.0.0.1:{server.port}/ws/whoami")  # anonymous: abort(403)
    assert info.value.status == 403
    assert b"<h1>Forbidden</h1>" in info.value.body, info.value.body


@pytest.mark.parametrize("size", [60, 10_000])
def test_a_refusal_keeps_the_start_of_the_servers_explanation(size: int) -> None:
    why = ("waitress cannot hand a WebSocket its socket; use gunicorn. " * 200)[:size]
    response = (f"HTTP/1.1 501 Not Implemented\r\nContent-Length: {len(why)}\r\n\r\n{why}").encode()
    with ScriptedServer(response) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with pytest.raises(HandshakeError) as info:
            connect(url)
        message = "Error during WebSocket handshake: Unexpected response code: 501"
        assert info.value.message == message
        assert info.value.body == why.encode()[:4096]  # bounded
        assert str(info.value).startswith(f"{message}; the server said: waitress cannot hand")
        seen = recorded(ws := Client(url))
        assert list(ws) == []
        assert seen == [("error", message), ("close", (1002, message))]  # faye's text


def test_a_frame_in_the_same_read_as_the_101_is_kept() -> None:
    def respond(request: bytes) -> bytes:
        return accepting()(request) + b"\x81\x02Hi"

    with ScriptedServer(respond) as server:
        ws = connect(f"ws://127.0.0.1:{server.port}/", close_timeout=0.5)
        assert ws.receive(timeout=WAIT) == "Hi"
        ws.close()  # the scripted peer never answers: the close timeout ends it


def test_refused_connection() -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/"
    with pytest.raises(
        NetworkError, match=re.escape(f"Network error: {url}: connect ECONNREFUSED")
    ):
        connect(url)
    ws = Client(url)
    seen = recorded(ws)
    ws.run()
    assert seen[0][0] == "error" and seen[0][1].startswith("Network error: ")
    assert seen[1] == ("close", (1006, seen[0][1]))
    assert ws.status_code is None


def test_only_ws_and_wss_urls() -> None:
    with pytest.raises(
        ValueError, match=re.escape("http://127.0.0.1/ is not a valid WebSocket URL")
    ):
        Client("http://127.0.0.1/")


def test_echo_client_example() -> None:
    # A peer that speaks first: the example must echo text as text, binary as
    # binary, answer the close, and print its code and reason.
    echoed: list[Any] = []

    def speak_first(ws: ServerConnection) -> None:
        ws.send("hello")
        ws.send(b"\x01\x02")
        echoed.extend([ws.recv(timeout=WAIT), ws.recv(timeout=WAIT)])
        ws.close(4001, "scripted")

    with serve(speak_first, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "wsgi_examples.echo_client", f"ws://127.0.0.1:{port}/"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
        server.shutdown()
        thread.join(WAIT)
    assert echoed == ["hello", b"\x01\x02"]
    assert result.stdout.strip() == "close 4001 scripted"
    assert result.returncode == 1
