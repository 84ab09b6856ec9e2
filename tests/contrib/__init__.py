"""Tests of the framework helpers, and the raw-socket tools they share (the frames and the
upgrade come from ``tests/wire.py``).

The ``websockets`` client checks what a user sees; these helpers check the wire
itself: the handshake's status line, each frame, and that nothing follows the
close frame before the server's FIN.
"""

from __future__ import annotations

import http.client
import re
import socket
import time

from tests.servers import Server
from tests.wire import masked, open_websocket, read_frame, read_head

__all__ = [
    "http_get",
    "masked",
    "open_websocket",
    "read_body",
    "read_frame",
    "read_head",
    "read_to_eof",
]


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
