"""Every exception faye_sync raises on purpose.

::

    FayeSyncError
    ├── ProtocolError            a WebSocket rule was broken; carries the close code
    ├── HandshakeError           the opening handshake failed; carries status and headers
    │   └── ProxyError           the proxy refused the CONNECT
    ├── NetworkError             connect, DNS, TLS or the socket failed (also an OSError)
    │   └── NetworkTimeoutError  a step took longer than allowed (also a TimeoutError)
    ├── ConnectionClosed         the connection is closed; carries code and reason
    ├── EventTooLargeError       an EventSource event over ``max_event_size``
    ├── ConcurrencyError         two threads in receive() at once on one socket
    ├── HijackError              this WSGI server gives no socket to take over
    └── HubError                 the hub's engine refused or failed an operation
        └── HubUnavailable       the hub's engine cannot be reached (nothing was published)

Sending, receiving and closing never let a raw ``OSError`` through: a dead
socket becomes :class:`ConnectionClosed` with code 1006.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "EventTooLargeError",
    "FayeSyncError",
    "HandshakeError",
    "HijackError",
    "HubError",
    "HubUnavailable",
    "NetworkError",
    "NetworkTimeoutError",
    "ProtocolError",
    "ProxyError",
]


class FayeSyncError(Exception):
    """The root of every exception raised on purpose by faye_sync."""


class ProtocolError(FayeSyncError):
    """The peer broke a protocol rule; ``code`` is the close code to send (RFC 6455 §7.4.1)."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code


class HandshakeError(FayeSyncError):
    """The opening handshake failed.

    On a client, ``status`` and ``headers`` hold the server's response (when one
    arrived) and ``body`` the start of a refusal's body (at most 4 KiB), which
    often says why; ``message`` is faye's (``Error during WebSocket handshake: …``,
    the text of the ``error`` event) and ``str()`` adds the body's first words.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers: Mapping[str, str] = dict(headers or {})
        self.body = body

    def __str__(self) -> str:
        said = " ".join(self.body.decode("utf-8", "replace").split())
        if not said:
            return self.message
        return f"{self.message}; the server said: {said[:300]}"


class ConnectionClosed(FayeSyncError):
    """The connection is closed; ``code`` and ``reason`` are those of the ``close`` event."""

    def __init__(self, code: int | None, reason: str | None) -> None:
        # No super().__init__: BaseException.__new__ has set args to (code, reason)
        # (so it pickles), and the message is made only when shown: iterating a
        # WebSocket ends on one of these, never shown, at every close.
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"connection closed: {self.code} {self.reason!r}"


class ConcurrencyError(FayeSyncError, RuntimeError):
    """Two threads or greenlets called ``receive()`` on one socket at once."""


class HijackError(FayeSyncError, RuntimeError):
    """This WSGI server does not let an application take over the connection.

    The message names the server and what to use instead; ``status`` is the HTTP
    status the client should get (an ``int``, as on :class:`HandshakeError`),
    ``phrase`` its reason phrase, and ``status_line`` both, for ``start_response``.
    """

    def __init__(self, message: str, status: int = 501, *, phrase: str = "Not Implemented") -> None:
        super().__init__(message)
        self.status = status
        self.phrase = phrase

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.phrase}"

    def respond(self, start_response: Callable[..., object]) -> list[bytes]:
        """Answer the WSGI call with this error's status and message, as plain text."""
        body = f"{self}\n".encode()
        start_response(
            self.status_line,
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]


class NetworkError(FayeSyncError, OSError):
    """The network failed: DNS, connect, reset, EOF, or a TLS handshake (verification included).

    The message is faye's ``Network error: <url>: <detail>``; ``url`` is the target URL
    without credentials (``None`` when unknown). The underlying exception, when there is
    one, is the ``__cause__``.
    """

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class NetworkTimeoutError(NetworkError, TimeoutError):
    """A connect, proxy exchange, TLS handshake or response head took longer than allowed."""


class ProxyError(HandshakeError):
    """The proxy refused the ``CONNECT`` (any status but 200) or answered garbage.

    ``status`` and ``headers`` are the proxy's (``None``/empty when it sent no valid
    head); ``proxy`` is the proxy origin without credentials.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        proxy: str | None = None,
    ) -> None:
        super().__init__(message, status=status, headers=headers)
        self.proxy = proxy


class EventTooLargeError(FayeSyncError):
    """An event's data, or one line of the stream, is larger than ``max_event_size``.

    Attributes:
        limit: the ``max_event_size`` in force, in bytes.
    """

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class HubError(FayeSyncError):
    """The hub's engine refused or failed an operation (a bad URL, a script error)."""


class HubUnavailable(HubError):
    """The hub's engine cannot be reached: connect, read or write failed or timed out.

    ``publish`` raises it rather than dropping the message; the message may or may
    not have been stored when the failure came after the request was sent, so a
    retry may deliver it twice (the hub is at-least-once; clients dedupe by id).
    """
