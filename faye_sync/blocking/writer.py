"""The send path of a :class:`~faye_sync.blocking.connection.Connection`.

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

"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..protocol.base import CLOSED, FrameProtocol
from ..protocol.large import LARGE_FRAME
from .backends import NO_LOCK, Backend, Lock, SendNow, SendWait
from .emitter import EventEmitter
from .greenlet_lock import GreenletLock
from .large import send_large

if TYPE_CHECKING:
    from .keepalive import Timeouts

__all__ = ["Writer"]

log = logging.getLogger("faye_sync")

SEND_TIMEOUT = 60.0  # nginx's send_timeout: no byte taken for this long ends it
_QUEUE_LIMIT = 2**20  # ordered bytes queued before senders wait to make their frame
_LAST_WRITE_WAIT = 1.0  # seconds a closing connection waits for a write in progress
_URGENT_LIMIT = 65536  # unwritten pings and pongs kept; older ones are dropped
# A tuple: ``bytes | bytearray | memoryview`` in isinstance() builds a union per call.
_BINARY = (bytes, bytearray, memoryview)


class Writer(EventEmitter):
    """The output half of a connection: frames made, queued and written.

    :class:`~faye_sync.blocking.connection.Connection` builds on it, and owns
    the socket, the frame layer and the locks it uses.
    """

    # Slots, as the connection's (see there): each layer lists its own.
    __slots__ = (
        "_messages_out",  # for faye_sync.stats()
        "_partial",
        "_pending",
        "_pending_size",
        "_send_now",
        "_send_wait",
        "_senders_waiting",
        "_urgent",
        "_urgent_size",
        "_write_failed",
        "_writer_active",
        "_writing",
        "_written",
    )

    _backend: Backend
    _protocol: FrameProtocol
    _sock: socket.socket | None
    _mutex: Lock
    _send_lock: Lock
    _started: bool
    _user_reads: bool
    _pump_active: bool
    _timeouts: Timeouts  # send_timeout among them

    if TYPE_CHECKING:

        def _start(self) -> None: ...
        def _start_pump(self) -> None: ...
        def _collect(self) -> None: ...
        def _abort(self, code: int, reason: str) -> None: ...

    def _init_writer(self) -> None:
        # Output: frames made and not yet written (see the module docstring).
        # None while empty (nearly always): two empty lists cost every idle socket 112 bytes.
        self._urgent: list[bytes] | None = None  # pings and pongs
        self._urgent_size = 0
        self._pending: list[bytes] | None = None  # data and close frames, in order
        self._pending_size = 0
        self._partial: memoryview | None = None  # the rest of a write under way
        self._writing = 0  # the size of a frame the fast path is writing
        self._senders_waiting = 0
        self._writer_active = False
        self._write_failed = False
        self._written = 0  # bytes the socket has taken: the peer's progress
        self._messages_out = 0
        self._send_now: SendNow | None = None
        self._send_wait: SendWait | None = None
        sock = self._sock
        if sock is not None:
            senders = self._backend.senders(sock, self._timeouts.send_timeout)
            self._send_now, self._send_wait = senders

    @property
    def buffered_amount(self) -> int:
        """Bytes queued and not yet taken by the socket (faye's ``bufferedAmount``).

        Frames being written by a ``send`` still blocked, and those of senders
        waiting behind it; 0 when everything has been handed to the kernel.
        """
        partial = self._partial
        writing = self._writing if partial is None else len(partial)
        return self._urgent_size + self._pending_size + writing

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
        frame = _framer(protocol, message, "send")
        large = send_large(self, frame, message) if len(message) >= LARGE_FRAME else None
        if large is not None:  # header and payload went out with one sendmsg
            written, sent = large
        elif self._send_lock.acquire(False):
            # Nobody is writing: make the frame and write it straight away. A
            # second path on purpose: queuing this frame too (one path, through
            # _drain) measured 7.5 % slower on a 32-byte echo over a socket pair.
            try:
                mutex = self._mutex
                if mutex is not NO_LOCK:  # greenlets need none (see NO_LOCK)
                    mutex.acquire()
                try:
                    sent = frame(message)
                    self._messages_out += sent
                    data = protocol.data_to_send()
                    queued = self._partial is not None or bool(self._urgent or self._pending)
                    if queued:  # frames queued before it go first
                        self._enqueue(data)
                finally:
                    if mutex is not NO_LOCK:
                        mutex.release()
                if queued:
                    written = self._drain()
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

    def send_nowait(self, *messages: str | bytes | bytearray | memoryview) -> bool:
        """Send messages without waiting for the peer; never blocks.

        Their frames are written in one go, as far as the socket takes them
        now; the rest goes out in the background, after frames already queued
        and before later ones. Nothing bounds what is queued this way: watch
        :attr:`buffered_amount` (the hub stops at 64 KiB and waits in
        :meth:`send`). Before the socket's first use the frames wait behind the
        101 (see ``accept``). Returns False once the connection is closing or
        closed (or a write failed), and what was not sent is dropped.
        """
        frames = [(_framer(self._protocol, m, "send_nowait"), m) for m in messages]
        sent = True
        with self._mutex:
            for frame, message in frames:
                made = frame(message)
                self._messages_out += made
                sent = sent and made
            self._enqueue(self._protocol.data_to_send())
        # Read after queuing: a first use racing with this call writes it either way.
        if not self._started:
            return sent
        self._flush_now()
        sent = sent and not self._write_failed
        if sent and not self._user_reads and not self._pump_active:
            self._start_pump()
        return sent

    def _send_behind(self, frame: Callable[[Any], bool], message: Any) -> tuple[bool, bool]:
        """Send while another thread writes: queue the frame, wait for the lock, write."""
        with self._mutex:
            made = self._pending_size < _QUEUE_LIMIT
            if made:
                sent = frame(message)
                self._enqueue(self._protocol.data_to_send())
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
                    self._enqueue(self._protocol.data_to_send())
            written = self._drain()
        finally:
            self._unlock()
        return written, sent

    def _queue(self, make: Callable[[], bool], *, urgent: bool = False) -> bool:
        """Make frames with ``make()`` under ``_mutex``, queue them, write what fits now.

        Pings and pongs are ``urgent``: they go ahead of queued data. Never
        blocks; returns what ``make()`` returned.
        """
        with self._mutex:
            made = make()
            data = self._protocol.data_to_send()
            if urgent:
                self._enqueue_urgent(data)
            else:
                self._enqueue(data)
        self._flush_now()
        return made

    def _enqueue(self, data: bytes) -> None:
        """Queue data or close frames in the frame layer's order; ``_mutex`` held."""
        if data:
            if self._pending is None:
                self._pending = [data]
            else:
                self._pending.append(data)
            self._pending_size += len(data)

    def _enqueue_urgent(self, data: bytes) -> None:
        """Queue pings and pongs ahead of data; ``_mutex`` held.

        Beyond ``_URGENT_LIMIT`` the oldest are dropped: the peer is not reading
        them, and a pong may answer only the latest ping (RFC 6455 §5.5.3).
        """
        if data:
            urgent = self._urgent
            if urgent is None:
                urgent = self._urgent = []
            urgent.append(data)
            self._urgent_size += len(data)
            while self._urgent_size > _URGENT_LIMIT and len(urgent) > 1:
                self._urgent_size -= len(urgent.pop(0))

    def _queue_replies(self, data: bytes) -> None:
        """Queue ``data``, what reading made: pongs are urgent, a close follows the data."""
        if self._protocol.state != CLOSED:
            self._enqueue_urgent(data)
        elif self._pending is None:  # the close reply, nothing ahead: _enqueue without a call
            self._pending = [data]
            self._pending_size = len(data)
        else:
            self._enqueue(data)  # a close reply (and any pongs before it)

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
        lock = self._send_lock
        while (
            self._partial is not None or self._urgent or self._pending
        ) and not self._write_failed:
            if type(lock) is GreenletLock:
                # Its acquire(False) and release(), inlined (four calls a handshake): a
                # free lock has no waiters, and a greenlet that comes to wait meanwhile
                # (a TLS send may switch) is handed the lock as release() would.
                if lock._locked:
                    return  # the holder looks at the queues again before it lets go
                lock._locked = True
                try:
                    left = self._write_now()
                finally:
                    if lock._waiters:
                        lock.release()
                    else:
                        lock._locked = False
            elif not lock.acquire(False):
                return
            else:
                try:
                    left = self._write_now()
                finally:
                    lock.release()
            if left:
                if not self._writer_active and not self._senders_waiting:
                    self._writer_active = True
                    self._backend.spawn(self._writer)
                return

    def _write_now(self) -> bool:
        """Write ``_partial`` and the queues as far as the socket takes them now.

        The send lock is held. True if something is left. ``_drain``'s loop
        without waiting, in one frame: the 101 and a reader's replies (the
        close's among them) come this way, one call each instead of three.
        """
        sock, send_now = self._sock, self._send_now
        assert sock is not None and send_now is not None
        while not self._write_failed:
            view = self._partial
            if view is None:
                if self._urgent is None and self._pending is None:
                    return False  # as the check under the mutex would find
                view = self._take_queued()
                if view is None:
                    return False
            try:
                count = send_now(sock, view)
            except OSError:
                self._fail_write("")
                return False
            self._written += count
            if count != len(view):
                self._partial = view[count:]
                return True
            self._partial = None
        return False

    def _write_last_frames(self) -> None:
        """Before the FIN: let a write in progress end and write a queued close frame.

        Both peers may close at once: another thread may have taken our close
        frame off the queue and not written it yet. Bounded, so a send stuck on
        a peer that does not read cannot hold the close up. (The caller skips
        the call when the lock is free and nothing is queued: nothing to do.)
        """
        if self._sock is None or not self._send_lock.acquire(timeout=_LAST_WRITE_WAIT):
            return
        try:
            self._write_now()
        finally:
            self._send_lock.release()

    def _writer(self) -> None:
        """Finish writing what a reader or timer could not write at once."""
        written = True
        try:
            with self._send_lock:  # bounded: the holder waits at most send_timeout
                self._writer_active = False
                written = self._drain()
        except Exception:  # a writer must not die silently
            log.exception("WebSocket writer failed")
            self._abort(1006, "")
            written = False
        if self._urgent or self._pending:
            self._flush_now()
        if not written:
            self._collect()

    def _drain(self) -> bool:
        """Write the queues with the send lock held; False once writing failed.

        Urgent frames go first, after any partly written frame. Waits for room,
        at most ``send_timeout`` seconds each time (``_write_now`` does not wait).
        """
        while not self._write_failed:
            view = self._partial
            if view is None:
                if self._urgent is None and self._pending is None:
                    return True  # as the check under the mutex would find
                view = self._take_queued()
                if view is None:
                    return True
            self._write_some(view)
        return False

    def _take_queued(self) -> memoryview | None:
        """Take the queued frames as ``_partial``, urgent ones first; None if there are none."""
        mutex = self._mutex
        if mutex is not NO_LOCK:  # greenlets need none (a with block: two calls more)
            mutex.acquire()
        try:
            urgent, pending = self._urgent, self._pending
            chunks = urgent + pending if urgent and pending else urgent or pending
            if not chunks:
                return None
            self._urgent = self._pending = None
            self._urgent_size = self._pending_size = 0
            view = self._partial = memoryview(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            return view
        finally:
            if mutex is not NO_LOCK:
                mutex.release()

    def _write(self, data: bytes | memoryview) -> bool:
        """Write one frame with the send lock held and nothing queued (the fast path)."""
        sock, send_wait = self._sock, self._send_wait
        assert sock is not None and send_wait is not None
        self._writing = len(data)  # for buffered_amount while the kernel waits
        try:
            count = send_wait(sock, data, self._timeouts.send_timeout)
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
        return self._drain()

    def _timeout_reason(self) -> str:
        return f"send timeout: the peer took no data for {self._timeouts.send_timeout} s"

    def _write_some(self, view: memoryview) -> None:
        """Write part of ``_partial``, waiting for room (at most ``send_timeout``)."""
        sock, send_wait = self._sock, self._send_wait
        assert sock is not None and send_wait is not None
        try:
            count = send_wait(sock, view, self._timeouts.send_timeout)
        except OSError:
            self._fail_write("")
            return
        if not count:
            self._fail_write(self._timeout_reason())
            return
        self._written += count
        self._partial = None if count == len(view) else view[count:]

    def _fail_write(self, reason: str) -> None:
        """The socket broke or stalled: drop the output and end the connection (1006)."""
        self._write_failed = True
        with self._mutex:
            self._urgent = self._pending = self._partial = None
            self._urgent_size = self._pending_size = 0
        self._abort(1006, reason)


def _framer(protocol: FrameProtocol, message: object, method: str) -> Callable[[Any], bool]:
    """The frame layer's method for ``message``: text for ``str``, binary for bytes-like."""
    if isinstance(message, str):
        return protocol.send_text
    if isinstance(message, _BINARY):
        return protocol.send_binary
    raise TypeError(
        f"{method}() takes str (text) or bytes (binary), not {type(message).__name__}; "
        f"convert it first, e.g. {method}(str(value)) or {method}(json.dumps(value))"
    )
