"""The server side of the EventSource client tests.

* ``/events``: :mod:`wsgi_examples.clock` (a ``tick`` every 0.1 s, ids 1, 2, 3, …).
* ``/drop?name=N&count=C&retry=R``: C events with ids following the request's
  ``Last-Event-ID``, then the end of the response; ``retry: R`` seconds first.
* ``/silent?name=N``: an event stream that sends only its ``retry:`` line and
  then nothing (its ping is a minute away).
* ``/quiet?name=N&retry=R&events=K``: ``retry: R`` (written as given: any
  text), then K events (ids following ``Last-Event-ID``), then the end of the
  response, at once.
* ``/log?name=N``: the ``Last-Event-ID`` header of every request to ``/drop``,
  ``/silent`` or ``/quiet`` with that name, in order, as JSON (``null`` when absent).
* ``/big?size=S``: an event ``small``, then one whose data is S bytes.
* ``/raw``: a hand-written stream (BOM, every line ending, a comment, a
  multi-byte character) sent in awkward pieces with pauses, then the end.
* ``/nocontent``: ``204``; ``/html``: ``200`` as ``text/html``; else ``404``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

from faye_sync.eventsource import EventSource
from wsgi_examples import clock

_seen: dict[str, list[str | None]] = {}
_lock = threading.Lock()

RAW_PIECES = [
    b"\xef\xbb",
    b"\xbfretry: 50\r",
    b"\n\r\nid: 1\revent: raw\ndata: one\r",
    b"\ndata: tw",
    "o é".encode()[:-1],
    "o é".encode()[-1:] + b"\n:comment\n\n",
    b"id: 2\r\ndata: three\r\n\r",
    b"\n",
]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/events":
        return clock.app(environ, start_response)
    if path in ("/drop", "/silent", "/quiet"):
        with _lock:
            _seen.setdefault(query["name"], []).append(environ.get("HTTP_LAST_EVENT_ID"))
    if path == "/drop":
        es = EventSource(environ, start_response, retry=float(query.get("retry", "0.05")))
        last = es.last_event_id
        first = int(last) + 1 if last.isdigit() else 1
        for n in range(first, first + int(query.get("count", "3"))):
            es.send(f"drop {n}", id=n)
        es.close()
        return es.response
    if path == "/quiet":
        last = environ.get("HTTP_LAST_EVENT_ID") or "0"
        first = int(last) + 1 if last.isdigit() else 1
        events = range(first, first + int(query.get("events", "0")))
        raw = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        body = f"retry: {raw.get('retry', ['0'])[0]}\n\n" + "".join(
            f"id: {n}\ndata: quiet {n}\n\n" for n in events
        )
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return [body.encode()]
    if path == "/silent":
        return EventSource(environ, start_response, retry=0.05, ping=60).response
    if path == "/log":
        with _lock:
            body = json.dumps(_seen.get(query["name"], [])).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/big":
        es = EventSource(environ, start_response)
        es.send("small")
        es.send("x" * int(query["size"]))
        return es.response
    if path == "/raw":
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return _slowly(RAW_PIECES)
    if path == "/nocontent":
        start_response("204 No Content", [])
        return []
    if path == "/html":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [b"<p>not a stream</p>"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


def _slowly(pieces: list[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield piece
        time.sleep(0.01)  # each piece its own write, so its own chunk
