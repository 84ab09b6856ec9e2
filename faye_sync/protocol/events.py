"""What a protocol object reports: small immutable values, compared by content."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Close", "Error", "Event", "Message", "Open", "Ping", "Pong"]


@dataclass(frozen=True, slots=True)
class Open:
    """The connection is open (after a draft-76 handshake body, or a client's 101)."""


@dataclass(frozen=True, slots=True)
class Message:
    """A whole message: ``str`` for text, ``bytes`` for binary."""

    data: str | bytes


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


@dataclass(frozen=True, slots=True)
class Close:
    """The connection is closed, for faye's ``close`` event.

    Hixie drafts carry no code and no reason: both are ``None`` there.
    """

    code: int | None
    reason: str | None


Event = Open | Message | Ping | Pong | Error | Close
