"""The RFC 6455 (hybi-13) frame layer, sans I/O: bytes in, events and bytes out.

States: OPEN → CLOSING (we sent a close frame) → CLOSED. A server's protocol is
made once its 101 is written, a client's once the 101 is validated, so both
start OPEN. The rules and messages follow faye's websocket-driver (hybi.js),
except where RFC 6455 says otherwise (the README lists each difference):

* A peer's close frame while OPEN is answered with the same (validated) code and
  reason; while CLOSING it is not answered. Either way ``Close`` is reported and
  the state is CLOSED. An empty close payload means 1000; a 1-byte one or a code
  outside 1000–1003, 1007–1014, 3000–4999 is answered with 1002, a reason that
  is not UTF-8 with 1007 (faye: 1002).
* A protocol violation reports ``Error`` then ``Close`` with its code (1002 for
  framing, masking included: faye sends 1003 for an unmasked frame; 1007 for
  invalid UTF-8 or DEFLATE data; 1009 for a message over ``max_length``), after
  writing a close frame with the same code and message. While CLOSING no second
  close frame is written, but the connection is closed at once (RFC 6455
  §7.1.7), where faye ignores the violation and waits for its close timeout.
* A client fails on a masked frame (RFC 6455 §5.1; faye accepts it).
* ``max_length`` bounds the whole message: the declared length of each frame is
  checked before its payload is read, and the message is checked again after
  the extensions (inflation) have run.
* Pings are answered at once with the same payload, also while CLOSING.
* One ``receive_data`` call produces at most about 1 MiB of messages (plus one
  message): then it pauses, so the caller can stop reading before inflation
  makes more.

Parser state is updated before events are handed out, so nothing is lost if the
caller's handling of one event raises. The caller's buffers are never changed.
"""

from __future__ import annotations

import codecs
import secrets
import struct
from collections.abc import Callable

from ..exceptions import ProtocolError
from ..extensions.base import ExtensionMessage
from .base import CLOSED, MAX_LENGTH, OPEN, VALID_CLOSE_CODES
from .events import Close, Error, Event, Message, Ping, Pong, set_close_code, set_close_reason
from .framing import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    FrameWriter,
    MessagePipeline,
    close_payload,
    truncated_reason,
)
from .large import ERROR_UTF8, LARGE_FRAME, LargeFrameReader, utf8_decoder
from .masking import apply_mask

# MAX_LENGTH and MessagePipeline are re-exported for the handshake and the client.
__all__ = ["MAX_LENGTH", "HybiProtocol", "MessagePipeline"]

# Message bytes one receive_data() call produces before it pauses at the next
# frame: a 64 KiB read of compressed messages could otherwise inflate to
# thousands of times its size before the caller can stop reading.
_MESSAGES_PER_CALL = 2**20

# Payloads up to this size are unmasked from a copy: cheaper than a memoryview.
_COPY_LIMIT = 65536

_OPCODES = frozenset((CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG))

_unpack_medium = struct.Struct("!H").unpack_from
_unpack_long = struct.Struct("!Q").unpack_from

# A server's close frame header for each payload length (a control frame's: 0 to 125).
_CLOSE_HEADERS = [bytes((0x80 | CLOSE, length)) for length in range(126)]

_new_close = Close.__new__

ERROR_TOO_LARGE = "WebSocket frame length too large"
ERROR_UNMASKED = "Received unmasked frame but masking is required"
ERROR_MASKED = "Received masked frame from the server"


