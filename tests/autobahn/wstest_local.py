"""Run Autobahn's ``wstest`` with every listening socket bound to 127.0.0.1.

Python 2.7 only (it runs inside the Autobahn virtualenv). ``wstest`` itself
listens on all interfaces (``listenWS(..., interface='')``); this shim rebinds
the WebSocket listener to loopback and refuses the embedded web server (run.py
always passes ``--webport 0``). Usage is exactly ``wstest``'s::

    python wstest_local.py -m fuzzingserver -s spec.json --webport 0
"""

import sys

from autobahn.twisted import websocket as _websocket

_listen_ws = _websocket.listenWS


def _listen_ws_loopback(factory, context_factory=None, backlog=50, interface=""):
    return _listen_ws(factory, context_factory, backlog, "127.0.0.1")


_websocket.listenWS = _listen_ws_loopback

from autobahntestsuite import fuzzing  # noqa: E402  (after the patch, on purpose)

fuzzing.listenWS = _listen_ws_loopback

from autobahntestsuite.wstest import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run())
