"""Raw WebSocket bytes for the tests: frames, handshakes and peers written by hand.

Frames are built and read here by an implementation independent of the library's
(so a masking or length bug in faye_sync cannot hide itself). The raw client opens
an upgraded socket to a real server (:func:`open_websocket`, :func:`upgrade`); the
raw server (:class:`RawServer`) answers one :class:`~faye_sync.Client`'s handshake
itself and then does what a test scripts. Only 127.0.0.1; every socket operation is
bounded by ``WAIT``.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from faye_sync.protocol.handshake import accept_key
from tests.servers import Server

WAIT = 5.0  # the bound on every wait that should end at once
HOST = "127.0.0.1"

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
ZERO_MASK = b"\x00\x00\x00\x00"


# --------------------------------------------------------------------- frames


def xor_mask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 §5.3 masking, written independently of faye_sync.protocol.masking."""
    if not payload:
        return b""
    reps = len(payload) // 4 + 1
    stream = (key * reps)[: len(payload)]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")
    return value.to_bytes(len(payload), "big")


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask: bytes | None = ZERO_MASK,
    declared: int | None = None,
) -> bytes:
    """One frame; ``mask=None`` for a server's unmasked frame.

    ``declared`` writes another length in the header than the payload has (to
    announce a huge frame and send only its start).
    """
    length = len(payload) if declared is None else declared
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    bit = 0x80 if mask is not None else 0
    if length <= 125:
        header = struct.pack("!BB", first, bit | length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", first, bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, bit | 127, length)
    if mask is None:
        return header + payload
    return header + mask + xor_mask(payload, mask)


def masked(opcode: int, payload: bytes) -> bytes:
    """One client frame (FIN set) under a random mask, as a browser sends it."""
    return frame(opcode, payload, mask=os.urandom(4))


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode("utf-8")


@dataclass(frozen=True)
class Frame:
    fin: bool
    rsv: int  # the three RSV bits, RSV1 as 4
    opcode: int
    masked: bool
    payload: bytes  # unmasked

    @property
    def close_code(self) -> int | None:
        if self.opcode != CLOSE:
            return None
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else 1005


@dataclass
class FrameReader:
    """Reads the frames a protocol writes, incrementally (a reference parser)."""

    buffer: bytearray = field(default_factory=bytearray)
    frames: list[Frame] = field(default_factory=list)

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        new: list[Frame] = []
        while True:
            parsed = _parse_one(self.buffer)
            if parsed is None:
                break
            item, used = parsed
            del self.buffer[:used]
            new.append(item)
        self.frames.extend(new)
        return new


def _parse_one(buf: bytearray) -> tuple[Frame, int] | None:
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    length, pos = b1 & 0x7F, 2
    if length == 126:
        if len(buf) < 4:
            return None
        (length,) = struct.unpack_from("!H", buf, 2)
        pos = 4
    elif length == 127:
        if len(buf) < 10:
            return None
        (length,) = struct.unpack_from("!Q", buf, 2)
        pos = 10
    masked = bool(b1 & 0x80)
    key = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        key = bytes(buf[pos : pos + 4])
        pos += 4
    if len(buf) < pos + length:
        return None
    payload = bytes(buf[pos : pos + length])
    if masked:
        payload = xor_mask(payload, key)
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, masked, payload), pos + length


def read_frames(data: bytes) -> list[Frame]:
    """Every whole frame in ``data``; a trailing partial frame is an error."""
    reader = FrameReader()
    frames = reader.feed(data)
    assert not reader.buffer, f"{len(reader.buffer)} bytes of a partial frame left"
    return frames


def read_frame(sock: socket.socket, buffer: bytes) -> tuple[int, bytes, bytes]:
    """One server frame from ``buffer`` and then ``sock``: (opcode, payload, rest of the buffer).

    A server's frames are never masked (RFC 6455 §5.1).
    """
    pending = bytearray(buffer)
    while (parsed := _parse_one(pending)) is None:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of a frame"
        pending += chunk
    item, used = parsed
    assert not item.masked, "a masked frame from the server"
    return item.opcode, item.payload, bytes(pending[used:])


