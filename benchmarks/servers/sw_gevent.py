"""Peer: simple-websocket through flask-sock, on gevent.pywsgi (monkey-patched, as flask-sock asks).

python benchmarks/servers/sw_gevent.py --port P
"""

from gevent import monkey

monkey.patch_all()

import signal  # noqa: E402

import gevent  # noqa: E402
from _common import HOST, MAX_SIZE, port_arg  # noqa: E402
from flask import Flask  # noqa: E402
from flask_sock import Sock  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

app = Flask(__name__)
app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": MAX_SIZE}
sock = Sock(app)


@sock.route("/")
def echo(ws):  # type: ignore[no-untyped-def]
    while True:
        ws.send(ws.receive())


if __name__ == "__main__":
    server = WSGIServer((HOST, port_arg(__doc__)), app)
    gevent.signal_handler(signal.SIGTERM, server.stop, 1)
    server.serve_forever()
