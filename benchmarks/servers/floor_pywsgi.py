"""Floor: the least a WebSocket on gevent.pywsgi can cost (not a library, no checks).

python benchmarks/servers/floor_pywsgi.py --port P

Answers the upgrade with the 101 written straight to pywsgi's socket, echoes whole
small frames (it assumes one unfragmented frame per read, which the load generator's
small messages are) and answers a close frame with an empty close. What pywsgi and a
greenlet per connection cost with nothing else: the handshake and idle-memory floor
any library on pywsgi stands on. Like faye_sync, it closes pywsgi's drained reader,
whose 8 KiB buffer would otherwise stay for the connection's life.
"""

import base64
import hashlib
import signal

import gevent
from _common import HOST, port_arg
from gevent.pywsgi import WSGIServer

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def app(environ, start_response):  # type: ignore[no-untyped-def]
    rfile = environ["wsgi.input"]
    sock = rfile.raw._sock
    rfile.close()  # frees its 8 KiB buffer, as faye_sync does (the load sends no early bytes)
    key = environ["HTTP_SEC_WEBSOCKET_KEY"].encode()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    while True:
        data = sock.recv(65536)
        if not data or data[0] & 0x0F == 8:
            if data:
                sock.sendall(b"\x88\x00")
            break
        length = data[1] & 0x7F
        start = 2 if length < 126 else 4
        mask, payload = data[start : start + 4], data[start + 4 :]
        unmasked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head = bytes([data[0], len(unmasked)]) if length < 126 else data[:1] + b"\x7e" + data[2:4]
        sock.sendall(head + unmasked)
    sock.shutdown(2)
    start_response("101 Switching Protocols", [])
    return []


if __name__ == "__main__":
    server = WSGIServer((HOST, port_arg(__doc__)), app)
    gevent.signal_handler(signal.SIGTERM, server.stop, 1)
    server.serve_forever()
