"""EventSource (server-sent events) for WSGI, as a streaming response iterable.

faye writes its event stream straight onto the request's socket. A WSGI
application need not: an event stream is an ordinary response that never ends,
so it is returned as an iterable and the server sends each chunk as it comes.
That works on every WSGI server (waitress, mod_wsgi and uWSGI included), and
the server frames the response itself (chunked, or until close).

How it runs (the server's side is in :mod:`.response`):

* ``EventSource(environ, start_response)`` calls ``start_response`` at once and
  queues nothing; the application returns ``es.response``, which the server
  iterates: the stream opens then.
* ``send``, ``ping`` and ``close`` may be called from any thread or greenlet:
  they append to a queue under a lock and wake the iterator. They never block.
* What is buffered is bounded in bytes (``max_buffered``): the queue plus the
  chunk the server is still writing. A send that would go over ends the stream
  after what is queued and returns False; the browser reconnects and resumes
  from its ``Last-Event-ID``. A client that leaves drops whatever was queued.

States (faye's, shared with the WebSocket API): CONNECTING (0) until the server
starts iterating, OPEN (1), CLOSED (3). ``close`` is dispatched exactly once,
by whichever comes first: ``close()``, the client leaving, or the server
closing the iterable.
"""

from __future__ import annotations

import logging
import random
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from ..adapters.admission import REFUSAL_MESSAGE, REFUSAL_STATUS, admit, refusal_headers
from ..adapters.connection import find_connection
from ..blocking import live
from ..blocking.backends import Backend, Signal, detect_backend
from ..blocking.emitter import Event, EventEmitter
from ..blocking.emitter import Listener as EmitterListener
from ..protocol import sse
from .options import byte_limit, ping_interval, request_url
from .response import StreamResponse

__all__ = ["EventSource", "EventSourceEvent", "is_eventsource"]

logger = logging.getLogger(__name__)

SHUTDOWN_RETRY_SPREAD = 10.0
"""Seconds over which :func:`~faye_sync.close_all` spreads the browsers' return."""

Listener = Callable[["EventSourceEvent"], object]
StartResponse = Callable[..., object]


@dataclass(frozen=True, slots=True)
class EventSourceEvent(Event):
    """What ``open`` and ``close`` listeners receive (faye's ``Event``, with its ``target``)."""

    target: EventSource | None = None


def is_eventsource(environ: Mapping[str, Any]) -> bool:
    """Whether a WSGI request asks for an event stream.

    faye's rule: a ``GET`` whose ``Accept`` header lists ``text/event-stream``;
    here parameters such as ``;q=0.9`` are tolerated and ``q=0`` refuses.
    """
    return environ.get("REQUEST_METHOD") == "GET" and sse.accepts_event_stream(
        environ.get("HTTP_ACCEPT")
    )