# ------------------------------------------------------------------ HTTP heads


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and lower-cased headers of an HTTP response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """A head (without the blank line), and the bytes read past it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before the end of the head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def upgrade_request(path: str, host: str, *, headers: str = "") -> bytes:
    """A client's upgrade request with a fresh key; ``headers`` are more lines, each ending
    in CRLF (``"Sec-WebSocket-Extensions: permessage-deflate\\r\\n"``)."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n{headers}\r\n"
    ).encode("latin-1")


# ------------------------------------------------------------------ a raw client


def open_websocket(
    server: Server,
    path: str = "/",
    *,
    headers: str = "",
    pipelined: bytes = b"",
    receive_buffer: int | None = None,
) -> tuple[socket.socket, bytes, bytes]:
    """Send an upgrade request to ``server``; return the socket, the response head and
    the bytes read past it (whatever the status).

    ``pipelined`` goes in the same write as the request (one TCP segment on loopback);
    ``receive_buffer`` fixes the socket's receive buffer (no autotuning).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(WAIT)
    sock.connect((server.host, server.port))
    sock.sendall(upgrade_request(path, f"{HOST}:{server.port}", headers=headers) + pipelined)
    head, rest = read_head(sock)
    return sock, head, rest


def upgrade(
    server: Server,
    path: str = "/",
    *,
    headers: str = "",
    pipelined: bytes = b"",
    receive_buffer: int | None = None,
) -> tuple[socket.socket, bytes]:
    """:func:`open_websocket` that must be answered ``101``: the socket and the bytes past it."""
    sock, head, rest = open_websocket(
        server, path, headers=headers, pipelined=pipelined, receive_buffer=receive_buffer
    )
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), (
        f"{head!r}; log:\n{server.log()}"
    )
    return sock, rest


def read_until_eof(sock: socket.socket, data: bytes = b"") -> bytes:
    """Everything up to the peer's FIN after ``data`` (bytes already read), bounded by ``WAIT``."""
    sock.settimeout(WAIT)
    while chunk := sock.recv(65536):
        data += chunk
    return data


# ------------------------------------------------------------------ a raw server


def upgrade_101(request: dict[str, str], extensions: str = "") -> bytes:
    """The server's ``101`` for a client's request headers (lower-cased names)."""
    head = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(request['sec-websocket-key'])}\r\n"
    )
    if extensions:
        head += f"Sec-WebSocket-Extensions: {extensions}\r\n"
    return (head + "\r\n").encode("latin-1")


class RawServer:
    """One connection on 127.0.0.1: read the request, answer ``respond(request)``, then act.

    After the response, ``script`` is sent, then ``then(conn)`` runs. With ``record``
    every byte the client writes is then kept in ``received`` until it closes
    (bounded by ``WAIT``); without, the connection is closed at once. An ``OSError``
    (the client went away first) ends the connection and is kept in ``errors``.
    """

    def __init__(
        self,
        script: bytes = b"",
        *,
        respond: Callable[[dict[str, str]], bytes] | None = None,
        then: Callable[[socket.socket], None] | None = None,
        record: bool = True,
    ) -> None:
        self.script = script
        self.respond = respond or upgrade_101
        self.then = then
        self.record = record
        self.received = bytearray()
        self.errors: list[BaseException] = []
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(WAIT)
        self.port = self._listener.getsockname()[1]
        self.url = f"ws://{HOST}:{self.port}/"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._thread.join(3 * WAIT)
        self._listener.close()
        assert not self._thread.is_alive(), "the raw server is stuck"

    def frames(self) -> list[Frame]:
        reader = FrameReader()
        return reader.feed(bytes(self.received))

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError as exc:
            self.errors.append(exc)
            return
        with conn:
            conn.settimeout(WAIT)
            try:
                self._converse(conn)
            except OSError as exc:  # a reset from the client ends the recording too
                self.errors.append(exc)

    def _converse(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
        fields = (line.partition(":") for line in lines)
        request = {name.strip().lower(): value.strip() for name, _, value in fields}
        conn.sendall(self.respond(request) + self.script)
        if self.then is not None:
            self.then(conn)
        deadline = time.monotonic() + WAIT
        while self.record and time.monotonic() < deadline:
            data = conn.recv(65536)
            if not data:
                return
            self.received += data
