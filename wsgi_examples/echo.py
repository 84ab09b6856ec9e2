"""Echo every WebSocket message back to its sender, at any path.

    python -m wsgi_examples.echo --port 8000 --server {gevent,werkzeug,wsgiref}
    gunicorn -k {gevent,gthread,sync} -b 127.0.0.1:8000 wsgi_examples.echo:app

Text stays text and binary stays binary; permessage-deflate is accepted when
the client offers it; messages up to 64 MiB are accepted (the default is 1 MiB:
this server is the Autobahn|Testsuite's target, which sends up to 16 MiB).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faye_sync import PerMessageDeflate, WebSocket

from .serving import parse_args, serve

MAX_LENGTH = 2**26 - 1


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if not WebSocket.is_websocket(environ):
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"faye_sync echo server: connect a WebSocket client to any path.\n"]
    ws = WebSocket(environ, start_response, extensions=[PerMessageDeflate()], max_length=MAX_LENGTH)
    for message in ws:
        ws.send(message)
    return ws.response


def main(argv: list[str] | None = None) -> None:
    args = parse_args("faye_sync WebSocket echo server", ["gevent", "werkzeug", "wsgiref"], argv)
    serve(app, args.port, args.server)


if __name__ == "__main__":
    main()
