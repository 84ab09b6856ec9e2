"""The interface every frame layer offers (hybi-13, and hixie-75/76 behind ``allow_drafts``)."""

from __future__ import annotations

from typing import Protocol

from .events import Close, Error, Event
from .hybi import validate_close_arguments

__all__ = ["FailedProtocol", "FrameProtocol"]


class FrameProtocol(Protocol):
    """Sans-I/O: feed it bytes, collect events and the bytes to write back.

    ``state`` is one of CONNECTING (0), OPEN (1), CLOSING (2), CLOSED (3). The
    ``send_*`` methods return False when the state does not allow them (faye's
    boolean results); ``send_close`` raises ValueError for bad arguments.
    """

    state: int
    version: str
    is_client: bool
    paused: bool  # input is buffered: call receive_data(b"") to go on

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


class FailedProtocol:
    """A connection whose handshake failed: it reports ``error`` then ``close``.

    faye fires both for a rejected handshake (1002 with the rejection's text),
    never ``open``; every send is refused.
    """

    version = "hybi-13"
    is_client = False
    paused = False

    def __init__(self, message: str, code: int = 1002) -> None:
        self.state = 3  # CLOSED
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

    def send_binary(self, data: bytes | bytearray | memoryview) -> bool:
        return False

    def send_ping(self, payload: bytes = b"") -> bool:
        return False

    def send_pong(self, payload: bytes = b"") -> bool:
        return False

    def send_close(self, code: int = 1000, reason: str = "", *, strict: bool = True) -> bool:
        validate_close_arguments(code, reason, strict=strict)
        return False

    def fail(self, code: int, reason: str) -> None:
        pass
