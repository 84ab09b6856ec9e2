"""Fan-out from a subscription to an EventSource or a WebSocket.

Both are bounded end to end. Each socket has a feeder task, which replays
history and then, while its client keeps up (less than :data:`BUDGET` bytes
waiting for it), lets the hub's reader deliver live messages itself: a
WebSocket's ``send_nowait`` and an EventSource's ``send_encoded`` never block,
and a broadcast then costs no task switch per subscriber (and each event is
encoded once for all the streams of a process). A client that falls behind
gets its messages from the feeder again, through the subscription, whose bounds
cut a client that cannot keep up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..blocking.backends import Signal, detect_backend
from ..exceptions import HubError, HubUnavailable
from .message import HubMessage, id_key
from .subscription import Sink, Subscription

if TYPE_CHECKING:
    from .core import Hub

__all__ = ["EventStream", "MessageSocket", "attach", "stream"]

logger = logging.getLogger("faye_sync.hub")


class EventStream(Protocol):
    """What the hub uses of an :class:`~faye_sync.EventSource`."""

    ready_state: int
    response: Iterable[bytes]

    @property
    def last_event_id(self) -> str: ...
    def send_encoded(self, *events: bytes) -> bool: ...
    def close(self) -> bool: ...
    def on(self, event_type: str, listener: Callable[[Any], object]) -> None: ...
    def spawn(self, producer: Callable[..., object], *args: object) -> None: ...


class MessageSocket(Protocol):
    """What the hub uses of a :class:`~faye_sync.WebSocket` or :class:`~faye_sync.Client`."""

    @property
    def ready_state(self) -> int: ...
    @property
    def buffered_amount(self) -> int: ...
    def send(self, message: str | bytes) -> bool: ...
    def go_away(self, code: int = ..., reason: str = ...) -> None: ...
    def on(self, name: str, listener: Callable[[Any], object]) -> None: ...


BUDGET = 64 * 1024
"""Bytes a socket may hold for its client before delivery waits (one message always fits)."""
_POLL = 1.0  # seconds between looks at whether the socket or stream is still there
_OPEN_STATES = (0, 1)  # CONNECTING, OPEN
_TRY_AGAIN_LATER = 1013


def stream(
    hub: Hub,
    es: EventStream,
    channels: str | Sequence[str],
    *,
    last_id: str | None = None,
    max_messages: int = 1000,
    max_bytes: int = 1 << 20,
) -> Iterable[bytes]:
    """Feed ``es`` from ``channels``; return the WSGI iterable the app returns.

    Resumes after ``last_id``, else after the client's ``Last-Event-ID`` (live
    only on a first connection: pass ``last_id="0"`` to send what is retained).
    Each message becomes one event with its ``id``, ``event`` and ``data``. A client too slow
    for its bounds has its stream ended: the browser reconnects with the last id
    it got, and misses nothing that is still retained. When the store cannot be
    reached, the stream ends at once and the browser retries.
    """
    asked = last_id if last_id is not None else (es.last_event_id or None)
    if asked is not None and not _is_id(asked):
        logger.info("hub: ignoring Last-Event-ID %r (not a hub id); live only", asked)
        asked = None
    try:
        sub = hub.subscribe(
            channels,
            last_id=asked,
            max_messages=max_messages,
            max_bytes=max_bytes,
            on_overflow=lambda _sub: es.close(),
        )
    except HubUnavailable as error:
        # An empty stream that ends: the browser retries after ``retry``.
        logger.warning("hub: ending an event stream at once: %s", error)
        es.close()
        return es.response
    paced = _Paced(es, es.response, sub, detect_backend().signal())
    es.on("close", lambda _event: sub.close())
    es.spawn(_feed_eventsource, es, sub, paced)
    return paced


def _feed_eventsource(es: EventStream, sub: Subscription, paced: _Paced) -> None:
    def sink(messages: list[HubMessage]) -> int:
        # As many as fit in what is left of BUDGET (one always does), in one step.
        events = [message.event_stream_bytes() for message in messages]
        taken = _fitting([len(event) for event in events], BUDGET - paced.backlog())
        if not taken or not es.send_encoded(*events[:taken]):
            return 0
        paced.sent(sum(len(event) for event in events[:taken]))
        return taken

    try:
        for batch in _batches(
            sub,
            sink,
            is_open=lambda: es.ready_state in _OPEN_STATES,
            keeps_up=lambda: paced.backlog() <= BUDGET // 2,
        ):
            for message in batch:
                event = message.event_stream_bytes()
                if not paced.wait_for_room(len(event), sub) or not es.send_encoded(event):
                    return
                paced.sent(len(event))
    except HubError as error:
        logger.warning("hub: ending an event stream: %s", error)
    finally:
        sub.close()
        es.close()  # the browser reconnects and resumes from its last id


class _Paced:
    """``es.response``, telling the feeder how much the client has yet to take.

    The feeder queues an event only while less than :data:`BUDGET` bytes wait
    for the client (or when nothing does): the EventSource's own limit is never
    reached by a replay, and a slow client holds its backlog in the
    subscription, whose bounds cut it. The EventSource's ``buffered_amount``
    says how much waits, where it has one; otherwise what was sent since the
    server last took a chunk.
    """

    def __init__(
        self, es: EventStream, response: Iterable[bytes], sub: Subscription, signal: Signal
    ) -> None:
        self._es = es
        self._iterator: Iterator[bytes] = iter(response)
        self._response = response
        self._sub = sub
        self._progress = signal  # the server came back for a chunk, or took one
        self._unsent = 0  # bytes sent since the server last took a chunk (the fallback)

    def __iter__(self) -> _Paced:
        return self

    def __next__(self) -> bytes:
        self._progress.set()  # the previous chunk is written
        chunk = next(self._iterator)
        self._unsent = 0
        self._progress.set()
        return chunk

    def backlog(self) -> int:
        amount = getattr(self._es, "buffered_amount", None)
        return self._unsent if amount is None else int(amount)

    def sent(self, size: int) -> None:
        self._unsent += size

    def wait_for_room(self, size: int, sub: Subscription) -> bool:
        """Wait until ``size`` more bytes fit; False when the stream or subscription ended."""
        while True:
            backlog = self.backlog()
            if backlog == 0 or backlog + size <= BUDGET:
                return True
            self._progress.clear()
            if self.backlog() != backlog:
                continue  # it moved while we cleared
            if not self._progress.wait(_POLL) and (
                sub.ended or self._es.ready_state not in _OPEN_STATES
            ):
                return False

    def close(self) -> None:
        self._sub.close()
        close = getattr(self._response, "close", None)
        if close is not None:
            close()


def attach(
    hub: Hub,
    ws: MessageSocket,
    channels: str | Sequence[str],
    *,
    last_id: str | None = None,
    format: Callable[[HubMessage], str | bytes] | None = None,
    on_overflow: str = "close",
    max_messages: int = 1000,
    max_bytes: int = 1 << 20,
) -> Subscription:
    """Send ``channels``' messages to ``ws`` from a task of its own until it closes.

    Each message is sent as ``format(message)`` (default: its data), which
    depends on the message only: sockets attached with the same ``format``
    share its result, computed once per message in a process. When the
    socket is slower than the channels: ``on_overflow="close"`` closes it with
    1013 (try again later) without waiting; ``"drop"`` drops what is queued and
    sends a ``reset`` message per channel instead (format it to tell it apart).

    Returns:
        the subscription (``close()`` it to stop without closing the socket).
        When the store cannot be reached, the socket is closed with 1013
        (try again later) and the subscription returned has already ended.
    """
    if on_overflow not in ("close", "drop"):
        raise ValueError(f"on_overflow is 'close' or 'drop', not {on_overflow!r}")
    try:
        sub = hub.subscribe(
            channels,
            last_id=last_id,
            max_messages=max_messages,
            max_bytes=max_bytes,
            drop=on_overflow == "drop",
            on_overflow=lambda _sub: ws.go_away(_TRY_AGAIN_LATER, "too slow for its channels"),
        )
    except HubUnavailable as error:
        logger.warning("hub: closing a WebSocket at once: %s", error)
        ws.go_away(_TRY_AGAIN_LATER, "hub unavailable")
        return _ended(hub, channels)
    ws.on("close", lambda _event: sub.close())
    encode = format or _data
    detect_backend().spawn(lambda: _feed_websocket(ws, sub, encode))
    return sub


def _ended(hub: Hub, channels: str | Sequence[str]) -> Subscription:
    names = [channels] if isinstance(channels, str) else list(channels)
    sub = Subscription(
        hub, names, last_id=None, max_messages=1, max_bytes=1, signal=detect_backend().signal()
    )
    sub.closed = True
    return sub


def _data(message: HubMessage) -> str:
    return message.data


def _feed_websocket(
    ws: MessageSocket, sub: Subscription, encode: Callable[[HubMessage], Any]
) -> None:
    post: Callable[[Any], bool] | None = getattr(ws, "send_nowait", None)

    def sink(messages: list[HubMessage]) -> int:
        assert post is not None
        # As many as fit in what is left of BUDGET (one always does), in one write.
        taken = _fitting([len(message.data) for message in messages], BUDGET - ws.buffered_amount)
        if not taken:
            return 0
        try:
            sent = post(*[message.formatted(encode) for message in messages[:taken]])
            return taken if sent else 0
        except Exception:
            logger.exception("hub: delivery to a WebSocket failed")
            ws.go_away(1011, "delivery failed")
            return 0

    # The first message goes through send(): the socket's first use, which runs
    # its open listeners (and sends a 101), must happen in this task, not in the
    # hub's reader. From then on the reader may deliver.
    used = False

    def keeps_up() -> bool:
        return used and post is not None and ws.buffered_amount <= BUDGET // 2

    try:
        for batch in _batches(
            sub, sink, is_open=lambda: ws.ready_state in _OPEN_STATES, keeps_up=keeps_up
        ):
            for message in batch:
                if not ws.send(message.formatted(encode)):
                    return
            used = True
    except HubError as error:
        logger.warning("hub: closing a WebSocket: %s", error)
        ws.go_away(_TRY_AGAIN_LATER, "hub unavailable")
    except Exception:
        logger.exception("hub: delivery to a WebSocket failed")
        ws.go_away(1011, "delivery failed")
    finally:
        sub.close()


def _fitting(sizes: list[int], room: int) -> int:
    """How many of the first messages fit in ``room`` bytes: at least one while there is room."""
    if room <= 0:
        return 0
    taken, total = 0, 0
    for size in sizes:
        total += size
        if taken and total > room:
            break
        taken += 1
    return taken


def _batches(
    sub: Subscription, sink: Sink, *, is_open: Callable[[], bool], keeps_up: Callable[[], bool]
) -> Iterator[list[HubMessage]]:
    """The feeder's batches while the socket is open; the reader delivers while it keeps up."""
    while is_open():
        if keeps_up():
            sub.deliver_directly(sink)
        batch = sub.get_batch(sub.max_messages, _POLL)
        if batch:
            yield batch
        elif sub.ended:
            return


def _is_id(text: str) -> bool:
    try:
        id_key(text)
    except ValueError:
        return False
    return True
