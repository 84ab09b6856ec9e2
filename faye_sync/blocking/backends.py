"""Threads or greenlets: the few primitives the blocking layer needs from each.

A connection runs in the request's own thread (threaded servers) or greenlet
(gevent). Locks and events held across socket I/O must be of the same kind, or
a greenlet blocked on an OS lock would freeze its whole hub. Timers (keep-alive
pings, ping and close timeouts) are served by one shared service per process,
never by a thread per connection: a heap and one daemon thread for threads, the
hub's own timers for gevent.

Timer callbacks must not block: on the threads backend they all run on the one
timer thread. They may spawn work that blocks.
"""

from __future__ import annotations

import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

from .greenlet_lock import NO_LOCK, free_lock
from .greenlet_lock import connection_locks as greenlet_connection_locks
from .timer_thread import TimerThread

__all__ = [
    "Backend",
    "NO_LOCK",
    "Lock",
    "SendNow",
    "SendWait",
    "Signal",
    "Timer",
    "detect_backend",
    "get_backend",
]


class Lock(Protocol):
    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...
    def release(self) -> None: ...
    def locked(self) -> bool: ...
    def __enter__(self) -> Any: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> Any: ...


class Signal(Protocol):
    """An event: ``set``, ``clear``, ``is_set`` and ``wait(timeout) -> bool``."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class Timer(Protocol):
    def cancel(self) -> None: ...


#: Writes what a socket takes now; see :meth:`Backend.sender`.
SendNow = Callable[[socket.socket, "memoryview | bytes"], int]
#: Writes, waiting for room at most a timeout; see :meth:`Backend.writer`.
SendWait = Callable[[socket.socket, "memoryview | bytes", "float | None"], int]


class Backend:
    """The primitives for one concurrency model."""

    name = "abstract"

    def lock(self) -> Lock:
        raise NotImplementedError

    def mutex(self) -> Lock:
        """A lock for short sections that do no I/O (never held while blocking)."""
        raise NotImplementedError

    def connection_locks(self) -> tuple[Lock, Lock, Lock]:
        return self.mutex(), self.lock(), self.lock()  # mutex, send lock, read lock

    def signal(self) -> Signal:
        raise NotImplementedError

    def spawn(self, fn: Callable[[], object]) -> None:
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    def wait_readable(self, sock: socket.socket, timeout: float | None) -> bool:
        """Wait until ``sock`` has data (or EOF); False on timeout.

        True also when ``sock`` is closed (the next I/O fails) or, for TLS,
        holds decrypted data. A timeout of 0 only looks: one call to the
        operating system's poll, un-patched under gevent, no switch to the hub.
        """
        raise NotImplementedError

    def wait_writable(self, sock: socket.socket, timeout: float | None) -> bool:
        raise NotImplementedError

    def recv(self, sock: socket.socket, size: int) -> bytes:
        """Read at most ``size`` bytes, waiting for them; b"" at the end of the stream."""
        return sock.recv(size)

    def sender(self, sock: socket.socket) -> SendNow:
        """How to write to ``sock`` without waiting for room (chosen once per socket).

        The function returns how many bytes the socket took (0: it is full), or
        raises OSError when the connection is broken. A TLS socket writes whole
        records: once writable it is given one small record (2 KiB), which the
        kernel's free space takes (writable: half the queued amount is free).
        """
        raise NotImplementedError

    def writer(self, sock: socket.socket, timeout: float | None) -> SendWait:
        """How a sender writes to ``sock`` (chosen once per socket; may set options).

        The function writes at least one byte, waiting at most ``timeout`` seconds
        for room (None: no limit), and returns how many it wrote (0: the peer took
        nothing in time), or raises OSError when the connection is broken.
        """
        sender = self.sender(sock)
        if sender is _send_tls:  # a sender may wait: full records
            sender = _send_tls_record
        return lambda sock, data, timeout: _send_or_wait(self, sender, sock, data, timeout)

    def senders(self, sock: socket.socket, timeout: float | None) -> tuple[SendNow, SendWait]:
        return self.sender(sock), self.writer(sock, timeout)  # one call a handshake

    def call_later(self, delay: float, fn: Callable[[], object]) -> Timer:
        raise NotImplementedError

    def timer_scope(self) -> object:
        """What timers set from here run in: one for the threads (their timer thread)."""
        return None


class ThreadsBackend(Backend):
    name = "threads"

    def __init__(self) -> None:
        self._timers = TimerThread()

    def lock(self) -> Lock:
        return threading.Lock()

    mutex = lock

    def signal(self) -> Signal:
        return threading.Event()

    def spawn(self, fn: Callable[[], object]) -> None:
        threading.Thread(target=fn, name="faye_sync-task", daemon=True).start()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait_readable(self, sock: socket.socket, timeout: float | None) -> bool:
        return _poll(sock, _READABLE, timeout)

    def wait_writable(self, sock: socket.socket, timeout: float | None) -> bool:
        return _poll(sock, _WRITABLE, timeout)

    def sender(self, sock: socket.socket) -> SendNow:
        if _has_pending(sock):  # TLS: ssl's send takes no flags
            return _send_tls
        if sock.gettimeout() is not None or not _DONTWAIT:
            return _send_polled  # with a timeout, Python would wait for room first
        return _send_dontwait

    def writer(self, sock: socket.socket, timeout: float | None) -> SendWait:
        if _has_pending(sock) or sock.gettimeout() is not None or not _SNDTIMEO:
            return super().writer(sock, timeout)
        # A blocking send lets the kernel wait for room, as sendall does, in one
        # call; SO_SNDTIMEO bounds that wait (0: no limit). Pongs and pings are
        # written with MSG_DONTWAIT, which it does not affect.
        seconds = 0.0 if timeout is None else max(timeout, 0.001)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(seconds))
        return _send_blocking

    def call_later(self, delay: float, fn: Callable[[], object]) -> Timer:
        return self._timers.call_later(delay, fn)


def _send_dontwait(sock: socket.socket, data: memoryview | bytes) -> int:
    try:
        return sock.send(data, _DONTWAIT)
    except BlockingIOError:
        return 0


def _send_polled(sock: socket.socket, data: memoryview | bytes) -> int:
    return _send_dontwait(sock, data) if _poll(sock, _WRITABLE, 0) else 0


def _send_tls(sock: socket.socket, data: memoryview | bytes) -> int:
    # One small record once there is room: readers and timers must not wait.
    return sock.send(data[:_TLS_SMALL_RECORD]) if _poll(sock, _WRITABLE, 0) else 0


def _send_tls_record(sock: socket.socket, data: memoryview | bytes) -> int:
    # For a sender: a full record, which may wait for room (gevent's TLS send
    # parks this greenlet then, never the hub).
    return sock.send(data[:_TLS_RECORD]) if _poll(sock, _WRITABLE, 0) else 0


def _send_gevent(sock: socket.socket, data: memoryview | bytes) -> int:
    try:
        # A timeout of 0 makes gevent raise instead of waiting for room.
        return sock.send(data, 0, 0.0)  # type: ignore[call-arg]
    except BlockingIOError:
        return 0


def _send_gevent_plain(sock: socket.socket, data: memoryview | bytes) -> int:
    # gevent's plain socket: its non-blocking OS socket, which gevent's send
    # would try the same way, one Python call deeper.
    try:
        count: int = sock._sock.send(data)  # type: ignore[attr-defined]
    except BlockingIOError:
        return 0
    return count


def _send_blocking(sock: socket.socket, data: memoryview | bytes, timeout: float | None) -> int:
    try:
        return sock.send(data)  # bounded by the socket's SO_SNDTIMEO
    except BlockingIOError:  # nothing taken in time
        return 0


def _send_or_wait(
    backend: Backend,
    send_now: SendNow,
    sock: socket.socket,
    data: memoryview | bytes,
    timeout: float | None,
) -> int:
    count = send_now(sock, data)
    if count:
        return count
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return 0
        if not backend.wait_writable(sock, remaining):
            return 0
        count = send_now(sock, data)
        if count:
            return count


def _send_gevent_or_wait(
    sock: socket.socket, data: memoryview | bytes, timeout: float | None
) -> int:
    return _send_gevent(sock, data) or _send_or_wait(
        get_backend("gevent"), _send_gevent, sock, data, timeout
    )


def _send_gevent_plain_or_wait(
    sock: socket.socket, data: memoryview | bytes, timeout: float | None
) -> int:
    try:  # _send_gevent_plain, inlined: a call less per message
        count: int = sock._sock.send(data)  # type: ignore[attr-defined]
    except BlockingIOError:
        count = 0
    return count or _send_or_wait(get_backend("gevent"), _send_gevent_plain, sock, data, timeout)


_SNDTIMEO = sys.platform == "linux"  # where a timed-out send reports what it wrote


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


# The most one write hands a TLS socket (one record): it cannot write part of one.
_TLS_RECORD = 16384
_TLS_SMALL_RECORD = 2048  # what a reader or timer hands a TLS socket at once
# Linux and the BSDs; elsewhere a plain socket is checked for room before a send.
_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)


def _poll(sock: socket.socket, events: int, timeout: float | None) -> bool:
    if _has_pending(sock) and sock.pending():  # type: ignore[attr-defined]
        return True  # TLS records already decrypted and buffered
    fd = sock.fileno()
    if fd < 0:
        return True  # closed: the next I/O fails, and that ends the connection
    poller = _os_poll()
    poller.register(fd, events)
    return bool(poller.poll(None if timeout is None else max(0.0, timeout) * 1000))


def _has_pending(sock: socket.socket) -> bool:
    # On the class: gevent's socket forwards unknown attributes, at the cost of an
    # AttributeError raised and caught on every look-up.
    return hasattr(type(sock), "pending")


def _os_poll() -> Any:
    """The operating system's poll, even where gevent has patched ``select``."""
    global _original_poll
    if _original_poll is None:
        monkey = sys.modules.get("gevent.monkey")
        if monkey is not None and monkey.is_module_patched("select"):
            _original_poll = monkey.get_original("select", "poll")
        else:
            # Not patched yet: this reference stays the original if gevent patches later.
            _original_poll = _POLL_AT_IMPORT
    return _original_poll()


