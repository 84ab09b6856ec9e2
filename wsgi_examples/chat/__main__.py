"""``python -m wsgi_examples.chat [--port 8000] [--broker URL]``: serve the chat on 127.0.0.1.

It runs on gevent.pywsgi. ``--broker`` (else ``CHAT_BROKER``, else ``memory://``)
is the hub's URL: every process given the same ``redis://`` URL is one room.

SIGINT (Ctrl-C) or SIGTERM stops it: chat sockets are closed with 1001
("going away"), feed streams end (browsers reconnect on their own once a
server is back), and open requests get STOP_TIMEOUT seconds to finish.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from faye_sync import close_all

from . import BROKER_ENV, app, room

HOST = "127.0.0.1"
STOP_TIMEOUT = 2.0  # seconds


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m wsgi_examples.chat",
        description="faye_sync chat demo: WebSocket chat and EventSource feed",
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="TCP port on 127.0.0.1 (0 picks a free one)"
    )
    parser.add_argument(
        "--broker",
        default=None,
        help=f"the hub's URL, e.g. redis://127.0.0.1:6379/0 (default: ${BROKER_ENV} or memory://)",
    )
    args = parser.parse_args(argv)
    if args.broker:
        room.use(args.broker)
    try:
        import gevent
        from gevent.pool import Pool
        from gevent.pywsgi import WSGIServer
    except ImportError:
        raise SystemExit("the chat demo runs on gevent: pip install gevent") from None

    # With a pool, stop() waits for the open requests (up to STOP_TIMEOUT)
    # instead of leaving them to die with the process mid-teardown.
    server = WSGIServer((HOST, args.port), app, spawn=Pool())
    server.start()  # binds now, so that the port is known when it is printed
    url = f"http://{HOST}:{server.server_port}/"
    print(f"chat on {url} (gevent.pywsgi); Ctrl-C stops", file=sys.stderr, flush=True)

    def stop() -> None:
        # close_all only starts each close handshake; server.stop() then waits
        # for the handlers to see the replies and return.
        close_all(1001)
        room.close_feeds()
        server.stop(timeout=STOP_TIMEOUT)
        room.close()  # the hub's reader, once nothing uses it

    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop)
    server.serve_forever()
    print("chat stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
