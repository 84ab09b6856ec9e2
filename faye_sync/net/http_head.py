"""Reading the head of an HTTP/1.1 response, with ``h11``.

:func:`receive_response_head` sends a request and parses the response head;
bytes that arrived after the head (the first WebSocket frame after a ``101``,
the start of an event stream) go back to the caller untouched, with the ``h11``
connection that can go on decoding the body (chunked or not).
:func:`read_body_excerpt` reads the start of a refusal's body for its message.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from typing import NamedTuple

import h11

from ..exceptions import HandshakeError
from ..protocol.http import redact_url
from .errors import RECV_SIZE, deadline_after, network_error, network_errors, remaining

__all__ = [
    "MAX_INTERIM_RESPONSES",
    "ResponseHead",
    "read_body_excerpt",
    "receive_response_head",
]

# h11 finds the end of a head with this very expression (h11/_receivebuffer.py); we use it
# only to hand h11 exactly one head at a time, so the bytes after it stay ours to return.
_HEAD_END = re.compile(rb"\n\r?\n")
#: Interim (1xx) responses skipped before a final one, where the caller allows them at all:
#: HTTP lets any request get them (RFC 9110 §15.2); a peer sending more is flooding.
MAX_INTERIM_RESPONSES = 8


class ResponseHead(NamedTuple):
    """The head of an HTTP/1.x response.

    Attributes:
        status: The status code, e.g. ``101``.
        reason: The reason phrase (may be empty).
        headers: Names lower-cased, values of repeated names joined with ``", "`` (faye's form).
        raw_headers: ``(name, value)`` pairs as received, original case and order.
        leftover: Bytes received after the head: the start of the body, or the first
            frames after a ``101``.
    """

    status: int
    reason: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    leftover: bytes


def _client_connection_for(request: bytes, max_head: int) -> h11.Connection:
    """An h11 client connection in the state ``request`` leaves it in.

    h11 must know the request (HEAD, CONNECT, a proposed Upgrade) to read the response
    right, and we send the caller's bytes verbatim; so we parse them back with an h11
    server and replay the events into the client.
    """
    server = h11.Connection(h11.SERVER, max_incomplete_event_size=max(len(request), 16 * 1024))
    client = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head)
    server.receive_data(request)
    try:
        while True:
            event = server.next_event()
            if event is h11.NEED_DATA:
                raise ValueError("the request is incomplete")
            if isinstance(event, (h11.Request, h11.Data, h11.EndOfMessage)):
                client.send(event)
            if isinstance(event, h11.EndOfMessage):
                return client
    except h11.ProtocolError:
        # No detail and no chain: h11's message may quote a header line, and the request
        # may carry credentials (Authorization, Proxy-Authorization).
        raise ValueError("not a valid HTTP/1.1 request") from None


def _decode_head(event: h11.Response | h11.InformationalResponse, leftover: bytes) -> ResponseHead:
    raw = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in event.headers.raw_items()
    ]
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return ResponseHead(
        status=event.status_code,
        reason=event.reason.decode("latin-1"),
        headers=headers,
        raw_headers=raw,
        leftover=leftover,
    )


def receive_response_head(
    sock: socket.socket,
    request: bytes,
    *,
    timeout: float | None,
    max_head: int = 64 * 1024,
    max_interim: int = MAX_INTERIM_RESPONSES,
    url: str | None = None,
) -> tuple[ResponseHead, h11.Connection]:
    """Send ``request`` with ``sendall``, then read the response head with h11.

    Up to ``max_interim`` informational responses other than ``101`` (``100
    Continue``, ``103 Early Hints``) are skipped; one more is a
    :class:`HandshakeError`, and ``max_head`` bounds all the heads together, so a
    peer flooding interim heads is refused at once. The socket's own timeout is
    restored afterwards.

    Args:
        sock: A connected socket (plain, TLS, or a ``TLSTunnelSocket``).
        request: The complete request bytes, sent verbatim.
        timeout: Seconds for sending and reading the whole head (``None``: no limit).
        max_head: The largest head accepted, in bytes (interim heads included).
        max_interim: How many interim responses to skip; with 0 the first one is an
            ``Unexpected response code`` (a WebSocket handshake, RFC 6455 §4.1).
        url: The target URL, for error messages (credentials are removed).

    Returns:
        The :class:`ResponseHead`, and the ``h11.Connection`` standing just after it:
        feed it ``head.leftover`` and then the socket's bytes, and read ``h11.Data``
        events to decode the body (chunked, sized, or until close). After a ``101``
        (or a ``200`` to ``CONNECT``) it is in ``SWITCHED_PROTOCOL``, of no further use.

    Raises:
        HandshakeError: A garbled (``"Parse Error"``) or oversized head, or too many
            interim responses.
        NetworkTimeoutError: The timeout passed first.
        NetworkError: The connection failed or closed before the head was complete.
        ValueError: ``request`` is not a complete HTTP/1.1 request.
    """
    conn = _client_connection_for(request, max_head)
    deadline = deadline_after(timeout)
    previous_timeout = sock.gettimeout()
    safe_url = redact_url(url) if url else None
    within = "in time" if timeout is None else f"within {timeout:g}s"
    try:
        with network_errors(safe_url, timed_out=f"no complete response head {within}"):
            sock.settimeout(remaining(deadline))
            sock.sendall(request)
            reader = _HeadReader(sock, deadline, max_head, safe_url)
            return reader.final_head(conn, max_interim), conn
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(previous_timeout)


class _HeadReader:
    """Receives heads one at a time, so that the bytes after the final one stay ours."""

    def __init__(
        self, sock: socket.socket, deadline: float | None, max_head: int, url: str | None
    ) -> None:
        self._sock = sock
        self._deadline = deadline
        self._max_head = max_head
        self._url = url
        self._buffer = bytearray()
        self._head_bytes = 0  # of the heads already read: max_head bounds them all together

    def final_head(self, conn: h11.Connection, max_interim: int) -> ResponseHead:
        interim = 0
        while True:
            end = self._receive_head_end()
            conn.receive_data(bytes(self._buffer[:end]))
            del self._buffer[:end]
            self._head_bytes += end
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise HandshakeError("Parse Error") from exc
            if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                # 100 Continue, 103 Early Hints: the real answer follows, up to a bound.
                interim += 1
                if interim > max_interim:
                    raise _interim_error(event, max_interim)
                continue
            if isinstance(event, (h11.Response, h11.InformationalResponse)):
                return _decode_head(event, bytes(self._buffer))
            raise HandshakeError("Parse Error")

    def _receive_head_end(self) -> int:
        """Receive until the buffer holds the end of a head; return the offset after it."""
        buffer, searched = self._buffer, 0
        while True:
            match = _HEAD_END.search(buffer, max(0, searched - 2))
            size = len(buffer) if match is None else match.end()
            if self._head_bytes + size > self._max_head:
                raise HandshakeError(
                    f"Parse Error: response head larger than {self._max_head} bytes"
                )
            if match is not None:
                return size
            searched = len(buffer)
            self._sock.settimeout(remaining(self._deadline))
            chunk = self._sock.recv(RECV_SIZE)
            if not chunk:
                raise network_error(
                    self._url,
                    "connection closed before the response head was complete"
                    if buffer
                    else "connection closed before any response arrived",
                )
            buffer += chunk


def _interim_error(event: h11.InformationalResponse, max_interim: int) -> HandshakeError:
    status = event.status_code
    headers = _decode_head(event, b"").headers
    if max_interim == 0:  # a WebSocket handshake: only a 101 or a final status may come
        return HandshakeError(f"Unexpected response code: {status}", status=status, headers=headers)
    return HandshakeError(
        f"Parse Error: more than {max_interim} interim (1xx) responses",
        status=status,
        headers=headers,
    )


def read_body_excerpt(
    sock: socket.socket,
    conn: h11.Connection,
    leftover: bytes,
    *,
    limit: int = 4096,
    timeout: float = 1.0,
) -> bytes:
    """The first ``limit`` bytes of a response body, for an error message; never raises.

    ``conn`` and ``leftover`` are what :func:`receive_response_head` returned. Reading
    stops at the body's end, at ``limit`` bytes, after ``timeout`` seconds in all, or
    at any error: the excerpt explains a refusal, it is not the response.
    """
    deadline = time.monotonic() + timeout
    body = bytearray()
    previous_timeout = sock.gettimeout()
    try:
        if leftover:  # h11 takes empty data for the end of the connection
            conn.receive_data(leftover)
        while len(body) < limit:
            event = conn.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            elif event is h11.NEED_DATA:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                conn.receive_data(sock.recv(RECV_SIZE))
            else:
                break  # the end of the body, or of the connection
    except (OSError, h11.ProtocolError):
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(previous_timeout)
    return bytes(body[:limit])
