"""An EventSource producer faster than its client, for the queue-bound tests.

* ``/flood?name=N&size=S&count=C[&max_buffered=B][&ping=P][&hold=1]``: a
  producer sends events ``id`` = last event id + 1, + 2, … (S bytes of data
  each) as fast as it can, yielding every 64 sends, until ``send`` returns
  False or id C has been queued; then it waits for the stream to close.
  ``max_buffered=0`` passes None (no limit). ``hold=1`` keeps the EventSource
  referenced after it closes, as a registry that forgets to unregister would.
* ``/stats?name=N``: JSON: this process's id, and for stream N the last id
  queued (``sent``), whether a send returned False (``refused``), the largest
  ``buffered_amount`` seen (``peak``), when the producer stopped (``done``),
  when ``close`` was dispatched (``closed``) and when the server let go of the
  response (``released``), as ``time.time()``.
* ``/where?name=N``: where stream N's memory is: whether the EventSource is
  still referenced and how many bytes its queue holds, then the same after
  ``gc.collect()``, with this process's ``VmRSS`` (KiB) at each step and after
  ``malloc_trim(0)`` (what the allocator kept).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from faye_sync.adapters.connection import find_connection
from faye_sync.eventsource import EventSource
from tests.apps.eventsource_app import Released

_records: dict[str, dict[str, Any]] = {}
_streams: dict[str, weakref.ref[EventSource]] = {}
_held: list[EventSource] = []
_lock = threading.Lock()


def rss_kib(pid: int | str = "self") -> int:
    """The resident set size of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/<pid>/status")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/flood":
        return _flood_stream(environ, start_response, query)
    if path == "/stats":
        with _lock:
            record = dict(_records.get(query.get("name", ""), {}))
        return _json(start_response, {"pid": os.getpid(), **record})
    if path == "/where":
        return _json(start_response, _where(query["name"]))
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


def _json(start_response: Callable[..., Any], value: object) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(value).encode()]


def _flood_stream(
    environ: dict[str, Any], start_response: Callable[..., Any], query: dict[str, str]
) -> Iterable[bytes]:
    options: dict[str, Any] = {"ping": float(query.get("ping", "1"))}
    if "max_buffered" in query:
        options["max_buffered"] = int(query["max_buffered"]) or None
    es = EventSource(environ, start_response, **options)
    if query.get("sndbuf"):
        # A small send buffer, so that what is left queued when the stream closes
        # cannot all fit in the kernel (tcp_wmem lets it grow to 4 MiB), and the
        # server's write really blocks on a client that does not read.
        sock = find_connection(environ).socket
        assert sock is not None, "the server's socket was not found"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(query["sndbuf"]))
    record: dict[str, Any] = {"sent": 0, "refused": False, "peak": 0}
    record.update(done=None, closed=None, released=None)
    name = query["name"]
    with _lock:
        _records[name] = record
        _streams[name] = weakref.ref(es)
        if query.get("hold"):
            _held.append(es)
    es.on("close", lambda event: record.update(closed=time.time()))
    first = int(es.last_event_id or 0) + 1
    es.spawn(_flood, es, record, int(query["size"]), range(first, int(query["count"]) + 1))
    return Released(es.response, lambda: record.update(released=time.time()))


def _flood(es: EventSource, record: dict[str, Any], size: int, ids: range) -> None:
    data = "x" * size
    for n in ids:
        if not es.send(data, id=n):
            record["refused"] = True
            break
        record["sent"] = n
        record["peak"] = max(record["peak"], es.buffered_amount)
        if n % 64 == 0:
            time.sleep(0)  # let the server's greenlet or thread write (gevent: a switch)
    record["done"] = time.time()
    es.wait_closed(60)


def _where(name: str) -> dict[str, Any]:
    found: dict[str, Any] = {"rss_kib": rss_kib()}
    es = _streams[name]()
    found["alive"] = es is not None
    found["queued"] = None if es is None else sum(map(len, es._queue))
    del es
    gc.collect()
    found["alive_after_gc"] = _streams[name]() is not None
    found["rss_after_gc_kib"] = rss_kib()
    libc = ctypes.util.find_library("c")
    if libc:
        ctypes.CDLL(libc).malloc_trim(0)
    found["rss_after_trim_kib"] = rss_kib()
    return found
