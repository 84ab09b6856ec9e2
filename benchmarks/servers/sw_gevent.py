"""Peer: simple-websocket through flask-sock, on gevent.pywsgi (monkey-patched, as flask-sock asks).

python benchmarks/servers/sw_gevent.py --port P

The app is sw_gthread.py's, imported after monkey-patching.
"""

from gevent import monkey

monkey.patch_all()

import signal  # noqa: E402

import gevent  # noqa: E402
from _common import HOST, port_arg  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from sw_gthread import app  # noqa: E402

if __name__ == "__main__":
    server = WSGIServer((HOST, port_arg(__doc__)), app)
    gevent.signal_handler(signal.SIGTERM, server.stop, 1)
    server.serve_forever()