_POLL_AT_IMPORT = select.poll
_original_poll: Any = None

_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR
_WRITABLE = select.POLLOUT | select.POLLHUP | select.POLLERR


class GeventBackend(Backend):
    name = "gevent"

    def __init__(self) -> None:
        import gevent
        import gevent.event
        import gevent.exceptions
        import gevent.socket

        self._gevent = gevent
        # timer_scope: the hub whose loop runs timers (one a thread), by gevent's C function.
        self.timer_scope = gevent.get_hub  # type: ignore[method-assign]
        self._event = gevent.event.Event
        self._getcurrent = gevent.getcurrent
        self._invalid_switch = gevent.exceptions.InvalidSwitchError
        self._wait_read = gevent.socket.wait_read
        self._wait_write = gevent.socket.wait_write
        # Its plain socket, whose own read watcher recv() waits on and whose OS socket
        # the senders write to; none if gevent no longer has the private names used.
        plain = gevent.socket.socket
        names = ("_wait", "_read_event", "_sock")
        self._plain: type | None = plain if all(hasattr(plain, n) for n in names) else None

    def lock(self) -> Lock:
        return free_lock()  # a flag while free: see greenlet_lock.py

    def mutex(self) -> Lock:
        # Greenlets switch only where they block, and a mutex section never blocks:
        # no other greenlet can enter it, so there is nothing to lock.
        return NO_LOCK

    connection_locks = staticmethod(greenlet_connection_locks)  # no method frame

    def signal(self) -> Signal:
        event: Signal = self._event()
        return event

    def spawn(self, fn: Callable[[], object]) -> None:
        self._gevent.spawn(fn)

    def sleep(self, seconds: float) -> None:
        self._gevent.sleep(seconds)

    def wait_readable(self, sock: socket.socket, timeout: float | None) -> bool:
        if timeout == 0:
            return _poll(sock, _READABLE, 0)
        if _has_pending(sock) and sock.pending():  # type: ignore[attr-defined]
            return True
        return self._wait(self._wait_read, sock, timeout)

    def wait_writable(self, sock: socket.socket, timeout: float | None) -> bool:
        if timeout == 0:  # a syscall, no switch to the hub
            return _poll(sock, _WRITABLE, 0)
        return self._wait(self._wait_write, sock, timeout)

    def recv(self, sock: socket.socket, size: int) -> bytes:
        # Wait first, on the socket's own watcher: gevent's recv tries the socket
        # before it waits, and a try that finds nothing raises EAGAIN inside it,
        # an exception for every message when the peer waits for each answer
        # (about a sixth of a small echo's instructions).
        if type(sock) is self._plain:
            watcher = sock._read_event  # type: ignore[attr-defined]
            if watcher is not None:  # None once closed: recv raises then
                if watcher.callback is None and sock.timeout is None:
                    self._sleep_until(watcher, sock.hub)  # type: ignore[attr-defined]
                else:  # gevent's wait: the socket's timeout, its error for a second reader
                    sock._wait(watcher)  # type: ignore[attr-defined]
                try:
                    data: bytes = sock._sock.recv(size)  # type: ignore[attr-defined]
                    return data
                except BlockingIOError:
                    pass  # woken without data: gevent's recv waits again
        return sock.recv(size)

    def _sleep_until(self, watcher: Any, hub: Any) -> None:
        """gevent's ``hub.wait(watcher)``, switching to the hub from Python.

        A sleeping greenlet keeps the C stack between its start and its switch
        copied on the heap. gevent's wait reaches the switch through four Cython
        functions and a ``Waiter``, whose C frames are about 940 of the bytes every
        idle connection holds; switching from Python leaves them out, as CPython
        3.11 and later keep Python frames off the C stack
        (``benchmarks/idle_breakdown.py``). What it keeps of gevent's wait: only the
        watcher's own callback may wake the greenlet, and the watcher is stopped
        however the sleep ends (gevent's ``cancel_wait`` of a socket closed
        elsewhere, and ``kill``, throw into the greenlet through the callback).
        """
        watcher.start(self._getcurrent().switch, watcher)
        try:
            woken = hub.switch()
        finally:
            watcher.stop()
        if woken is not watcher:
            raise self._invalid_switch(f"woken by {woken!r}, not by the socket's read watcher")

    def sender(self, sock: socket.socket) -> SendNow:
        kind = type(sock)
        if kind is self._plain:
            return _send_gevent_plain
        if kind in _GEVENT_PLAIN:
            return _send_gevent
        if _has_pending(sock):
            return _send_tls
        if kind.__module__.startswith("gevent"):
            _GEVENT_PLAIN.add(kind)  # decided by the type: once per type
            return _send_gevent
        return get_backend("threads").sender(sock)

    def senders(self, sock: socket.socket, timeout: float | None) -> tuple[SendNow, SendWait]:
        if type(sock) is self._plain:  # gevent's own socket: the usual one, in one call
            return _send_gevent_plain, _send_gevent_plain_or_wait
        return super().senders(sock, timeout)

    def writer(self, sock: socket.socket, timeout: float | None) -> SendWait:
        # One function for all sockets of a kind: no object per socket.
        if type(sock) is self._plain:
            return _send_gevent_plain_or_wait
        if type(sock) in _GEVENT_PLAIN or self.sender(sock) is _send_gevent:
            return _send_gevent_or_wait
        return super().writer(sock, timeout)

    def _wait(self, wait: Callable[..., None], sock: socket.socket, timeout: float | None) -> bool:
        if sock.fileno() < 0:
            return True  # closed: the next I/O fails, and that ends the connection
        try:
            wait(sock.fileno(), timeout=timeout, timeout_exc=_Timeout)
        except _Timeout:
            return False
        return True

    def call_later(self, delay: float, fn: Callable[[], object]) -> Timer:
        # The callback runs in a fresh greenlet, so it may block like any other.
        timer = self._gevent.get_hub().loop.timer(max(delay, 0.0))
        timer.start(self._gevent.spawn, fn)
        return _GeventTimer(timer)


