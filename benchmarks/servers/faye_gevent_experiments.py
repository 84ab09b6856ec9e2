"""The faye_sync echo server on gevent.pywsgi with candidate optimisations patched in.

python benchmarks/servers/faye_gevent_experiments.py --port P --patch send-first,close-rfile

Not a peer: it measures what a suggested change to faye_sync would gain, by
patching it in this process only (faye_sync itself is not edited). Run it
against the unpatched example in the same run, e.g.::

    python benchmarks/run.py --servers faye-gevent,faye-gevent-exp --workloads echo,idle

Patches:

* ``send-first``: ``Connection._write`` calls ``sock.send`` once and falls back to
  ``sendall`` for the rest. gevent's ``sendall`` costs a ``getsockopt(SO_SNDBUF)``
  system call and a memoryview chunk loop on every call.
* ``close-rfile``: after the adapter drains pywsgi's buffered reader, close the
  reader, which frees its 8 KiB buffer; pywsgi checks ``rfile.closed`` after the
  response and ends the connection cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import gevent
from gevent.pywsgi import WSGIServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _common import HOST

from faye_sync.adapters import gevent_pywsgi
from faye_sync.adapters.base import buffered_reader_of
from faye_sync.blocking.connection import Connection
from wsgi_examples.echo import app


def send_first(self: Connection, data: bytes) -> bool:
    sock = self._sock
    assert sock is not None
    pending = getattr(self, "_pending_output", b"")  # older engines kept timer output here
    if pending:
        data, self._pending_output = pending + data, b""
    try:
        sent = sock.send(data)
        if sent < len(data):
            sock.sendall(memoryview(data)[sent:])
    except OSError:
        self._abort(1006, "")
        return False
    return True


_original_take = gevent_pywsgi.GeventPyWSGIAdapter.take_buffered


def take_and_close(self, environ, sock):  # type: ignore[no-untyped-def]
    data = _original_take(self, environ, sock)
    reader = buffered_reader_of(environ.get("wsgi.input"))
    if reader is not None:
        reader.close()  # frees the 8 KiB buffer; the socket stays open (makefile refcount)
    return data


PATCHES = {
    "send-first": lambda: setattr(Connection, "_write", send_first),
    "close-rfile": lambda: setattr(
        gevent_pywsgi.GeventPyWSGIAdapter, "take_buffered", take_and_close
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--patch", default=",".join(PATCHES), help=", ".join(PATCHES))
    args = parser.parse_args()
    for name in filter(None, args.patch.split(",")):
        PATCHES[name]()
    server = WSGIServer((HOST, args.port), app)
    gevent.signal_handler(signal.SIGTERM, server.stop, 1)
    server.serve_forever()


if __name__ == "__main__":
    main()
