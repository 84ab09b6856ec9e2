"""A subscription: a bounded queue fed by the hub's reader, after a gap-free join.

Joining from an id runs in the consumer (its ``get``), a page at a time, so a
long history is read as fast as it is consumed, never all at once:

1. catching up: pages of history; live messages are ignored (they are in the
   store, and the pages will reach them);
2. once a page comes back short (history is nearly read), live messages are
   buffered from then on, and pages continue until one comes back short again:
   whatever was published after that read is in the buffer;
3. live: the buffer's messages above the last one queued follow the history,
   and from then on the reader queues directly. Ids dedupe every step.

A live subscription whose queue is empty may hand the reader a *sink*
(:meth:`deliver_directly`): the reader then gives it each read's messages
itself, with no task woken per subscriber, until the sink leaves some (its
consumer has fallen behind): those and the later ones queue again, bounds and
all.

Gaps are checked with every page: a channel whose messages after its id are
gone (trimmed, or from an earlier epoch) gets a ``reset`` in its place in the
id order, and its history goes on from where what is retained starts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from ..blocking.backends import Signal
from .engine import gaps
from .message import RESET, ZERO, HubMessage, IdKey, format_id, id_key, merge, reset_message

if TYPE_CHECKING:
    from .core import Hub

__all__ = ["Sink", "Subscription"]

Sink = Callable[[list[HubMessage]], int]
"""Delivers messages without blocking; returns how many it took (see ``deliver_directly``)."""

_CATCHING_UP, _BUFFERING, _LIVE = 0, 1, 2


class Subscription:
    """Messages of some channels, in id order, from a bounded queue.

    Iterate it, or call :meth:`get`. It ends when closed (:meth:`close`, or the
    hub closing) or cut for overflow (:attr:`overflowed`): a consumer slower
    than the channels, past ``max_messages`` or ``max_bytes`` queued, is cut
    rather than allowed to grow memory; it resumes from the last id it got.
    """

    __slots__ = (
        "_after",
        "_asked",
        "_buffer",
        "_bytes",
        "_direct",
        "_everything",
        "_hub",
        "_last",
        "_on_overflow",
        "_page",
        "_phase",
        "_queue",
        "_signal",
        "_sink",
        "channels",
        "closed",
        "drop",
        "max_bytes",
        "max_messages",
        "overflowed",
    )

    def __init__(
        self,
        hub: Hub,
        channels: Sequence[str],
        *,
        last_id: str | None,
        max_messages: int,
        max_bytes: int,
        signal: Signal,
        drop: bool = False,
        on_overflow: Callable[[Subscription], object] | None = None,
    ) -> None:
        self._hub = hub
        self.channels = tuple(channels)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.drop = drop
        self._on_overflow = on_overflow
        self._signal = signal
        self._queue: deque[HubMessage] = deque()
        self._bytes = 0
        self._buffer: list[tuple[IdKey, HubMessage]] = []
        self._asked = last_id
        self._after: dict[str, IdKey] = {}
        self._page = max(1, min(500, max_messages // 2))
        self.closed = False
        self.overflowed = False
        self._last = ZERO  # the highest id queued: later ones at or below it are repeats
        self._sink: Sink | None = None
        self._direct: list[HubMessage] = []  # for the sink, from the read being dispatched
        self._everything = last_id == "0"  # by request: no reset for what is not retained
        if last_id is None:
            self._phase = _LIVE
        else:
            self._phase = _CATCHING_UP
            self._after = dict.fromkeys(self.channels, id_key(last_id))

    # -- the consumer's side ---------------------------------------------------

    def get(self, timeout: float | None = None) -> HubMessage | None:
        """The next message; None after ``timeout`` seconds or once ended (see :attr:`ended`).

        Raises:
            HubUnavailable: reading history failed (the store is unreachable).
        """
        batch = self.get_batch(1, timeout)
        return batch[0] if batch else None

    def get_batch(self, limit: int, timeout: float | None = None) -> list[HubMessage]:
        """Up to ``limit`` queued messages, waiting up to ``timeout`` for the first."""
        deadline = None if timeout is None else self._hub._now() + timeout
        while True:
            with self._hub._lock:
                if self._queue:
                    return self._take(limit)
                if self.closed:
                    return []
                phase = self._phase
                if phase == _LIVE:
                    self._signal.clear()  # under the lock: the next offer sets it
            if phase != _LIVE:
                self._catch_up()
                continue
            remaining = None if deadline is None else deadline - self._hub._now()
            if remaining is not None and remaining <= 0:
                return []
            self._signal.wait(remaining)

    def _take(self, limit: int) -> list[HubMessage]:
        queue = self._queue
        batch = [queue.popleft() for _ in range(min(limit, len(queue)))]
        self._bytes -= sum(len(message.data) for message in batch)
        return batch

    @property
    def ended(self) -> bool:
        """True once closed or cut: nothing more arrives (what is queued can still be read)."""
        return self.closed

    def __iter__(self) -> Iterator[HubMessage]:
        while True:
            message = self.get()
            if message is None:
                return
            yield message

    def deliver_directly(self, sink: Sink) -> bool:
        """Have the reader call ``sink(messages)`` itself while nothing is queued.

        Only a live subscription with an empty queue switches (True); otherwise
        the queue must be read first (False). The reader calls ``sink`` with
        each read's messages, in order, outside the hub's lock; it must not
        block, and returns how many it took. When it takes fewer (its consumer
        has fallen behind, or is gone) the rest is queued, within the
        subscription's bounds, and so are later messages until this is called
        anew.
        """
        with self._hub._lock:
            if self.closed or self._phase != _LIVE or self._queue:
                return False
            self._sink = sink
            return True

    def _hand_over(self) -> tuple[Sink, list[HubMessage]] | None:
        """The sink and the messages offered to it since the last call; hub's lock held."""
        sink, messages = self._sink, self._direct
        if sink is None or not messages:
            return None
        self._direct = []
        return sink, messages

    def _stop_direct(self, sink: Sink, rest: list[HubMessage]) -> bool:
        """Queue what ``sink`` left, and what follows; False when that overflowed."""
        with self._hub._lock:
            if self._sink is sink:
                self._sink = None
            if self.closed:
                return True
            # Only the reader offers messages, and it is here: the queue is empty.
            self._queue.extend(rest)
            self._bytes += sum(len(message.data) for message in rest)
            self._signal.set()
            if len(self._queue) <= self.max_messages and self._bytes <= self.max_bytes:
                return True
            return self._overflow()

    def close(self) -> None:
        """Stop receiving; the hub forgets this subscription. Idempotent."""
        self._hub._unregister(self)
        with self._hub._lock:
            self.closed = True
        self._signal.set()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "overflowed" if self.overflowed else "closed" if self.closed else "open"
        return f"<Subscription {state} {list(self.channels)} queued={len(self._queue)}>"

    # -- joining ---------------------------------------------------------------

    def _catch_up(self) -> None:
        """Read one page of history and queue it; move to the next phase when it is short."""
        hub = self._hub
        afters = dict(self._after)
        batches, state = hub._engine.history(
            {channel: format_id(after) for channel, after in afters.items()}, self._page
        )
        keyed, _ = merge(batches, self._page)
        full = any(len(messages) >= self._page for messages in batches.values())
        # Everything up to ``covered`` that is retained is in this page.
        covered = keyed[-1][0] if full else state.last
        starts: dict[str, IdKey] = {}
        if self._everything:
            # "0" asks for what is retained, which starts after each channel's trim mark
            # and the epoch: what went before is no gap, on this page or a later one.
            starts = {c: max(state.epoch, state.trimmed.get(c, ZERO)) for c in afters}
            lost = []
        else:
            lost = gaps(afters, state, batches)
        self._everything = False
        with hub._lock:
            if self.closed:
                return
            for channel, resume, reason in lost:
                if resume > covered:
                    continue  # the next page finds it again, in its place
                at = max(resume, self._last)  # never before what is already queued
                keyed.append((at, reset_message(channel, at, reason, self._asked)))
                self._after[channel] = resume
            # Every channel has been shown all it retains up to ``covered``, messages or
            # not: one that showed none (nothing published yet) must not be judged from
            # its old id again on the next page.
            for channel, after in self._after.items():
                self._after[channel] = max(after, covered, starts.get(channel, ZERO))
            keyed.sort(key=lambda pair: pair[0])
            for key, message in keyed:
                self._append(key, message)
            if full:
                return
            if self._phase == _CATCHING_UP:
                self._phase = _BUFFERING
                return
            for key, message in self._buffer:
                self._append(key, message)
            self._buffer = []
            self._phase = _LIVE

    # -- the reader's side (called under the hub's lock) ------------------------

    def _append(self, key: IdKey, message: HubMessage) -> None:
        if key < self._last or (key == self._last and message.event != RESET):
            return  # already queued (a page and the buffer overlap)
        if self._sink is not None:
            self._last = key
            self._direct.append(message)
            return
        was_empty = not self._queue
        self._queue.append(message)
        self._bytes += len(message.data)
        self._last = key
        if was_empty:
            self._signal.set()

    def _offer(self, key: IdKey, message: HubMessage) -> bool:
        """Queue a live message; False when that overflowed this subscription."""
        if self.closed:
            return True
        phase = self._phase
        if phase == _LIVE:
            self._append(key, message)
            if self._sink is not None:
                return True  # the sink keeps its own bounds
            size, count = self._bytes, len(self._queue)
        elif phase == _BUFFERING:
            self._buffer.append((key, message))
            size, count = 0, len(self._buffer)
        else:
            return True
        if count <= self.max_messages and size <= self.max_bytes:
            return True
        return self._overflow()

    def _overflow(self) -> bool:
        if self.drop and self._phase == _LIVE:
            # Drop what is queued and say so, per channel, with the last id dropped.
            dropped: dict[str, HubMessage] = {}
            for message in self._queue:
                dropped[message.channel] = message
            self._queue.clear()
            self._bytes = 0
            for channel, message in dropped.items():
                reset = reset_message(channel, id_key(message.id), "overflow", None)
                self._queue.append(reset)
            self._signal.set()
            return True
        self.overflowed = True
        self.closed = True
        self._signal.set()
        return False
