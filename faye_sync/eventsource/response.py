"""The server's side of an EventSource: the WSGI iterable, and its client's connection.

* When the server starts iterating, the stream opens: ``open`` is dispatched
  (so handlers attached right after construction see it), and the first chunk
  is ``retry: <ms>`` plus whatever was sent already.
* Each further step blocks until events are queued or a ping is due. Every
  queued event goes out in one chunk: a ``send`` costs about one socket write
  whatever happens, so coalescing is the only large saving under load. The
  wait is a blocking one (a gevent ``Event`` under gevent), so the iterating
  greenlet always yields to the hub and never starves the other clients.
* The server's write is what blocks when a client does not read (no server
  tested has a write timeout: gevent.pywsgi, gunicorn's gthread, werkzeug and
  wsgiref block in ``sendall`` for as long as the client keeps its window
  shut). A stream that ends with bytes still buffered (``close()`` or an
  overflow) gives the client two ping intervals without progress to take
  them; then its connection is shut down, which makes the server's blocked
  write fail and release the request.
* A client that leaves is noticed when a write fails (the server then calls the
  iterable's ``close()``) and, so that it is noticed within one ping interval
  rather than two (the first write after a FIN still succeeds), by a
  non-blocking look at the connection before each ping: end-of-file there means
  the client has gone. ``close`` is then dispatched and the request's thread or
  greenlet is released.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..adapters.connection import ClientConnection
from ..blocking.backends import Timer
from ..protocol import sse

if TYPE_CHECKING:
    from . import EventSource

__all__ = ["StreamResponse"]

logger = logging.getLogger(__package__)


class StreamResponse:
    """The WSGI iterable of one EventSource.

    The server iterates it in the request's thread or greenlet and calls
    ``close()`` when it stops, whether the stream ended or a write failed.
    """

    def __init__(self, es: EventSource, connection: ClientConnection) -> None:
        self._es = es
        self._connection = connection
        self._started = False
        self._done = False
        self._next_ping = 0.0
        self._progress_at = 0.0  # when the server last came back for a chunk
        self._released = False  # the server has let the response go
        self._drain_timer: Timer | None = None

    def __iter__(self) -> StreamResponse:
        return self

    def __next__(self) -> bytes:
        es = self._es
        if self._done:
            raise StopIteration
        # The server is back: the chunk it was given has been written.
        self._progress_at = time.monotonic()
        es._in_flight = 0
        if not self._started:
            self._started = True
            es._open()
            self._next_ping = time.monotonic() + es._ping
            chunk, _ = es._take()
            return es._preamble + chunk
        while True:
            chunk, closing = es._take()
            now = time.monotonic()
            if now >= self._next_ping and not closing:
                self._next_ping += es._ping
                if self._next_ping <= now:  # the server was slow to come back
                    self._next_ping = now + es._ping
                if self._connection.client_left(es._backend):
                    self._end()
                chunk += sse.PING
                es._in_flight = len(chunk)
            if chunk:
                return chunk
            if closing:
                self._end()
            es._wakeup.wait(max(self._next_ping - now, 0.0))

    def _end(self) -> None:
        self.close()
        raise StopIteration

    def close(self) -> None:
        """Called by the WSGI server when it stops iterating, for any reason."""
        self._done = True
        with self._es._lock:
            self._released = True
            timer, self._drain_timer = self._drain_timer, None
        if timer is not None:
            timer.cancel()
        self._es._finish()

    def watch_drain(self) -> None:
        """Bound how long a closing stream may wait on a client that does not read."""
        es = self._es
        if self._connection.socket is not None and self._progress_at and es.buffered_amount:
            self._drain_timer = es._backend.call_later(2 * es._ping, self._check_drain)

    def _check_drain(self) -> None:
        """Shut the connection down if the server's write made no progress for 2 pings.

        Runs on the timer service: it must not block, and shutdown() does not.
        """
        es = self._es
        if self._released:
            return
        idle = time.monotonic() - self._progress_at
        if idle < 2 * es._ping:
            self._drain_timer = es._backend.call_later(2 * es._ping - idle, self._check_drain)
            return
        logger.info(
            "EventSource %s: the client took nothing for %g s; shutting its connection down",
            es.url,
            idle,
        )
        self._connection.shut_down()
