"""Sending a large message: its frame's header and payload in one ``sendmsg``, never joined.

A frame of ``LARGE_FRAME`` bytes or more (``protocol/large.py``; reading one
in place is in ``Connection._read``) is made as header and payload apart. When
nothing else is queued, ``send`` hands both to the kernel in one ``sendmsg``:
the payload is not copied into a ``header + payload`` first. What the socket
does not take goes on through the ordinary writer, as the rest of the payload
(a view, no copy), or, if not even the header went out, as one joined frame.

Only where the writer's own call is a plain ``send``: a blocking send bounded by
``SO_SNDTIMEO`` (threads) or gevent's socket without waiting. TLS sockets (no
``sendmsg``) and sockets with a timeout keep the ordinary path.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .backends import (
    _DONTWAIT,
    _send_blocking,
    _send_gevent_or_wait,
    _send_gevent_plain_or_wait,
)

if TYPE_CHECKING:
    from .writer import Writer

__all__ = ["send_large"]


def send_large(
    conn: Writer, frame: Callable[[Any], bool], message: Any
) -> tuple[bool, bool] | None:
    """Make and write ``message``'s frame if the send lock is free and nothing is queued.

    Returns ``(written, sent)`` as ``Writer.send`` uses them, or None when the
    ordinary path must send it (another write under way, TLS, a draft).
    """
    sendmsg = _vector_sender(conn)
    frames_to_send = getattr(conn._protocol, "frames_to_send", None)
    if sendmsg is None or frames_to_send is None or not conn._send_lock.acquire(blocking=False):
        return None
    try:
        with conn._mutex:
            if conn._partial is not None or conn._urgent or conn._pending:
                return None  # frames queued before it go first: the ordinary path
            sent = frame(message)
            conn._messages_out += sent
            parts: list[bytes] = frames_to_send()
        written = _write_parts(conn, sendmsg, parts) if parts else True
    finally:
        conn._send_lock.release()
    if conn._urgent or conn._pending:  # queued by a reader meanwhile
        conn._flush_now()
    return written, sent


def _write_parts(
    conn: Writer, sendmsg: Callable[[socket.socket, list[bytes]], int], parts: list[bytes]
) -> bool:
    """Write a frame's parts with the send lock held and nothing queued.

    ``Writer._write`` for a frame in two parts: the same accounting, and the
    rest (one buffer again) goes through it.
    """
    if len(parts) != 2:  # a frame that was not split (compressed below LARGE_FRAME)
        return conn._write(b"".join(parts))
    sock = conn._sock
    assert sock is not None
    header, payload = parts
    conn._writing = len(header) + len(payload)  # for buffered_amount
    try:
        count = sendmsg(sock, parts)
    except OSError:
        conn._fail_write("")
        return False
    finally:
        conn._writing = 0
    conn._written += count
    if count >= len(header):
        rest = memoryview(payload)[count - len(header) :]
        return not rest or conn._write(rest)
    if not count and sendmsg is _sendmsg_blocking:  # the peer took nothing in send_timeout
        conn._fail_write(conn._timeout_reason())
        return False
    return conn._write(header[count:] + payload)  # rare: not even the header fitted


def _vector_sender(conn: Writer) -> Callable[[socket.socket, list[bytes]], int] | None:
    send_wait = conn._send_wait
    if send_wait is _send_blocking:
        return _sendmsg_blocking
    if send_wait in (_send_gevent_or_wait, _send_gevent_plain_or_wait) and _DONTWAIT:
        return _sendmsg_now
    return None


def _sendmsg_blocking(sock: socket.socket, parts: list[bytes]) -> int:
    try:
        return sock.sendmsg(parts)  # bounded by the socket's SO_SNDTIMEO, as _send_blocking
    except BlockingIOError:  # nothing taken in time
        return 0


def _sendmsg_now(sock: socket.socket, parts: list[bytes]) -> int:
    try:
        return sock.sendmsg(parts, (), _DONTWAIT)  # gevent's socket does not wait then
    except BlockingIOError:
        return 0
