"""The server WebSocket on every WSGI server it supports, checked on the wire.

For each server (its own process on 127.0.0.1): echo with the ``websockets``
client (text, binary, 4 MiB, permessage-deflate negotiated); a server close with
a custom code arrives intact with nothing after it and a prompt FIN; a first
frame pipelined with the handshake is kept; ``101`` in the access log and no
traceback in the server's log; an abrupt disconnect gives one ``close`` (1006)
and ends the handler.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from tests.servers import Server, is_available, serve

APP = "tests.apps.ws_app:app"
KINDS = [
    "werkzeug",
    "gevent",
    "gunicorn-sync",
    "gunicorn-gthread",
    "gunicorn-gevent",
    "gunicorn-gevent_pywsgi",
    "wsgiref",
    "django",
    "eventlet",
]
# The status each server's access line shows for a WebSocket. wsgiref (and so
# Django's runserver) writes no line when the client went away first; gunicorn's
# gevent_pywsgi worker logs gevent's "socket error" status instead of 101.
ACCESS_STATUS = {
    "werkzeug": "101",
    "gevent": "101",
    "gunicorn-sync": "101",
    "gunicorn-gthread": "101",
    "gunicorn-gevent": "101",
    "gunicorn-gevent_pywsgi": "socket",
    "eventlet": "101",
}

HANDSHAKE = (
    "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def open_raw(server: Server, first_frame: bytes = b"") -> tuple[socket.socket, bytes]:
    """Handshake over a raw socket; return it and any bytes after the 101."""
    sock = server.connect(timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(HANDSHAKE.format(key=key).encode() + first_frame)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed during the handshake; log:\n{server.log()}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), head
    return sock, rest


def read_frame(sock: socket.socket, buffer: bytes) -> tuple[int, bytes, bytes]:
    """One unmasked server frame: (opcode, payload, rest of the buffer)."""
    while True:
        if len(buffer) >= 2:
            length = buffer[1] & 0x7F
            offset = 2
            if length == 126:
                length, offset = struct.unpack("!H", buffer[2:4])[0], 4
            elif length == 127:
                length, offset = struct.unpack("!Q", buffer[2:10])[0], 10
            if len(buffer) >= offset + length:
                return buffer[0] & 0x0F, buffer[offset : offset + length], buffer[offset + length :]
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of a frame"
        buffer += chunk


@pytest.fixture(scope="module", params=KINDS)
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
    sock, rest = open_raw(server)
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
    sock, rest = open_raw(server, first_frame=masked(0x1, b"early"))
    opcode, payload, rest = read_frame(sock, rest)
    assert (opcode, payload) == (0x1, b"early")
    sock.sendall(masked(0x8, struct.pack("!H", 1000)))
    opcode, payload, rest = read_frame(sock, rest)
    assert opcode == 0x8
    sock.close()


def test_abrupt_disconnect_reports_1006_and_ends_the_handler(server: Server) -> None:
    start = len(server.log())
    sock, _ = open_raw(server)
    sock.sendall(masked(0x1, b"ping?")[:5])  # half a frame, then gone
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST
    server.wait_for_log(r"^close 1006 $", timeout=5, start=start)
    server.wait_for_log(r"^handler-end$", timeout=5, start=start)
    assert "Traceback" not in server.log()
