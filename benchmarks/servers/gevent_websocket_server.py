"""Peer: gevent-websocket (geventwebsocket.handler.WebSocketHandler on gevent.pywsgi).

python benchmarks/servers/gevent_websocket_server.py --port P
"""

import signal

import gevent
from _common import HOST, port_arg
from gevent.pywsgi import WSGIServer
from geventwebsocket.handler import WebSocketHandler


def app(environ, start_response):  # type: ignore[no-untyped-def]
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"WebSocket only\n"]
    while True:
        message = ws.receive()
        if message is None:
            break
        ws.send(message)  # str goes back as text, bytes as binary
    return []


if __name__ == "__main__":
    server = WSGIServer((HOST, port_arg(__doc__)), app, handler_class=WebSocketHandler)
    gevent.signal_handler(signal.SIGTERM, server.stop, 1)
    server.serve_forever()
