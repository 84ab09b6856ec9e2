"""faye_sync's own test client (:mod:`faye_sync.testing`): the app runs over a socket pair.

The test client plays the WSGI server: it reads the request from one end of a
``socket.socketpair()``, calls the application with an environ that holds a
:class:`TestConnection` under :data:`ENVIRON_KEY`, and writes the response to that
end unless the application took the connection over. This adapter hands the
application that end, and the bytes the client sent past the request head (a
pipelined first frame), and tells the test client that the connection is taken so
that it writes nothing more, as a real server would fail to.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from faye_sync.adapters.base import Adapter, Environ

__all__ = ["ENVIRON_KEY", "TestConnection", "TestingAdapter"]

#: The environ key under which the test client puts its :class:`TestConnection`.
ENVIRON_KEY = "faye_sync.testing.connection"


@dataclass
class TestConnection:
    """The server's end of the test client's socket pair, as the adapter needs it.

    Attributes:
        socket: The application's end of the socket pair.
        buffered: Bytes the test client read past the request head; taken once.
        hijacked: Set when the application takes the connection over.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    socket: socket.socket
    buffered: bytes = b""
    hijacked: threading.Event = field(default_factory=threading.Event)


class TestingAdapter(Adapter):
    """:mod:`faye_sync.testing`: the socket is ``environ[ENVIRON_KEY].socket``."""

    __test__ = False
    name = "faye_sync.testing"

    def recognises(self, environ: Environ) -> bool:
        return isinstance(environ.get(ENVIRON_KEY), TestConnection)

    def find_socket(self, environ: Environ) -> socket.socket | None:
        connection: TestConnection = environ[ENVIRON_KEY]
        return connection.socket

    def take_buffered(self, environ: Environ, sock: socket.socket) -> bytes:
        connection: TestConnection = environ[ENVIRON_KEY]
        buffered, connection.buffered = connection.buffered, b""
        return buffered

    def before_hijack(self, environ: Environ) -> None:
        connection: TestConnection = environ[ENVIRON_KEY]
        connection.hijacked.set()
