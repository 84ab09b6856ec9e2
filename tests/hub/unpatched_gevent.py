"""``python -m tests.hub.unpatched_gevent MODULE:APP``: gevent.pywsgi WITHOUT monkey-patching.

The setup of the chat demo: stdlib sockets stay blocking, so anything that uses
them in a greenlet freezes the whole process. Prints ``FAYE_SYNC_SERVING port=N``.
"""

from __future__ import annotations

import sys

from gevent.pywsgi import WSGIServer

from tests.serve import HOST, announce, load_app


def main() -> None:
    server = WSGIServer((HOST, 0), load_app(sys.argv[1]), log=None)
    server.start()
    announce(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