# gevent's socket types without TLS: written with _send_gevent.
_GEVENT_PLAIN: set[type] = set()


class _Timeout(Exception):
    pass


class _GeventTimer:
    __slots__ = ("_timer",)

    def __init__(self, timer: Any) -> None:
        self._timer = timer

    def cancel(self) -> None:
        self._timer.stop()
        self._timer.close()


_backends: dict[str, Backend] = {}
#: gevent's socket types, decided once each by detect_backend (a caller may look first)
BACKEND_OF_TYPE: dict[type, Backend] = {}
_backends_lock = threading.Lock()


def get_backend(name: str) -> Backend:
    """The shared backend called ``name``: ``"threads"`` or ``"gevent"``."""
    backend = _backends.get(name)  # made once: no lock for every connection
    if backend is not None:
        return backend
    with _backends_lock:
        backend = _backends.get(name)
        if backend is None:
            if name == "threads":
                backend = ThreadsBackend()
            elif name == "gevent":
                backend = GeventBackend()
            else:
                raise ValueError(f"unknown backend {name!r}: use 'threads' or 'gevent'")
            _backends[name] = backend
        return backend


def detect_backend(sock: object | None = None) -> Backend:
    """gevent when the socket is gevent's or this code runs in a gevent greenlet."""
    backend = BACKEND_OF_TYPE.get(type(sock))
    if backend is not None:
        return backend
    gevent = sys.modules.get("gevent")
    if gevent is not None:
        if sock is not None and type(sock).__module__.startswith("gevent"):
            backend = BACKEND_OF_TYPE[type(sock)] = get_backend("gevent")
            return backend
        if isinstance(gevent.getcurrent(), gevent.Greenlet):
            return get_backend("gevent")
    return get_backend("threads")
