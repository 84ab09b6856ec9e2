"""The WebSocket client: faye's ``WebSocket.Client``, blocking.

::

    ws = Client("wss://example.com/socket")      # connects and handshakes
    ws.send("Hello")
    print(ws.receive())
    ws.close()

The constructor connects (through a proxy if one is set) and runs the
handshake before it returns. As in faye it does not raise when that fails: the
socket reports ``error`` then ``close`` (1002 for a handshake refused, 1006 for
a network failure) and ``status_code``/``headers`` stay readable.
:func:`connect` is the raising form: it returns an open client or raises
:class:`~faye_sync.exceptions.HandshakeError` (with ``status`` and
``headers``; :class:`~faye_sync.exceptions.ProxyError` when a proxy refused) or
:class:`~faye_sync.exceptions.NetworkError`.
Redirects are not followed (faye does not either): a 301/302 is an
``Unexpected response code``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from . import net as _net
from .blocking.backends import Backend, detect_backend, get_backend
from .blocking.connection import CLOSE_TIMEOUT, SEND_TIMEOUT, Connection
from .closing import ClosedOnExit
from .exceptions import FayeSyncError, HandshakeError, NetworkError, ProxyError
from .extensions.base import Extension
from .extensions.pipeline import Extensions
from .protocol.base import FailedProtocol, FrameProtocol
from .protocol.handshake import Acceptance, ClientHandshake
from .protocol.hybi import MAX_LENGTH

__all__ = ["Client", "connect"]

HANDSHAKE_PREFIX = "Error during WebSocket handshake: "


class Client(ClosedOnExit, Connection):
    """A WebSocket client over ws:// or wss://.

    ``with Client(...) as ws:`` (or ``with connect(...) as ws:``) closes it
    with 1000 when the block ends, however it ends, and returns once the close
    handshake is over (at most ``close_timeout`` seconds).

    Args:
        url: ``ws://`` or ``wss://`` URL; ``user:pass@`` becomes Basic auth.
        protocols: subprotocols to offer; ``protocol`` holds the chosen one.
        headers: extra request headers.
        extensions: extension objects to offer, e.g. ``[PerMessageDeflate()]``.
        max_length: the largest message accepted, also after inflation (1 MiB).
        ping, ping_timeout, close_timeout, send_timeout, idle_timeout: as for
            the server WebSocket.
        proxy: ``{"origin": "http://user:pass@host:port", "headers": {...},
            "tls": {...}}`` or an origin string; None reads HTTP(S)_PROXY and
            NO_PROXY from the environment; False connects directly.
        tls: an ``ssl.SSLContext`` or ``{"ca", "cert", "key", "verify",
            "server_hostname"}``; certificates and names are checked by default.
        net: ``{"local_address", "local_port", "timeout"}`` for the TCP socket.
        ca: faye's legacy shorthand for ``tls={"ca": ...}``.
        timeout: seconds allowed for connecting and the handshake.
        sock: a socket already connected to the server (one end of a
            ``socket.socketpair()``, say) to run the handshake over instead of
            connecting; ``proxy``, ``tls`` and ``net`` then do nothing.
        backend: ``"threads"`` or ``"gevent"``; detected by default.

    Raises:
        ValueError: the URL is not ws:// or wss://.
    """

    def __init__(
        self,
        url: str,
        protocols: Sequence[str] | str | None = None,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        extensions: Iterable[Extension] | None = None,
        max_length: int = MAX_LENGTH,
        ping: float | None = None,
        ping_timeout: float | None = None,
        close_timeout: float = CLOSE_TIMEOUT,
        send_timeout: float | None = SEND_TIMEOUT,
        idle_timeout: float | None = None,
        proxy: _net.ProxyOption = None,
        tls: _net.TLSOption = None,
        net: Mapping[str, Any] | None = None,
        ca: Any = None,
        timeout: float | None = 10.0,
        sock: socket.socket | None = None,
        backend: str | None = None,
    ) -> None:
        pipeline = Extensions(extensions, max_length=max_length) if extensions else None
        handshake = ClientHandshake(
            url, protocols, headers=headers, extensions=pipeline, max_length=max_length
        )
        self.url = url
        self.protocol = ""
        self.extensions = ""
        self.status_code: int | None = None
        self.headers: dict[str, str] = {}
        self.failure: FayeSyncError | None = None
        dial = {"proxy": proxy, "tls": tls, "ca": ca, "net": net, "timeout": timeout}
        sock, frames, buffered = self._dial(handshake, sock, dial)
        chosen: Backend = get_backend(backend) if backend else detect_backend(sock)
        super().__init__(
            sock,
            frames,
            backend=chosen,
            buffered=buffered,
            ping=ping,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            send_timeout=send_timeout,
            idle_timeout=idle_timeout,
        )

    def _dial(
        self, handshake: ClientHandshake, sock: socket.socket | None, dial: dict[str, Any]
    ) -> tuple[socket.socket | None, FrameProtocol, bytes]:
        """Connect (unless given ``sock``) and handshake: the socket, frame layer and bytes read.

        As in faye nothing is raised: a failure is kept in ``failure`` and the
        frame layer reports it as ``error`` then ``close``.
        """
        url = self.url
        try:
            if sock is None:
                sock = _net.connect(
                    handshake.host, handshake.port, secure=handshake.secure, target_url=url, **dial
                )
            accepted, buffered = self._upgrade(sock, handshake, dial["timeout"])
        except ProxyError as exc:
            # No tunnel, so no WebSocket: a network-level failure (faye leaves
            # the socket to the proxy and never closes; we report 1006).
            self.failure = exc
            return _close(sock), FailedProtocol(str(exc), 1006), b""
        except HandshakeError as exc:
            if not str(exc).startswith(HANDSHAKE_PREFIX):  # the response did not parse
                exc = HandshakeError(
                    HANDSHAKE_PREFIX + exc.message, status=exc.status, headers=exc.headers
                )
            self.status_code = exc.status if exc.status is not None else self.status_code
            self.headers = dict(exc.headers) or self.headers
            self.failure = exc
            return _close(sock), FailedProtocol(exc.message, 1002), b""
        except OSError as exc:  # NetworkError included
            message = str(exc) if isinstance(exc, NetworkError) else f"Network error: {url}: {exc}"
            self.failure = exc if isinstance(exc, NetworkError) else NetworkError(message)
            return _close(sock), FailedProtocol(message, 1006), b""
        self.protocol = accepted.subprotocol
        self.extensions = accepted.extensions
        return sock, accepted.protocol, buffered

    def _upgrade(
        self, sock: socket.socket, handshake: ClientHandshake, timeout: float | None
    ) -> tuple[Acceptance, bytes]:
        # RFC 6455 §4.1: the answer is a 101 or a final status; an interim one (a flood
        # of "100 Continue") is refused at once rather than read until the timeout.
        head, http = _net.receive_response_head(
            sock, handshake.request_bytes(), timeout=timeout, max_interim=0, url=self.url
        )
        self.status_code, self.headers = head.status, head.headers
        try:
            return handshake.process_response(head.status, head.headers), head.leftover
        except HandshakeError as refusal:
            if head.status != 101:  # a refusal's body says why: keep its start
                refusal.body = _net.read_body_excerpt(sock, http, head.leftover)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        # close() returns at once when a reader (a pump, another thread) holds the
        # socket: drive the connection to its end, so the block ends closed.
        self.run()

    def _shutdown(self) -> None:
        super()._shutdown()
        if self._sock is not None:
            self._sock.close()  # the client owns its socket, unlike a server


def _close(sock: socket.socket | None) -> socket.socket | None:
    """Close a socket the failed handshake leaves behind; the client keeps none."""
    if sock is not None:
        sock.close()
    return None


def connect(
    url: str,
    protocols: Sequence[str] | str | None = None,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    extensions: Iterable[Extension] | None = None,
    max_length: int = MAX_LENGTH,
    ping: float | None = None,
    ping_timeout: float | None = None,
    close_timeout: float = CLOSE_TIMEOUT,
    send_timeout: float | None = SEND_TIMEOUT,
    idle_timeout: float | None = None,
    proxy: _net.ProxyOption = None,
    tls: _net.TLSOption = None,
    net: Mapping[str, Any] | None = None,
    ca: Any = None,
    timeout: float | None = 10.0,
    sock: socket.socket | None = None,
    backend: str | None = None,
) -> Client:
    """Open a client and return it open, or raise why it could not open.

    Takes :class:`Client`'s arguments; ``with connect(...) as ws:`` closes it at
    the end of the block.

    Raises:
        HandshakeError: the server refused the upgrade (``status``, ``headers``).
        ProxyError: the proxy refused the tunnel (``status``, ``headers``, ``proxy``).
        NetworkError: the connection could not be made (``NetworkTimeoutError``:
            not within ``timeout``).
        ValueError: the URL is not ws:// or wss://, or an option is malformed.
        TypeError: an option has the wrong type, or an unknown key.
    """
    client = Client(
        url,
        protocols,
        headers=headers,
        extensions=extensions,
        max_length=max_length,
        ping=ping,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        send_timeout=send_timeout,
        idle_timeout=idle_timeout,
        proxy=proxy,
        tls=tls,
        net=net,
        ca=ca,
        timeout=timeout,
        sock=sock,
        backend=backend,
    )
    if client.failure is not None:
        # Nobody can have listened to the failed client yet: its error and close
        # events are the exception raised here.
        raise client.failure
    return client
