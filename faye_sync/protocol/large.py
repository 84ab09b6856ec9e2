"""Large data frames read in place: each byte of the payload is copied once, into one buffer.

A data frame whose header announces :data:`LARGE_FRAME` bytes or more, and that
has not all arrived, is held by a :class:`LargeFrame` rather than in the frame
layer's input buffer (which grows with ``+=`` and is cut from the front for
every read). Its payload goes into one buffer: the caller reads the socket
straight into it::

    frame = protocol.large_frame
    if frame is not None:
        protocol.receive_data(frame.arrived(sock.recv_into(frame.window())))

``arrived`` returns a view of the bytes just written, which ``receive_data``
recognises and does not copy; any other bytes fed to ``receive_data`` are
copied in, so the frame layer takes input of any shape as before. Once the
frame is whole, its payload is unmasked in one call (the copy the unmasking
makes anyway is the message's ``bytes``) and the frame goes on as any other.

Memory: the buffer starts at most at ``_FIRST_BUFFER`` bytes and doubles as it
fills, up to the declared length, so a peer that announces a large frame and
sends little makes it hold at most ``_FIRST_BUFFER`` bytes, or twice what it
sent. A process keeps ``_SPARES`` first buffers of finished frames for the next
ones (2 MiB at most): a new ``bytearray`` is zero-filled, which costs half a
copy of the payload.

Text is still checked as it arrives (invalid UTF-8 fails before the rest of the
frame is read): each arriving part is unmasked with the key turned to its
offset and decoded. For a text message of one frame those decoded pieces are
kept and joined at the end, so the text is unmasked and decoded once.
"""

from __future__ import annotations

import codecs

from ._mypyc import trait
from .base import CLOSED, MIXIN_SLOTS, OPEN, ReadyState
from .events import Event, Message
from .masking import apply_mask

__all__ = ["ERROR_UTF8", "LARGE_FRAME", "LargeFrame", "LargeFrameReader", "utf8_decoder"]

ERROR_UTF8 = "Could not decode a text frame as UTF-8"

utf8_decoder = codecs.getincrementaldecoder("utf-8")

#: Frames from this payload length on are read in place (smaller ones arrive in
#: one or two reads of the blocking layer's 64 KiB, where copying costs little).
LARGE_FRAME = 65536

_FIRST_BUFFER = 2**20  # a 1 MiB message needs one buffer, never grown
_SPARES = 2
_PIECES = 1024  # the most pieces a text message is kept in as it arrives
# First buffers of finished frames, for the next: list.pop and list.append are
# atomic, so threads share it without a lock.
_spares: list[bytearray] = []


