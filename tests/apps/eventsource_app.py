"""An EventSource test app: the clock example plus endpoints that report what happened.

* ``/events``: :mod:`wsgi_examples.clock` (ticks every 0.1 s, ping every 1 s).
* ``/stream?name=N&ping=P``: an idle stream with a ping every P seconds and a
  producer that only waits for the close; ``/stats?name=N`` then answers, in
  JSON, when the stream opened and closed (the ``close`` event), when the server
  let go of the response (its ``close()``), and when the producer returned. All
  times are ``time.time()`` in this process.
* ``/burst?n=N``: N events queued at once, then ``close()``: the client must get
  all of them and then the end of the response.
* ``/custom``: custom headers (a ``Content-Type`` among them) and ``retry=0``.
* ``/close_all``: calls :func:`faye_sync.close_all` and answers how many it closed.
* ``/connection``: what :func:`~faye_sync.adapters.connection.find_connection`
  finds for this request, in JSON: the socket's peer address (the client's own
  address, or None) and whether the server has a client-disconnected hook.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from faye_sync import close_all
from faye_sync.adapters.connection import find_connection
from faye_sync.eventsource import EventSource
from wsgi_examples import clock

_records: dict[str, dict[str, float | None]] = {}
_lock = threading.Lock()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/events":
        return clock.app(environ, start_response)
    if path == "/stream":
        return _stream(environ, start_response, query["name"], float(query.get("ping", "10")))
    if path == "/stats":
        with _lock:
            body = json.dumps(_records.get(query["name"])).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/burst":
        es = EventSource(environ, start_response)
        for i in range(1, int(query["n"]) + 1):
            es.send(f"event {i}\nsecond line", id=i)
        es.close()
        return es.response
    if path == "/custom":
        headers = {"Content-Type": "text/event-stream", "X-Custom": "yes"}
        es = EventSource(environ, start_response, headers=headers, retry=0)
        es.send("hello")
        es.close()
        return es.response
    if path == "/close_all":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(close_all()).encode()]
    if path == "/connection":
        found = find_connection(environ)
        peer = None if found.socket is None else list(found.socket.getpeername()[:2])
        hook = found.client_disconnected is not None
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"peer": peer, "hook": hook}).encode()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


def _stream(
    environ: dict[str, Any], start_response: Callable[..., Any], name: str, ping: float
) -> Iterable[bytes]:
    record: dict[str, float | None] = {
        "opened": None,
        "closed": None,
        "released": None,
        "producer_done": None,
    }
    with _lock:
        _records[name] = record

    def stamp(key: str) -> Callable[..., None]:
        def set_time(*args: object) -> None:
            with _lock:
                record[key] = time.time()

        return set_time

    es = EventSource(environ, start_response, ping=ping)
    es.onopen = stamp("opened")
    es.on("close", stamp("closed"))

    def producer() -> None:
        # Waits far longer than the test: only the close can end it in time.
        es.wait_closed(60)
        stamp("producer_done")()

    es.spawn(producer)
    return Released(es.response, stamp("released"))


class Released:
    """The response, noting when the server calls ``close()`` (it has let go)."""

    def __init__(self, response: Iterable[bytes], on_close: Callable[[], object]) -> None:
        self._response = response
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._response)

    def close(self) -> None:
        self._response.close()  # type: ignore[attr-defined]
        self._on_close()
