"""The event-stream parser of an EventSource client, sans I/O: bytes in, events out.

It follows the WHATWG HTML standard, "Parsing an event stream" and "Interpreting
an event stream"
(https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream):

* The stream is UTF-8; one leading byte order mark is dropped, and invalid bytes
  become U+FFFD, as the standard's "UTF-8 decode" does.
* A line ends with CRLF, LF or CR, in any mix, and a CRLF split across two reads
  is still one line break. Nothing else ends a line (``str.splitlines()`` would
  also split on VT, FF, NEL, U+2028, …).
* A blank line dispatches the event; a line starting with ``:`` is a comment; a
  line without a colon is a field name with an empty value; one space after the
  colon is removed, further ones are kept. Field names are case-sensitive and
  unknown ones are ignored.
* ``data`` lines are joined with LF; ``event`` sets the type (``"message"`` when
  empty or absent); ``id`` sets the last event id, unless its value holds NUL;
  an empty ``id`` resets it; ``retry`` sets the reconnection time when its value
  is ASCII digits only, and is ignored otherwise.
* An event is dispatched only if it had at least one ``data`` line (``data`` with
  an empty value counts, and gives an event whose data is ``""``). The last
  event id is committed at every blank line, even when nothing is dispatched.
* At the end of the stream an unfinished event is discarded.

Lines are found in the bytes and each line is decoded on its own. That gives
exactly the standard's result, because CR, LF and ``:`` are ASCII and never
occur inside a multi-byte UTF-8 sequence, and it lets ``max_event_size`` be
counted in bytes.

Memory is bounded by ``max_event_size``: a line longer than it (plus room for a
field name) or an event whose data would exceed it raises
:class:`EventTooLargeError` as soon as that is known, without waiting for the
rest of the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..exceptions import EventTooLargeError

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "MAX_RETRY",
    "EventStreamParser",
    "EventTooLargeError",
    "ServerSentEvent",
]

DEFAULT_MAX_EVENT_SIZE = 1024 * 1024
"""1 MiB, the default proposed for httpx-sse (httpx2 PR #1071)."""

MAX_RETRY = 2**63 - 1
"""The largest ``retry`` field kept, in the field's milliseconds; larger ones are clamped.

``int()`` refuses strings of more than 4300 digits, and no clock needs more than 63 bits.
"""

_BOM = b"\xef\xbb\xbf"
_LINE_BREAK = re.compile(rb"\r\n?|\n")
# A line holds a field name and its value: room for "retry: " on top of the data itself.
_FIELD_ROOM = len("retry: ")


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event.

    Attributes:
        type: the ``event`` field, or ``"message"``.
        data: the ``data`` lines joined with LF (no trailing LF).
        id: the last event id at dispatch: this event's ``id`` field, or the one
            before it when it had none (the standard's ``lastEventId``).
        retry: the reconnection time set by a valid ``retry`` field in this
            event's lines, in seconds (the field is in milliseconds: ``retry:
            1500`` is 1.5); ``None`` when there was none.
    """

    type: str = "message"
    data: str = ""
    id: str = ""
    retry: float | None = None


class EventStreamParser:
    """Parses one event stream (one HTTP response body), fed in pieces of any size.

    Example::

        parser = EventStreamParser()
        parser.receive_data(b"event: tick\\r\\nid: 1\\r\\ndata: 1\\r\\n\\r\\n")
        parser.events_received()  # [ServerSentEvent(type="tick", data="1", id="1")]

    Args:
        last_event_id: the id the stream starts from. The standard starts every
            stream's buffer empty; browsers (Chromium) start it from the
            EventSource's last id, so that an event without an ``id`` after a
            reconnection keeps it. Pass the previous stream's
            :attr:`last_event_id` for that behaviour.
        max_event_size: the largest event data, in bytes of UTF-8, and (plus
            7 bytes for a field name) the longest line; ``None`` for no limit.

    Raises:
        ValueError: ``max_event_size`` is not positive.
    """

    def __init__(
        self,
        *,
        last_event_id: str = "",
        max_event_size: int | None = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        if max_event_size is not None and max_event_size <= 0:
            raise ValueError(f"max_event_size must be positive or None, not {max_event_size!r}")
        self.max_event_size = max_event_size
        self._max_line = None if max_event_size is None else max_event_size + _FIELD_ROOM
        self._last_event_id = last_event_id
        self._retry: int | None = None
        self._events: list[ServerSentEvent] = []
        # The bytes of an unfinished line, and whether the next byte may be the LF of a
        # CRLF whose CR ended the previous piece.
        self._partial = bytearray()
        self._after_cr = False
        # The stream's first bytes, held until they are known not to start a BOM.
        self._head: bytes | None = b""
        # The event being read: the standard's data, event type and last event id buffers.
        # The event's data lines, joined by LF, as bytes: one buffer, not an object
        # per line, so memory stays near max_event_size whatever the line count.
        self._data = bytearray()
        self._has_data = False
        self._type = ""
        self._id = last_event_id
        self._event_retry: int | None = None
        self._error: EventTooLargeError | None = None
        self._ended = False

    @property
    def last_event_id(self) -> str:
        """The id committed by the latest blank line: what ``Last-Event-ID`` should carry."""
        return self._last_event_id

    @property
    def retry(self) -> float | None:
        """The reconnection time from the latest valid ``retry`` field, in seconds.

        It takes effect as soon as its line is read, blank line or not (a stream
        commonly opens with ``retry: 5000`` followed by a blank line and no data).
        ``None`` until the stream sets one.
        """
        return _seconds(self._retry)

    def events_received(self) -> list[ServerSentEvent]:
        """The events dispatched since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Parse the next piece of the stream; events queue up for :meth:`events_received`.

        Raises:
            EventTooLargeError: a line or an event's data exceeds ``max_event_size``.
                Events dispatched before it stay available; the parser then refuses
                all further input with the same error.
            RuntimeError: called after :meth:`receive_eof`.
        """
        if self._error is not None:
            raise self._error
        if self._ended:
            raise RuntimeError("receive_data() after receive_eof()")
        chunk = bytes(data)
        if self._head is not None:
            # A BOM may arrive a byte at a time: wait until the first three bytes are known.
            head = self._head + chunk
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._head = head
                return
            self._head = None
            chunk = head[len(_BOM) :] if head.startswith(_BOM) else head
        try:
            self._split(chunk)
        except EventTooLargeError as exc:
            self._error = exc
            self._partial.clear()
            self._data.clear()
            self._has_data = False
            raise

    def receive_eof(self) -> None:
        """The stream ended: an unfinished event is discarded, as the standard says."""
        self._ended = True
        self._partial.clear()
        self._head = None
        self._data.clear()
        self._has_data = False
        self._type = ""
        self._event_retry = None

    # -- internals

    def _split(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        start = 0
        for match in _LINE_BREAK.finditer(chunk):
            piece = chunk[start : match.start()]
            start = match.end()
            if self._partial:
                self._partial += piece
                line = bytes(self._partial)
                self._partial.clear()
            else:
                line = piece
            self._check_line(len(line))
            self._line(line)
        # A CR that ends the chunk may be the first half of a CRLF.
        self._after_cr = chunk.endswith(b"\r")
        if start < len(chunk):
            self._check_line(len(self._partial) + len(chunk) - start)
            self._partial += chunk[start:]

    def _check_line(self, size: int) -> None:
        if self._max_line is not None and size > self._max_line:
            raise EventTooLargeError(
                f"event stream line larger than max_event_size ({self.max_event_size} bytes)",
                limit=self.max_event_size or 0,
            )

    def _line(self, line: bytes) -> None:
        if not line:
            self._dispatch()
            return
        if line[0] == 0x3A:  # ":" starts a comment (a ping)
            return
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            size = len(self._data) + len(value) + self._has_data
            if self.max_event_size is not None and size > self.max_event_size:
                raise EventTooLargeError(
                    f"event data larger than max_event_size ({self.max_event_size} bytes)",
                    limit=self.max_event_size,
                )
            if self._has_data:
                self._data += b"\n"
            self._data += value
            self._has_data = True
        elif name == b"event":
            self._type = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry":
            # bytes.isdigit() is ASCII-only: "²" or "٣" are not digits here, as in the standard.
            if value.isdigit():
                digits = value.lstrip(b"0")
                retry = MAX_RETRY if len(digits) > 19 else min(int(value), MAX_RETRY)
                self._retry = self._event_retry = retry

    def _dispatch(self) -> None:
        self._last_event_id = self._id
        if self._has_data:
            self._events.append(
                ServerSentEvent(
                    type=self._type or "message",
                    # one decode of the joined lines: LF never splits a UTF-8 sequence
                    data=self._data.decode("utf-8", "replace"),
                    id=self._last_event_id,
                    retry=_seconds(self._event_retry),
                )
            )
        self._data = bytearray()
        self._has_data = False
        self._type = ""
        self._event_retry = None


def _seconds(milliseconds: int | None) -> float | None:
    # The wire counts milliseconds; the API counts seconds, as every option does.
    return None if milliseconds is None else milliseconds / 1000
