"""RFC 6455 frames out: the header encodings, masking, and the sending half of
:class:`~faye_sync.protocol.hybi.HybiProtocol`.

A frame is made whole, header and payload in one ``bytes``, and appended to
the protocol's output in the order the calls came: the deflate context and the
peer both need data frames in that order.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Protocol

from ..exceptions import ProtocolError
from ..extensions.base import ExtensionMessage
from ._mypyc import trait
from .base import MIXIN_SLOTS, OPEN, ReadyState, validate_close_arguments
from .large import LARGE_FRAME
from .masking import apply_mask

__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "PING",
    "PONG",
    "TEXT",
    "FrameWriter",
    "MessagePipeline",
    "close_payload",
    "truncated_reason",
]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

_pack_short = struct.Struct("!BB").pack
_pack_medium = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack
_pack_code = struct.Struct("!H").pack


class MessagePipeline(Protocol):
    """The part of :class:`~faye_sync.extensions.Extensions` the frame layer uses."""

    def valid_frame_rsv(self, opcode: int, rsv1: bool, rsv2: bool, rsv3: bool) -> bool: ...

    def process_incoming_message(self, message: ExtensionMessage) -> ExtensionMessage: ...

    def process_outgoing_message(self, message: ExtensionMessage) -> ExtensionMessage: ...

    def close(self) -> None: ...


def close_payload(code: int, reason: bytes) -> bytes:
    """A close frame's payload: the code, then the reason's UTF-8."""
    return _pack_code(code) + reason


def truncated_reason(reason: str) -> bytes:
    """``reason`` in UTF-8, cut to what a close frame holds (123 bytes) between characters."""
    return reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")


@trait  # a mixin: mypyc compiles HybiProtocol's two halves as traits
class FrameWriter:
    """The ``send_*`` half of :class:`~faye_sync.protocol.hybi.HybiProtocol`."""

    # None of its own: HybiProtocol lists the attributes. (A name, not the literal
    # ``()``, which mypy would hold this mixin's assignments against.)
    __slots__ = MIXIN_SLOTS

    state: ReadyState
    is_client: bool
    _mask_key: Callable[[], bytes]
    _extensions: MessagePipeline | None
    _output: list[bytes] | None  # None until a frame is queued, and once they are taken

    def _fail_protocol(self, code: int, message: str) -> None:  # HybiProtocol's
        raise NotImplementedError

    def send_text(self, text: str) -> bool:
        """Queue a text message; False once closing (faye drops it silently)."""
        return self._send_message(TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes | bytearray | memoryview) -> bool:
        """Queue a binary message; False once closing."""
        return self._send_message(BINARY, bytes(data))

    def send_ping(self, payload: bytes = b"") -> bool:
        """Queue a ping; False once closing. The payload holds at most 125 bytes."""
        return self._send_control(PING, payload)

    def send_pong(self, payload: bytes = b"") -> bool:
        """Queue an unsolicited pong; False once closing."""
        return self._send_control(PONG, payload)

    def send_close(self, code: int = 1000, reason: str = "", *, strict: bool = True) -> bool:
        """Start the closing handshake; False if it has already started.

        Raises:
            ValueError: ``code`` is neither 1000 nor in 3000–4999 (with
                ``strict=False``: not a code that may be sent), or ``reason``
                is over 123 bytes of UTF-8.
        """
        encoded = validate_close_arguments(code, reason, strict=strict)
        if self.state != OPEN:
            return False
        self._queue_frame(self._frame(0x80 | CLOSE, close_payload(code, encoded)))
        self.state = ReadyState.CLOSING
        return True

    def _send_control(self, opcode: int, payload: bytes) -> bool:
        if self.state != OPEN:
            return False
        if len(payload) > 125:
            raise ValueError(f"a control frame payload holds at most 125 bytes, not {len(payload)}")
        self._queue_frame(self._frame(0x80 | opcode, payload))
        return True

    def _queue_frame(self, frame: bytes) -> None:
        """Add a frame for ``data_to_send`` (the first one makes the list)."""
        output = self._output
        if output is None:
            self._output = [frame]
        else:
            output.append(frame)

    def _frame(self, first: int, payload: bytes) -> bytes:
        length = len(payload)
        if self.is_client:
            if length <= 125:
                header = _pack_short(first, 0x80 | length)
            elif length <= 0xFFFF:
                header = _pack_medium(first, 0xFE, length)
            else:
                header = _pack_long(first, 0xFF, length)
            key = self._mask_key()
            return header + key + apply_mask(payload, key)
        if length <= 125:
            header = _pack_short(first, length)
        elif length <= 0xFFFF:
            header = _pack_medium(first, 126, length)
        else:
            header = _pack_long(first, 127, length)
        return header + payload

    def _send_message(self, opcode: int, data: bytes) -> bool:
        if self.state is not OPEN:  # a ReadyState member: identity is enough
            return False
        first = 0x80 | opcode
        if self._extensions is not None:
            try:
                message = self._extensions.process_outgoing_message(
                    ExtensionMessage(False, False, False, opcode, data)
                )
            except ProtocolError as exc:
                self._fail_protocol(exc.code, str(exc))
                return False
            data = message.data
            first |= message.rsv1 << 6 | message.rsv2 << 5 | message.rsv3 << 4
        output = self._output  # _queue_frame, inline: once per message
        if len(data) < LARGE_FRAME:
            if output is None:
                self._output = [self._frame(first, data)]
            else:
                output.append(self._frame(first, data))
        elif output is None:
            self._output = [*self._frame_parts(first, data)]
        else:
            output += self._frame_parts(first, data)
        return True

    def _frame_parts(self, first: int, payload: bytes) -> tuple[bytes, bytes]:
        """A frame of ``LARGE_FRAME`` bytes or more as header and payload, not joined.

        ``data_to_send`` joins them; :meth:`frames_to_send` hands them to a writer
        that sends both with one ``sendmsg``, so the payload is never copied.
        """
        if self.is_client:
            key = self._mask_key()
            return _pack_long(first, 0xFF, len(payload)) + key, apply_mask(payload, key)
        return _pack_long(first, 127, len(payload)), payload

    def frames_to_send(self) -> list[bytes]:
        """Like ``data_to_send``, but a large frame's header and payload stay apart."""
        output = self._output
        if output is None:
            return []
        self._output = None
        return output
