"""A WebSocket connection over a blocking socket: faye's API in a thread or greenlet.

Who reads. The thread that wants a message reads the socket itself: ``receive()``
takes the read lock, calls ``recv`` and feeds the frame layer, so a message goes
from the socket to its caller without changing threads. ``run()`` (behind the
WSGI response) reads the same way and dispatches events to listeners. Only a
handler that sends without ever reading gets a background reader (the *pump*),
started by its first ``send``: it answers pings, sees the peer's close and keeps
messages for a later ``receive()``, to which it hands the socket back.

Writing. ``_mutex`` guards the frame layer and the pending output, and is never
held across I/O. Every frame is made and appended to ``_pending`` under it, so
the wire order is the frame layer's order (the deflate context needs that).
Whoever holds ``_send_lock`` writes what is pending; a sender waits for that
lock, so ``send`` returns once its frame is written. Readers, timers and
``close`` never wait for it: their small control frames are written at once if
the lock is free and the socket can take them, or by the next writer. So a
reader never stops reading because a send is stuck on a peer that is not
reading (two such peers would deadlock), and ``close`` is never stuck behind
a send: its timeout cuts the connection.

Timers (keep-alive ping, ping timeout, close timeout) come from the backend's
shared service and never block: a dead peer is cut off by ``shutdown``, which
wakes whoever is blocked on the socket; that thread then reports ``close``.
``close`` is dispatched before the loops (``receive``, iteration, ``run``)
learn that the connection is closed, and ``run`` waits for the pump to stop.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..exceptions import ConcurrencyError, ConnectionClosed
from ..protocol.base import FrameProtocol
from ..protocol.events import Close, Error, Message, Open, Pong
from ..protocol.hybi import CLOSED, CLOSING, CONNECTING, OPEN, validate_close_arguments
from .backends import Backend, Signal, Timer
from .emitter import Event, EventEmitter

__all__ = ["CLOSED", "CLOSING", "CONNECTING", "OPEN", "Connection", "close_all"]

log = logging.getLogger("faye_sync")

READ_SIZE = 65536
CLOSE_TIMEOUT = 30.0  # faye's API.CLOSE_TIMEOUT
_PUMP_POLL = 0.25  # how often a pump checks whether a receive() wants the socket
_HIGH_WATER = 64  # messages a pump keeps before it stops reading (backpressure)
_SMALL_WRITE = 8192  # what a reader or timer writes itself; more is a sender's to write
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
        "_bytes_in",  # _bytes_*, _messages_*: faye_sync.stats(), one integer add each
        "_bytes_out",
        "_close_timeout",
        "_close_timer",
        "_closed_event",
        "_closing_reported",
        "_error_reported",
        "_messages",
        "_messages_in",
        "_messages_out",
        "_mutex",
        "_opened",
        "_pending",
        "_ping_callbacks",
        "_ping_counter",
        "_ping_interval",
        "_ping_timeout",
        "_protocol",
        "_pump_active",
        "_pump_done",
        "_read_lock",
        "_reader_wanted",
        "_send_lock",
        "_sock",
        "_started",
        "_timers",
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
        self._arrival: Signal | None = None  # a pump queued a message or stopped
        self._pump_done: Signal | None = None
        self._pending: list[bytes] = []  # frames made but not yet written, in order
        self._ping_callbacks: dict[bytes, Callable[[], Any]] | None = None
        self._ping_counter = 0
        self._ping_interval = ping
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self._timers: Sequence[Timer] = ()
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
        self._messages_in = self._messages_out = self._bytes_in = self._bytes_out = 0
        if sock is not None:
            with _live_lock:
                _live.add(self)

    # ------------------------------------------------------------ attributes

    @property
    def ready_state(self) -> int:
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
        """Always 0: ``send`` returns once its frame is written to the socket."""
        return 0

    # -------------------------------------------------------------- sending

    def send(self, message: str | bytes | bytearray | memoryview) -> bool:
        """Send a text (``str``) or binary (bytes-like) message.

        Blocks until the frame is written. Returns False once the connection is
        closing or closed (faye's result), and the message is dropped.
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
                    if self._pending:  # control frames queued before it go first
                        data = b"".join([*self._pending, data])
                        self._pending = []
                written = self._write(data) if data else True
            finally:
                self._send_lock.release()
            if self._pending:
                self._flush(wait=False)  # queued while we wrote
            sent = written and sent
        else:
            with self._mutex:
                sent = frame(message)
                self._messages_out += sent
                self._pending_append(protocol.data_to_send())
            sent = self._flush(wait=True) and sent
        if not sent:
            self._collect()  # a close may be waiting to be reported
        elif not self._user_reads and not self._pump_active:
            self._start_pump()
        return sent

    def ping(self, message: str | bytes = b"", callback: Callable[[], Any] | None = None) -> bool:
        """Send a ping; ``callback()`` runs when a pong with the same payload arrives.

        Returns False when the connection is closing or the protocol has no
        pings (hixie drafts). A later ping with the same payload replaces the
        callback, as in faye.
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
            self._pending_append(self._protocol.data_to_send())
        return self._flush(wait=True) and sent

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
            self._pending_append(self._protocol.data_to_send())
            events = self._protocol.events_received()
        self._closing(started)  # the timeout first: the write below may have to wait
        self._flush(wait=False)
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
            self._close_timer = self._backend.call_later(
                self._close_timeout, self._on_close_timeout
            )

    def go_away(self, code: int = 1001, reason: str = "") -> None:
        """Start closing without blocking, with any sendable code (for shutdown).

        The close frame is written now if the socket can take it, else by the
        next writer; the reader (or the close timeout) finishes the handshake.
        """
        with self._mutex:
            started = self._protocol.send_close(code, reason, strict=False)
            self._pending_append(self._protocol.data_to_send())
        self._closing(started)
        self._flush(wait=False)

    # ------------------------------------------------------------ receiving

    def receive(self, timeout: float | None = None) -> str | bytes:
        """Wait for the next message: ``str`` for text, ``bytes`` for binary.

        Raises:
            ConnectionClosed: the connection closed and no message is left.
            TimeoutError: nothing arrived within ``timeout`` seconds.
            ConcurrencyError: another thread is already receiving.
        """
        messages = self._messages
        if messages:
            return messages.popleft()
        if not self._started:
            self._start()
        self._user_reads = True
        deadline = None if timeout is None else self._now() + timeout
        while True:
            messages = self._messages
            if messages:
                return messages.popleft()
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
                self._messages = None
            if self._read_lock.acquire(timeout=_PUMP_POLL):
                try:
                    if self._closed_event is None:
                        self._read(None)
                finally:
                    self._read_lock.release()
            else:
                self._reader_wanted = True  # a pump holds the socket: take it over
        self._messages = None
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
            self._pending_append(self._protocol.data_to_send())
        self._flush(wait=False)
        self._handle(events)
        if self._ping_interval and self._closed_event is None:
            self._schedule_ping()

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
        with self._mutex:
            if eof:
                protocol.receive_eof()
            else:
                protocol.receive_data(data)
            events = protocol.events_received()
            self._pending_append(protocol.data_to_send())
        if self._pending:
            self._flush(wait=False)  # a pong or a close reply; never wait for a sender
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
        for timer in self._timers:
            timer.cancel()
        if self._close_timer is not None:
            self._close_timer.cancel()
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
            with self._mutex:
                chunks, self._pending = self._pending, []
            if chunks and sum(map(len, chunks)) <= _SMALL_WRITE:
                if self._backend.wait_writable(self._sock, 0):
                    self._write(b"".join(chunks))
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

    def _pending_append(self, data: bytes) -> None:
        """Queue frames in the frame layer's order; call with ``_mutex`` held."""
        if data:
            self._pending.append(data)

    def _flush(self, *, wait: bool) -> bool:
        """Write what is pending; False if the socket broke (the connection then ends).

        With ``wait`` (a sender) this waits for the send lock and returns once
        everything pending, its own frame included, is written. Without it (a
        reader, a timer, close) it writes only if the lock is free, what is
        pending is small and the socket can take it now; otherwise the holder
        of the lock, or the next writer, writes it.
        """
        ok = True
        while self._pending:
            if wait:
                self._send_lock.acquire()
            elif not self._send_lock.acquire(blocking=False):
                return ok  # the holder looks at _pending again when it is done
            try:
                while ok:
                    with self._mutex:
                        if not self._pending or (not wait and not self._small_and_writable()):
                            break
                        chunks, self._pending = self._pending, []
                    ok = self._write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            finally:
                self._send_lock.release()
            if not ok or not wait:
                break
            # Frames queued while we wrote are ours to write only if small: a
            # sender that queued a big one is waiting for the lock itself.
            wait = False
        return ok

    def _small_and_writable(self) -> bool:
        assert self._sock is not None
        size = sum(len(chunk) for chunk in self._pending)
        return size <= _SMALL_WRITE and self._backend.wait_writable(self._sock, 0)

    def _write(self, data: bytes) -> bool:
        """Write with the send lock held; a broken socket ends the connection (1006)."""
        sock = self._sock
        assert sock is not None
        try:
            # send() first: it usually takes the whole frame, and gevent's
            # sendall() costs an extra system call per call.
            count = sock.send(data)
            self._bytes_out += len(data)
            if count < len(data):
                sock.sendall(memoryview(data)[count:])
        except OSError:
            self._abort(1006, "")
            return False
        return True

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
                        if self._messages is not None and len(self._messages) >= _HIGH_WATER:
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

    def _schedule_ping(self) -> None:
        assert self._ping_interval
        self._timers = [self._backend.call_later(self._ping_interval, self._on_ping_timer)]

    def _on_ping_timer(self) -> None:
        if self._closed_event is not None:
            return
        if self._ping_timeout and self._awaiting_pong:
            return
        self._ping_counter += 1
        self._awaiting_pong = True
        with self._mutex:
            self._protocol.send_ping(str(self._ping_counter).encode("ascii"))
            self._pending_append(self._protocol.data_to_send())
        self._flush(wait=False)
        timers = [self._backend.call_later(self._ping_interval or 0, self._on_ping_timer)]
        if self._ping_timeout:
            timers.append(self._backend.call_later(self._ping_timeout, self._on_pong_timeout))
        self._timers = timers
        if not self._user_reads and not self._pump_active and self._closed_event is None:
            self._start_pump()  # nobody reads: someone must see the pong

    def _on_pong_timeout(self) -> None:
        if self._awaiting_pong and self._closed_event is None:
            self._abort(1006, f"ping timeout: no pong within {self._ping_timeout} s")

    def _on_close_timeout(self) -> None:
        if self._closed_event is None:
            self._abort(1006, "")

    @staticmethod
    def _now() -> float:
        return time.monotonic()
