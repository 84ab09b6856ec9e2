"""A WebSocket connection over a blocking socket: faye's API in a thread or greenlet.

Who reads. The thread that wants a message reads the socket itself: ``receive()``
takes the read lock, calls ``recv`` and feeds the frame layer, so a message goes
from the socket to its caller without changing threads. ``run()`` (behind the
WSGI response) reads the same way and dispatches events to listeners. Only a
handler that sends without ever reading gets a background reader (the *pump*),
started by its first ``send``: it answers pings, sees the peer's close and keeps
messages for a later ``receive()`` (at most ``_HIGH_WATER`` bytes, then it stops
reading and TCP pushes back), to which it hands the socket back.

Writing (``blocking/writer.py``): every frame is made and queued under
``_mutex``, in the frame layer's order; whoever holds ``_send_lock`` writes.
Readers, timers and ``close`` never wait for the send lock or for room.

Timers (``blocking/keepalive.py``) never block: a dead peer is cut off by
``shutdown``, which wakes whoever is blocked on the socket; that thread then
reports ``close``. ``close`` is dispatched
before the loops (``receive``, iteration, ``run``) learn that the connection is
closed, and ``run`` waits for the pump to stop.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Iterator
from typing import Any, overload

from ..exceptions import ConcurrencyError, ConnectionClosed
from ..protocol.base import CLOSED, CLOSING, CONNECTING, OPEN, FrameProtocol, ReadyState
from ..protocol.events import Close, Error, Message, Open, Pong
from .backends import NO_LOCK, Backend, Signal
from .emitter import NO_LISTENERS, Event
from .keepalive import CLOSE_TIMEOUT, KeepAlive
from .live import add as add_live
from .live import close_all
from .live import discard as discard_live
from .writer import SEND_TIMEOUT

__all__ = [
    "CLOSED",
    "CLOSE_TIMEOUT",
    "CLOSING",
    "CONNECTING",
    "OPEN",
    "SEND_TIMEOUT",
    "Connection",
    "close_all",
]

log = logging.getLogger("faye_sync")

READ_SIZE = 65536
_PUMP_POLL = 0.25  # how often a pump checks whether a receive() wants the socket
_HIGH_WATER = 2**20  # bytes of messages a pump keeps before it stops reading
_OPEN = Event("open")  # events are frozen: every connection's open can be this one
_OPEN_REPORTED, _ERROR_REPORTED, _CLOSING_REPORTED = 1, 2, 4  # Connection._reported
_RAISE = object()  # receive()'s default at the close: raise ConnectionClosed


class Connection(KeepAlive):
    """Runs a frame layer over a connected socket.

    Args:
        sock: the connected socket, in blocking mode.
        protocol: the frame layer (hybi-13 or a hixie draft), already handshaken.
        backend: threads or gevent primitives.
        buffered: bytes already read past the handshake; parsed first.
        ping: seconds between keep-alive pings, or None.
        ping_timeout: seconds to wait for a pong before the peer counts as
            gone (close 1006), or None.
        close_timeout: seconds to wait for the peer's close frame.
        send_timeout: seconds a write may wait for the peer to take a byte
            before the connection closes (1006), or None for no limit.
        idle_timeout: seconds without a byte received before the connection
            closes with 1001 (pongs count), or None.
    """

    # Slots: a server holds thousands of idle connections, and a dict per instance
    # (over 30 attributes, too many for a shared-key dict) cost 1.5 KiB each.
    # Subclasses (WebSocket, Client) have a __dict__ again for users' attributes.
    # The layers below (KeepAlive, Writer) list their own.
    __slots__ = (
        "__weakref__",
        "_backend",
        "_buffered",
        "_bytes_in",  # and _messages_*, _written: faye_sync.stats(), an integer add each
        "_closed_event",
        "_messages",
        "_messages_in",
        "_messages_size",
        "_mutex",
        "_protocol",
        "_pump_active",
        "_pump_signals",
        "_read_lock",
        "_reader_wanted",
        "_reported",
        "_send_lock",
        "_sock",
        "_started",
        "_user_reads",
    )

    def __init__(
        self,
        sock: socket.socket | None,
        protocol: FrameProtocol,
        *,
        backend: Backend,
        buffered: bytes = b"",
        ping: float | None = None,
        ping_timeout: float | None = None,
        close_timeout: float = CLOSE_TIMEOUT,
        send_timeout: float | None = SEND_TIMEOUT,
        idle_timeout: float | None = None,
    ) -> None:
        self._listeners = NO_LISTENERS  # EventEmitter.__init__, without the call
        self._sock = sock
        self._protocol = protocol
        self._backend = backend
        self._buffered = buffered
        self._mutex, self._send_lock, self._read_lock = backend.connection_locks()
        # Made when first needed: most connections never queue a message or pump.
        self._messages: deque[str | bytes] | None = None  # for receive(), in order
        self._messages_size = 0  # their length in bytes (characters for text)
        # A pump's signals: (arrival: it queued a message or stopped, done: it stopped).
        self._pump_signals: tuple[Signal, Signal] | None = None
        self._init_timers((ping, ping_timeout, close_timeout, idle_timeout, send_timeout))
        self._init_writer()  # after: it reads send_timeout from _timeouts
        self._started = False
        # _OPEN_REPORTED | _ERROR_REPORTED: each goes out once; | _CLOSING_REPORTED: close
        # is being dispatched (ready_state CLOSED). Bits of one slot: 8 bytes each.
        self._reported = 0
        self._closed_event: Close | None = None  # set once close has been dispatched
        self._user_reads = False
        self._pump_active = False
        self._reader_wanted = False
        self._messages_in = self._bytes_in = 0  # out: _messages_out, _written
        if sock is not None:
            add_live(self)

    # ------------------------------------------------------------ attributes

    @property
    def ready_state(self) -> ReadyState:
        """CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3), as faye reports it."""
        if self._reported & _CLOSING_REPORTED:
            return CLOSED
        state = self._protocol.state
        return CLOSING if state == CLOSED else state

    @property
    def version(self) -> str:
        return self._protocol.version

    # -------------------------------------------------------------- closing

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection; the ``close`` event fires when the handshake ends.

        When no other thread or greenlet is reading this socket, ``close`` waits
        for the peer's answer (at most ``close_timeout`` seconds); otherwise the
        reader finishes the handshake and ``close`` returns at once.

        Raises:
            ValueError: ``code`` is neither 1000 nor in 3000–4999, or ``reason``
                is over 123 bytes of UTF-8.
        """
        if not self._started:
            self._start()
        started = self._queue(lambda: self._protocol.send_close(code, reason))
        self._closing(started)
        self._collect()  # the drafts close at once
        if started and self._read_lock.acquire(blocking=False):
            # Nobody else reads: finish the handshake here, so the peer is not
            # left waiting (bounded by the close timeout). A handler running on
            # the reader thread gets here with the lock taken and returns at once.
            try:
                while self._closed_event is None:
                    self._read(None)
            finally:
                self._read_lock.release()

    def go_away(self, code: int = 1001, reason: str = "") -> None:
        """Start closing without blocking, with any code a server may send.

        For shutdown (``close_all``), overload (1013) and failures (1011); the
        public counterpart of ``close()``, which only takes the codes a
        browser's ``close()`` takes and may wait for the peer's answer. The
        close frame follows the messages already queued, written now as far as
        the socket takes it, the rest by a writer; the reader (or the close
        timeout) finishes the handshake.

        Raises:
            ValueError: ``code`` may not be sent, or ``reason`` is too long.
        """
        started = self._queue(lambda: self._protocol.send_close(code, reason, strict=False))
        self._closing(started)

    # ------------------------------------------------------------ receiving

    @overload
    def receive(self, timeout: float | None = None) -> str | bytes: ...
    @overload
    def receive(self, timeout: float | None, _at_close: None) -> str | bytes | None: ...

    def receive(
        self, timeout: float | None = None, _at_close: object = _RAISE
    ) -> str | bytes | None:
        """Wait for the next message: ``str`` for text, ``bytes`` for binary.

        Raises:
            ConnectionClosed: the connection closed and no message is left.
            TimeoutError: nothing arrived within ``timeout`` seconds.
            ConcurrencyError: another thread is already receiving.
        """
        # ``_at_close`` is iteration's: given None, the end is None, not ConnectionClosed,
        # whose raise and catch cost every iterating handler about 4,900 instructions at
        # its close (callgrind, 3.11); a wrapper method cost each receive() about 300.
        if self._messages:
            return self._pop_message()
        if not self._started:
            self._start()
        self._user_reads = True
        deadline = None if timeout is None else self._now() + timeout
        while True:
            messages = self._messages
            if messages:  # _pop_message(), inlined: this is every message's way out
                message = messages.popleft()
                self._messages_size -= len(message)
                return message
            if self._closed_event is not None:
                if _at_close is None:
                    return None
                raise ConnectionClosed(self._closed_event.code, self._closed_event.reason)
            remaining = None if deadline is None else deadline - self._now()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"no message within {timeout} s")
            if self._read_lock.acquire(False):
                try:
                    if not self._messages and self._closed_event is None:
                        self._read(remaining)
                finally:
                    self._read_lock.release()
            elif self._pump_active:
                signals = self._pump_signals
                assert signals is not None  # made before the pump started
                arrival = signals[0]
                self._reader_wanted = True
                arrival.wait(_PUMP_POLL if remaining is None else min(remaining, _PUMP_POLL))
                arrival.clear()
            else:
                raise ConcurrencyError(
                    "receive() called while another thread or greenlet reads this "
                    "WebSocket; read from one place and hand the messages on"
                )

    def _pop_message(self) -> str | bytes:
        messages = self._messages
        assert messages is not None
        message = messages.popleft()
        self._messages_size -= len(message)
        return message

    def __iter__(self) -> Iterator[str | bytes]:
        """Iterate over messages until the connection closes."""
        # A generator, though it costs an idle handler 208 bytes: a __next__ method
        # cost every message about 1,100 instructions more (callgrind, Python 3.11).
        while (message := self.receive(None, None)) is not None:
            yield message

    def run(self) -> None:
        """Drive the connection until it is closed, dispatching events to listeners.

        Messages nobody asked for with ``on("message")`` are dropped here: this
        runs after the handler's own code, when no ``receive()`` will come.
        """
        if not self._started:
            self._start()
        self._user_reads = True  # from here on this thread is the reader
        while self._closed_event is None:
            if self._messages and not self.has_listeners("message"):
                self._messages, self._messages_size = None, 0
            if self._read_lock.acquire(timeout=_PUMP_POLL):
                try:
                    if self._closed_event is None:
                        self._read(None)
                finally:
                    self._read_lock.release()
            else:
                self._reader_wanted = True  # a pump holds the socket: take it over
        self._messages, self._messages_size = None, 0
        signals = self._pump_signals
        if self._pump_active and signals is not None:
            # A pump left waiting on the socket must not outlive the request: the
            # server closes the socket once run() returns (libev aborts on a
            # watcher of a closed fd). It notices the close within one poll.
            signals[1].wait(2 * _PUMP_POLL)

    # ------------------------------------------------------------ internals

    def _start(self) -> None:
        """Fire ``open`` and parse the buffered bytes, on first use (faye's next tick)."""
        self._started = True
        # _open(), inlined (a call a handshake); a failed handshake never opens.
        reported = self._reported
        if self._protocol.state == OPEN and not reported & _OPEN_REPORTED:
            if self._closed_event is None:
                self._reported = reported | _OPEN_REPORTED
                if self._listeners:  # most have no listener (nor onopen: it is one)
                    self.emit(_OPEN)
        buffered, self._buffered = self._buffered, b""
        self._flush_now()  # the 101, when the WebSocket's first use sends it
        if buffered:
            self._process(buffered, eof=False)
        elif self._protocol.state != OPEN:  # an open frame layer: nothing to report yet
            self._collect()  # a failed handshake's error and close
        if self._closed_event is None:
            self._start_timers()

    def _open(self) -> None:
        if not self._reported & _OPEN_REPORTED and self._closed_event is None:
            self._reported |= _OPEN_REPORTED
            if self._listeners:  # most have no listener (nor onopen: it is one)
                self.emit(_OPEN)

    def _read(self, timeout: float | None) -> None:
        """Read once and process; the caller holds the read lock."""
        if self._protocol.paused:  # bytes already read wait behind a message
            self._process(b"", eof=False)
            return
        sock = self._sock
        assert sock is not None  # a connection without a socket starts closed
        try:
            if timeout is not None and not self._backend.wait_readable(sock, timeout):
                return
            large = self._protocol.large_frame
            data: bytes | memoryview
            if large is None:
                data = self._backend.recv(sock, READ_SIZE)
            else:  # a large frame's payload, read in place (protocol/large.py)
                data = large.arrived(sock.recv_into(large.window()))
            self._bytes_in += len(data)
        except (OSError, ValueError):  # reset, or closed by another thread (fileno -1)
            data = b""
        self._process(data, eof=not data)

    def _process(self, data: bytes | memoryview, *, eof: bool) -> None:
        protocol = self._protocol
        timers = self._timers  # made with the first timer: None for most
        if timers is not None and data:
            timers.last_received = self._now()  # for the idle timeout
        mutex = self._mutex
        if mutex is not NO_LOCK:  # greenlets need none (see NO_LOCK)
            mutex.acquire()
        try:
            if eof:
                protocol.receive_eof()
            else:
                protocol.receive_data(data)
            events = protocol.events_received()
            replies = protocol.data_to_send()
            if replies:
                self._queue_replies(replies)
        finally:
            if mutex is not NO_LOCK:
                mutex.release()
        if self._urgent or self._pending:
            self._flush_now()  # pongs or a close reply; never wait for a sender
        if events:
            self._handle(events)

    def _handle(self, events: list[Any]) -> None:
        for event in events:
            kind = type(event)
            if kind is Message:
                self._messages_in += 1
                listeners = self._listeners
                if listeners is NO_LISTENERS or not (
                    listeners.get("message") or listeners.get("onmessage")
                ):
                    if self._messages is None:
                        self._messages = deque()
                    self._messages.append(event.data)
                    self._messages_size += len(event.data)
                    if self._pump_active and self._pump_signals is not None:
                        self._pump_signals[0].set()
                else:
                    self.emit(Event("message", data=event.data))
            elif kind is Pong:
                self._pong(event.data)
            elif kind is Close:
                self._finish(event)
            elif kind is Error:
                if not self._reported & _ERROR_REPORTED:
                    self._reported |= _ERROR_REPORTED
                    self.emit(Event("error", message=event.message))
            elif kind is Open:
                self._open()

    def _finish(self, event: Close) -> None:
        reported = self._reported
        if reported & _CLOSING_REPORTED:
            return
        self._reported = reported | _CLOSING_REPORTED
        discard_live(self)
        if self._timers is not None:  # most run none: their pings come from the sweep
            self._stop_timers()
        if self._partial is not None or self._urgent or self._pending or self._send_lock.locked():
            self._write_last_frames()  # (a lock round less when there is nothing to wait for)
        self._shutdown()  # a call, not inline: the client's closes its socket too
        self._release(event.code or 1005)
        try:
            if self._listeners:  # most have no listener (nor onclose: it is one)
                self.emit(Event("close", code=event.code, reason=event.reason))
        finally:
            # Only now do the loops see the end: a handler that returns after
            # them finds its close listeners already run.
            self._closed_event = event
            if self._pump_signals is not None:
                self._pump_signals[0].set()

    def _release(self, code: int) -> None:
        """Closed with ``code`` (1005: none given): a subclass gives back what it holds."""

    def _shutdown(self) -> None:
        # shutdown, never close: the socket may belong to the WSGI server, and
        # shutdown wakes any thread blocked on it with EOF.
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _collect(self) -> None:
        """Report events a timer or a failed write left in the frame layer."""
        mutex = self._mutex
        if mutex is NO_LOCK:  # greenlets need none (a with block: two calls more)
            events = self._protocol.events_received()
        else:
            with mutex:
                events = self._protocol.events_received()
        if events:
            self._handle(events)

    def _abort(self, code: int, reason: str) -> None:
        """End at once without a closing handshake (dead socket, timeout)."""
        with self._mutex:
            self._protocol.fail(code, reason)
        self._shutdown()  # wakes the thread that will report the close

    # Pump: a reader for handlers that only send.

    def _start_pump(self) -> None:
        if self._pump_signals is None:
            self._pump_signals = (self._backend.signal(), self._backend.signal())
        self._pump_signals[1].clear()
        self._pump_active = True
        self._backend.spawn(self._pump)

    def _pump(self) -> None:
        backend, sock = self._backend, self._sock
        assert sock is not None
        try:
            while self._closed_event is None and not self._reader_wanted:
                if not self._read_lock.acquire(timeout=_PUMP_POLL):
                    continue
                try:
                    while self._closed_event is None and not self._reader_wanted:
                        if self._messages_size >= _HIGH_WATER:
                            backend.sleep(_PUMP_POLL)  # nobody consumes: let TCP push back
                        elif self._protocol.paused or backend.wait_readable(sock, _PUMP_POLL):
                            self._read(None)
                finally:
                    self._read_lock.release()
        except Exception:
            log.exception("WebSocket reader failed")
            self._abort(1006, "")
        finally:
            self._pump_active = False
            self._reader_wanted = False
            if self._pump_signals is not None:
                arrival, done = self._pump_signals
                arrival.set()
                done.set()
        if self._closed_event is None and self._protocol.state == CLOSED:
            self._process(b"", eof=True)

    # Timers: they run on a shared service and must not block.
