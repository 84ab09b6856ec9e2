"""Pings and the timers of a :class:`~faye_sync.blocking.connection.Connection`.

Timers (ping timeout, idle timeout, close timeout) come from the backend's
shared service and never block: a dead peer is cut off by ``shutdown``, which
wakes whoever is blocked on the socket; that thread then reports ``close``. A
ping waiting behind a large frame does not count against ``ping_timeout`` while
the peer is taking that frame.

Keep-alive pings, which every server socket has, take no timer of their own: one
:class:`_PingSweep` per interval serves every connection (see there).
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..protocol.events import Close
from .backends import Backend, Lock, Timer
from .writer import Writer

__all__ = ["CLOSE_TIMEOUT", "KeepAlive", "Timeouts"]

log = logging.getLogger("faye_sync")

CLOSE_TIMEOUT = 30.0  # faye's API.CLOSE_TIMEOUT
# A ping this part of its interval early is sent with the ones due now: one wake-up
# for the connections opened within that span, not one each.
_PING_SLACK = 0.01


class Timeouts:
    """A connection's timeouts: one object shared by the connections made with the same
    settings (most servers have one or two), where five slots cost each 40 bytes."""

    __slots__ = ("close_timeout", "idle_timeout", "ping", "ping_timeout", "send_timeout")

    def __init__(
        self,
        ping: float | None,
        ping_timeout: float | None,
        close_timeout: float,
        idle_timeout: float | None,
        send_timeout: float | None,
    ) -> None:
        self.ping = ping  # seconds between keep-alive pings
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.idle_timeout = idle_timeout
        self.send_timeout = send_timeout


#: Timeouts' arguments, in order: what a connection looks its shared one up by.
TimeoutSettings = tuple[float | None, float | None, float, float | None, float | None]
_timeouts: dict[TimeoutSettings, Timeouts] = {}


def _new_timeouts(key: TimeoutSettings) -> Timeouts:
    timeouts = Timeouts(*key)
    if len(_timeouts) < 256:  # a server's configurations: a handful
        _timeouts[key] = timeouts
    return timeouts


class _Timers:
    """What only a connection with a timer running needs, made with its first timer.

    An idle connection with the default options has none (its pings come from the
    shared sweep): seven slots less on every one.
    """

    __slots__ = (
        "callbacks",
        "close",
        "idle",
        "last_received",
        "ping_delayed",
        "ping_mark",
        "pong",
    )

    def __init__(self) -> None:
        self.pong: Timer | None = None
        self.idle: Timer | None = None
        self.close: Timer | None = None
        self.last_received = 0.0  # time.monotonic() of the last byte (idle timeout)
        self.ping_mark = 0  # _taken() when the pong timer was last set
        self.ping_delayed = False  # the pong timer was reset: the ping was behind
        self.callbacks: dict[bytes, Callable[[], Any]] | None = None  # ping(callback=)


class KeepAlive(Writer):
    """Pings, their pongs, and the ping, pong, idle and close timers.

    :class:`~faye_sync.blocking.connection.Connection` builds on it.
    """

    __slots__ = (
        "_awaiting_pong",
        "_ping_counter",
        "_ping_due",  # when the sweep pings next (time.monotonic())
        "_timeouts",
        "_timers",
    )

    _closed_event: Close | None

    if TYPE_CHECKING:

        def go_away(self, code: int = 1001, reason: str = "") -> None: ...

    def _init_timers(self, settings: TimeoutSettings) -> None:
        """``settings``: (ping, ping_timeout, close_timeout, idle_timeout, send_timeout)."""
        self._timeouts = _timeouts.get(settings) or _new_timeouts(settings)
        self._timers: _Timers | None = None  # made with the first timer
        self._ping_counter = 0
        self._ping_due = 0.0
        self._awaiting_pong = False

    def _the_timers(self) -> _Timers:
        timers = self._timers
        if timers is None:
            timers = self._timers = _Timers()
        return timers

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

        def make() -> bool:
            sent = self._protocol.send_ping(payload)
            if sent and callback is not None:
                timers = self._the_timers()
                if timers.callbacks is None:
                    timers.callbacks = {}
                timers.callbacks[payload] = callback
            return sent

        return self._queue(make, urgent=True) and not self._write_failed

    def _pong(self, payload: bytes) -> None:
        # The answered ping's timeout goes first, so that it cannot fire against
        # the next ping (sent once _awaiting_pong is False).
        timers = self._timers
        if timers is not None and timers.pong is not None:
            timers.pong.cancel()
        self._awaiting_pong = False
        if timers is None:
            return
        callbacks = timers.callbacks
        callback = None if callbacks is None else callbacks.pop(payload, None)
        if callback is not None:
            callback()

    def _start_timers(self) -> None:
        timeouts = self._timeouts
        ping = timeouts.ping
        if ping:
            backend = self._backend  # _sweep_for(backend, ping), inlined: a call less
            sweep = _sweeps.get((backend, ping, backend.timer_scope()))
            (sweep or _sweep_for(backend, ping)).add(self)
        if timeouts.idle_timeout:
            timers = self._the_timers()
            timers.last_received = self._now()
            timers.idle = self._call_later(timeouts.idle_timeout, self._on_idle)

    def _stop_timers(self) -> None:
        # The ping sweep drops a closed connection when it comes to it.
        timers = self._timers
        if timers is not None:
            for timer in (timers.pong, timers.idle, timers.close):
                if timer is not None:
                    timer.cancel()

    def _closing(self, started: bool) -> None:
        if started and self._closed_event is None:
            timers = self._the_timers()
            if timers.close is None:
                close_timeout = self._timeouts.close_timeout
                timers.close = self._call_later(close_timeout, self._on_close_timeout)

    def _on_ping(self) -> None:
        """The sweep's call, every ``ping`` seconds while the connection is open."""
        if self._closed_event is not None:
            return
        ping_timeout = self._timeouts.ping_timeout
        if ping_timeout and self._awaiting_pong:
            return  # the pong timer is still running
        self._ping_counter += 1
        self._awaiting_pong = True
        payload = str(self._ping_counter).encode("ascii")
        if ping_timeout:  # before the ping is queued: what the peer has taken by then
            timers = self._the_timers()
            timers.ping_mark, timers.ping_delayed = self._taken(), False
        self._queue(lambda: self._protocol.send_ping(payload), urgent=True)
        if ping_timeout:
            self._the_timers().pong = self._call_later(ping_timeout, self._on_pong_timeout)
        if not self._user_reads and not self._pump_active and self._closed_event is None:
            self._start_pump()  # nobody reads: someone must see the pong

    def _on_pong_timeout(self) -> None:
        if not self._awaiting_pong or self._closed_event is not None:
            return
        assert self._sock is not None
        timers = self._the_timers()
        ping_timeout = self._timeouts.ping_timeout
        taken = self._taken()
        behind = bool(self.buffered_amount or unacknowledged(self._sock))
        if (behind and taken != timers.ping_mark) or (not behind and timers.ping_delayed):
            # The ping may still wait behind a large frame, in our queue or the
            # kernel's, and the peer is taking that frame: it is alive. Once
            # nothing is ahead, the ping gets one more full period. A peer that
            # takes nothing is cut.
            timers.ping_mark, timers.ping_delayed = taken, behind
            timers.pong = self._call_later(ping_timeout or 0, self._on_pong_timeout)
            if self._answered():  # the pong came meanwhile: _pong missed this timer
                timers.pong.cancel()
            return
        self._abort(1006, f"ping timeout: no pong within {ping_timeout} s")

    def _answered(self) -> bool:
        # A call, not the attribute: mypy takes _awaiting_pong for True after a
        # check, but the reader's _pong may clear it at any time.
        return not self._awaiting_pong

    def _taken(self) -> int:
        """Bytes the peer has acknowledged: how far it has read our output."""
        assert self._sock is not None
        return self._written - unacknowledged(self._sock)

    def _on_idle(self) -> None:
        idle_timeout = self._timeouts.idle_timeout
        if self._closed_event is not None or not idle_timeout:
            return
        sock = self._sock
        assert sock is not None
        timers = self._the_timers()
        idle = self._now() - timers.last_received
        if idle >= idle_timeout and self._backend.wait_readable(sock, 0):
            idle = 0.0  # bytes wait unread: the peer is not the silent one
        if idle < idle_timeout:
            timers.idle = self._call_later(idle_timeout - idle, self._on_idle)
            return
        self.go_away(1001, f"idle timeout: nothing received for {idle_timeout} s")

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


