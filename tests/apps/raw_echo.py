"""A raw-socket echo behind a fake WebSocket handshake: tests the adapters, not framing.

The app takes the connection with :func:`faye_sync.adapters.hijack`, writes a fixed
``101`` with ``sendall``, then echoes every byte it gets (first ``hijack.buffered``)
until it has received the line ``bye``; it then writes ``end`` and returns
``hijack.finish(start_response)``. The line ``info`` is echoed and answered with a
line describing the hijack (and whether the server's buffered reader was closed).
Where hijacking is refused, the client gets the error's
status and message as a plain-text response.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faye_sync.adapters import hijack
from faye_sync.adapters.base import buffered_reader_of
from faye_sync.exceptions import HijackError

HANDSHAKE = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    try:
        taken = hijack(environ)
    except HijackError as error:
        return error.respond(start_response)
    sock = taken.socket
    reader = buffered_reader_of(environ.get("wsgi.input"))
    reader_closed = None if reader is None else reader.closed
    sock.sendall(HANDSHAKE)
    pending = b""
    data = taken.buffered
    while True:
        if data:
            sock.sendall(data)
            pending += data
            *lines, pending = pending.split(b"\n")
            if b"info" in lines:
                sock.sendall(
                    f"info server={taken.server} timeout={sock.gettimeout()!r} "
                    f"buffered={len(taken.buffered)} reader_closed={reader_closed}\n".encode()
                )
            if b"bye" in lines:
                sock.sendall(b"end\n")
                break
        data = sock.recv(65536)
        if not data:
            break  # the client went away
    return taken.finish(start_response)
