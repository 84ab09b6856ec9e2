"""The hixie-75 and hixie-76 server drafts, sans I/O, as faye's websocket-driver 0.8.0 runs them.

Only used when the application opts in with ``allow_drafts=True``: driver 0.8.0
made drafts opt-in, and every browser has spoken RFC 6455 since 2012.

Framing (both drafts): ``00 <utf8> FF`` is a text message (any leading byte
below 0x80 starts one). A leading byte with the top bit set starts a frame whose
length follows as a 7-bit varint; that frame is skipped. Driver 0.8.0 keeps
skipping and reading text in separate states: before it, a 0xFF inside a skipped
frame ended it, replayed the previous message and parsed the rest as frames (a
message injection). In hixie-76 ``FF 00`` closes; we answer ``FF 00``.

Closes carry no code and no reason: ``Close(None, None)``. Like faye:

* text over ``max_length``, or a skipped frame declaring more, closes silently
  (no ``Error``; hixie-76 still writes ``FF 00``);
* text is decoded as UTF-8 without validation: bad bytes become U+FFFD, as
  Node's ``Buffer.toString`` does;
* binary messages, pings and pongs cannot be sent (the ``send_*`` calls return
  False): the drafts have no frame for them;
* a TCP drop or a forced close reports ``Close(1006, "")``: faye's API layer
  gives that when the driver itself never closed.

Two deliberate differences: nothing is parsed after a close inside the same
chunk (faye's API drops those messages anyway), and ``FF`` + length is taken as
a close only when the whole varint is zero (faye stops at the first zero group
and leaves its closing flag set for later frames).
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable, Mapping

from .base import CLOSED, CONNECTING, MAX_LENGTH, OPEN, NoBinaryNoPings, validate_close_arguments
from .events import Close, Event, Message, Open
from .handshake import Acceptance, HeaderList, Rejection, Request, is_websocket

__all__ = ["Draft75Protocol", "Draft76Protocol", "draft_handshake", "key_value"]

ERROR_INVALID_KEYS = "Client sent invalid Sec-WebSocket-Key headers"

_NOT_DIGITS = re.compile(r"[^0-9]+")
_pack_keys = struct.Struct("!II").pack

# Parser stages, as in faye's draft75.js.
_START, _LENGTH, _SKIP, _TEXT = range(4)


def _text_frame(text: str) -> bytes:
    return b"\x00" + text.encode("utf-8") + b"\xff"


def key_value(key: str) -> int:
    """The number a hixie-76 ``Sec-WebSocket-Key1``/``Key2`` stands for.

    Its digits read as one number, divided by its count of spaces.

    Raises:
        ValueError: faye 0.8.0's rules: no digits (or only zeros), no spaces,
            digits not divisible by the spaces, or a quotient over 0xFFFFFFFF.
    """
    digits = _NOT_DIGITS.sub("", key).lstrip("0")
    spaces = key.count(" ")
    # A valid number is at most 0xFFFFFFFF * spaces: 10 digits plus those of
    # ``spaces``. Refusing longer ones first keeps int() off huge strings.
    if not digits or not spaces or len(digits) > 10 + len(str(spaces)):
        raise ValueError(ERROR_INVALID_KEYS)
    quotient, remainder = divmod(int(digits), spaces)
    if remainder or quotient > 0xFFFFFFFF:
        raise ValueError(ERROR_INVALID_KEYS)
    return quotient


def draft_handshake(
    request: Request,
    *,
    max_length: int = MAX_LENGTH,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
) -> Acceptance | Rejection:
    """Answer a hixie-76 request (one with a ``Sec-WebSocket-Key1/2``), else hixie-75.

    The Location header is ``request.url``. Custom ``headers`` follow the
    built-in ones, which win name clashes (faye's hixie drivers set theirs first).
    For hixie-76 ``response`` holds the headers only: the protocol writes the
    16-byte signature once the 8-byte key3 body has come through ``receive_data``.

    Args:
        request: the upgrade request; header names in lower case.
        max_length: the largest text message accepted, in bytes.
        headers: extra response headers, a mapping or (name, value) pairs.

    Returns:
        An :class:`Acceptance`, or a 400 :class:`Rejection` with faye's message.
    """
    if not is_websocket(request.method, request.header("connection"), request.header("upgrade")):
        return Rejection("400 Bad Request", "Not a WebSocket request")
    origin = request.header("origin")
    key1 = request.header("sec-websocket-key1")
    key2 = request.header("sec-websocket-key2")
    response = HeaderList()
    response.set("Upgrade", "WebSocket")
    response.set("Connection", "Upgrade")
    protocol: Draft75Protocol
    if key1 is None and key2 is None:
        if origin is not None:  # faye leaves out a header whose value is missing
            response.set("WebSocket-Origin", origin)
        response.set("WebSocket-Location", request.url)
        status = b"HTTP/1.1 101 Web Socket Protocol Handshake\r\n"
        protocol = Draft75Protocol(max_length=max_length)
    else:
        for name, key in (("Sec-WebSocket-Key1", key1), ("Sec-WebSocket-Key2", key2)):
            if not key:
                return Rejection("400 Bad Request", f"Missing required header: {name}")
        assert key1 is not None and key2 is not None  # checked just above
        try:
            protocol = Draft76Protocol(key1, key2, max_length=max_length)
        except ValueError as exc:
            return Rejection("400 Bad Request", str(exc))
        if origin is not None:
            response.set("Sec-WebSocket-Origin", origin)
        response.set("Sec-WebSocket-Location", request.url)
        status = b"HTTP/1.1 101 WebSocket Protocol Handshake\r\n"
    response.update(headers)
    return Acceptance(status + response.to_bytes() + b"\r\n", protocol, "", protocol.version)


class Draft75Protocol(NoBinaryNoPings):
    """One hixie-75 connection's frame layer (server side); starts OPEN.

    Args:
        max_length: the largest text message, and the largest skipped frame, in
            bytes; anything larger closes the connection.
    """

    version = "hixie-75"
    is_client = False
    paused = False  # the drafts have no failures to hold back
    _close_frame = b""  # hixie-75 has no closing handshake

    def __init__(self, *, max_length: int = MAX_LENGTH) -> None:
        self.max_length = max_length
        self.state = OPEN
        self._stage = _START
        self._length = 0  # the varint being read, then the bytes left to skip
        self._closing = False  # the frame being read started with FF (hixie-76)
        self._text = bytearray()
        self._events: list[Event] = []
        self._output: list[bytes] = []

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the socket; events and replies are queued."""
        if self.state == OPEN:
            self._parse(bytes(data), 0)

    def receive_eof(self) -> None:
        """The peer closed its end of the TCP connection (or it broke)."""
        self.fail(1006, "")

    # ----------------------------------------------------------------- output

    def events_received(self) -> list[Event]:
        """Return and forget the events produced so far."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        """Return and forget the bytes to write to the socket, in order."""
        output, self._output = self._output, []
        return b"".join(output)

    def close_expected(self) -> bool:
        """True once the TCP connection should be closed."""
        return self.state == CLOSED

    def send_text(self, text: str) -> bool:
        """Queue a text message; False once closed."""
        if self.state == CLOSED:
            return False
        self._output.append(_text_frame(text))
        return True

    def send_close(self, code: int = 1000, reason: str = "", *, strict: bool = True) -> bool:
        """Close at once, reporting ``Close(None, None)``; False if already closed.

        The drafts carry no code or reason, but they are checked as for RFC 6455
        so a call that is wrong there is wrong here too.

        Raises:
            ValueError: ``code`` is neither 1000 nor in 3000-4999, or ``reason``
                is over 123 bytes of UTF-8.
        """
        validate_close_arguments(code, reason, strict=strict)
        if self.state == CLOSED:
            return False
        self._close()
        return True

    def fail(self, code: int, reason: str) -> None:
        """Close at once with ``code`` (a close timeout, a dead peer): nothing is written."""
        if self.state != CLOSED:
            self._finish(Close(code, reason))

    # -------------------------------------------------------------- internals

    def _close(self) -> None:
        if self.state == OPEN and self._close_frame:
            self._output.append(self._close_frame)
        self._finish(Close(None, None))

    def _finish(self, event: Close) -> None:
        self.state = CLOSED
        self._text = bytearray()
        self._events.append(event)

    def _parse(self, data: bytes, pos: int) -> None:
        # State lives on self and is updated before each event is queued, so a
        # chunk may end anywhere. Only the varint is read a byte at a time.
        size = len(data)
        max_length = self.max_length
        while pos < size:
            stage = self._stage
            if stage == _TEXT:
                end = data.find(b"\xff", pos)
                stop = size if end < 0 else end
                if len(self._text) + stop - pos > max_length:
                    self._close()  # faye closes silently
                    return
                self._text += data[pos:stop]
                if end < 0:
                    return
                pos = end + 1
                self._stage = _START
                self._events.append(Message(self._text.decode("utf-8", "replace")))
                self._text = bytearray()
            elif stage == _SKIP:
                taken = min(self._length, size - pos)
                pos += taken
                self._length -= taken
                if not self._length:
                    self._stage = _START
            elif stage == _LENGTH:
                octet = data[pos]
                pos += 1
                self._length = self._length * 128 + (octet & 0x7F)
                if self._length > max_length:
                    self._close()
                    return
                if octet & 0x80:
                    continue
                if self._length:
                    self._stage = _SKIP
                elif self._closing:
                    self._close()
                    return
                else:
                    self._stage = _START
            else:
                octet = data[pos]
                pos += 1
                if octet & 0x80:
                    # FF + zero length is hixie-76's close frame; hixie-75 skips it.
                    self._closing = octet == 0xFF and bool(self._close_frame)
                    self._length = 0
                    self._stage = _LENGTH
                else:
                    self._stage = _TEXT


class Draft76Protocol(Draft75Protocol):
    """One hixie-76 connection's frame layer (server side); starts CONNECTING.

    The first 8 bytes received are the handshake's key3 body. Once they are in,
    the 16-byte MD5 signature is queued, then any text sent while CONNECTING,
    the state becomes OPEN and ``Open()`` is reported.

    Args:
        key1: the ``Sec-WebSocket-Key1`` header.
        key2: the ``Sec-WebSocket-Key2`` header.
        max_length: as for :class:`Draft75Protocol`.

    Raises:
        ValueError: a key is invalid (see :func:`key_value`).
    """

    version = "hixie-76"
    _close_frame = b"\xff\x00"

    def __init__(self, key1: str, key2: str, *, max_length: int = MAX_LENGTH) -> None:
        super().__init__(max_length=max_length)
        self.state = CONNECTING
        self._challenge = _pack_keys(key_value(key1), key_value(key2))
        self._key3 = b""
        self._queue: list[bytes] = []  # text sent while CONNECTING, as faye queues it

    def send_text(self, text: str) -> bool:
        """Queue a text message (held back until the signature is sent); False once closed."""
        if self.state != CONNECTING:
            return super().send_text(text)
        self._queue.append(_text_frame(text))
        return True

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the socket: key3 first, then frames."""
        if self.state != CONNECTING:
            super().receive_data(data)
            return
        data = bytes(data)
        needed = 8 - len(self._key3)
        self._key3 += data[:needed]
        if len(self._key3) < 8:
            return
        signature = hashlib.md5(self._challenge + self._key3, usedforsecurity=False).digest()
        self._output += (signature, *self._queue)
        self._queue = []
        self.state = OPEN
        self._events.append(Open())
        self._parse(data, needed)
