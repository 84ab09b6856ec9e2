"""The ``memory://`` engine: one process, no dependency, the same ids and rules as Redis.

Retention is exact (``max_len`` messages and/or ``max_age`` seconds per channel),
and the epoch is the engine's creation: an id from an earlier process is older
than it, so a client that kept one gets a reset rather than a silent skip.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Mapping

from ..blocking.backends import Signal, detect_backend
from .engine import Batches, Engine, State
from .message import ZERO, HubMessage, IdKey, format_id, id_key

__all__ = ["MemoryEngine"]


class _Channel:
    __slots__ = ("keys", "messages", "stamps", "trimmed")

    def __init__(self) -> None:
        self.keys: list[IdKey] = []
        self.messages: list[HubMessage] = []
        self.stamps: list[float] = []  # monotonic publish times, for max_age
        self.trimmed: IdKey = ZERO


class MemoryEngine(Engine):
    """Channels as lists in this process; ``read`` waits on a signal set by ``publish``."""

    def __init__(self, *, max_len: int | None = 10_000, max_age: float | None = None) -> None:
        self._max_len = max_len
        self._max_age = max_age
        self._channels: dict[str, _Channel] = {}
        self._lock = threading.Lock()  # short sections only, never held while waiting
        self._last: IdKey = (_now_ms(), 0)
        self._epoch = self._last
        self._signal: Signal | None = None  # made by the first read, of the reader's kind
        self._interrupted = False  # the reader's channels changed: return from read

    def publish(self, channel: str, data: str, event: str | None) -> str:
        with self._lock:
            now = _now_ms()
            key = (now, 0) if now > self._last[0] else (self._last[0], self._last[1] + 1)
            self._last = key
            message = HubMessage(format_id(key), channel, event, data)
            stored = self._channels.get(channel)
            if stored is None:
                stored = self._channels[channel] = _Channel()
            stored.keys.append(key)
            stored.messages.append(message)
            stored.stamps.append(time.monotonic())
            self._trim(stored)
        if self._signal is not None:
            self._signal.set()
        return message.id

    def _trim(self, stored: _Channel) -> None:
        drop = 0
        if self._max_len is not None:
            drop = max(0, len(stored.keys) - self._max_len)
        if self._max_age is not None:
            oldest = time.monotonic() - self._max_age
            drop = max(drop, bisect.bisect_left(stored.stamps, oldest))
        if drop:
            stored.trimmed = stored.keys[drop - 1]
            del stored.keys[:drop], stored.messages[:drop], stored.stamps[:drop]

    def read(self, positions: Mapping[str, str], *, count: int, block: float) -> Batches:
        if self._signal is None:
            self._signal = detect_backend().signal()
        deadline = time.monotonic() + block
        while True:
            self._signal.clear()  # before looking: a publish after this sets it again
            found, state = self.history(positions, count)
            found = {channel: messages for channel, messages in found.items() if messages}
            remaining = deadline - time.monotonic()
            if found or remaining <= 0 or self._interrupted:
                self._interrupted = False
                return found, state
            self._signal.wait(remaining)

    def history(self, afters: Mapping[str, str], count: int) -> Batches:
        with self._lock:
            found: dict[str, list[HubMessage]] = {}
            for channel, after in afters.items():
                stored = self._channels.get(channel)
                if stored is None:
                    found[channel] = []
                    continue
                if self._max_age is not None:
                    self._trim(stored)
                start = bisect.bisect_right(stored.keys, id_key(after))
                found[channel] = stored.messages[start : start + count]
            return found, self._state(afters)

    def state(self, channels: Iterable[str]) -> State:
        with self._lock:
            return self._state(channels)

    def _state(self, channels: Iterable[str]) -> State:
        trimmed = {
            channel: stored.trimmed if (stored := self._channels.get(channel)) else ZERO
            for channel in channels
        }
        return State(self._epoch, self._last, trimmed)

    def interrupt(self) -> None:
        self._interrupted = True
        if self._signal is not None:
            self._signal.set()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
