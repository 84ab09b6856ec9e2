"""Messages, their ids, and the merge of several channels into one order.

An id is ``"<ms>-<seq>"``, a Redis stream id: milliseconds of the clock that
stamped it and a sequence number within that millisecond. Ids compare as the
pair of integers, never as strings (``"9-0" < "10-0"``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..protocol.sse import encode_event

__all__ = [
    "RESET",
    "HubMessage",
    "IdKey",
    "before",
    "format_id",
    "id_key",
    "merge",
    "reset_message",
]

RESET = "reset"
"""The event of a gap: what the client asked for is no longer retained."""

IdKey = tuple[int, int]
ZERO: IdKey = (0, 0)


@dataclass(frozen=True, slots=True)
class HubMessage:
    """One published message. ``event`` is None for a plain message."""

    id: str
    channel: str
    event: str | None
    data: str
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _formatted: tuple[Callable[[HubMessage], Any], Any] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def event_stream_bytes(self) -> bytes:
        """The message as one event-stream event (``id``, ``event``, ``data``).

        Encoded once and kept: a fan-out writes the same bytes to every stream.
        """
        encoded = self._encoded
        if encoded is None:
            encoded = encode_event(self.data, event=self.event, id=self.id)
            object.__setattr__(self, "_encoded", encoded)  # a cache, not a change of value
        return encoded

    def formatted(self, format: Callable[[HubMessage], Any]) -> Any:
        """``format(self)``, kept for the next caller with the same ``format``.

        The sockets of a room share one ``format``: a fan-out then formats each
        message once per process, not once per socket.
        """
        kept = self._formatted
        if kept is not None and kept[0] is format:
            return kept[1]
        result = format(self)
        object.__setattr__(self, "_formatted", (format, result))  # a cache, as above
        return result


def id_key(message_id: str) -> IdKey:
    """``"12-3"`` -> ``(12, 3)``; ``"12"`` -> ``(12, 0)``.

    Raises:
        ValueError: not an id of that shape.
    """
    ms, dash, seq = message_id.partition("-")
    if not (_digits(ms) and (_digits(seq) if dash else not seq)):
        raise ValueError(f"not a hub message id (<ms>-<seq>): {message_id!r}")
    return int(ms), int(seq or 0)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 20


_MAX_SEQ = (1 << 64) - 1


def before(key: IdKey) -> IdKey:
    """The highest id below ``key``."""
    ms, seq = key
    return (ms, seq - 1) if seq else (ms - 1, _MAX_SEQ)


def format_id(key: IdKey) -> str:
    return f"{key[0]}-{key[1]}"


def reset_message(channel: str, resume: IdKey, reason: str, asked: str | None) -> HubMessage:
    """The ``reset`` event telling a subscriber that messages after ``asked`` are gone.

    Its id is the point from which resuming has no gap (what was retained starts
    after it), so a client that stores ids resumes correctly past it.
    """
    data = json.dumps({"channel": channel, "reason": reason, "last_id": asked})
    return HubMessage(format_id(resume), channel, RESET, data)


def merge(
    batches: Mapping[str, Sequence[HubMessage]], count: int
) -> tuple[list[tuple[IdKey, HubMessage]], dict[str, IdKey]]:
    """One id order out of per-channel batches, cut so that nothing older can follow.

    A channel that returned a full ``count`` may hold more right after its last
    id; messages of other channels past the lowest such id wait for the next read.

    Returns:
        the messages in id order with their keys, and the last id kept per channel that kept any.
    """
    cut: IdKey | None = None
    for messages in batches.values():
        if len(messages) >= count:
            last = id_key(messages[-1].id)
            cut = last if cut is None or last < cut else cut
    keyed: list[tuple[IdKey, HubMessage]] = []
    last_kept: dict[str, IdKey] = {}
    for channel, messages in batches.items():
        for message in messages:
            key = id_key(message.id)
            if cut is not None and key > cut:
                break
            keyed.append((key, message))
            last_kept[channel] = key
    keyed.sort(key=lambda pair: pair[0])
    return keyed, last_kept
