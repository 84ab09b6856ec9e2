"""The interface every frame layer offers (hybi-13, and hixie-75/76 behind ``allow_drafts``).

With it, the rules all of them share: the ready states, the default message
limit and which close codes may be sent.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

from .events import Close, Error, Event

if TYPE_CHECKING:
    from .large import LargeFrame

__all__ = [
    "CLOSED",
    "CLOSING",
    "CONNECTING",
    "MAX_LENGTH",
    "MIXIN_SLOTS",
    "OPEN",
    "VALID_CLOSE_CODES",
    "FailedProtocol",
    "FrameProtocol",
    "NoBinaryNoPings",
    "ReadyState",
    "validate_close_arguments",
]


class ReadyState(IntEnum):
    """A connection's state, with the numbers of the browser's ``readyState``."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


CONNECTING, OPEN, CLOSING, CLOSED = ReadyState

# 1 MiB, the websockets package's default (faye's is 2**26 - 1): what one
# message may cost the receiver, also after inflation.
MAX_LENGTH = 2**20

#: ``__slots__`` of a mixin whose attributes the concrete class lists.
MIXIN_SLOTS: tuple[str, ...] = ()

#: The codes a close frame may carry (RFC 6455 §7.4.1, §7.4.2 and IANA's registry).
VALID_CLOSE_CODES = frozenset([*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)])


def validate_close_arguments(code: int, reason: str, *, strict: bool = True) -> bytes:
    """Check ``close()``'s arguments as browsers do; return the reason's bytes.

    ``strict=False`` admits every code a peer may send (1001 for a server
    going away, 1011, …), for the library's own closes.
    """
    if not strict and code not in VALID_CLOSE_CODES:
        raise ValueError(f"{code} is not a close code that may be sent (RFC 6455 §7.4.1)")
    if strict and not (code == 1000 or 3000 <= code <= 4999):
        raise ValueError(
            "Failed to execute 'close' on WebSocket: The code must be either 1000, "
            f"or between 3000 and 4999. {code} is neither."
        )
    encoded = reason.encode("utf-8")
    if len(encoded) > 123:
        raise ValueError(
            f"close reason is {len(encoded)} bytes of UTF-8; the limit is 123 "
            "(a control frame holds 125 bytes, 2 of them the code)"
        )
    return encoded


class FrameProtocol(Protocol):
    """Sans-I/O: feed it bytes, collect events and the bytes to write back.

    ``state`` is one of CONNECTING (0), OPEN (1), CLOSING (2), CLOSED (3). The
    ``send_*`` methods return False when the state does not allow them (faye's
    boolean results); ``send_close`` raises ValueError for bad arguments.
    """

    state: ReadyState
    version: str
    is_client: bool
    paused: bool  # input is buffered: call receive_data(b"") to go on
    large_frame: LargeFrame | None  # its payload can be read in place (protocol/large.py)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None: ...
    def receive_eof(self) -> None: ...
    def events_received(self) -> list[Event]: ...
    def data_to_send(self) -> bytes: ...
    def close_expected(self) -> bool: ...
    def send_text(self, text: str) -> bool: ...
    def send_binary(self, data: bytes | bytearray | memoryview) -> bool: ...
    def send_ping(self, payload: bytes = b"") -> bool: ...
    def send_pong(self, payload: bytes = b"") -> bool: ...
    def send_close(self, code: int = 1000, reason: str = "", *, strict: bool = True) -> bool: ...
    def fail(self, code: int, reason: str) -> None: ...


class NoBinaryNoPings:
    """The sends of a frame layer without binary, ping or pong frames: all refused."""

    large_frame: LargeFrame | None = None  # nor large frames read in place

    def send_binary(self, data: bytes | bytearray | memoryview) -> bool:
        """Always False: there is no binary frame (faye's ``binary()`` too)."""
        return False

    def send_ping(self, payload: bytes = b"") -> bool:
        """Always False: there is no ping."""
        return False

    def send_pong(self, payload: bytes = b"") -> bool:
        """Always False: there is no pong."""
        return False


class FailedProtocol(NoBinaryNoPings):
    """A connection whose handshake failed: it reports ``error`` then ``close``.

    faye fires both for a rejected handshake (1002 with the rejection's text),
    never ``open``; every send is refused.
    """

    version = "hybi-13"
    is_client = False
    paused = False

    def __init__(self, message: str, code: int = 1002) -> None:
        self.state = CLOSED
        self._events: list[Event] = [Error(message, code), Close(code, message)]

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def receive_eof(self) -> None:
        pass

    def events_received(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        return b""

    def close_expected(self) -> bool:
        return True

    def send_text(self, text: str) -> bool:
        return False

    def send_close(self, code: int = 1000, reason: str = "", *, strict: bool = True) -> bool:
        validate_close_arguments(code, reason, strict=strict)
        return False

    def fail(self, code: int, reason: str) -> None:
        pass
