"""EventSource clients in greenlets, reading the clock; prints a JSON report and exits.

    python -m tests.apps.gevent_eventsource_clients patched
    python -m tests.apps.gevent_eventsource_clients backend PORT

``patched``: the process is monkey-patched and serves the clock itself on
gevent.pywsgi, so a client that blocked the hub would starve the server and
get nothing. ``backend``: no patching, ``backend="gevent"``, against the clock
served by another process on ``PORT``; a ticker greenlet counts how often it
ran while the clients read. Every wait is bounded: the script exits within a
minute whatever happens.
"""

# ruff: noqa: E402  (monkey-patching must come before every other import)

from __future__ import annotations

import sys

MODE = sys.argv[1]
if MODE == "patched":
    from gevent import monkey

    monkey.patch_all()

import json
from typing import Any

import gevent
from gevent.pywsgi import WSGIServer

from faye_sync import EventSourceClient

CLIENTS = 3
EVENTS = 5
WAIT = 30.0


def read(url: str, backend: str | None) -> list[str]:
    with EventSourceClient(url, proxy=False, timeout=WAIT, backend=backend) as client:
        ids = []
        for event in client:
            ids.append(event.id)
            if len(ids) == EVENTS:
                return ids
    return ids


def main() -> None:
    report: dict[str, Any] = {}
    server = None
    if MODE == "patched":
        from wsgi_examples.clock import app

        server = WSGIServer(("127.0.0.1", 0), app, log=None)
        server.start()
        port, backend = server.server_port, None
    else:
        port, backend = int(sys.argv[2]), "gevent"
    url = f"http://127.0.0.1:{port}/events"
    ticks = 0

    def ticker() -> None:
        nonlocal ticks
        while True:
            gevent.sleep(0.01)
            ticks += 1

    counting = gevent.spawn(ticker)
    readers = [gevent.spawn(read, url, backend) for _ in range(CLIENTS)]
    gevent.joinall(readers, timeout=WAIT)
    counting.kill()
    report["ids"] = [
        reader.value if reader.successful() else repr(reader.exception) for reader in readers
    ]
    report["ticks"] = ticks
    if server is not None:
        server.stop(timeout=1)
    print(json.dumps(report))


if __name__ == "__main__":
    with gevent.Timeout(60):
        main()
