"""The server WebSocket on every WSGI server it supports, checked on the wire.

For each server (its own process on 127.0.0.1): echo with the ``websockets``
client (text, binary, 4 MiB, permessage-deflate negotiated); a server close with
a custom code arrives intact with nothing after it and a prompt FIN; a first
frame pipelined with the handshake is kept; ``101`` in the access log and no
traceback in the server's log; an abrupt disconnect gives one ``close`` (1006)
and ends the handler.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from tests.servers import ACCESS_STATUS, HIJACKABLE_KINDS, Server, is_available, serve
from tests.wire import masked, read_frame, upgrade

APP = "tests.apps.ws_app:app"


@pytest.fixture(scope="module", params=HIJACKABLE_KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    kind = request.param
    if not is_available(kind):
        pytest.skip(f"{kind} is not installed")
    options = {"timeout": 30} if kind.startswith("gunicorn") else {}
    with serve(kind, APP, **options) as running:
        yield running


def test_echo_with_the_websockets_client(server: Server) -> None:
    big = os.urandom(4 * 1024 * 1024)
    with connect(f"ws://127.0.0.1:{server.port}/echo", max_size=None, open_timeout=5) as ws:
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        ws.send("héllo")
        assert ws.recv(timeout=5) == "héllo"
        ws.send(b"\x00\xff")
        assert ws.recv(timeout=5) == b"\x00\xff"
        ws.send(big)
        assert ws.recv(timeout=20) == big
    server.wait_for_log(r"^close 1000 ", timeout=5)
    assert "Traceback" not in server.log()


def test_server_close_arrives_intact_then_prompt_fin(server: Server) -> None:
    start = len(server.log())
    sock, rest = upgrade(server, "/chat")
    sock.sendall(masked(0x1, b"close 4001 bye"))
    opcode, payload, rest = read_frame(sock, rest)
    assert (opcode, payload) == (0x8, struct.pack("!H", 4001) + b"bye")
    assert rest == b""
    sock.sendall(masked(0x8, payload))  # the client's reply
    began = time.monotonic()
    trailing = b""
    while chunk := sock.recv(65536):
        trailing += chunk
    assert trailing == b"", f"bytes after the close frame: {trailing!r}"
    assert time.monotonic() - began < 1.0
    sock.close()
    server.wait_for_log(r"^close 4001 bye$", timeout=5, start=start)
    server.wait_for_log(r"^handler-end$", timeout=5, start=start)
    status = ACCESS_STATUS.get(server.kind)
    if status is not None:
        server.wait_for_log(rf'"GET /chat HTTP/1\.1" {status}', timeout=5, start=start)
    assert "Traceback" not in server.log()


def test_pipelined_first_frame_is_kept(server: Server) -> None:
    sock, rest = upgrade(server, "/chat", pipelined=masked(0x1, b"early"))
    opcode, payload, rest = read_frame(sock, rest)
    assert (opcode, payload) == (0x1, b"early")
    sock.sendall(masked(0x8, struct.pack("!H", 1000)))
    opcode, payload, rest = read_frame(sock, rest)
    assert opcode == 0x8
    sock.close()


def test_abrupt_disconnect_reports_1006_and_ends_the_handler(server: Server) -> None:
    start = len(server.log())
    sock, _ = upgrade(server, "/chat")
    sock.sendall(masked(0x1, b"ping?")[:5])  # half a frame, then gone
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST
    server.wait_for_log(r"^close 1006 $", timeout=5, start=start)
    server.wait_for_log(r"^handler-end$", timeout=5, start=start)
    assert "Traceback" not in server.log()
