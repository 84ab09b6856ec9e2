"""What a protocol object reports: small immutable values, compared by content."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Close", "Error", "Event", "Message", "Open", "Ping", "Pong"]


@dataclass(frozen=True, slots=True)
class Open:
    """The connection is open (after a draft-76 handshake body, or a client's 101)."""


@dataclass(frozen=True, slots=True, init=False)
class Message:
    """A whole message: ``str`` for text, ``bytes`` for binary."""

    data: str | bytes

    def __init__(self, data: str | bytes) -> None:
        # One per message: the frozen dataclass's own __init__ goes through
        # object.__setattr__ by name, twice the cost of setting the slot.
        _set_message_data(self, data)


_set_message_data = Message.__dict__["data"].__set__  # the slot's setter


@dataclass(frozen=True, slots=True)
class Ping:
    """The peer pinged; the pong has already been queued."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """The peer answered a ping."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Error:
    """The peer broke a rule; a :class:`Close` with ``code`` follows."""

    message: str
    code: int


@dataclass(frozen=True, slots=True, init=False)
class Close:
    """The connection is closed, for faye's ``close`` event.

    Hixie drafts carry no code and no reason: both are ``None`` there.
    """

    code: int | None
    reason: str | None

    def __init__(self, code: int | None, reason: str | None) -> None:
        # One per connection, made on the handshake's path: Message's way (above).
        _set_close_code(self, code)
        _set_close_reason(self, reason)


# The slots' setters: hybi.py makes its Close with them, without a class call.
set_close_code = _set_close_code = Close.__dict__["code"].__set__
set_close_reason = _set_close_reason = Close.__dict__["reason"].__set__


Event = Open | Message | Ping | Pong | Error | Close
