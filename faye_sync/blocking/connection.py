"""A WebSocket connection over a blocking socket: faye's API in a thread or greenlet.

Who reads. The thread that wants a message reads the socket itself: ``receive()``
takes the read lock, calls ``recv`` and feeds the frame layer, so a message goes
from the socket to its caller without changing threads. ``run()`` (behind the
WSGI response) reads the same way and dispatches events to listeners. Only a
handler that sends without ever reading gets a background reader (the *pump*),
started by its first ``send``: it answers pings, sees the peer's close and keeps
messages for a later ``receive()`` (at most ``_HIGH_WATER`` bytes, then it stops
reading and TCP pushes back), to which it hands the socket back.

Writing. ``_mutex`` guards the frame layer and the output queues, and is never
held across I/O. Every frame is made and queued under it, so data frames reach
the wire in the frame layer's order (the deflate context needs that). Two
queues: *urgent* (pings and pongs) and *ordered* (data frames, and close frames,
which must follow the data queued before them). Whoever holds ``_send_lock``
writes: urgent frames first, but never inside a frame that is partly written
(``_partial``). A sender takes the lock and returns once its frame is written; a
sender that finds the lock taken queues its frame and waits for the lock
(unless more than ``_QUEUE_LIMIT`` bytes are queued: then it waits before making
its frame, so the queue stays bounded). Waiting for room is bounded by
``send_timeout``: no byte taken for that long closes the connection (1006). On
plain sockets with threads the kernel does the waiting, in one blocking send
as ``sendall`` would, bounded by ``SO_SNDTIMEO`` (``Backend.writer``).

Readers, timers and ``close`` never wait for the send lock or for room: they
write as much as the socket takes at once (``_flush_now``); what it does not take
is written by the lock's holder or, if nobody holds it, by a writer task spawned
only for that. So pongs, keep-alive pings and the answer to a close go out
promptly whatever the application has queued, a reader never stops reading
because a send is stuck on a peer that is not reading (two such peers would
deadlock), and ``close`` is never stuck behind a send: its timeout cuts the
connection. Unwritten pongs beyond ``_URGENT_LIMIT`` are dropped, oldest first:
RFC 6455 §5.5.3 lets a pong answer only the latest ping.

Timers (keep-alive ping, ping timeout, idle timeout, close timeout) come from
the backend's shared service and never block: a dead peer is cut off by
``shutdown``, which wakes whoever is blocked on the socket; that thread then
reports ``close``. A ping waiting behind a large frame does not count against
``ping_timeout`` while the peer is taking that frame. ``close`` is dispatched
before the loops (``receive``, iteration, ``run``) learn that the connection is
closed, and ``run`` waits for the pump to stop.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from ..exceptions import ConcurrencyError, ConnectionClosed
from ..protocol.base import (
    CLOSED,
    CLOSING,
    CONNECTING,
    OPEN,
    FrameProtocol,
    ReadyState,
    validate_close_arguments,
)
from ..protocol.events import Close, Error, Message, Open, Pong
from .backends import Backend, SendNow, SendWait, Signal, Timer, unacknowledged
from .emitter import Event, EventEmitter

__all__ = ["CLOSED", "CLOSING", "CONNECTING", "OPEN", "Connection", "close_all"]

log = logging.getLogger("faye_sync")

READ_SIZE = 65536
CLOSE_TIMEOUT = 30.0  # faye's API.CLOSE_TIMEOUT
SEND_TIMEOUT = 60.0  # nginx's send_timeout: no byte taken for this long ends it
_PUMP_POLL = 0.25  # how often a pump checks whether a receive() wants the socket
_HIGH_WATER = 2**20  # bytes of messages a pump keeps before it stops reading
_QUEUE_LIMIT = 2**20  # ordered bytes queued before senders wait to make their frame
_URGENT_LIMIT = 65536  # unwritten pings and pongs kept; older ones are dropped
_LAST_WRITE_WAIT = 1.0  # seconds a closing connection waits for a write in progress

_live: weakref.WeakSet[Connection] = weakref.WeakSet()
_live_lock = threading.Lock()


def close_all(code: int = 1001, reason: str = "") -> int:
    """Start closing every open connection of this process; return how many.

    Never blocks, so it may run from a signal handler or a gunicorn
    ``worker_int``/``worker_exit`` hook; each connection ends within its close
    timeout. 1001 means "going away" (RFC 6455 §7.4.1).

    Raises:
        ValueError: ``code`` may not be sent, or ``reason`` is too long.
    """
    validate_close_arguments(code, reason, strict=False)
    with _live_lock:
        connections = list(_live)
    for connection in connections:
        try:
            connection.go_away(code, reason)
        except Exception:  # one broken connection must not spare the others
            log.exception("close_all: could not close %r", connection)
    return len(connections)


class Connection(EventEmitter):
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
    __slots__ = (
        "__weakref__",
        "_arrival",
        "_awaiting_pong",
        "_backend",
        "_buffered",
        "_bytes_in",  # and _messages_*, _written: faye_sync.stats(), an integer add each
        "_close_timeout",
        "_close_timer",
        "_closed_event",
        "_closing_reported",
        "_error_reported",
        "_idle_timeout",
        "_idle_timer",
        "_last_received",
        "_messages",
        "_messages_in",
        "_messages_out",
        "_messages_size",
        "_mutex",
        "_opened",
        "_partial",
        "_pending",
        "_pending_size",
        "_ping_callbacks",
        "_ping_counter",
        "_ping_delayed",
        "_ping_interval",
        "_ping_mark",
        "_ping_timeout",
        "_ping_timer",
        "_pong_timer",
        "_protocol",
        "_pump_active",
        "_pump_done",
        "_read_lock",
        "_reader_wanted",
        "_send_lock",
        "_send_now",
        "_send_timeout",
        "_send_wait",
        "_senders_waiting",
        "_sock",
        "_started",
        "_urgent",
        "_urgent_size",
        "_user_reads",
        "_write_failed",
        "_writer_active",
        "_writing",
        "_written",
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
        super().__init__()
        self._sock = sock
        self._protocol = protocol
        self._backend = backend
        self._buffered = buffered
        self._mutex = backend.mutex()
        self._send_lock = backend.lock()
        self._read_lock = backend.lock()
        # Made when first needed: most connections never queue a message or pump.
        self._messages: deque[str | bytes] | None = None  # for receive(), in order
        self._messages_size = 0  # their length in bytes (characters for text)
        self._arrival: Signal | None = None  # a pump queued a message or stopped
        self._pump_done: Signal | None = None
        # Output: frames made and not yet written (see the module docstring).
        self._urgent: list[bytes] = []  # pings and pongs
        self._urgent_size = 0
        self._pending: list[bytes] = []  # data and close frames, in order
        self._pending_size = 0
        self._partial: memoryview | None = None  # the rest of a write under way
        self._writing = 0  # the size of a frame the fast path is writing
        self._senders_waiting = 0
        self._writer_active = False
        self._write_failed = False
        self._written = 0  # bytes the socket has taken: the peer's progress
        self._send_timeout = send_timeout
        self._send_now: SendNow | None = None
        self._send_wait: SendWait | None = None
        if sock is not None:
            self._send_now = backend.sender(sock)
            self._send_wait = backend.writer(sock, send_timeout)
        self._ping_callbacks: dict[bytes, Callable[[], Any]] | None = None
        self._ping_counter = 0
        self._ping_interval = ping
        self._ping_timeout = ping_timeout
        self._ping_mark = 0  # _taken() when the pong timer was last set
        self._ping_delayed = False  # the pong timer was reset: the ping was behind
        self._close_timeout = close_timeout
        self._idle_timeout = idle_timeout
        self._last_received = 0.0
        self._ping_timer: Timer | None = None
        self._pong_timer: Timer | None = None
        self._idle_timer: Timer | None = None
        self._close_timer: Timer | None = None
        self._awaiting_pong = False
        self._started = False
        self._opened = False
        self._error_reported = False
        self._closing_reported = False  # close is being dispatched (ready_state CLOSED)
        self._closed_event: Close | None = None  # set once close has been dispatched
        self._user_reads = False
        self._pump_active = False
        self._reader_wanted = False
        self._messages_in = self._messages_out = self._bytes_in = 0  # out: _written
        if sock is not None:
            with _live_lock:
                _live.add(self)

    # ------------------------------------------------------------ attributes

    @property
    def ready_state(self) -> ReadyState:
        """CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3), as faye reports it."""
        if self._closing_reported:
            return CLOSED
        state = self._protocol.state
        return CLOSING if state == CLOSED else state

    @property
    def version(self) -> str:
        return self._protocol.version

    @property
    def buffered_amount(self) -> int:
        """Bytes queued and not yet taken by the socket (faye's ``bufferedAmount``).

        Frames being written by a ``send`` still blocked, and those of senders
        waiting behind it; 0 when everything has been handed to the kernel.
        """
        partial = self._partial
        writing = self._writing if partial is None else len(partial)
        return self._urgent_size + self._pending_size + writing

    # -------------------------------------------------------------- sending

    def send(self, message: str | bytes | bytearray | memoryview) -> bool:
        """Send a text (``str``) or binary (bytes-like) message.

        Blocks until the frame is written to the socket. Returns False once the
        connection is closing or closed (faye's result), and the message is
        dropped; also when the peer took no byte for ``send_timeout`` seconds,
        which closes the connection (1006).
        """
        if not self._started:
            self._start()
        protocol = self._protocol
        if isinstance(message, str):
            frame: Callable[[Any], bool] = protocol.send_text
        elif isinstance(message, bytes | bytearray | memoryview):
            frame = protocol.send_binary
        else:
            raise TypeError(
                f"send() takes str (text) or bytes (binary), not {type(message).__name__}; "
                "convert it first, e.g. send(str(value)) or send(json.dumps(value))"
            )
        if self._send_lock.acquire(blocking=False):
            # Nobody is writing: make the frame and write it straight away.
            try:
                with self._mutex:
                    sent = frame(message)
                    self._messages_out += sent
                    data = protocol.data_to_send()
                    queued = bool(self._partial is not None or self._urgent or self._pending)
                    if queued:  # frames queued before it go first
                        self._queue(data)
                if queued:
                    written = self._drain(blocking=True)
                else:
                    written = self._write(data) if data else True
            finally:
                self._send_lock.release()
            if self._urgent or self._pending:  # queued by a reader meanwhile
                self._flush_now()
        else:
            written, sent = self._send_behind(frame, message)
            self._messages_out += sent
        sent = written and sent
        if not sent:
            self._collect()  # a close may be waiting to be reported
        elif not self._user_reads and not self._pump_active:
            self._start_pump()
        return sent

    def _send_behind(self, frame: Callable[[Any], bool], message: Any) -> tuple[bool, bool]:
        """Send while another thread writes: queue the frame, wait for the lock, write."""
        with self._mutex:
            made = self._pending_size < _QUEUE_LIMIT
            if made:
                sent = frame(message)
                self._queue(self._protocol.data_to_send())
            self._senders_waiting += 1
        try:
            self._send_lock.acquire()  # its holder's waits are bounded by send_timeout
        finally:
            with self._mutex:
                self._senders_waiting -= 1
        try:
            if not made:  # the queue was full: make the frame now, in lock order
                with self._mutex:
                    sent = frame(message)
                    self._queue(self._protocol.data_to_send())
            written = self._drain(blocking=True)
        finally:
            self._unlock()
        return written, sent

    def ping(self, message: str | bytes = b"", callback: Callable[[], Any] | None = None) -> bool:
        """Send a ping; ``callback()`` runs when a pong with the same payload arrives.

        Returns False when the connection is closing or the protocol has no
        pings (hixie drafts). A later ping with the same payload replaces the
        callback, as in faye. Never blocks: the ping goes ahead of queued
        messages, at once if the socket takes it.
        """
        if not self._started:
            self._start()
        payload = message.encode("utf-8") if isinstance(message, str) else bytes(message)
        with self._mutex:
            sent = self._protocol.send_ping(payload)
            if sent and callback is not None:
                if self._ping_callbacks is None:
                    self._ping_callbacks = {}
                self._ping_callbacks[payload] = callback
            self._queue_control(self._protocol.data_to_send())
        self._flush_now()
        return sent and not self._write_failed

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
        with self._mutex:
            started = self._protocol.send_close(code, reason)
            self._queue(self._protocol.data_to_send())
            events = self._protocol.events_received()
        self._closing(started)  # the timeout first: the frame may wait behind a send
        self._flush_now()
        self._handle(events)
        if started and self._read_lock.acquire(blocking=False):
            # Nobody else reads: finish the handshake here, so the peer is not
            # left waiting (bounded by the close timeout). A handler running on
            # the reader thread gets here with the lock taken and returns at once.
            try:
                while self._closed_event is None:
                    self._read(None)
            finally:
                self._read_lock.release()

    def _closing(self, started: bool) -> None:
        if started and self._close_timer is None and self._closed_event is None:
            self._close_timer = self._call_later(self._close_timeout, self._on_close_timeout)

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
        with self._mutex:
            started = self._protocol.send_close(code, reason, strict=False)
            self._queue(self._protocol.data_to_send())
        self._closing(started)
        self._flush_now()

    # ------------------------------------------------------------ receiving

    def receive(self, timeout: float | None = None) -> str | bytes:
        """Wait for the next message: ``str`` for text, ``bytes`` for binary.

        Raises:
            ConnectionClosed: the connection closed and no message is left.
            TimeoutError: nothing arrived within ``timeout`` seconds.
            ConcurrencyError: another thread is already receiving.
        """
        if self._messages:
            return self._pop_message()
        if not self._started:
            self._start()
        self._user_reads = True
        deadline = None if timeout is None else self._now() + timeout
        while True:
            if self._messages:
                return self._pop_message()
            if self._closed_event is not None:
                raise ConnectionClosed(self._closed_event.code, self._closed_event.reason)
            remaining = None if deadline is None else deadline - self._now()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"no message within {timeout} s")
            if self._read_lock.acquire(blocking=False):
                try:
                    if not self._messages and self._closed_event is None:
                        self._read(remaining)
                finally:
                    self._read_lock.release()
            elif self._pump_active:
                arrival = self._arrival
                assert arrival is not None  # made before the pump started
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
        while True:
            try:
                yield self.receive()
            except ConnectionClosed:
                return

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
        if self._pump_active and self._pump_done is not None:
            # A pump left waiting on the socket must not outlive the request: the
            # server closes the socket once run() returns (libev aborts on a
            # watcher of a closed fd). It notices the close within one poll.
            self._pump_done.wait(2 * _PUMP_POLL)

    # ------------------------------------------------------------ internals

    def _start(self) -> None:
        """Fire ``open`` and parse the buffered bytes, on first use (faye's next tick)."""
        self._started = True
        if self._protocol.state == OPEN:  # a failed handshake never opens
            self._open()
        buffered, self._buffered = self._buffered, b""
        with self._mutex:
            if buffered:
                self._protocol.receive_data(buffered)
            events = self._protocol.events_received()
            self._queue_replies()
        self._flush_now()
        self._handle(events)
        if self._closed_event is None:
            if self._ping_interval:
                self._ping_timer = self._call_later(self._ping_interval, self._on_ping)
            if self._idle_timeout:
                self._last_received = self._now()
                self._idle_timer = self._call_later(self._idle_timeout, self._on_idle)

    def _open(self) -> None:
        if not self._opened and self._closed_event is None:
            self._opened = True
            self.emit(Event("open"))

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
            data = sock.recv(READ_SIZE)
            self._bytes_in += len(data)
        except (OSError, ValueError):  # reset, or closed by another thread (fileno -1)
            data = b""
        self._process(data, eof=not data)

    def _process(self, data: bytes, *, eof: bool) -> None:
        protocol = self._protocol
        if data and self._idle_timeout:
            self._last_received = self._now()
        with self._mutex:
            if eof:
                protocol.receive_eof()
            else:
                protocol.receive_data(data)
            events = protocol.events_received()
            self._queue_replies()
        if self._urgent or self._pending:
            self._flush_now()  # pongs or a close reply; never wait for a sender
        if events:
            self._handle(events)

    def _handle(self, events: list[Any]) -> None:
        for event in events:
            kind = type(event)
            if kind is Message:
                self._messages_in += 1
                if self.onmessage is None and not self._listeners.get("message"):
                    if self._messages is None:
                        self._messages = deque()
                    self._messages.append(event.data)
                    self._messages_size += len(event.data)
                    if self._pump_active and self._arrival is not None:
                        self._arrival.set()
                else:
                    self.emit(Event("message", data=event.data))
            elif kind is Pong:
                self._awaiting_pong = False
                callbacks = self._ping_callbacks
                callback = None if callbacks is None else callbacks.pop(event.data, None)
                if callback is not None:
                    callback()
            elif kind is Close:
                self._finish(event)
            elif kind is Error:
                if not self._error_reported:
                    self._error_reported = True
                    self.emit(Event("error", message=event.message))
            elif kind is Open:
                self._open()

    def _finish(self, event: Close) -> None:
        if self._closing_reported:
            return
        self._closing_reported = True
        with _live_lock:
            _live.discard(self)
        for timer in (self._ping_timer, self._pong_timer, self._idle_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._write_last_frames()
        self._shutdown()
        try:
            self.emit(Event("close", code=event.code, reason=event.reason))
        finally:
            # Only now do the loops see the end: a handler that returns after
            # them finds its close listeners already run.
            self._closed_event = event
            if self._arrival is not None:
                self._arrival.set()

    def _write_last_frames(self) -> None:
        """Before the FIN: let a write in progress end and write a queued close frame.

        Both peers may close at once: another thread may have taken our close
        frame off the queue and not written it yet. Bounded, so a send stuck on
        a peer that does not read cannot hold the close up.
        """
        if self._sock is None or not self._send_lock.acquire(timeout=_LAST_WRITE_WAIT):
            return
        try:
            self._drain(blocking=False)
        finally:
            self._send_lock.release()

    def _shutdown(self) -> None:
        # shutdown, never close: the socket may belong to the WSGI server, and
        # shutdown wakes any thread blocked on it with EOF.
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # Writing (see the module docstring).

    def _queue(self, data: bytes) -> None:
        """Queue data or close frames in the frame layer's order; ``_mutex`` held."""
        if data:
            self._pending.append(data)
            self._pending_size += len(data)

    def _queue_control(self, data: bytes) -> None:
        """Queue pings and pongs ahead of data; ``_mutex`` held.

        Beyond ``_URGENT_LIMIT`` the oldest are dropped: the peer is not reading
        them, and a pong may answer only the latest ping (RFC 6455 §5.5.3).
        """
        if data:
            urgent = self._urgent
            urgent.append(data)
            self._urgent_size += len(data)
            while self._urgent_size > _URGENT_LIMIT and len(urgent) > 1:
                self._urgent_size -= len(urgent.pop(0))

    def _queue_replies(self) -> None:
        """Queue what reading made: pongs are urgent, a close follows the data."""
        data = self._protocol.data_to_send()
        if self._protocol.state == CLOSED:
            self._queue(data)  # a close reply (and any pongs before it)
        else:
            self._queue_control(data)

    def _unlock(self) -> None:
        """Release the send lock, then write what a reader queued meanwhile."""
        self._send_lock.release()
        if self._urgent or self._pending:
            self._flush_now()

    def _flush_now(self) -> None:
        """Write what is queued as far as the socket takes it now; never blocks.

        If a sender holds the lock, it writes the rest. Otherwise what the
        socket did not take is left to a writer task (a waiting sender will do).
        """
        while (
            self._partial is not None or self._urgent or self._pending
        ) and not self._write_failed:
            if not self._send_lock.acquire(blocking=False):
                return  # the holder looks at the queues again before it lets go
            try:
                self._drain(blocking=False)
                left = self._partial is not None and not self._write_failed
            finally:
                self._send_lock.release()
            if left:
                if not self._writer_active and not self._senders_waiting:
                    self._writer_active = True
                    self._backend.spawn(self._writer)
                return

    def _writer(self) -> None:
        """Finish writing what a reader or timer could not write at once."""
        written = True
        try:
            with self._send_lock:  # bounded: the holder waits at most send_timeout
                self._writer_active = False
                written = self._drain(blocking=True)
        except Exception:  # a writer must not die silently
            log.exception("WebSocket writer failed")
            self._abort(1006, "")
            written = False
        if self._urgent or self._pending:
            self._flush_now()
        if not written:
            self._collect()

    def _drain(self, *, blocking: bool) -> bool:
        """Write the queues with the send lock held; False once writing failed.

        Urgent frames go first, after any partly written frame. Without
        ``blocking`` it stops when the socket is full (the rest is kept in
        ``_partial``); with it, it waits for room, at most ``send_timeout``
        seconds each time.
        """
        while not self._write_failed:
            view = self._partial
            if view is None:
                with self._mutex:
                    chunks = self._urgent + self._pending
                    if not chunks:
                        return True
                    self._urgent, self._pending = [], []
                    self._urgent_size = self._pending_size = 0
                    view = self._partial = memoryview(
                        chunks[0] if len(chunks) == 1 else b"".join(chunks)
                    )
            if not self._write_some(view, blocking) and not blocking:
                return not self._write_failed  # the socket is full: the rest waits
        return False

    def _write(self, data: bytes) -> bool:
        """Write one frame with the send lock held and nothing queued (the fast path)."""
        sock, send_wait = self._sock, self._send_wait
        assert sock is not None and send_wait is not None
        self._writing = len(data)  # for buffered_amount while the kernel waits
        try:
            count = send_wait(sock, data, self._send_timeout)
        except OSError:
            self._fail_write("")
            return False
        finally:
            self._writing = 0
        self._written += count
        if count == len(data):
            return True
        if not count:
            self._fail_write(self._timeout_reason())
            return False
        self._partial = memoryview(data)[count:]
        return self._drain(blocking=True)

    def _timeout_reason(self) -> str:
        return f"send timeout: the peer took no data for {self._send_timeout} s"

    def _write_some(self, view: memoryview, blocking: bool) -> bool:
        """Write part of ``_partial``: True when it is all written, else False."""
        sock = self._sock
        assert sock is not None and self._send_now is not None and self._send_wait is not None
        try:
            if blocking:
                count = self._send_wait(sock, view, self._send_timeout)
                if not count:
                    self._fail_write(self._timeout_reason())
                    return False
            else:
                count = self._send_now(sock, view)
        except OSError:
            self._fail_write("")
            return False
        self._written += count
        if count == len(view):
            self._partial = None
            return True
        self._partial = view[count:]
        return False

    def _fail_write(self, reason: str) -> None:
        """The socket broke or stalled: drop the output and end the connection (1006)."""
        self._write_failed = True
        with self._mutex:
            self._urgent, self._pending, self._partial = [], [], None
            self._urgent_size = self._pending_size = 0
        self._abort(1006, reason)

    def _collect(self) -> None:
        """Report events a timer or a failed write left in the frame layer."""
        with self._mutex:
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
        if self._pump_done is None:
            self._arrival = self._backend.signal()
            self._pump_done = self._backend.signal()
        self._pump_done.clear()
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
            if self._arrival is not None and self._pump_done is not None:
                self._arrival.set()
                self._pump_done.set()
        if self._closed_event is None and self._protocol.state == CLOSED:
            self._process(b"", eof=True)

    # Timers: they run on a shared service and must not block.

    def _on_ping(self) -> None:
        if self._closed_event is not None:
            return
        self._ping_timer = self._call_later(self._ping_interval or 0, self._on_ping)
        if self._ping_timeout and self._awaiting_pong:
            return  # the pong timer is still running
        self._ping_counter += 1
        self._awaiting_pong = True
        self._ping_mark, self._ping_delayed = self._taken(), False
        with self._mutex:
            self._protocol.send_ping(str(self._ping_counter).encode("ascii"))
            self._queue_control(self._protocol.data_to_send())
        self._flush_now()
        if self._ping_timeout:
            self._pong_timer = self._call_later(self._ping_timeout, self._on_pong_timeout)
        if not self._user_reads and not self._pump_active and self._closed_event is None:
            self._start_pump()  # nobody reads: someone must see the pong

    def _on_pong_timeout(self) -> None:
        if not self._awaiting_pong or self._closed_event is not None:
            return
        assert self._sock is not None
        taken = self._taken()
        behind = bool(self.buffered_amount or unacknowledged(self._sock))
        if (behind and taken != self._ping_mark) or (not behind and self._ping_delayed):
            # The ping may still wait behind a large frame, in our queue or the
            # kernel's, and the peer is taking that frame: it is alive. Once
            # nothing is ahead, the ping gets one more full period. A peer that
            # takes nothing is cut.
            self._ping_mark, self._ping_delayed = taken, behind
            self._pong_timer = self._call_later(self._ping_timeout or 0, self._on_pong_timeout)
            return
        self._abort(1006, f"ping timeout: no pong within {self._ping_timeout} s")

    def _taken(self) -> int:
        """Bytes the peer has acknowledged: how far it has read our output."""
        assert self._sock is not None
        return self._written - unacknowledged(self._sock)

    def _on_idle(self) -> None:
        if self._closed_event is not None or not self._idle_timeout:
            return
        sock = self._sock
        assert sock is not None
        idle = self._now() - self._last_received
        if idle >= self._idle_timeout and self._backend.wait_readable(sock, 0):
            idle = 0.0  # bytes wait unread: the peer is not the silent one
        if idle < self._idle_timeout:
            wait = self._idle_timeout - idle
            self._idle_timer = self._call_later(wait, self._on_idle)
            return
        self.go_away(1001, f"idle timeout: nothing received for {self._idle_timeout} s")

    def _on_close_timeout(self) -> None:
        if self._closed_event is None:
            self._abort(1006, "")

    def _call_later(self, delay: float, method: Callable[[], object]) -> Timer:
        """A timer that does not keep this connection alive.

        Keep-alive timers reschedule themselves: holding the connection strongly,
        they would keep one a handler dropped (it raised before ``ws.response``)
        alive for ever, with its socket and admission slot.
        """
        ref = weakref.WeakMethod(method)

        def call() -> None:
            bound = ref()
            if bound is not None:
                bound()

        return self._backend.call_later(delay, call)

    @staticmethod
    def _now() -> float:
        return time.monotonic()
