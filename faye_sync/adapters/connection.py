"""The client's connection under a streaming response, found without taking it over.

An event stream stays an ordinary WSGI response: the server keeps the socket and
writes every chunk. But the server notices that a client has gone only when a
write fails, and the first write after the client's FIN still succeeds, so the
stream looks at the connection itself before each ping (a non-blocking peek that
leaves every byte for the server) and, when a client takes nothing for too long,
shuts it down so that the server's blocked write fails. For that it needs the
socket, found where :func:`~faye_sync.adapters.hijack` finds it (werkzeug,
gunicorn, gevent.pywsgi, wsgiref and Django, eventlet, the test client), and on
waitress, which hands out no socket but says whether its client has gone.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from faye_sync.adapters import ADAPTERS
from faye_sync.adapters.base import Environ
from faye_sync.blocking.backends import Backend

__all__ = ["ClientConnection", "find_connection"]


class ClientConnection:
    """What a streaming response may use of its client's connection.

    Args:
        socket: The connection socket, only ever peeked at (``MSG_PEEK``) or shut
            down, never read, written or closed: the server still owns it.
            ``None`` where the server does not let it be found.
        client_disconnected: The server's own "has the client gone?" check
            (waitress's ``waitress.client_disconnected``), or ``None``.
    """

    def __init__(
        self, socket: socket.socket | None, client_disconnected: Callable[[], bool] | None
    ) -> None:
        self.socket = socket
        self.client_disconnected = client_disconnected
        self._peekable = socket  # None once a peek is refused (TLS)

    def client_left(self, backend: Backend) -> bool:
        """Whether the client has closed its end, looking without blocking or reading.

        The server's hook first, then one poll of the socket (the OS's, even
        under gevent): readable with nothing to read is end-of-file. ``MSG_PEEK``
        leaves any pipelined request bytes for the server.
        """
        check = self.client_disconnected
        if check is not None:
            try:
                if check():
                    return True
            except Exception:  # a server hook must not break the stream
                self.client_disconnected = None
        sock = self._peekable
        if sock is None:
            return False
        try:
            if sock.fileno() < 0:
                return True
            if not backend.wait_readable(sock, 0):
                return False
            return bool(sock.recv(1, socket.MSG_PEEK) == b"")
        except (BlockingIOError, InterruptedError):
            return False
        except (ValueError, TypeError):
            # TLS sockets refuse recv flags: rely on failed writes there.
            self._peekable = None
            return False
        except OSError:
            return True

    def shut_down(self) -> None:
        """Shut the connection down, so that a server's write blocked on it fails.

        Never blocks (it may run on a timer). A socket already closed, or one
        that refuses, is left to the server's own limits.
        """
        # gevent's own shutdown() cancels the write waiting on the socket with an
        # error pywsgi logs as a traceback; the system call underneath makes that
        # write fail as any broken connection does.
        sock: Any = getattr(self.socket, "_sock", self.socket)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError, ValueError, TypeError):
            pass


def find_connection(environ: Environ) -> ClientConnection:
    """The client's connection of this request, as far as the server lets it be found.

    Nothing is read, written or changed.
    """
    check = environ.get("waitress.client_disconnected")
    if not callable(check):
        check = None
    sock: Any = None
    for adapter in ADAPTERS:
        if adapter.recognises(environ):
            sock = adapter.find_socket(environ)
            break
    if sock is None and check is not None:
        # waitress: the hook is a method of the channel, which holds the socket.
        sock = getattr(getattr(check, "__self__", None), "socket", None)
    return ClientConnection(sock if _is_socket(sock) else None, check)


def _is_socket(obj: object) -> bool:
    # gevent's and eventlet's sockets are not socket.socket subclasses unless
    # monkey-patched: they are recognised by what the stream calls on them.
    return isinstance(obj, socket.socket) or all(
        callable(getattr(obj, name, None)) for name in ("recv", "fileno", "shutdown")
    )
