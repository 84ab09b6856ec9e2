"""wsgi_examples.echo on gevent.pywsgi with tracemalloc on, for benchmarks/hotspots.py --memory.

    python benchmarks/faye_gevent_tracemalloc.py --port P --snapshot FILE

The same server as ``python -m wsgi_examples.echo --server gevent`` (same app, same
pywsgi defaults), with tracemalloc tracing 8 frames. Each SIGUSR1 writes a snapshot
to FILE.N (N = 0, 1, ...), taken in the hub (no request is interrupted).
"""

import argparse
import signal
import sys
import tracemalloc
from pathlib import Path

tracemalloc.start(8)

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent / "servers"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import HOST  # noqa: E402

from wsgi_examples.echo import app  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--snapshot", required=True)
args = parser.parse_args()
taken = 0


def snapshot() -> None:
    global taken
    tracemalloc.take_snapshot().dump(f"{args.snapshot}.{taken}")
    taken += 1
    print(f"snapshot {taken - 1}", file=sys.stderr, flush=True)


server = WSGIServer((HOST, args.port), app)
gevent.signal_handler(signal.SIGUSR1, snapshot)
gevent.signal_handler(signal.SIGTERM, server.stop, 1)
server.serve_forever()
