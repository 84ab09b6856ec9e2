"""The EventSource baseline: a bare WSGI generator on gevent.pywsgi streaming the same events.

    python benchmarks/servers/bare_gevent_sse.py --port P

Same headers and bytes as faye_sync's EventSource (``retry`` first, then
``data: ...\\r\\n\\r\\n``), one event per yielded chunk, ``gevent.sleep(0)``
every ``BATCH`` events so that all clients are served.
"""

import signal

import gevent
from _common import BATCH, EVENT_BYTES, HOST, port_arg
from gevent.pywsgi import WSGIServer

HEADERS = [
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache, no-store"),
    ("X-Accel-Buffering", "no"),
]


def stream():  # type: ignore[no-untyped-def]
    yield b"retry: 5000\r\n\r\n"
    while True:
        for _ in range(BATCH):
            yield EVENT_BYTES
        gevent.sleep(0)


def app(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", HEADERS)
    return stream()


if __name__ == "__main__":
    server = WSGIServer((HOST, port_arg(__doc__)), app)
    gevent.signal_handler(signal.SIGTERM, server.stop, 1)
    server.serve_forever()
