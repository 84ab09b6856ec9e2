"""Run a WSGI app on 127.0.0.1 with one of the servers faye_sync supports.

Shared by the examples: ``--port`` and ``--server`` mean the same everywhere,
and SIGINT/SIGTERM stop the server cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

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


def serve(app: WSGIApp, port: int, server: str) -> None:
    """Serve ``app`` until SIGINT or SIGTERM."""
    print(f"serving on http://{HOST}:{port}/ with {server}", file=sys.stderr, flush=True)
    if server == "gevent":
        _serve_gevent(app, port)
    elif server == "werkzeug":
        from werkzeug.serving import make_server

        _serve_blocking(make_server(HOST, port, app, threaded=True))
    elif server == "wsgiref":
        _serve_blocking(_threaded_wsgiref(app, port))
    elif server == "waitress":
        import waitress

        waitress.serve(app, host=HOST, port=port)
    else:
        raise SystemExit(f"unknown server {server!r}")


def _serve_gevent(app: WSGIApp, port: int) -> None:
    import gevent
    from gevent.pywsgi import WSGIServer

    server = WSGIServer((HOST, port), app)
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, server.stop, 1)
    server.serve_forever()


def _serve_blocking(server: Any) -> None:
    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _threaded_wsgiref(app: WSGIApp, port: int) -> Any:
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    return make_server(
        HOST, port, app, server_class=ThreadingWSGIServer, handler_class=WSGIRequestHandler
    )
