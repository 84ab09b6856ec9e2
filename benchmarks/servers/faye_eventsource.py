"""faye_sync.eventsource.EventSource on gevent.pywsgi: one producer per stream, as fast as it can.

    python benchmarks/servers/faye_eventsource.py --port P

Each stream gets a producer greenlet (``es.spawn``) that sends ``EVENT_DATA``
and yields to the hub every ``BATCH`` events; the response iterator writes
whatever is queued as one chunk. Compare bare_gevent_sse.py.
"""

import signal
import sys
from pathlib import Path

import gevent
from gevent.pywsgi import WSGIServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository's faye_sync

from _common import BATCH, EVENT_DATA, HOST, port_arg

from faye_sync.eventsource import EventSource


def produce(es):  # type: ignore[no-untyped-def]
    send = es.send
    while True:
        for _ in range(BATCH):
            if not send(EVENT_DATA):
                return
        gevent.sleep(0)


def app(environ, start_response):  # type: ignore[no-untyped-def]
    if not EventSource.is_eventsource(environ):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"EventSource only\n"]
    es = EventSource(environ, start_response)
    es.spawn(produce, es)
    return es.response


if __name__ == "__main__":
    server = WSGIServer((HOST, port_arg(__doc__)), app)
    gevent.signal_handler(signal.SIGTERM, server.stop, 1)
    server.serve_forever()
