"""What an idle WebSocket holds on gevent.pywsgi, faye_sync's echo against the floor.

    python benchmarks/idle_breakdown.py [--conns 2000] [--top 12]

For each server (``wsgi_examples.echo`` and ``benchmarks/servers/floor_pywsgi.py``,
each on pywsgi in this process, one at a time in a child process), opens
``--conns`` raw WebSockets from the same process, lets every handler block in its
read, and prints per connection:

* the bytes tracemalloc sees allocated, by source file (the greenlet's saved C
  stack is counted at the line that switched to the hub);
* the greenlet's saved C stack alone (``greenlet._stack_saved``);
* the objects the garbage collector tracks, by type.

Then the saved stack of one greenlet sleeping in a socket read, by how it waits:
gevent's ``recv``, faye_sync's ``GeventBackend.recv``, each called directly and
from a generator (``for message in ws`` on CPython 3.11 resumes its generator
from C, a frame more on the C stack). Deterministic: no rates, no load generator.
"""

from __future__ import annotations

import argparse
import collections
import gc
import re
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _greenlets() -> list[Any]:
    import greenlet

    current = greenlet.getcurrent()
    return [
        o
        for o in gc.get_objects()
        if isinstance(o, greenlet.greenlet) and o is not current and not o.dead
    ]


def _types() -> collections.Counter[str]:
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def measure_server(name: str, conns: int, top: int) -> None:
    """In a child process: the per-connection breakdown of one server (see the module doc)."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from gevent import socket
    from gevent.pywsgi import WSGIServer

    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks" / "servers")]
    if name == "faye":
        from wsgi_examples.echo import app
    else:
        from floor_pywsgi import app  # type: ignore[import-not-found,no-redef]
    server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)
    server.start()

    def connect() -> Any:
        sock = socket.create_connection(("127.0.0.1", server.server_port))
        sock.sendall(REQUEST)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        return sock

    clients = [connect() for _ in range(50)]  # warm: first-use caches are not counted
    gevent.sleep(0.3)
    gc.collect()
    stack_before = sum(g._stack_saved for g in _greenlets())
    types_before = _types()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    clients += [connect() for _ in range(conns)]
    gevent.sleep(0.5)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    stack = (sum(g._stack_saved for g in _greenlets()) - stack_before) / conns
    types_after = _types()
    by_file = after.compare_to(before, "filename")
    total = sum(stat.size_diff for stat in by_file) / conns
    print(f"## {name}: {total:,.0f} B traced per connection; saved C stack {stack:,.0f} B\n")
    for stat in by_file[:top]:
        where = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", stat.traceback[0].filename)
        where = where.replace(str(ROOT) + "/", "")
        print(
            f"    {stat.size_diff / conns:7,.0f} B  {stat.count_diff / conns:5.1f} blocks  {where}"
        )
    grown = {k: (types_after[k] - types_before[k]) / conns for k in types_after}
    print(
        "\n    objects per connection: "
        + ", ".join(
            f"{k} {n:g}" for k, n in sorted(grown.items(), key=lambda kv: -kv[1]) if n >= 0.5
        )
    )
    print()
    server.stop()
    for sock in clients:
        sock.close()


def measure_stacks() -> None:
    """The saved C stack of a greenlet sleeping in a read, by how it waits."""
    import gevent
    from gevent import socket

    from faye_sync.blocking.backends import get_backend

    backend = get_backend("gevent")
    reads: dict[str, Callable[[Any], bytes]] = {
        "gevent's socket.recv": lambda sock: sock.recv(10),
        "faye_sync GeventBackend.recv": lambda sock: backend.recv(sock, 10),
    }
    print(f"## saved C stack of a greenlet sleeping in a read (CPython {sys.version.split()[0]})\n")
    print("| read | called directly | from a generator |\n|---|---:|---:|")
    for label, read in reads.items():
        row = []
        for in_generator in (False, True):

            def reader(
                sock: Any, read: Callable[[Any], bytes] = read, gen: bool = in_generator
            ) -> None:
                def messages() -> Iterator[bytes]:
                    yield read(sock)

                for _ in messages() if gen else (read(sock),):
                    pass

            pairs = [socket.socketpair() for _ in range(100)]
            sleepers = [gevent.spawn(reader, a) for a, _ in pairs]
            gevent.sleep(0.05)
            row.append(sum(g._stack_saved for g in sleepers) / len(sleepers))
            for _a, b in pairs:
                b.sendall(b"x")
            gevent.joinall(sleepers, timeout=10)
            for a, b in pairs:
                a.close()
                b.close()
        print(f"| {label} | {row[0]:,.0f} B | {row[1]:,.0f} B |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=2000)
    parser.add_argument("--top", type=int, default=12, help="files shown per server")
    parser.add_argument("--server", choices=["faye", "floor"], help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.server:  # the child: one server per process, so imports do not mix
        measure_server(opts.server, opts.conns, opts.top)
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 2 * opts.conns + 1000)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    for name in ("faye", "floor"):
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--server",
                name,
                "--conns",
                str(opts.conns),
                "--top",
                str(opts.top),
            ],
            check=True,
            timeout=300,
        )
    sys.path.insert(0, str(ROOT))
    measure_stacks()


if __name__ == "__main__":
    main()
