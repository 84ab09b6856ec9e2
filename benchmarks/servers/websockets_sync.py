"""Peer: the websockets package's threaded server (websockets.sync.server), defaults but max_size.

python benchmarks/servers/websockets_sync.py --port P
"""

import signal
import threading

from _common import HOST, MAX_SIZE, port_arg
from websockets.sync.server import serve


def echo(ws):  # type: ignore[no-untyped-def]
    for message in ws:
        ws.send(message)


if __name__ == "__main__":
    with serve(echo, HOST, port_arg(__doc__), max_size=MAX_SIZE) as server:
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
        server.serve_forever()
