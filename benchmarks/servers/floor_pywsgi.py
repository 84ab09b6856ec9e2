"""Floor: the least a WebSocket on gevent.pywsgi can cost (not a library, few checks).

python benchmarks/servers/floor_pywsgi.py --port P

Answers the upgrade with the 101 written straight to pywsgi's socket, then echoes
frames of any size: it reads the header, reads the payload (a ``recv`` of 64 KiB that
is sliced for small frames, ``recv_into`` a buffer of the payload's size for large
ones), unmasks it with the same function faye_sync uses when the ``websockets``
package is installed (its C ``apply_mask``; without it, the int.from_bytes XOR that
is the fastest pure-Python way for small payloads), checks text with
``bytes.decode`` (as every compliant server must; the fastest validator in
perf-findings.md), and sends header and payload back. A close frame gets an empty
close. No fragmentation, extensions, pings or size limits: what pywsgi, a greenlet
per connection and the unavoidable per-frame work cost with nothing else, the
floor any library on pywsgi stands on. Like faye_sync, it closes pywsgi's drained
reader, whose 8 KiB buffer would otherwise stay for the connection's life.
"""

from __future__ import annotations

import base64
import hashlib
import signal
import struct
from collections.abc import Callable

import gevent
from _common import HOST, port_arg
from gevent.pywsgi import WSGIServer

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CHUNK = 65536

apply_mask: Callable[[bytes | bytearray, bytes], bytes]
try:
    from websockets.speedups import apply_mask
except ImportError:  # the fastest pure-Python XOR for small payloads (perf-findings.md)

    def apply_mask(data: bytes | bytearray, mask: bytes) -> bytes:
        size = len(data)
        reps, rest = divmod(size, 4)
        key = int.from_bytes(mask * reps + mask[:rest], "little")
        return (int.from_bytes(data, "little") ^ key).to_bytes(size, "little")


class Reader:
    """Exact-size reads from a socket, with what one ``recv`` returned beyond them kept."""

    def __init__(self, sock) -> None:  # type: ignore[no-untyped-def]
        self.sock = sock
        self.pending = b""

    def read(self, n: int) -> bytes | bytearray | None:
        pending = self.pending
        if len(pending) < n and n > CHUNK:  # a large payload: straight into its own buffer
            out = bytearray(n)
            got = len(pending)
            out[:got] = pending
            view = memoryview(out)
            while got < n:
                k = self.sock.recv_into(view[got:])
                if not k:
                    return None
                got += k
            self.pending = b""
            return out
        while len(pending) < n:
            chunk = self.sock.recv(CHUNK)
            if not chunk:
                return None
            pending = pending + chunk if pending else chunk
        self.pending = pending[n:]
        return pending[:n]


def echo_frames(sock) -> None:  # type: ignore[no-untyped-def]
    reader = Reader(sock)
    while True:
        head = reader.read(2)
        if head is None:
            return
        b0, b1 = head[0], head[1]
        length = b1 & 0x7F
        if length >= 126:
            ext = reader.read(2 if length == 126 else 8)
            if ext is None:
                return
            length = int.from_bytes(ext, "big")
        key = reader.read(4)  # client frames are masked
        payload = reader.read(length) if length else b""
        if key is None or payload is None:
            return
        opcode = b0 & 0x0F
        if opcode == 8:
            sock.sendall(b"\x88\x00")
            return
        data = apply_mask(payload, bytes(key)) if length else b""
        if opcode == 1:
            data.decode()  # UTF-8 check; an invalid text frame ends the connection
        if length < 126:
            sock.sendall(bytes((b0, length)) + data)
        elif length < 65536:
            sock.sendall(struct.pack("!BBH", b0, 126, length) + data)
        else:
            sock.sendall(struct.pack("!BBQ", b0, 127, length))
            sock.sendall(data)


def app(environ, start_response):  # type: ignore[no-untyped-def]
    rfile = environ["wsgi.input"]
    sock = rfile.raw._sock
    rfile.close()  # frees its 8 KiB buffer, as faye_sync does (the load sends no early bytes)
    key = environ["HTTP_SEC_WEBSOCKET_KEY"].encode()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    try:
        echo_frames(sock)
    except (OSError, UnicodeDecodeError):
        pass
    try:
        sock.shutdown(2)
    except OSError:
        pass
    start_response("101 Switching Protocols", [])
    return []


if __name__ == "__main__":
    server = WSGIServer((HOST, port_arg(__doc__)), app)
    gevent.signal_handler(signal.SIGTERM, server.stop, 1)
    server.serve_forever()