class HybiProtocol(LargeFrameReader, FrameWriter):
    """One RFC 6455 connection's frame layer.

    Args:
        is_client: a client masks what it sends; a server requires masked input.
        max_length: the largest message accepted, in bytes, before and after
            extensions.
        extensions: the negotiated extension sessions, or None.
        mask_key: where a client's 4-byte mask keys come from (tests fix it).
        require_masking: refuse unmasked frames (1002); by default a server
            does (faye's ``requireMasking``). A client always refuses masked
            frames.
    """

    version = "hybi-13"

    # Slots: a server holds one per idle connection, and a dict of these cost
    # 64 bytes more. The two mixins have none of their own.
    __slots__ = (
        "_buffer",
        "_decoder",
        "_events",
        "_extensions",
        "_fragments",
        "_mask_key",
        "_message_first",
        "_message_length",
        "_message_produced",
        "_output",
        "_probe",
        "_probe_offset",
        "_produced",
        "is_client",
        "large_frame",
        "max_length",
        "paused",
        "require_masking",
        "state",
    )

    def __init__(
        self,
        *,
        is_client: bool,
        max_length: int = MAX_LENGTH,
        extensions: MessagePipeline | None = None,
        mask_key: Callable[[], bytes] = lambda: secrets.token_bytes(4),
        require_masking: bool | None = None,
    ) -> None:
        self.is_client = is_client
        self.require_masking = not is_client if require_masking is None else require_masking
        self.max_length = max_length
        self.state = OPEN
        self._extensions = extensions
        self._mask_key = mask_key
        # Made on first use, so an idle connection holds none (56 bytes each): input
        # not parsed yet, events and frames not taken yet (None once taken).
        self._buffer: bytearray | None = None
        self._events: list[Event] | None = None
        self._output: list[bytes] | None = None
        # True when receive_data() stopped before a frame that fails or closes,
        # so that the messages before it can be answered; call it again to go on.
        self.paused = False
        self._message_produced = False
        self._produced = 0  # message bytes this receive_data() call has made
        self._probe: codecs.IncrementalDecoder | None = None  # a text frame still arriving
        self._probe_offset = 0
        # The message being reassembled from fragments (None between them).
        self._fragments: bytearray | None = None
        self._message_first = 0  # its first frame's opcode and RSV1 bit (0x40); 0 between
        self._message_length = 0
        self._decoder: codecs.IncrementalDecoder | None = None
        self.large_frame = None

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the socket; events and replies are queued."""
        # One long loop on purpose: this is the hot path (every frame of every
        # message passes here), and in CPython each method call per frame costs
        # more than the header checks themselves. Locals stand in for attributes
        # for the same reason. The rare outcomes (failures, pauses, control
        # frames, fragments) leave the loop through methods.
        self.paused = False
        self._message_produced = False
        self._produced = 0
        if self.state is CLOSED:  # states are ReadyState members: identity is enough
            return
        if self.large_frame is not None:
            rest = self._large_arrived(self.large_frame, data)
            if rest is None:  # the frame goes on, or it failed
                return
            data = rest
        buf = self._buffer
        if buf is None:  # the first bytes (or the first after a large frame)
            if data[:1] == b"\x88" and self._lone_close(data):
                return  # a close frame alone: a short connection's usual last read
            buf = self._buffer = bytearray()
        buf += data
        pos = 0
        size = len(buf)
        max_length = self.max_length
        while size - pos >= 1:
            if self._produced >= _MESSAGES_PER_CALL:
                self._pause(pos)
                return
            b0 = buf[pos]
            opcode = b0 & 0x0F
            if b0 & 0x70:
                if not self._rsv_allowed(b0, opcode):
                    self._fail_at(
                        pos,
                        1002,
                        "One or more reserved bits are on: "
                        f"reserved1 = {b0 >> 6 & 1}, reserved2 = {b0 >> 5 & 1}, "
                        f"reserved3 = {b0 >> 4 & 1}",
                    )
                    return
            if opcode not in _OPCODES:
                self._fail_at(pos, 1002, f"Unrecognized frame opcode: {opcode}")
                return
            fin = b0 & 0x80
            if opcode >= CLOSE:
                if not fin:
                    self._fail_at(
                        pos, 1002, f"Received fragmented control frame: opcode = {opcode}"
                    )
                    return
            elif opcode == CONTINUATION:
                if not self._message_first:
                    self._fail_at(pos, 1002, "Received unexpected continuation frame")
                    return
            elif self._message_first:
                self._fail_at(
                    pos,
                    1002,
                    "Received new data frame but previous continuous frame is unfinished",
                )
                return
            if size - pos < 2:
                break
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            masked = b1 & 0x80
            if length <= 125:
                if self._message_length + length > max_length:
                    self._fail_at(pos, 1009, ERROR_TOO_LARGE)
                    return
            if masked:
                if self.is_client:  # RFC 6455 §5.1: a client MUST fail on a masked frame
                    self._fail_at(pos, 1002, ERROR_MASKED)
                    return
            elif self.require_masking:  # faye says 1003; RFC 6455 §7.4.1 names 1002
                self._fail_at(pos, 1002, ERROR_UNMASKED)
                return
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                (length,) = _unpack_medium(buf, pos + 2)
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                (length,) = _unpack_long(buf, pos + 2)
                header = 10
                if length >> 63:
                    self._fail_at(pos, 1002, "Frame length has its most significant bit set")
                    return
            if header > 2:
                if opcode >= CLOSE:
                    self._fail_at(
                        pos, 1002, f"Received control frame having too long payload: {length}"
                    )
                    return
                if self._message_length + length > max_length:
                    self._fail_at(pos, 1009, ERROR_TOO_LARGE)
                    return
            start = pos + header + (4 if masked else 0)
            end = start + length
            if end > size:
                if length >= LARGE_FRAME and size >= start and self._extensions is None:
                    self._large_begin(b0, buf, pos, start, size, length, masked)
                    return
                if opcode < CLOSE and size > start and self._extensions is None:
                    if not self._probe_utf8(opcode, buf, start, size, masked):
                        self._fail_at(pos, 1007, ERROR_UTF8)
                        return
                break
            self._probe = None
            if opcode == CLOSE and self._message_produced:
                self._pause(pos)
                return
            if masked:
                # Slices of the buffer: for a small payload a copy costs less
                # than a memoryview (about 2,800 instructions less per frame).
                # No name for the view: it must be gone before the buffer shrinks.
                payload = apply_mask(
                    buf[start:end] if length <= _COPY_LIMIT else memoryview(buf)[start:end],
                    buf[start - 4 : start],
                )
            else:
                payload = bytes(buf[start:end])
            pos = end
            if opcode >= CLOSE:  # one test for data frames (compiled, each reads a global)
                if opcode == CLOSE:  # once per connection: one call less than _control_frame
                    self._peer_close(payload)
                else:
                    self._control_frame(opcode, payload)
            elif fin and opcode != CONTINUATION:  # a whole message: what _data_frame does first
                self._message_done(opcode, b0 & 0x40, payload)
            else:
                self._data_frame(b0, opcode, fin, payload)
            if self._buffer is None:  # closed (_finish): the rest is dropped
                return
        if pos:
            del buf[:pos]

    def receive_eof(self) -> None:
        """The peer closed its end of the TCP connection (or it broke)."""
        if self.state != CLOSED:  # once closed (a second EOF too) there is nothing to do
            self._finish(1006, "")

    # ----------------------------------------------------------------- output

    def events_received(self) -> list[Event]:
        """Return and forget the events produced so far."""
        events = self._events
        if events is None:
            return []
        self._events = None
        return events

    def data_to_send(self) -> bytes:
        """Return and forget the bytes to write to the socket, in order."""
        output = self._output
        if output is None:  # (never an empty list: the first frame makes it)
            return b""
        self._output = None
        return output[0] if len(output) == 1 else b"".join(output)

    def close_expected(self) -> bool:
        """True once the TCP connection should be closed (the handshake is over)."""
        return self.state == CLOSED

    def fail(self, code: int, reason: str) -> None:
        """Close at once with ``code`` (a close timeout, a dead peer): no handshake."""
        if self.state != CLOSED:
            self._finish(code, reason)

    # -------------------------------------------------------------- internals

    def _rsv_allowed(self, b0: int, opcode: int) -> bool:
        if self._extensions is None or opcode not in (TEXT, BINARY):
            return False
        return self._extensions.valid_frame_rsv(
            opcode, bool(b0 & 0x40), bool(b0 & 0x20), bool(b0 & 0x10)
        )

    def _data_frame(self, b0: int, opcode: int, fin: int, payload: bytes) -> None:
        if opcode != CONTINUATION:
            if fin:  # the common case: a whole message in one frame
                self._message_done(opcode, b0 & 0x40, payload)
                return
            self._message_first = b0 & 0x4F
            if opcode == TEXT and self._extensions is None:
                self._decoder = utf8_decoder()
        self._message_length += len(payload)
        if self._decoder is not None:
            try:  # fail fast on invalid UTF-8; the text itself is made once, at the end
                self._decoder.decode(payload, bool(fin))
            except UnicodeDecodeError:
                self._fail_protocol(1007, ERROR_UTF8)
                return
        # One buffer, not one object per fragment: a peer sending many tiny or
        # empty fragments costs no more than max_length.
        fragments = self._fragments
        if fragments is None:
            fragments = self._fragments = bytearray()
        fragments += payload
        if not fin:
            return
        data, first = bytes(fragments), self._message_first
        self._fragments = None
        self._message_first = 0
        self._message_length = 0
        self._decoder = None
        self._message_done(first & 0x0F, first & 0x40, data)

    def _message_done(self, opcode: int, rsv1: int, data: bytes) -> None:
        if self._extensions is not None:
            try:
                message = self._extensions.process_incoming_message(
                    ExtensionMessage(bool(rsv1), False, False, opcode, data)
                )
            except ProtocolError as exc:
                # faye reports an oversized inflated message in its own words
                self._fail_protocol(exc.code, ERROR_TOO_LARGE if exc.code == 1009 else str(exc))
                return
            data = message.data
            if len(data) > self.max_length:
                self._fail_protocol(1009, ERROR_TOO_LARGE)
                return
        if self.state is not OPEN:
            return  # faye drops messages that arrive once we have sent our close
        if opcode == TEXT:
            try:
                event = Message(data.decode("utf-8"))
            except UnicodeDecodeError:
                self._fail_protocol(1007, ERROR_UTF8)
                return
        else:
            event = Message(data)
        events = self._events  # _report, inline: once per message
        if events is None:
            self._events = [event]
        else:
            events.append(event)
        self._message_produced = True
        self._produced += len(data)

    def _control_frame(self, opcode: int, payload: bytes) -> None:
        if opcode == PING:
            if self.state != CLOSED:
                self._queue_frame(self._frame(0x80 | PONG, payload))
            self._report(Ping(payload))
        elif opcode == PONG:
            self._report(Pong(payload))
        else:
            self._peer_close(payload)

    def _lone_close(self, data: bytes | bytearray | memoryview) -> bool:
        """receive_data's loop for a server's masked close frame alone, or False."""
        length = len(data) - 6  # 2 bytes of header, 4 of mask
        if (
            not 0 <= length <= 125  # (a control frame's payload)
            or data[1] != 0x80 | length  # masked, and ends where data does
            or self.is_client
            or self._message_length + length > self.max_length
        ):
            return False
        self._probe = None
        self._peer_close(apply_mask(data[6:], bytes(data[2:6])))
        return True

    def _peer_close(self, payload: bytes) -> None:
        code, reason = 1000, ""
        answer = None  # the reply's payload, when it is the peer's own (valid code and reason)
        if len(payload) >= 2:
            (code,) = _unpack_medium(payload, 0)
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                reason = ""
                if code in VALID_CLOSE_CODES:
                    code = 1007  # RFC 6455 §8.1, invalid payload data; faye answers 1002
            else:
                answer = payload
            if code not in VALID_CLOSE_CODES:
                code, answer = 1002, None
        elif payload:
            code = 1002
        if self.state is OPEN:  # a ReadyState member: identity is enough
            if answer is None:
                answer = close_payload(code, reason.encode("utf-8"))
            # _frame and _queue_frame for a server, inline: once per connection
            frame = (
                self._frame(0x88, answer)
                if self.is_client
                else _CLOSE_HEADERS[len(answer)] + answer
            )
            output = self._output
            if output is None:
                self._output = [frame]
            else:
                output.append(frame)
        self._finish(code, reason)

    def _fail_protocol(self, code: int, message: str) -> None:
        if self.state == CLOSED:
            return
        self._report(Error(message, code))
        if self.state == OPEN:
            self._queue_frame(
                self._frame(0x80 | CLOSE, close_payload(code, truncated_reason(message)))
            )
        # While CLOSING our close frame is already out: RFC 6455 §7.1.7 still says to
        # close the connection (faye ignores the violation and waits for the timeout).
        self._finish(code, message)

    def _finish(self, code: int, reason: str) -> None:
        self.state = CLOSED
        self._buffer = None
        self.large_frame = None
        self._fragments = None
        if self._extensions is not None:
            self._extensions.close()
        # Close(code, reason) without its __init__, which a class call enters from C
        event = _new_close(Close)
        set_close_code(event, code)
        set_close_reason(event, reason)
        events = self._events  # _report, inline: once per connection
        if events is None:
            self._events = [event]
        else:
            events.append(event)
