"""Echo every WebSocket message back to its sender, at any path.

    python -m wsgi_examples.echo --port 8000 --server {gevent,werkzeug,wsgiref}
    gunicorn -k {gevent,gthread,sync} -b 127.0.0.1:8000 wsgi_examples.echo:app

Text stays text and binary stays binary; permessage-deflate is accepted when
the client offers it; messages up to 64 MiB are accepted (``--max-length BYTES``
changes that: the Autobahn|Testsuite runner passes it).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

from faye_sync import PerMessageDeflate, WebSocket

from .serving import WSGIApp, parse_args, serve

MAX_LENGTH = 2**26 - 1


def make_app(max_length: int = MAX_LENGTH) -> WSGIApp:
    """The echo app, accepting messages up to ``max_length`` bytes."""

    def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not WebSocket.is_websocket(environ):
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"faye_sync echo server: connect a WebSocket client to any path.\n"]
        with WebSocket(
            environ, start_response, extensions=[PerMessageDeflate()], max_length=max_length
        ) as ws:
            for message in ws:
                ws.send(message)
        return ws.response

    return echo


app = make_app()


def add_max_length(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-length",
        type=int,
        default=MAX_LENGTH,
        metavar="BYTES",
        help=f"largest message accepted (default {MAX_LENGTH})",
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(
        "faye_sync WebSocket echo server",
        ["gevent", "werkzeug", "wsgiref"],
        argv,
        more=add_max_length,
    )
    serve(make_app(args.max_length), args.port, args.server)


if __name__ == "__main__":
    main()
