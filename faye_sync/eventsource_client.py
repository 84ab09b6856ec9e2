"""The EventSource client: server-sent events over ``http://`` and ``https://``, blocking.

faye has no such client; this one behaves as a browser's ``EventSource`` does::

    with EventSourceClient("https://example.com/events") as source:
        for event in source:              # ServerSentEvent(type, data, id, retry)
            print(event.type, event.id, event.data)

* Connecting is lazy: the first ``next()`` connects (through a proxy if one is
  set, with TLS verified by default) and sends ``Accept: text/event-stream``,
  ``Cache-Control: no-cache`` and, once an id is known, ``Last-Event-ID``.
* The body is decoded by ``h11`` (chunked, sized or until close) and parsed by
  :class:`~faye_sync.protocol.sse_parser.EventStreamParser`, exactly as the
  WHATWG standard says. Each read takes what has arrived (up to 64 KiB), so an
  event is delivered as soon as its blank line is in.
* When the stream drops (end of the body, a reset, a broken chunk, or no byte
  for ``timeout`` seconds: a live server pings), the client waits the
  reconnection time (``retry``, or the server's ``retry:`` field, at most
  :data:`MAX_RECONNECTION_TIME` seconds) and reconnects with ``Last-Event-ID``.
* Every attempt that delivered no event, whether it failed before a response
  or got one and ended, backs off: the wait doubles from the reconnection time
  (at least 0.1 s) up to ``max_retry_delay``, with random jitter (between half
  and all of it), so a server that answers ``retry: 0`` and closes is not
  hammered. The first event resets it. After ``max_retries`` failures before a
  response in a row the client gives up with a
  :class:`~faye_sync.exceptions.NetworkError` chained to the last failure.
* A response that is not ``200`` with ``Content-Type: text/event-stream`` (a
  ``204 No Content`` included: it is how a server says "stop") ends the
  iteration with :class:`~faye_sync.exceptions.HandshakeError`, carrying
  ``status`` and ``headers``; the client does not reconnect, as in the standard.
  Redirects are not followed.
* An event (or a line) larger than ``max_event_size`` raises
  :class:`~faye_sync.exceptions.EventTooLargeError` after the events
  before it have been delivered.
* :meth:`EventSourceClient.close` may be called from any thread: a blocked read
  or a reconnection wait ends at once and the iteration stops.

This module is a façade (layer L4): the network comes from :mod:`faye_sync.net`,
shared with the WebSocket client, and the HTTP rules from
:class:`~faye_sync.protocol.sse_client.EventSourceRequest`. With ``backend="gevent"``
(detected in a greenlet or on a monkey-patched socket) the reads and the
reconnection waits yield to other greenlets.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
from collections.abc import Generator, Iterable, Mapping
from typing import Any

import h11

from . import net as _net
from .blocking.backends import Backend, detect_backend, get_backend
from .closing import ClosedOnExit
from .exceptions import ConcurrencyError, HandshakeError, NetworkError, ProxyError
from .protocol.options import seconds
from .protocol.sse_client import EventSourceRequest, check_last_event_id
from .protocol.sse_parser import (
    DEFAULT_MAX_EVENT_SIZE,
    EventStreamParser,
    EventTooLargeError,
    ServerSentEvent,
)

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MAX_RETRY_DELAY",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "EventSourceClient",
    "EventTooLargeError",
    "MAX_RECONNECTION_TIME",
    "ServerSentEvent",
]

logger = logging.getLogger(__name__)

DEFAULT_RETRY = 3.0
"""Seconds before reconnecting until the server sets its own (Chromium's default)."""

DEFAULT_TIMEOUT = 60.0
"""Seconds allowed for each step, reads included: nginx's ``proxy_read_timeout``.

An event stream that survives behind a default nginx survives here; servers
that ping (faye every 10 s, sse-starlette every 15 s) are well within it.
"""

DEFAULT_MAX_RETRY_DELAY = 30.0
"""The longest backoff between attempts that delivered nothing, unless ``retry`` is longer."""

MAX_RECONNECTION_TIME = 3600.0
"""The longest reconnection time, in seconds: a server's larger ``retry:`` is cut to it.

The standard sets no limit; a value the platform's clock cannot wait for (``retry:
99999999999999999``) must not stop the client, and an hour is far beyond any real use.
"""

DEFAULT_MAX_RETRIES = 5
"""Consecutive failed attempts before giving up: 40 to 75 s with the default ``retry``."""

_RECV_SIZE = 64 * 1024
# A server may ask for "retry: 0"; attempts that deliver nothing still wait at least this long.
_MIN_BACKOFF = 0.1


def _is_transient(exc: BaseException) -> bool:
    """Whether a failure before the response head is worth another attempt."""
    if isinstance(exc, ProxyError):
        # A proxy that cannot reach the server (502, 503, 504) or sent garbage may do
        # better later; 403 or 407 will not change by themselves.
        return exc.status is None or exc.status >= 500
    if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
        return False  # a certificate that failed verification will fail again
    return isinstance(exc, NetworkError)


class EventSourceClient(ClosedOnExit):
    """Reads a server-sent event stream, reconnecting as a browser does.

    Iterate it for :class:`~faye_sync.protocol.sse_parser.ServerSentEvent`
    objects; only one thread may iterate at a time. The iteration ends after
    :meth:`close`; it raises on a refused response, an oversized event, or
    ``max_retries`` failed attempts in a row.

    Args:
        url: an ``http://`` or ``https://`` URL; ``user:password@`` becomes Basic
            authorization.
        headers: extra request headers (a mapping or ``(name, value)`` pairs); one
            named like a default (``Accept``, ``Cache-Control``, ``Host``)
            replaces it.
        last_event_id: the id to resume after; sent as ``Last-Event-ID`` on the
            first request when not empty.
        retry: seconds to wait before reconnecting, until the server sends a
            ``retry:`` field of its own; at most :data:`MAX_RECONNECTION_TIME`.
        timeout: seconds allowed for each blocking step: connecting (proxy and
            TLS included), the response head, and every read of the body. A
            stream silent for longer is taken as dead and reconnected.
        max_event_size: the largest event data in bytes (and, plus room for a
            field name, the longest line); ``None`` for no limit.
        max_retries: how many times in a row an attempt that failed before a
            response is retried (DNS, a refused or reset connection, a TLS
            handshake, a proxy's 5xx, no response head within ``timeout``) before
            :class:`~faye_sync.exceptions.NetworkError` is raised; ``None`` retries
            for ever, as a browser does. Any response resets the count. A
            certificate that fails verification, a proxy's 403/407 and a response
            that is not HTTP are not retried.
        max_retry_delay: the ceiling of the exponential backoff between attempts
            that delivered no event, in seconds (a longer ``retry`` is honoured);
            at most :data:`MAX_RECONNECTION_TIME`.
        proxy: as for the WebSocket client: ``None`` reads ``HTTP(S)_PROXY`` and
            ``NO_PROXY``, ``False`` connects directly, an origin URL or
            ``{"origin", "headers", "tls"}`` names an HTTP ``CONNECT`` proxy.
        tls: for ``https:``: an ``ssl.SSLContext`` or ``{"ca", "cert", "key",
            "verify", "server_hostname"}``; certificates and names are checked by
            default.
        net: ``{"local_address", "local_port", "timeout", "family"}`` for the TCP
            socket.
        ca: faye's shorthand for ``tls={"ca": ...}``, as for the WebSocket client.
        backend: ``"threads"`` or ``"gevent"``; detected by default (gevent in a
            greenlet). Under gevent the reads and the waits between attempts yield
            to other greenlets; without monkey-patching, connecting (DNS, TCP, TLS,
            the response head) still blocks the hub, as for the WebSocket client.

    Attributes:
        url: the URL as given.
        last_event_id: the id of the latest event delivered (or set by a
            blank line): what the next connection sends as ``Last-Event-ID``.
        retry: the current reconnection time in seconds.
        status_code: the status of the latest response, ``None`` before one.
        headers: the latest response's headers, names in lower case.

    Raises:
        ValueError: the URL is not ``http(s)://``, or an option or header is invalid.
        TypeError: an option has the wrong type, or an unknown key.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        last_event_id: str = "",
        retry: float = DEFAULT_RETRY,
        timeout: float = DEFAULT_TIMEOUT,
        max_event_size: int | None = DEFAULT_MAX_EVENT_SIZE,
        max_retries: int | None = DEFAULT_MAX_RETRIES,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
        proxy: _net.ProxyOption = None,
        tls: _net.TLSOption = None,
        net: Mapping[str, Any] | None = None,
        ca: Any = None,
        backend: str | None = None,
    ) -> None:
        self._http = EventSourceRequest(url, headers)
        self.url = url
        self._safe_url = self._http.safe_url
        self.last_event_id = check_last_event_id(last_event_id)
        self.retry = seconds("retry", retry, allow_zero=True, most=MAX_RECONNECTION_TIME)
        self.timeout = seconds("timeout", timeout, allow_zero=False)
        self.max_retry_delay = seconds(
            "max_retry_delay", max_retry_delay, allow_zero=True, most=MAX_RECONNECTION_TIME
        )
        if max_event_size is not None and max_event_size <= 0:
            raise ValueError(f"max_event_size must be positive or None, not {max_event_size!r}")
        self.max_event_size = max_event_size
        if max_retries is not None and max_retries < 0:
            raise ValueError(f"max_retries must be >= 0 or None, not {max_retries!r}")
        self.max_retries = max_retries
        # Check the options now rather than at the first connection.
        _net.proxy_for(url, proxy)
        if self._http.secure:
            _net.tls_context(tls, ca=ca)
        self._proxy = proxy
        self._tls = tls
        self._ca = ca
        self._net_options = net
        self._backend: Backend = get_backend(backend) if backend else detect_backend()
        self.status_code: int | None = None
        self.headers: dict[str, str] = {}
        self._closed = self._backend.signal()
        self._sock_lock = self._backend.lock()  # guards _sock between the reader and close()
        self._sock: socket.socket | None = None
        self._reading = self._backend.lock()  # one thread inside next() at a time
        self._events: Generator[ServerSentEvent, None, None] | None = None
        self._delivered = 0  # events delivered so far: an attempt that adds none backs off

    # -- public API

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called or the iteration ended for good."""
        return self._closed.is_set()

    def close(self) -> None:
        """Stop: a read or a reconnection wait in progress ends now, and so does the iteration.

        Safe from any thread, and more than once. A connection attempt in progress
        ends within ``timeout``.
        """
        self._closed.set()
        with self._sock_lock:
            sock = self._sock
        if sock is not None:
            # Only the reading thread closes the socket: closing a descriptor another
            # thread is blocked on could let a new socket reuse its number. Shutting it
            # down wakes that thread at once.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._reading.acquire(blocking=False):
            # Nobody is iterating: finish the suspended iteration here, which closes its
            # socket (its finally blocks run).
            try:
                if self._events is not None:
                    self._events.close()
            finally:
                self._reading.release()

    def __iter__(self) -> EventSourceClient:
        return self

    def __next__(self) -> ServerSentEvent:
        if not self._reading.acquire(blocking=False):
            if self._closed.is_set():
                raise StopIteration  # close() is finishing the iteration in another thread
            raise ConcurrencyError("another thread is already iterating this EventSourceClient")
        try:
            if self._events is None:
                if self._closed.is_set():
                    raise StopIteration
                self._events = self._run()
            return next(self._events)
        finally:
            self._reading.release()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<EventSourceClient {self._safe_url} {state} last_event_id={self.last_event_id!r}>"

    # -- the connection loop

    def _run(self) -> Generator[ServerSentEvent, None, None]:
        failures = 0  # attempts in a row that failed before a response (max_retries)
        fruitless = 0  # attempts in a row that delivered no event (the backoff)
        last_error: Exception | None = None
        try:
            while not self._closed.is_set():
                try:
                    opened = self._open()
                except (HandshakeError, NetworkError) as exc:
                    if not _is_transient(exc):
                        raise
                    failures, why, last_error = failures + 1, str(exc), exc
                    fruitless += 1
                else:
                    if opened is None:
                        return  # closed while connecting
                    failures = 0
                    sock, conn, leftover = opened
                    delivered = self._delivered
                    try:
                        why = yield from self._read(sock, conn, leftover)
                    finally:
                        self._release(sock)
                    fruitless = 0 if self._delivered > delivered else fruitless + 1
                if self._closed.is_set():
                    return
                if failures and self.max_retries is not None and failures > self.max_retries:
                    raise NetworkError(
                        f"EventSource: giving up on {self._safe_url} after {failures} failed "
                        f"attempts; last error: {why}",
                        url=self._safe_url,
                    ) from last_error
                delay = self._delay(fruitless)
                log = logger.warning if failures else logger.info
                log("EventSource %s: %s; reconnecting in %.3g s", self._safe_url, why, delay)
                if self._closed.wait(delay):
                    return
        finally:
            self._closed.set()

    def _delay(self, fruitless: int) -> float:
        """The wait before the next attempt, after ``fruitless`` attempts without an event."""
        if fruitless == 0:
            return self.retry  # the standard's reconnection time, as it stands
        base = max(self.retry, _MIN_BACKOFF)
        ceiling = max(base, self.max_retry_delay)
        backoff = min(base * 2 ** min(fruitless - 1, 32), ceiling)
        # Jitter: clients that lost the same server do not all come back at once.
        return float(backoff * random.uniform(0.5, 1.0))

    def _open(self) -> tuple[socket.socket, h11.Connection, bytes] | None:
        """Connect and read a valid response head; ``None`` if closed meanwhile.

        Raises:
            HandshakeError: the response is not an event stream (or a proxy refused).
            NetworkError: connecting or reading the head failed.
        """
        sock = self._connect()
        with self._sock_lock:
            if self._closed.is_set():
                sock.close()
                return None
            self._sock = sock
        try:
            head, conn = _net.receive_response_head(
                sock,
                self._http.request_bytes(self.last_event_id),
                timeout=self.timeout,
                url=self.url,
            )
            self.status_code, self.headers = head.status, head.headers
            self._http.check_response(head.status, head.reason, head.headers)
        except BaseException:
            self._release(sock)
            raise
        return sock, conn, head.leftover

    def _connect(self) -> socket.socket:
        """A connection to the server (``faye_sync.testing`` runs the app instead)."""
        return _net.connect(
            self._http.host,
            self._http.port,
            secure=self._http.secure,
            proxy=self._proxy,
            tls=self._tls,
            ca=self._ca,
            net=self._net_options,
            timeout=self.timeout,
            target_url=self.url,
        )

    def _read(
        self, sock: socket.socket, conn: h11.Connection, leftover: bytes
    ) -> Generator[ServerSentEvent, None, str]:
        """Deliver the stream's events; returns why it ended (for the log).

        Raises:
            EventTooLargeError: after delivering the events that preceded it.
        """
        parser = EventStreamParser(
            last_event_id=self.last_event_id, max_event_size=self.max_event_size
        )
        try:
            sock.settimeout(self.timeout)
            if leftover:
                conn.receive_data(leftover)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    if self._closed.is_set():
                        return "closed"
                    # Whatever has arrived, up to 64 KiB: no waiting for a full block.
                    conn.receive_data(self._receive(sock))
                    continue
                if not isinstance(event, h11.Data):
                    parser.receive_eof()
                    return "the server ended the stream"
                error: EventTooLargeError | None = None
                try:
                    parser.receive_data(event.data)
                except EventTooLargeError as exc:
                    error = exc
                if parser.retry is not None:
                    self.retry = min(parser.retry, MAX_RECONNECTION_TIME)
                for sse in parser.events_received():
                    if self._closed.is_set():
                        return "closed"
                    self.last_event_id = sse.id
                    self._delivered += 1
                    yield sse
                self.last_event_id = parser.last_event_id
                if error is not None:
                    raise error
        except TimeoutError:
            return f"no data for {self.timeout:g} s"
        except h11.RemoteProtocolError as exc:
            return f"broken response body ({exc})"
        except OSError as exc:
            return f"connection lost ({exc or type(exc).__name__})"

    def _receive(self, sock: socket.socket) -> bytes:
        """What has arrived, up to 64 KiB; ``TimeoutError`` after ``timeout`` seconds of silence."""
        if self._backend.name == "gevent" and not self._backend.wait_readable(sock, self.timeout):
            raise TimeoutError  # waited in the hub: other greenlets ran meanwhile
        return sock.recv(_RECV_SIZE)

    def _release(self, sock: socket.socket) -> None:
        with self._sock_lock:
            if self._sock is sock:
                self._sock = None
        sock.close()