class LargeFrame:
    """The payload of one large data frame, as it arrives.

    Args:
        b0: the frame's first byte (FIN, RSV bits, opcode).
        length: the payload length the header announced.
        key: the masking key, or None for an unmasked frame.
        probe: the UTF-8 decoder checking a text frame as it arrives, already
            fed the payload bytes that came with the header; None for binary.
        arrived: those payload bytes.
    """

    __slots__ = (
        "_arrival",
        "b0",
        "buffer",
        "filled",
        "key",
        "length",
        "probe",
        "probed",
        "text",
    )

    def __init__(
        self,
        b0: int,
        length: int,
        key: bytes | None,
        probe: codecs.IncrementalDecoder | None,
        arrived: memoryview,
    ) -> None:
        self.b0 = b0
        self.length = length
        self.key = key
        self.probe = probe
        count = len(arrived)
        size = min(length, max(_FIRST_BUFFER, 2 * count))
        try:
            spare = _spares.pop() if size <= _FIRST_BUFFER else None
        except IndexError:
            spare = None
        # A spare may be longer than the frame: only its first ``length`` bytes are used.
        self.buffer = bytearray(size) if spare is None else spare
        self.buffer[:count] = arrived
        self.filled = count
        self.probed = 0  # payload bytes the probe has seen
        # A text message in one frame: the probe's pieces make its text, so that
        # it is neither unmasked nor decoded twice. None once there are too many.
        self.text: list[str] | None = [] if probe is not None and b0 == 0x81 else None
        self._arrival: memoryview | None = None

    @property
    def needed(self) -> int:
        """Payload bytes still to come."""
        return self.length - self.filled

    def window(self) -> memoryview:
        """Where the next payload bytes go: ``recv_into`` it, then call :meth:`arrived`."""
        filled = self.filled
        if filled == len(self.buffer):  # full, and the frame is not: double it
            self._grow(filled + 1)
        return memoryview(self.buffer)[filled : self.length]

    def arrived(self, count: int) -> memoryview:
        """The ``count`` bytes just written into :meth:`window`, to feed ``receive_data``."""
        view = self._arrival = memoryview(self.buffer)[self.filled : self.filled + count]
        return view

    def take(self, data: bytes | bytearray | memoryview) -> memoryview | bytes:
        """Add ``data`` to the payload; return what is past the frame's end."""
        if data is self._arrival:  # already in place
            self._arrival = None
            self.filled += len(data)
            return b""
        count = min(len(data), self.needed)
        if count:
            end = self.filled + count
            if end > len(self.buffer):
                self._grow(end)
            self.buffer[self.filled : end] = memoryview(data)[:count]
            self.filled = end
        return memoryview(data)[count:] if count < len(data) else b""

    def _grow(self, size: int) -> None:
        """Make room for ``size`` bytes at least: double, up to the frame's length."""
        buffer = self.buffer
        zeros = bytes(min(self.length, max(size, 2 * len(buffer))) - len(buffer))
        try:
            buffer += zeros
        except BufferError:  # a view of it is still held (the caller's last read)
            self.buffer = buffer + zeros

    def check_utf8(self) -> bool:
        """Check the text that arrived since the last call; False if it is not UTF-8.

        Not needed once the frame is whole: the message is decoded then.
        """
        probe = self.probe
        if probe is None or self.probed == self.filled:
            return True
        try:
            piece = probe.decode(self._unmasked())
        except UnicodeDecodeError:
            return False
        text = self.text
        if text is not None:
            if len(text) < _PIECES:
                text.append(piece)
            else:  # arriving in many small reads: decode it whole at the end
                self.text = None
        return True

    def _unmasked(self) -> bytes | memoryview:
        """The payload bytes the probe has not seen, unmasked; they count as seen."""
        start, self.probed = self.probed, self.filled
        arrived = memoryview(self.buffer)[start : self.filled]
        key = self.key
        if key is None:
            return arrived
        phase = start % 4
        return apply_mask(arrived, key[phase:] + key[:phase])

    def message_text(self) -> str:
        """The text of a whole text message (``text`` is not None): its last piece and all.

        Raises:
            UnicodeDecodeError: the message ends inside a character, or its
                last piece is not UTF-8.
        """
        assert self.text is not None and self.probe is not None
        self.text.append(self.probe.decode(self._unmasked(), True))
        self._give_up_buffer()
        return "".join(self.text)

    def payload(self) -> bytes:
        """The whole payload, unmasked: one copy, which is the message's bytes.

        The buffer is then given up (kept as a spare if it is a first buffer).
        """
        buffer = self.buffer
        view = memoryview(buffer)[: self.length]
        payload = bytes(view) if self.key is None else apply_mask(view, self.key)
        view.release()
        self._give_up_buffer()
        return payload

    def _give_up_buffer(self) -> None:
        if len(self.buffer) == _FIRST_BUFFER and len(_spares) < _SPARES:
            _spares.append(self.buffer)


