"""The WSGI app the hardening tests run on real servers (``tests.servers.serve``).

``GET /stats`` answers JSON counts of the server process's open fds, threads,
live greenlets and running WebSocket handlers, so a test can compare before and
after. Any other path upgrades, configured by the query string:

* ``id``: a tag for the log lines of this connection;
* ``mode``: ``echo`` (default), ``close`` (close at once and wait for the
  answer), ``push`` (send a tick every 50 ms, never read), ``flood`` (send
  64 KiB messages as fast as the socket takes them, never read);
* ``ping``, ``ping_timeout``, ``close_timeout``: the WebSocket options;
* ``origins``: a JSON list for ``allowed_origins``, strings, ``"re:<regex>"``
  for a regex, ``null`` for "no Origin header";
* ``header``: a value for an ``X-Extra`` response header (CR/LF must be refused).

Each event a connection's listeners see is written as ``event id=<id> <json>``
when it fires, and ``handler-end id=<id>`` when the handler returns, to stderr,
which is the server's log.
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from faye_sync import WebSocket

_active = 0
_active_lock = threading.Lock()


def say(line: str) -> None:
    # One write per line: threads of a threaded server must not interleave them.
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def stats() -> dict[str, Any]:
    greenlet = sys.modules.get("greenlet")
    live = 0
    if greenlet is not None:
        gc.collect()
        kind = greenlet.greenlet  # compared by type(): isinstance reads __class__
        live = sum(
            1
            for obj in gc.get_objects()
            if issubclass(type(obj), kind) and bool(obj) and not obj.dead
        )
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        "greenlets": live,
        "handlers": _active,
        "thread_names": sorted(t.name for t in threading.enumerate()),
    }


def _origins(raw: str) -> list[str | re.Pattern[str] | None]:
    entries: list[str | re.Pattern[str] | None] = []
    for entry in json.loads(raw):
        if isinstance(entry, str) and entry.startswith("re:"):
            entries.append(re.compile(entry[3:]))
        else:
            entries.append(entry)
    return entries


def _float(query: dict[str, list[str]], name: str) -> float | None:
    return float(query[name][0]) if name in query else None


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/stats":
        body = json.dumps(stats()).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]
    global _active
    query = parse_qs(environ.get("QUERY_STRING", ""))
    tag = query.get("id", ["-"])[0]
    mode = query.get("mode", ["echo"])[0]
    options: dict[str, Any] = {}
    for name in ("ping", "ping_timeout", "close_timeout"):
        value = _float(query, name)
        if value is not None:
            options[name] = value
    if "origins" in query:
        options["allowed_origins"] = _origins(query["origins"][0])
    if "header" in query:
        options["headers"] = {"X-Extra": query["header"][0]}
    try:
        ws = WebSocket(environ, start_response, **options)
    except ValueError as exc:  # a header with CR/LF: refused before anything is sent
        say(f"refused id={tag} {type(exc).__name__}")
        body = b"refused\n"
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def log(*event: Any) -> None:
        say(f"event id={tag} {json.dumps(list(event))}")

    ws.on("open", lambda e: log("open"))
    ws.on("error", lambda e: log("error", e.message))
    ws.on("close", lambda e: log("close", e.code, e.reason))
    with _active_lock:
        _active += 1
    try:
        if mode == "close":
            ws.close(4000, "server closes")
        elif mode == "push":
            while ws.send("tick"):
                time.sleep(0.05)
        elif mode == "flood":
            chunk = b"x" * 65536
            while ws.send(chunk):
                pass
        else:
            for message in ws:
                ws.send(message)
        response = ws.response
    finally:
        with _active_lock:
            _active -= 1
        say(f"handler-end id={tag}")
    return response
