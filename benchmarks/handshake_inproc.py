"""CPU instructions per handshake, counted in one process: steady within a few hundred.

    python benchmarks/handshake_inproc.py [--tree DIR ...] [--n 40,1040]

``instructions.py`` counts the server alone, in its own process, and its handshake
figure moves by several thousand instructions between runs of the same code: the
hub's timing decides how work falls into the counted window. Here one process runs
gevent.pywsgi with ``wsgi_examples.echo`` and a raw client on gevent sockets (connect,
upgrade, read the 101, send a masked close 1000, read to the end), N1 and then N2
times, each under ``setarch -R valgrind --tool=callgrind`` with ``PYTHONHASHSEED=0``
and the garbage collector off; the figure is (count(N2) - count(N1)) / (N2 - N1).
It includes the client's side (the same code in every tree), so it is higher than
``instructions.py``'s; the differences between trees are the server's. Each
``--tree`` (a checkout of faye_sync, e.g. from ``git worktree add``) is counted
beside this one, for A/B. Needs valgrind and ``setarch`` (Linux x86-64).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
TIMEOUT = 600.0  # seconds one count may take under valgrind (about 50x slower)
REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
MASK = b"\x37\xfa\x21\x3d"
CLOSE_1000 = bytes((0x88, 0x82)) + MASK + bytes(b ^ MASK[i] for i, b in enumerate(b"\x03\xe8"))


def handshakes(n: int) -> None:
    """The counted process: ``n`` handshakes against the echo app, then stop."""
    import gc

    import gevent
    from gevent import pywsgi, socket

    from wsgi_examples.echo import make_app

    gc.disable()  # a collection falling inside one window and not the other is noise
    server = pywsgi.WSGIServer(("127.0.0.1", 0), make_app(), log=None, error_log=None)
    server.start()
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", server.server_port), timeout=30)
        sock.sendall(REQUEST)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise SystemExit(f"no 101: {head!r}")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise SystemExit(f"no 101: {head!r}")
        sock.sendall(CLOSE_1000)
        while sock.recv(4096):
            pass
        sock.close()
    gevent.sleep(0.05)  # let the last handler return
    server.stop(timeout=5)


def count(tree: Path, n: int) -> int:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0")
    command = [
        *("setarch", os.uname().machine, "-R"),
        *("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"),
        *(sys.executable, str(Path(__file__).resolve()), "--child", str(n)),
    ]
    done = subprocess.run(
        command, env=env, cwd=tree, capture_output=True, text=True, timeout=TIMEOUT
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or found is None:
        raise SystemExit(f"{tree}: callgrind failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=[], help="another checkout")
    parser.add_argument("--n", default="40,1040", help="the two handshake counts N1,N2")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child is not None:
        handshakes(opts.child)
        return 0
    n1, n2 = (int(n) for n in opts.n.split(","))
    trees = [HERE, *(Path(tree).resolve() for tree in opts.tree)]
    print(f"instructions per handshake, in one process (client included), N = {n1}, {n2}\n")
    print("| tree | per handshake | against the first |\n|---|---:|---:|")
    first = None
    for tree in trees:
        per = (count(tree, n2) - count(tree, n1)) / (n2 - n1)
        first = per if first is None else first
        print(f"| {tree} | {per:,.0f} | {per - first:+,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
