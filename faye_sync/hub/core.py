"""The hub: publish, subscribe, and one reader per hub that dispatches in memory.

The reader is a thread, or a greenlet under gevent (the kind of whoever
subscribes first). It reads every channel that has a subscriber, from the last
id it dispatched per channel, with a bounded block, and hands each message to
every subscription of its channel: 10,000 subscribers cost 10,000 queue
entries, not 10,000 connections. Messages of several channels are dispatched
in one id order (see :func:`~faye_sync.hub.message.merge`).

When the store fails, the reader backs off (0.1 s doubling to 5 s) and, once it
is back, first compares its positions with the store's epoch and trim marks:
a channel whose messages after the reader's position are gone gets a ``reset``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from ..blocking.backends import Backend, Signal, detect_backend
from ..exceptions import HubError
from . import delivery
from .engine import Engine, State, gaps
from .message import ZERO, HubMessage, IdKey, format_id, id_key, merge, reset_message
from .subscription import Subscription

__all__ = ["Hub"]

logger = logging.getLogger("faye_sync.hub")

_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 5.0


class Hub:
    """Channels of messages shared by every process that uses the same store.

    Make one per process with :meth:`from_url` and share it.

    Args:
        engine: where messages are kept (:class:`~faye_sync.hub.memory.MemoryEngine`,
            :class:`~faye_sync.hub.redis_streams.RedisEngine`).
        block: seconds the reader waits in one read when nothing comes.
        count: messages read per channel at once.
    """

    def __init__(self, engine: Engine, *, block: float = 0.5, count: int = 500) -> None:
        if not 0 < block <= 60:
            raise ValueError(f"block must be in (0, 60] seconds, not {block!r}")
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count!r}")
        self._engine = engine
        self._block = block
        self._count = count
        self._lock = threading.Lock()  # short sections, never held while waiting
        self._subscriptions: dict[str, dict[Subscription, None]] = {}
        self._positions: dict[str, IdKey] = {}
        self._backend: Backend | None = None  # the reader's kind, set when it starts
        self._wake: Signal | None = None
        self._reader_done: Signal | None = None
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str = "memory://",
        *,
        max_len: int | None = 10_000,
        max_age: float | None = None,
        prefix: str = "faye_sync",
        block: float = 0.5,
        timeout: float = 5.0,
        **options: Any,
    ) -> Hub:
        """A hub on ``memory://`` (one process), ``redis://`` or ``rediss://``.

        Args:
            url: the store. Redis URLs are redis-py's (``redis://:password@host:6379/0``).
            max_len: messages kept per channel; None for no count limit.
            max_age: seconds a message is kept; None for no age limit.
            prefix: the start of every Redis key the hub uses.
            block: seconds the reader blocks in one read.
            timeout: seconds a Redis command may take before
                :class:`~faye_sync.HubUnavailable`.
            options: more keyword arguments for ``redis.Redis.from_url``.

        Raises:
            HubError: an unknown scheme, or redis-py missing for a Redis URL.
        """
        if max_len is None and max_age is None:
            raise ValueError("set max_len or max_age (or both): retention must be bounded")
        for name, value in (("max_len", max_len), ("max_age", max_age)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, not {value!r}")
        scheme = urlsplit(url).scheme
        engine: Engine
        if scheme == "memory":
            if options:
                raise TypeError(f"memory:// takes no options: {', '.join(options)}")
            from .memory import MemoryEngine

            engine = MemoryEngine(max_len=max_len, max_age=max_age)
        elif scheme in ("redis", "rediss"):
            from .redis_streams import RedisEngine

            engine = RedisEngine(
                url, prefix=prefix, max_len=max_len, max_age=max_age, timeout=timeout, **options
            )
        else:
            raise HubError(f"unknown hub URL {url!r}: use memory://, redis:// or rediss://")
        return cls(engine, block=block)

    # -- publishing -------------------------------------------------------------

    def publish(self, channel: str, data: str, *, event: str | None = None) -> str:
        """Store ``data`` on ``channel`` for every subscriber; return the message's id.

        Works from any process, with or without a web server in it.

        Raises:
            HubUnavailable: the store cannot be reached; nothing was dropped silently.
            TypeError, ValueError: a bad channel, data or event.
        """
        _check_name("channel", channel)
        if event is not None:
            _check_name("event", event)
        if not isinstance(data, str):
            raise TypeError(
                f"publish() takes data as str, not {type(data).__name__}; "
                "encode it first, e.g. json.dumps(value)"
            )
        return self._engine.publish(channel, data, event)

    # -- subscribing ------------------------------------------------------------

    def subscribe(
        self,
        channels: str | Sequence[str],
        *,
        last_id: str | None = None,
        max_messages: int = 1000,
        max_bytes: int = 1 << 20,
        on_overflow: Callable[[Subscription], object] | None = None,
        drop: bool = False,
    ) -> Subscription:
        """Receive the messages of ``channels``, in one id order.

        Args:
            channels: a channel name or several.
            last_id: None for live messages only; ``"0"`` for everything retained
                then live; an id to resume after it (a ``reset`` comes first for
                each channel whose messages after it are gone).
            max_messages, max_bytes: the queue's bounds (bytes of data).
            on_overflow: called (from the reader: it must not block) when the
                subscription is cut for overflow.
            drop: on overflow, drop what is queued and queue a ``reset`` per
                channel instead of ending.

        Raises:
            ValueError: ``last_id`` is not an id, or a bound is not positive.
            HubError: the hub is closed.
        """
        names = [channels] if isinstance(channels, str) else list(channels)
        if not names:
            raise ValueError("subscribe to at least one channel")
        for name in names:
            _check_name("channel", name)
        if max_messages < 1 or max_bytes < 1:
            raise ValueError("max_messages and max_bytes must be positive")
        backend = detect_backend()
        sub = Subscription(
            self,
            names,
            last_id=last_id,
            max_messages=max_messages,
            max_bytes=max_bytes,
            signal=backend.signal(),
            drop=drop,
            on_overflow=on_overflow,
        )
        self._register(sub, backend)
        return sub

    # Fan-out to sockets: written once, in delivery.py, as functions of the hub.
    stream = delivery.stream
    attach = delivery.attach

    def close(self, timeout: float = 5.0) -> None:
        """Stop the reader (within ``timeout``), end every subscription, release the store."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            subscriptions = {sub for subs in self._subscriptions.values() for sub in subs}
        self._engine.interrupt()
        if self._wake is not None:
            self._wake.set()
        if self._reader_done is not None:
            self._reader_done.wait(timeout)
        for sub in subscriptions:
            sub.close()
        self._engine.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the registry -------------------------------------------------------------

    def _register(self, sub: Subscription, backend: Backend) -> None:
        with self._lock:
            if self._closed:
                raise HubError("the hub is closed")
            new = [name for name in sub.channels if name not in self._positions]
        # A new channel is read from the clock as it is now: every later message
        # is above it, so none is missed between this and the reader's next read.
        start = self._engine.state(()).last if new else ZERO
        with self._lock:
            if self._closed:
                raise HubError("the hub is closed")
            for name in sub.channels:
                self._positions.setdefault(name, start)
                self._subscriptions.setdefault(name, {})[sub] = None
            first = self._backend is None
            if first:
                self._backend = backend
                self._wake = backend.signal()
                self._reader_done = backend.signal()
        if first:
            backend.spawn(self._run)
        elif new:
            self._engine.interrupt()
            assert self._wake is not None
            self._wake.set()

    def _unregister(self, sub: Subscription) -> None:
        with self._lock:
            for name in sub.channels:
                subs = self._subscriptions.get(name)
                if subs is not None:
                    subs.pop(sub, None)
                    if not subs:
                        del self._subscriptions[name]
                        self._positions.pop(name, None)

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    # -- the reader -----------------------------------------------------------------

    def _run(self) -> None:
        assert self._backend is not None and self._wake is not None
        assert self._reader_done is not None
        backoff = _BACKOFF_FIRST
        try:
            while not self._closed:
                with self._lock:
                    positions = dict(self._positions)
                if not positions:
                    self._wake.wait(self._block)
                    self._wake.clear()
                    continue
                try:
                    batches, state = self._engine.read(
                        {name: format_id(key) for name, key in positions.items()},
                        count=self._count,
                        block=self._block,
                    )
                    self._deliver(positions, batches, state)
                except Exception as error:  # the reader must outlive any failure
                    if backoff == _BACKOFF_FIRST:
                        if isinstance(error, HubError):
                            logger.warning("hub reader: %s; retrying", error)
                        else:
                            logger.exception("hub reader failed; retrying")
                    self._wake.wait(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
                    continue
                if backoff != _BACKOFF_FIRST:
                    logger.warning("hub reader: reading again")
                    backoff = _BACKOFF_FIRST
        finally:
            self._reader_done.set()

    def _deliver(
        self, positions: dict[str, IdKey], batches: dict[str, list[HubMessage]], state: State
    ) -> None:
        """Dispatch one read, with a ``reset`` first for each channel that lost messages.

        Every read carries the store's state, so a reader that fell behind its
        channel's retention (or a store emptied under it) says so rather than
        skipping silently what was trimmed.
        """
        keyed, last_kept = merge(batches, self._count)
        moves = {name: (positions[name], key) for name, key in last_kept.items()}
        lost = gaps(positions, state, batches)
        if lost:
            # A reset takes its place in the id order: not below what was
            # dispatched before, not above what this read covers (a later read
            # may bring other channels' messages up to there).
            low = max(positions.values())
            full = [id_key(b[-1].id) for b in batches.values() if len(b) >= self._count]
            high = min(full) if full else max([low, *(key for key, _ in keyed)])
            for name, resume, reason in lost:
                position = positions[name]
                logger.warning(
                    "hub: channel %r lost messages after %s (%s)", name, format_id(position), reason
                )
                at = min(max(resume, low), high)
                keyed.append((at, reset_message(name, at, reason, format_id(position))))
                if name not in moves:
                    moves[name] = (position, at)
            keyed.sort(key=lambda pair: pair[0])
        self._dispatch(keyed, moves)

    def _dispatch(
        self,
        keyed: Sequence[tuple[IdKey, HubMessage]],
        moves: dict[str, tuple[IdKey, IdKey]],
    ) -> None:
        """Hand messages to subscriptions and move positions that nobody moved meanwhile."""
        cut: list[Subscription] = []
        with self._lock:
            subscriptions = self._subscriptions
            offered: dict[Subscription, None] = {}
            for key, message in keyed:
                for sub in subscriptions.get(message.channel, ()):
                    if sub._sink is not None:
                        offered[sub] = None
                    if not sub._offer(key, message):
                        cut.append(sub)
            for name, (before, after) in moves.items():
                if self._positions.get(name) == before:
                    self._positions[name] = after
            handed = [(sub, hand) for sub in offered if (hand := sub._hand_over()) is not None]
        # Outside the lock: a sink writes to sockets (without waiting on them).
        for sub, (sink, messages) in handed:
            try:
                taken = sink(messages)
            except Exception:
                logger.exception("hub: direct delivery failed")
                taken = 0
            if taken < len(messages) and not sub._stop_direct(sink, messages[taken:]):
                cut.append(sub)
        for sub in cut:
            self._unregister(sub)
            if sub._on_overflow is not None:
                try:
                    sub._on_overflow(sub)
                except Exception:
                    logger.exception("hub: on_overflow failed")


def _check_name(what: str, name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be str, not {type(name).__name__}")
    if not name or any(c in name for c in "\r\n\0"):
        raise ValueError(f"{what} must be non-empty with no CR, LF or NUL: {name!r}")
