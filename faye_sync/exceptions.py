"""Every exception faye_sync raises on purpose.

::

    FayeSyncError
    ├── ProtocolError            a WebSocket rule was broken; carries the close code
    ├── HandshakeError           the opening handshake failed; carries status and headers
    ├── ConnectionClosed         the connection is closed; carries code and reason
    ├── ConcurrencyError         two threads in receive() at once on one socket
    └── HijackError              this WSGI server gives no socket to take over

Sending, receiving and closing never let a raw ``OSError`` through: a dead
socket becomes :class:`ConnectionClosed` with code 1006.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "FayeSyncError",
    "HandshakeError",
    "HijackError",
    "ProtocolError",
]


class FayeSyncError(Exception):
    """The root of every exception raised on purpose by faye_sync."""


class ProtocolError(FayeSyncError):
    """The peer broke a protocol rule; ``code`` is the close code faye sends for it."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class HandshakeError(FayeSyncError):
    """The opening handshake failed.

    On a client, ``status`` and ``headers`` hold the server's response (when one
    arrived); the message is faye's (``Error during WebSocket handshake: …``).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers: Mapping[str, str] = dict(headers or {})


class ConnectionClosed(FayeSyncError):
    """The connection is closed; ``code`` and ``reason`` are those of the ``close`` event."""

    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"connection closed: {code} {reason!r}")
        self.code = code
        self.reason = reason


class ConcurrencyError(FayeSyncError, RuntimeError):
    """Two threads or greenlets called ``receive()`` on one socket at once."""


class HijackError(FayeSyncError, RuntimeError):
    """This WSGI server does not let an application take over the connection.

    The message names the server and what to use instead; ``status`` is the HTTP
    status the client should get.
    """

    def __init__(self, message: str, status: str = "501 Not Implemented") -> None:
        super().__init__(message)
        self.status = status