class EventSource(EventEmitter):
    """A server-sent event stream, returned to the WSGI server as ``es.response``.

    Example::

        def app(environ, start_response):
            if not EventSource.is_eventsource(environ):
                ...
            es = EventSource(environ, start_response, ping=15)
            es.on("close", lambda event: log.info("gone: %s", es.url))
            es.spawn(produce, es)     # runs once the stream opens
            return es.response

        def produce(es):
            n = int(es.last_event_id or 0)
            while not es.wait_closed(1.0):
                n += 1
                es.send(str(n), event="tick", id=n)

    A producer may also live anywhere else (a pub/sub listener, another
    request): ``send`` is safe from any thread or greenlet and returns False
    once the stream has closed, which is the producer's cue to stop.

    Args:
        environ: the WSGI environ of the request.
        start_response: the WSGI ``start_response``, called here with
            ``200 OK`` and the stream's headers. Pass None when a framework
            sends the status and headers itself (read them from ``status`` and
            ``headers``). Above the process's limit of open sockets and
            streams (``faye_sync.set_connection_limit``) they are ``503`` with
            ``Retry-After``, and the stream starts closed.
        headers: extra response headers (a mapping or ``(name, value)``
            pairs); one named like a default replaces it.
        retry: seconds a client waits before reconnecting, sent first as
            ``retry:``. None means 5 (faye's default); 0 is sent as 0 (reconnect
            at once), as faye's Ruby version does. faye's Node version turns 0
            into 5 through ``||``.
        ping: seconds between keep-alive comments ``:``. None or 0 mean 10, as
            in faye's Node version: the ping is always on, because a periodic
            write is how a WSGI application learns that its client has gone.
        max_buffered: the most bytes held for the client (see
            :attr:`buffered_amount`); default 1 MiB, None for no limit (faye).
            A ``send`` that would go over it closes the stream and returns
            False. One event larger than the limit is still sent when nothing
            else is buffered.

    Raises:
        ValueError: a header is unsafe (CR, LF or NUL, a hop-by-hop name),
            ``retry``/``ping`` is negative or not finite, or ``max_buffered``
            is not positive.
        TypeError: an unknown option, or ``retry``/``ping``/``max_buffered``
            is not a number.
    """

    EVENTS = ("open", "close")

    CONNECTING: ClassVar[int] = 0
    OPEN: ClassVar[int] = 1
    CLOSED: ClassVar[int] = 3

    @staticmethod
    def is_eventsource(environ: Mapping[str, Any]) -> bool:
        """faye's ``EventSource.isEventSource``: see :func:`is_eventsource`."""
        return is_eventsource(environ)

    def __init__(
        self,
        environ: MutableMapping[str, Any],
        start_response: StartResponse | None,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        retry: float | None = None,
        ping: float | None = None,
        max_buffered: int | None = sse.DEFAULT_MAX_BUFFERED,
    ) -> None:
        retry = sse.DEFAULT_RETRY if retry is None else retry
        self._preamble = sse.encode_retry(retry)  # checks it: a number of seconds, >= 0
        self._retry = float(retry)
        self._ping = ping_interval(ping)
        self._max_buffered = byte_limit(max_buffered)
        self.status = "200 OK"
        self.headers = sse.response_headers(headers)
        self._path = str(environ.get("PATH_INFO", ""))
        # Read now: servers clear the environ when the request ends, and a
        # producer failing after that is logged with the URL.
        self.url: str = request_url(environ)
        """The full URL of the request (faye's ``url``), query string included."""
        self.last_event_id = sse.parse_last_event_id(
            environ.get("HTTP_LAST_EVENT_ID"), environ.get("QUERY_STRING")
        )
        """The id the client saw last, for resuming; ``""`` on a first connection.

        From the ``Last-Event-ID`` header, else a ``lastEventId`` query
        parameter (set by polyfills that cannot send headers).
        """

        super().__init__()
        self.ready_state = self.CONNECTING

        self._backend: Backend = detect_backend()
        self._lock = self._backend.lock()
        self._wakeup: Signal = self._backend.signal()  # something to write, or closing
        self._closed: Signal = self._backend.signal()  # for wait_closed()
        self._queue: list[bytes] = []
        self._queued = 0  # bytes in _queue
        self._in_flight = 0  # bytes of the chunk the server is writing
        self._closing = False
        self._producers: list[Callable[[], object]] = []

        # eventlet holds writes under 4096 bytes until the response ends unless
        # told otherwise (observed: four events all arrived at the end).
        environ["eventlet.minimum_write_chunk_size"] = 0
        # Whoever serves the request can end the stream when its client leaves
        # (faye_sync.testing does; a server notices only at the next ping).
        environ["faye_sync.eventsource"] = self
        self._stream = StreamResponse(self, find_connection(environ))
        self.response: Iterable[bytes] = self._stream
        """The WSGI response: return it from the application."""

        self._admit(environ)
        if start_response is not None:
            start_response(self.status, list(self.headers))

    def _admit(self, environ: MutableMapping[str, Any]) -> None:
        """Take a place under the process's limit, or answer 503 and start closed."""
        slot = admit(environ, "eventsource")  # None: over the process's connection limit
        if slot is None:
            self.status, self.headers = REFUSAL_STATUS, [("Content-Type", "text/plain")]
            self.headers += refusal_headers()
            self.response = [REFUSAL_MESSAGE.encode()]
            self._mark_closed()  # nothing is spawned, send() returns False
        else:
            self.on("close", lambda event: slot.release())
            weakref.finalize(self, slot.release)  # a stream never returned to the server
            live.add(self)  # for close_all(); weakly held, as for the slot

    @property
    def buffered_amount(self) -> int:
        """Bytes queued or being written, not yet taken by the client (faye's ``bufferedAmount``).

        A chunk handed to the server counts until the server comes back for the
        next one, which is when its write has finished.
        """
        return self._queued + self._in_flight

    # -- faye's API -------------------------------------------------------

    def send(
        self,
        data: str | bytes | bytearray | memoryview,
        *,
        event: str | None = None,
        id: str | int | None = None,
    ) -> bool:
        """Queue one event for the client.

        Args:
            data: the data: ``str``, or ``bytes`` of UTF-8 text. Lines are
                split on CRLF, CR and LF.
            event: the event type (the client's ``addEventListener`` name).
            id: the event id, which the client sends back as ``Last-Event-ID``
                when it reconnects.

        Returns:
            True if queued. False once the stream has closed (faye's result),
            or when this event would take :attr:`buffered_amount` over
            ``max_buffered``: the stream is then closed, its queue still goes
            out, and the client resumes after the last id it received. The
            producer should stop, as after any close.

        Raises:
            TypeError: ``data`` is not text or bytes (as ``WebSocket.send``):
                convert it first, e.g. ``send(json.dumps(value))``.
            ValueError: ``event`` or ``id`` holds CR, LF or NUL, or ``data``
                is bytes that are not UTF-8.
        """
        return self._enqueue(sse.encode_event(data, event=event, id=id))

    def send_encoded(self, *events: bytes) -> bool:
        """Queue events already encoded by :func:`faye_sync.protocol.sse.encode_event`.

        A fan-out encodes each event once for all its streams, and a batch
        costs one queue step and one wake-up of the stream. All are queued or
        none: the result and the ``max_buffered`` rule are :meth:`send`'s, for
        the batch as a whole.
        """
        return self._enqueue(b"".join(events))  # one chunk: the response joins them anyway

    def ping(self) -> bool:
        """Queue a keep-alive comment now, besides the periodic ones.

        Returns:
            True if queued, False once the stream has closed (or is full, as
            for :meth:`send`).
        """
        return self._enqueue(sse.PING)

    def close(self) -> bool:
        """End the stream after what is already queued; dispatch ``close``.

        Returns:
            True, or False if it was already closed (faye's result).
        """
        if not self._mark_closed():
            return False
        self._stream.watch_drain()
        self._dispatch("close")
        return True

    def go_away(self, code: int = 1001, reason: str = "") -> bool:
        """End the stream for a shutdown: what :func:`faye_sync.close_all` calls.

        As :meth:`close`, but the stream's last field is a ``retry`` of its own
        reconnection time plus a random share of :data:`SHUTDOWN_RETRY_SPREAD`
        seconds: the browsers of a whole server then come back spread over those
        seconds instead of all in the same one. Never blocks (it may run in a
        signal handler): the ``close`` listeners run in a task of their own.
        ``code`` and ``reason`` are a WebSocket's; an event stream has no field
        for them.

        Returns:
            True, or False if it was already closed.
        """
        retry = sse.encode_retry(self._retry + random.uniform(0, SHUTDOWN_RETRY_SPREAD))
        with self._lock:
            if self._closing:
                return False
            self._queue.append(retry)
            self._queued += len(retry)
            self._close_locked()
        self._closed_elsewhere()
        return True

    def on(self, name: str, listener: Listener) -> None:
        """Call ``listener(event)`` on ``"open"`` or ``"close"``.

        Listeners run after the ``onopen``/``onclose`` attribute, in the order
        added; :meth:`off` removes one. An exception in a listener is logged
        and does not stop the stream or the other listeners.

        Raises:
            ValueError: ``name`` is not ``"open"`` or ``"close"``.
        """
        # Typed for EventSourceEvent, the Event its listeners get.
        super().on(name, cast(EmitterListener, listener))

    def off(self, name: str, listener: Listener) -> None:
        """Stop calling a listener added with :meth:`on`; no error if absent."""
        super().off(name, cast(EmitterListener, listener))

    add_event_listener = on
    # remove_listener: this class's name for off() until 0.x's tidying.
    remove_event_listener = remove_listener = off

    # -- producers --------------------------------------------------------

    def spawn(self, producer: Callable[..., object], *args: object) -> None:
        """Run ``producer(*args)`` in its own thread or greenlet once the stream opens.

        The thread or greenlet is of the server's kind (a greenlet under
        gevent). The producer should stop when ``send`` returns False or
        :meth:`wait_closed` returns True. If it raises, the error is logged and
        the stream is closed, so the client reconnects instead of waiting on a
        stream that has no producer. Once the stream has closed, nothing is
        started.
        """

        def run() -> None:
            try:
                producer(*args)
            except Exception:
                logger.exception("EventSource producer failed: %s", self.url)
                self.close()

        with self._lock:
            if self.ready_state == self.CONNECTING and not self._closing:
                self._producers.append(run)
                return
        if self.ready_state == self.OPEN:
            self._backend.spawn(run)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early when the stream closes.

        Returns:
            True if the stream is closed; False if the time ran out first.
        """
        return self._closed.wait(timeout)

    # -- internals --------------------------------------------------------

    def _enqueue(self, chunk: bytes) -> bool:
        size = len(chunk)
        with self._lock:
            if self._closing:
                return False
            buffered = self._queued + self._in_flight
            limit = self._max_buffered
            overflow = limit is not None and buffered > 0 and buffered + size > limit
            if overflow:
                # Closed under the same lock: no later event may get in ahead of
                # these, or the client would resume past them.
                self._close_locked()
            else:
                self._queue.append(chunk)
                self._queued += size
        if overflow:
            self._overflow(buffered, size)
            return False
        self._wakeup.set()
        return True

    def _overflow(self, buffered: int, size: int) -> None:
        logger.warning(
            "EventSource %s: the client is not reading: %d bytes buffered, %d more would "
            "exceed max_buffered=%d; ending the stream (the client resumes from its "
            "Last-Event-ID)",
            self.url,
            buffered,
            size,
            self._max_buffered,
        )
        self._closed_elsewhere()

    def _closed_elsewhere(self) -> None:
        """Wake the stream closed under the lock; dispatch ``close`` in a task of its own.

        The caller (a publisher fanning out to many streams, a signal handler)
        must not run the close listeners itself.
        """
        self._signal_closed()
        self._stream.watch_drain()
        self._backend.spawn(lambda: self._dispatch("close"))

    def _take(self) -> tuple[bytes, bool]:
        """Everything queued, and whether the stream is closing."""
        with self._lock:
            # Clearing under the lock pairs with _enqueue: a send after this
            # point sets the signal again, so no event waits a ping interval.
            self._wakeup.clear()
            chunk = b"".join(self._queue)
            self._queue.clear()
            self._queued = 0
            self._in_flight = len(chunk)
            return chunk, self._closing

    def _mark_closed(self) -> bool:
        with self._lock:
            if not self._close_locked():
                return False
        self._signal_closed()
        return True

    def _close_locked(self) -> bool:
        if self.ready_state == self.CLOSED:
            return False
        self.ready_state = self.CLOSED
        self._closing = True
        self._producers.clear()
        live.discard(self)
        return True

    def _signal_closed(self) -> None:
        self._wakeup.set()
        self._closed.set()

    def _open(self) -> None:
        with self._lock:
            if self.ready_state != self.CONNECTING:
                return
            self.ready_state = self.OPEN
            producers, self._producers = self._producers, []
        self._dispatch("open")
        for run in producers:
            self._backend.spawn(run)

    def _finish(self) -> None:
        """The stream is over from the server's side (it ended, or the client left).

        Whatever is still queued is dropped: no one will read it, and the
        response may stay referenced (a producer still holding the
        EventSource, or a reference cycle awaiting the garbage collector).
        """
        with self._lock:
            self._queue.clear()
            self._queued = self._in_flight = 0
        if self._mark_closed():
            self._dispatch("close")

    def _dispatch(self, name: str) -> None:
        event = EventSourceEvent(name, target=self)
        handler = getattr(self, "on" + name)
        for listener in ([handler] if handler else []) + list(self._listeners.get(name, ())):
            try:
                listener(event)
            except Exception:
                logger.exception("EventSource %s listener failed", name)

    def __iter__(self) -> Iterator[bytes]:
        """Iterating the EventSource iterates :attr:`response`."""
        return iter(self.response)

    def __repr__(self) -> str:
        state = {0: "CONNECTING", 1: "OPEN", 3: "CLOSED"}[self.ready_state]
        return f"<EventSource {state} {self._path!r}>"
