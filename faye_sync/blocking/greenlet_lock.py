"""gevent's locks: a connection's reader and sender lock, a flag while nobody
waits, and ``NO_LOCK``, its mutex, which never waits.

Every message takes and releases two such locks (the read lock and the send
lock), almost always free. gevent's ``Semaphore`` costs about 1,850 CPU
instructions for that pair, a tenth of what the no-library floor spends on a
small echo; here it is two attribute writes and a check. Greenlets switch only
where they block, so the flag needs no atomic operation. A greenlet that has to
wait parks on an event of its own; ``release`` hands the lock straight to the
first waiter (FIFO), so a waiter that times out or is killed after the hand-over
passes it on instead of leaving it held.
"""

from __future__ import annotations

from collections import deque
from types import TracebackType
from typing import Any

__all__ = ["NO_LOCK", "GreenletLock", "connection_locks", "free_lock"]


class GreenletLock:
    """A non-reentrant lock for greenlets of one hub, as ``threading.Lock`` is for threads."""

    __slots__ = ("_locked", "_waiters")

    def __init__(self) -> None:
        self._locked = False
        self._waiters: deque[Any] | None = None  # made on the first wait

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        if not self._locked:
            self._locked = True
            return True
        if not blocking:
            return False
        from gevent.event import Event  # imported already: the backend is gevent's

        if self._waiters is None:
            self._waiters = deque()
        turn = Event()
        self._waiters.append(turn)
        try:
            turn.wait(None if timeout is None or timeout < 0 else timeout)
        except BaseException:
            if turn.is_set():  # handed over as this greenlet was killed: pass it on
                self.release()
            else:
                self._waiters.remove(turn)
            raise
        if turn.is_set():
            return True  # release() handed it over: still locked, now ours
        self._waiters.remove(turn)
        return False

    def release(self) -> None:
        if not self._locked:
            raise RuntimeError("release unlocked lock")
        if self._waiters:
            self._waiters.popleft().set()  # the next owner; the lock stays taken
        else:
            self._locked = False

    def locked(self) -> bool:
        return self._locked

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


_new = object.__new__


def free_lock() -> GreenletLock:
    """``GreenletLock()`` without the class call, which enters ``__init__`` from C.

    That entry costs about 1,500 instructions, and every connection makes two locks.
    """
    lock: GreenletLock = _new(GreenletLock)
    lock._locked = False
    lock._waiters = None
    return lock


def connection_locks() -> tuple[_NoLock, GreenletLock, GreenletLock]:
    """A connection's mutex (``NO_LOCK``), send lock and read lock: one call a handshake."""
    send: GreenletLock = _new(GreenletLock)
    read: GreenletLock = _new(GreenletLock)
    send._locked = read._locked = False
    send._waiters = read._waiters = None
    return NO_LOCK, send, read


class _NoLock:
    """A lock that never waits: for sections no other greenlet can enter."""

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return True

    def release(self) -> None:
        pass

    def locked(self) -> bool:
        return False

    def __enter__(self) -> bool:
        return True

    def __exit__(self, *exc_info: object) -> None:
        pass


#: gevent's mutex. The hottest sections skip it by identity: a ``with`` costs
#: about 2,000 instructions, a tenth of what the floor spends on a small echo.
NO_LOCK = _NoLock()
