"""Peer: simple-websocket through flask-sock on threads (gunicorn gthread, its documented server).

gunicorn -k gthread --threads 5100 -b 127.0.0.1:P sw_gthread:app

flask-sock names "Gunicorn with the gthread worker" among its synchronous servers and
asks for enough ``--threads``: each WebSocket holds one. sw_gevent.py serves this same
app on gevent.pywsgi after monkey-patching.
"""

from _common import MAX_SIZE
from flask import Flask
from flask_sock import Sock

app = Flask(__name__)
app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": MAX_SIZE}
sock = Sock(app)


@sock.route("/")
def echo(ws):  # type: ignore[no-untyped-def]
    while True:
        ws.send(ws.receive())
