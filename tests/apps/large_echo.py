"""An echo without extensions, for the large-message tests: ``?max_length=N`` sets its limit.

Each close is written to stderr (the server's log) as ``close <code> <reason>``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from faye_sync import WebSocket


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    max_length = int(query.get("max_length", [str(2**26 - 1)])[0])
    ws = WebSocket(environ, start_response, max_length=max_length)
    ws.on("close", lambda e: print(f"close {e.code} {e.reason}", file=sys.stderr, flush=True))
    for message in ws:
        ws.send(message)
    return ws.response