def unacknowledged(sock: socket.socket) -> int:
    """Bytes written to ``sock`` that the peer has not acknowledged yet.

    Linux's ``SIOCOUTQ`` (``TIOCOUTQ``); 0 where the system cannot tell.
    """
    if _TIOCOUTQ is None:
        return 0
    try:
        result = fcntl.ioctl(sock.fileno(), _TIOCOUTQ, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0
    return int.from_bytes(result, sys.byteorder, signed=True)


try:
    import fcntl
    import termios

    _TIOCOUTQ: int | None = termios.TIOCOUTQ if sys.platform == "linux" else None
except ImportError:  # Windows
    _TIOCOUTQ = None


class _PingSweep:
    """The keep-alive pings of every connection with one interval, on one timer.

    A timer per connection (its handle, a closure and a weak method) cost 0.8 KiB
    of every idle socket and a tenth of a handshake. Here a connection is one
    weak reference in a queue: it enters at ``now + interval``, and since time
    only moves on, the queue is in deadline order. The timer is set for the
    first deadline; each run pings the connections due and puts them back at the
    end. A closed or collected connection is dropped when it comes up: weak
    references, so a connection dropped unclosed is not kept alive.
    """

    __slots__ = ("_armed", "_backend", "_interval", "_last_due", "_lock", "_queue")

    def __init__(self, backend: Backend, interval: float) -> None:
        self._backend = backend
        self._interval = interval
        self._queue: deque[weakref.ref[KeepAlive]] = deque()
        self._lock: Lock = threading.Lock()  # never held across a switch or I/O
        self._armed = False  # a timer is set for the first deadline
        # The last deadline queued. Connections added within the slack after it share
        # it (pinged up to 1 % early, with it): one float, not 24 bytes each.
        self._last_due = 0.0

    def add(self, connection: KeepAlive) -> None:
        with self._lock:
            due = time.monotonic() + self._interval
            if due - self._last_due < self._interval * _PING_SLACK:
                due = self._last_due
            else:
                self._last_due = due
            connection._ping_due = due
            self._queue.append(weakref.ref(connection))
            if not self._armed:
                self._armed = True
                self._backend.call_later(self._interval, self._run)

    def _run(self) -> None:
        due = []
        queue = self._queue
        with self._lock:
            now = time.monotonic()
            soon = now + self._interval * _PING_SLACK
            next_due = now + self._interval  # one float for all pinged now
            delay = None
            while queue:
                connection = queue[0]()
                if connection is None or connection._closed_event is not None:
                    queue.popleft()
                elif connection._ping_due <= soon:
                    connection._ping_due = next_due
                    queue.rotate(-1)  # back at the end, with its new deadline
                    due.append(connection)
                else:
                    delay = connection._ping_due - now
                    break
            if due:
                self._last_due = next_due
            self._armed = delay is not None
            if delay is not None:
                self._backend.call_later(delay, self._run)
        for connection in due:
            try:
                connection._on_ping()
            except Exception:  # one connection must not stop the others' pings
                log.exception("WebSocket keep-alive ping failed")


_sweeps: dict[tuple[Backend, float, object], _PingSweep] = {}
_sweeps_lock = threading.Lock()


def _sweep_for(backend: Backend, interval: float) -> _PingSweep:
    """The sweep of ``interval`` on this backend (and on gevent, this thread's hub)."""
    key = (backend, interval, backend.timer_scope())
    sweep = _sweeps.get(key)
    if sweep is None:
        with _sweeps_lock:
            sweep = _sweeps.setdefault(key, _PingSweep(backend, interval))
    return sweep