@trait  # a mixin: mypyc compiles HybiProtocol's two halves as traits
class LargeFrameReader:
    """The large-frame part of :class:`~faye_sync.protocol.hybi.HybiProtocol`'s input."""

    # None of its own: HybiProtocol lists the attributes. (A name, not the literal
    # ``()``, which mypy would hold this mixin's assignments against.)
    __slots__ = MIXIN_SLOTS

    large_frame: LargeFrame | None  # a large frame's payload still arriving

    state: ReadyState
    _probe: codecs.IncrementalDecoder | None
    _probe_offset: int
    _decoder: codecs.IncrementalDecoder | None
    _events: list[Event] | None
    _buffer: bytearray | None
    paused: bool
    _message_produced: bool
    _produced: int

    # HybiProtocol's (mypyc allows no `if TYPE_CHECKING:` declarations in a class).
    def _fail_protocol(self, code: int, message: str) -> None:
        raise NotImplementedError

    def _data_frame(self, b0: int, opcode: int, fin: int, payload: bytes) -> None:
        raise NotImplementedError

    # Two of HybiProtocol's rare steps, here to keep hybi.py short.

    def _probe_utf8(self, opcode: int, buf: bytearray, start: int, size: int, masked: int) -> bool:
        """Check the part of a text frame that has arrived; False if it is not UTF-8.

        A large text frame can arrive over many reads: its bytes are checked as
        they come, with a decoder of their own, so invalid UTF-8 fails at once
        (RFC 6455 §8.1) rather than when the frame is complete.
        """
        if self._probe is None:
            if opcode == 0x1:  # TEXT (framing.py, which imports this module)
                self._probe = utf8_decoder()
            elif opcode == 0x0 and self._decoder is not None:
                self._probe = utf8_decoder()
                self._probe.setstate(self._decoder.getstate())
            else:
                return True
            self._probe_offset = 0
        arrived = memoryview(buf)[start + self._probe_offset : size]
        if masked:
            phase = self._probe_offset % 4
            key = bytes(buf[start - 4 : start])
            arrived = memoryview(apply_mask(arrived, key[phase:] + key[:phase]))
        self._probe_offset = size - start
        try:
            self._probe.decode(arrived)
        except UnicodeDecodeError:
            return False
        return True

    def _fail_at(self, pos: int, code: int, message: str) -> None:
        """Fail on a frame header, or pause before it if a message came first."""
        if self._message_produced:
            self._pause(pos)
        else:
            self._fail_protocol(code, message)

    def _report(self, event: Event) -> None:
        """Add an event for ``events_received`` (the first one makes the list)."""
        events = self._events
        if events is None:
            self._events = [event]
        else:
            events.append(event)

    def _pause(self, pos: int) -> None:
        # faye hands each message to its listeners before it parses the next
        # frame, so a reply goes out before a failure or close that follows in
        # the same read. Stop here; the next receive_data() call goes on.
        if self._buffer is not None:
            del self._buffer[:pos]
        self.paused = True
        self._probe = None  # the frame is parsed again from its start

    def _large_begin(
        self, b0: int, buf: bytearray, pos: int, start: int, size: int, length: int, masked: int
    ) -> None:
        """Hand a large frame whose header has arrived to a :class:`LargeFrame`."""
        self._probe = None
        self._probe_utf8(b0 & 0x0F, buf, start, start, masked)  # a text frame's decoder
        key = bytes(buf[start - 4 : start]) if masked else None
        frame = LargeFrame(b0, length, key, self._take_probe(), memoryview(buf)[start:size])
        if not frame.check_utf8():
            self._fail_at(pos, 1007, ERROR_UTF8)  # or parsed again from pos, if it pauses
            return
        self.large_frame = frame
        buf.clear()

    def _take_probe(self) -> codecs.IncrementalDecoder | None:
        # A call, not a read after the one above: mypy (and mypyc, which trusts it)
        # would take self._probe for the None assigned before _probe_utf8 set it.
        probe, self._probe = self._probe, None
        return probe

    def _large_arrived(
        self, frame: LargeFrame, data: bytes | bytearray | memoryview
    ) -> bytes | memoryview | None:
        """Add ``data`` to a large frame; once it is whole, parse it.

        Returns the bytes past the frame, or None while it is not whole or when it failed.
        """
        rest = frame.take(data)
        if frame.needed:
            if not frame.check_utf8():
                self._fail_protocol(1007, ERROR_UTF8)
            return None
        self.large_frame = None
        # Joining the pieces is a copy: worth it once they hold half the text.
        if frame.text is not None and 2 * frame.probed >= frame.length:
            return self._large_text(frame, rest)
        b0 = frame.b0
        self._data_frame(b0, b0 & 0x0F, b0 & 0x80, frame.payload())
        return None if self.state is CLOSED else rest

    def _large_text(self, frame: LargeFrame, rest: bytes | memoryview) -> bytes | memoryview | None:
        """``_message_done`` for a text message of one frame, decoded as it arrived."""
        if self.state != OPEN:
            return rest  # faye drops messages that arrive once we have sent our close
        try:
            text = frame.message_text()
        except UnicodeDecodeError:
            self._fail_protocol(1007, ERROR_UTF8)
            return None
        self._report(Message(text))
        self._message_produced = True
        self._produced += frame.length
        return rest
