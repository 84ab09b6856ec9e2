"""The threads backend's timers: one daemon thread for every timer of the process.

Never a thread per connection: a heap ordered by deadline, and one thread that
sleeps until the next deadline or a new timer. Callbacks must not block: they
all run on this one thread (they may spawn work that blocks).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["TimerHandle", "TimerThread"]


class TimerHandle:
    __slots__ = ("cancelled", "fn")

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class TimerThread:
    """One daemon thread running every timer of the process, in deadline order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._counter = itertools.count()
        self._wakeup = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, fn: Callable[[], object]) -> TimerHandle:
        handle = TimerHandle(fn)
        with self._wakeup:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._counter), handle))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="faye_sync-timers", daemon=True
                )
                self._thread.start()
            self._wakeup.notify()
        return handle

    def _run(self) -> None:
        # Blocks without bound by design: it is the process's timer thread and
        # sleeps until the next deadline or a new timer.
        while True:
            with self._wakeup:
                while True:
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    if self._heap:
                        wait = self._heap[0][0] - time.monotonic()
                        if wait <= 0:
                            handle = heapq.heappop(self._heap)[2]
                            break
                        self._wakeup.wait(wait)
                    else:
                        self._wakeup.wait()
            try:
                handle.fn()
            except Exception:  # a timer must not kill the service for everyone
                logging.getLogger("faye_sync").exception("timer callback failed")
