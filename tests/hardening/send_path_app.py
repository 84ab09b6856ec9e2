"""The WSGI app the send-path tests run on real servers (``tests.servers.serve``).

``GET /stats`` answers JSON: the process's resident memory and its peak
(``rss_kib``, ``peak_kib``); ``GET /stats?reset=1`` first resets the peak
(``/proc/self/clear_refs``, after ``malloc_trim``), so a test measures the peak of its own probe.
Any other path upgrades, configured by the query string:

* ``id``: a tag for the log lines of this connection;
* ``mode``: ``echo`` (default); ``push`` (send a tick every 50 ms, never read);
  ``flood`` (send 64 KiB messages until ``send`` returns False, never read);
  ``big`` (send one binary message of ``size`` bytes, then echo);
* ``deflate=1``: accept permessage-deflate;
* ``ping``, ``ping_timeout``, ``close_timeout``, ``send_timeout``,
  ``idle_timeout`` (seconds) and ``max_length`` (bytes): the WebSocket options,
  left at their defaults when absent.

Each event is written as ``event id=<id> <json>`` to stderr (the server's log),
``sent id=<id> <n>`` when a ``flood`` or ``big`` send returned, and
``handler-end id=<id>`` when the handler returns.
"""

from __future__ import annotations

import ctypes
import gc
import json
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from faye_sync import PerMessageDeflate, WebSocket


def say(line: str) -> None:
    sys.stderr.write(line + "\n")  # one write per line: threads must not interleave
    sys.stderr.flush()


def memory() -> dict[str, int]:
    fields: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
    return {"rss_kib": fields["VmRSS"], "peak_kib": fields["VmHWM"]}


def stats(query: dict[str, list[str]]) -> dict[str, int]:
    if "reset" in query:
        # Give freed memory back first, or a probe could reuse what an earlier
        # one left resident and show no growth.
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current RSS
    return memory()


FLOAT_OPTIONS = ("ping", "ping_timeout", "close_timeout", "send_timeout", "idle_timeout")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if environ.get("PATH_INFO") == "/stats":
        body = json.dumps(stats(query)).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]
    tag = query.get("id", ["-"])[0]
    mode = query.get("mode", ["echo"])[0]
    options: dict[str, Any] = {
        name: float(query[name][0]) for name in FLOAT_OPTIONS if name in query
    }
    if "max_length" in query:
        options["max_length"] = int(query["max_length"][0])
    if query.get("deflate") == ["1"]:
        options["extensions"] = [PerMessageDeflate()]
    ws = WebSocket(environ, start_response, **options)

    def log(*event: Any) -> None:
        say(f"event id={tag} {json.dumps(list(event))}")

    ws.on("error", lambda e: log("error", e.message))
    ws.on("close", lambda e: log("close", e.code, e.reason))
    try:
        if mode == "push":
            while ws.send("tick"):
                time.sleep(0.05)
        elif mode == "flood":
            chunk, count = b"x" * 65536, 0
            while ws.send(chunk):
                count += 1
            say(f"sent id={tag} {count}")
        else:
            if mode == "big":
                say(f"sent id={tag} {ws.send(bytes(int(query['size'][0])))}")
            for message in ws:
                ws.send(message)
        return ws.response
    finally:
        say(f"handler-end id={tag}")
