"""Pings and the timers of a :class:`~faye_sync.blocking.connection.Connection`.

Timers (keep-alive ping, ping timeout, idle timeout, close timeout) come from
the backend's shared service and never block: a dead peer is cut off by
``shutdown``, which wakes whoever is blocked on the socket; that thread then
reports ``close``. A ping waiting behind a large frame does not count against
``ping_timeout`` while the peer is taking that frame.
"""

from __future__ import annotations

import socket
import sys
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..protocol.events import Close
from .backends import Timer
from .writer import Writer

__all__ = ["CLOSE_TIMEOUT", "KeepAlive"]

CLOSE_TIMEOUT = 30.0  # faye's API.CLOSE_TIMEOUT


class KeepAlive(Writer):
    """Pings, their pongs, and the ping, pong, idle and close timers.

    :class:`~faye_sync.blocking.connection.Connection` builds on it.
    """

    __slots__ = (
        "_awaiting_pong",
        "_close_timeout",
        "_close_timer",
        "_idle_timeout",
        "_idle_timer",
        "_last_received",
        "_ping_callbacks",
        "_ping_counter",
        "_ping_delayed",
        "_ping_interval",
        "_ping_mark",
        "_ping_timeout",
        "_ping_timer",
        "_pong_timer",
    )

    _closed_event: Close | None

    if TYPE_CHECKING:

        def go_away(self, code: int = 1001, reason: str = "") -> None: ...

    def _init_timers(
        self,
        ping: float | None,
        ping_timeout: float | None,
        close_timeout: float,
        idle_timeout: float | None,
    ) -> None:
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
                if self._ping_callbacks is None:
                    self._ping_callbacks = {}
                self._ping_callbacks[payload] = callback
            return sent

        return self._queue(make, urgent=True) and not self._write_failed

    def _pong(self, payload: bytes) -> None:
        self._awaiting_pong = False
        callbacks = self._ping_callbacks
        callback = None if callbacks is None else callbacks.pop(payload, None)
        if callback is not None:
            callback()

    def _start_timers(self) -> None:
        if self._ping_interval:
            self._ping_timer = self._call_later(self._ping_interval, self._on_ping)
        if self._idle_timeout:
            self._last_received = self._now()
            self._idle_timer = self._call_later(self._idle_timeout, self._on_idle)

    def _stop_timers(self) -> None:
        for timer in (self._ping_timer, self._pong_timer, self._idle_timer, self._close_timer):
            if timer is not None:
                timer.cancel()

    def _closing(self, started: bool) -> None:
        if started and self._close_timer is None and self._closed_event is None:
            self._close_timer = self._call_later(self._close_timeout, self._on_close_timeout)

    def _on_ping(self) -> None:
        if self._closed_event is not None:
            return
        self._ping_timer = self._call_later(self._ping_interval or 0, self._on_ping)
        if self._ping_timeout and self._awaiting_pong:
            return  # the pong timer is still running
        self._ping_counter += 1
        self._awaiting_pong = True
        self._ping_mark, self._ping_delayed = self._taken(), False
        payload = str(self._ping_counter).encode("ascii")
        self._queue(lambda: self._protocol.send_ping(payload), urgent=True)
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
