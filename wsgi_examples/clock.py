"""A server-sent event clock: a ``tick`` every 0.1 s, resumable with Last-Event-ID.

    python -m wsgi_examples.clock --port 8000 --server {gevent,werkzeug,waitress,wsgiref}
    gunicorn -k {gevent,gthread} -b 127.0.0.1:8000 wsgi_examples.clock:app

``GET /events`` is the stream: first ``retry: 1000`` (reconnect after 1 s), then
an event named ``tick`` every 0.1 s whose id and data are 1, 2, 3, … and a ping
comment every second. A client that reconnects with ``Last-Event-ID: N`` (or
``?lastEventId=N``) resumes at N + 1. ``/`` is a page that shows the ticks in a
browser; any other path is a 404.

Each stream holds one thread (or greenlet) of the server for as long as it is
open, plus the producer's: size the pool for the clients you expect. This
script gives waitress 100 threads; gunicorn's gthread worker needs
``--threads N`` for N streams at once (its default is 1).
"""

# The imports below come after the gevent check on purpose (see _patch_gevent).
# ruff: noqa: E402

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _patch_gevent(argv: Sequence[str]) -> None:
    """With ``--server gevent``, monkey-patch before faye_sync and the app are imported.

    Patching later would leave locks and the socket module already imported
    unpatched; the app is defined in this very module, so it happens here.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--server")
    known, _ = parser.parse_known_args(argv)
    if known.server == "gevent":
        from gevent import monkey

        monkey.patch_all()


if __name__ == "__main__":
    _patch_gevent(sys.argv[1:])

import time
from collections.abc import Callable, Iterable
from typing import Any

from faye_sync.eventsource import EventSource

from .serving import HOST, parse_args, serve

SERVERS = ("wsgiref", "gevent", "werkzeug", "waitress")  # the first is the default
TICK = 0.1  # seconds between events
PING = 1  # seconds between keep-alive comments
RETRY = 1  # seconds a client waits before reconnecting

PAGE = b"""<!doctype html>
<meta charset="utf-8">
<title>faye_sync clock</title>
<p>tick <span id="tick">...</span></p>
<script>
  var source = new EventSource("/events");
  source.addEventListener("tick", function (event) {
    document.getElementById("tick").textContent = event.data;
  });
</script>
"""


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI application: the stream at ``/events``, a page at ``/``."""
    path = environ.get("PATH_INFO") or "/"
    if path == "/events" and environ.get("REQUEST_METHOD") in ("GET", None):
        return _events(environ, start_response)
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [PAGE]
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"Not Found: the clock is at /events\n"]


def _events(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    # Any GET of /events streams, so that curl works without an Accept header.
    es = EventSource(environ, start_response, ping=PING, retry=RETRY)
    last_id = es.last_event_id
    # isascii: str.isdigit() admits digits such as "²" that int() refuses
    first = int(last_id) + 1 if last_id.isascii() and last_id.isdigit() else 1
    es.spawn(_tick, es, first)
    return es.response


def _tick(es: EventSource, n: int) -> None:
    """The producer: one event per TICK, on a fixed schedule, until the stream closes."""
    due = time.monotonic()
    while es.send(str(n), event="tick", id=n):
        n += 1
        due += TICK
        if es.wait_closed(max(due - time.monotonic(), 0.0)):
            return


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the clock on 127.0.0.1 until SIGINT or SIGTERM (which end every stream)."""
    args = parse_args("faye_sync EventSource clock", SERVERS, argv)
    print(f"clock on http://{HOST}:{args.port}/events with {args.server}", file=sys.stderr)
    # waitress's default of 4 threads would serve only 4 streams at once.
    serve(app, args.port, args.server, threads=100)


if __name__ == "__main__":
    main()
