"""Tests of the framework helpers, and the raw-socket tools they share.

The ``websockets`` client checks what a user sees; these helpers check the wire
itself: the handshake's status line, each frame, and that nothing follows the
close frame before the server's FIN.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import socket
import struct
import time

from tests.servers import Server

__all__ = [
    "http_get",
    "masked",
    "open_websocket",
    "read_body",
    "read_frame",
    "read_head",
    "read_to_eof",
]

_HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def masked(opcode: int, payload: bytes) -> bytes:
    """One client frame (FIN set, masked, payload under 126 bytes)."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def open_websocket(server: Server, path: str) -> tuple[socket.socket, bytes, bytes]:
    """Send an upgrade request; return the socket, the response head and what followed it."""
    sock = server.connect(timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(_HANDSHAKE.format(path=path, key=key).encode())
    head, rest = read_head(sock)
    return sock, head, rest


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """A response head (without the blank line), and the bytes read past it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before the end of the response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


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


def read_body(sock: socket.socket, head: bytes, rest: bytes) -> bytes:
    """The body of a response with ``Content-Length`` (the connection may stay open)."""
    match = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert match, f"no Content-Length in {head!r}"
    while len(rest) < int(match.group(1)):
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of the body"
        rest += chunk
    return rest


def read_to_eof(sock: socket.socket, limit: float = 2.0) -> tuple[bytes, float]:
    """Everything until the peer's FIN, and how long that took (bounded by the socket timeout)."""
    began = time.monotonic()
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        assert time.monotonic() - began < limit, f"no FIN within {limit} s; got {data!r}"
    return data, time.monotonic() - began


def http_get(
    server: Server, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A GET with ``http.client`` (which undoes chunking): status, headers, whole body."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()
