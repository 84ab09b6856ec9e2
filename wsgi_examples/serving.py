"""Run a WSGI app on 127.0.0.1 with one of the servers faye_sync supports.

Shared by the examples: ``--port`` and ``--server`` mean the same everywhere,
and SIGINT/SIGTERM stop the server cleanly, closing every WebSocket and event
stream first (:func:`faye_sync.close_all`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from faye_sync import close_all

HOST = "127.0.0.1"

WSGIApp = Callable[..., Any]


def parse_args(
    description: str,
    servers: Sequence[str],
    argv: Sequence[str] | None = None,
    *,
    more: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """``--port`` and ``--server``; ``more`` adds an example's own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=8000, help="TCP port on 127.0.0.1")
    parser.add_argument("--server", choices=servers, default=servers[0], help="WSGI server")
    if more is not None:
        more(parser)
    return parser.parse_args(argv)


def serve(app: WSGIApp, port: int, server: str, *, threads: int = 4) -> None:
    """Serve ``app`` until SIGINT or SIGTERM.

    On either signal :func:`faye_sync.close_all` first closes every WebSocket
    (1001) and ends every event stream, which would otherwise keep the server
    waiting on their threads or greenlets; then the server stops. ``threads``
    is waitress's pool (each open stream holds one).
    """
    print(f"serving on http://{HOST}:{port}/ with {server}", file=sys.stderr, flush=True)
    if server == "gevent":
        _serve_gevent(app, port)
    elif server == "werkzeug":
        from werkzeug.serving import make_server

        _serve_blocking(make_server(HOST, port, app, threaded=True))
    elif server == "wsgiref":
        _serve_blocking(_threaded_wsgiref(app, port))
    elif server == "waitress":
        from waitress import create_server  # type: ignore[import-untyped]

        _serve_blocking(create_server(app, host=HOST, port=port, threads=threads))
    else:
        raise SystemExit(f"unknown server {server!r}")


def _close_connections() -> None:
    close_all(1001, "server shutting down")


def _serve_gevent(app: WSGIApp, port: int) -> None:
    import gevent
    from gevent.pywsgi import WSGIServer

    server = WSGIServer((HOST, port), app)

    def stop() -> None:
        _close_connections()
        server.stop(timeout=1)

    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop)
    server.serve_forever()


def _serve_blocking(server: Any) -> None:
    def stop(signum: int, frame: object) -> None:
        # waitress's run() answers KeyboardInterrupt by waiting for its threads,
        # which an open connection would hold for ever: end them first.
        _close_connections()
        raise KeyboardInterrupt  # leaves serve_forever()/run() as Ctrl-C does

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    waitress = not hasattr(server, "serve_forever")
    try:
        if waitress:
            server.run()
        else:
            server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        _close_connections()
        if waitress:
            server.close()
        else:
            _wait_for_request_threads()
            server.server_close()


def _wait_for_request_threads(timeout: float = 5.0) -> None:
    """Let the request threads write the end of their streams (bounded).

    socketserver's threads are daemons: the process would end them in the middle
    of the last bytes that ``close_all`` asked them to write.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(
        "process_request_thread" in thread.name for thread in threading.enumerate()
    ):
        time.sleep(0.05)


def _threaded_wsgiref(app: WSGIApp, port: int) -> Any:
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    return make_server(
        HOST, port, app, server_class=ThreadingWSGIServer, handler_class=WSGIRequestHandler
    )
