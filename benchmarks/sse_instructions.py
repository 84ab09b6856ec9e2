#!/usr/bin/env python
"""CPU instructions per EventSource event (run.py's sse workload), counted by callgrind.

    python benchmarks/sse_instructions.py                  # faye-eventsource, bare-gevent-sse
    python benchmarks/sse_instructions.py --tree /tmp/old  # also faye-eventsource from a checkout
    python benchmarks/sse_instructions.py --conns 10 --n 300,1500

instructions.py's method for the sse servers: each runs under callgrind; this
process opens K streams, reads N events on each, closes them all and reads the
server's counter once it is idle again, for two N; (I(N2) - I(N1)) / (K (N2 - N1))
is the cost of one more event. Under valgrind the server is the slow side, so
little is in flight when the streams close (about one batch per stream, the
same for both N). ``--profile DIR`` keeps a callgrind dump of each N2 run.
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
from pathlib import Path

import run  # benchmarks/run.py: the servers, ports, tables
from instructions import TIMEOUT, counted, under_callgrind

EVENT = b"data: "  # every event (and nothing else the servers send) holds it once


class Stream:
    """One EventSource request; ``read`` counts whole events, every operation bounded."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((run.HOST, port), timeout=TIMEOUT)
        self.sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        self.events, self.tail = 0, b""

    def read(self, n: int) -> None:
        while self.events < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"the server ended the stream after {self.events} events")
            data = self.tail + chunk
            self.events += data.count(EVENT)
            self.tail = data[-(len(EVENT) - 1) :]  # an event split by recv is counted once

    def close(self) -> None:
        self.sock.close()


def run_once(pid: int, port: int, conns: int, n: int, profile: Path | None) -> int:
    def work() -> None:
        streams = [Stream(port) for _ in range(conns)]
        for stream in streams:  # round-robin in steps, so that no stream's buffers fill up
            stream.read(0)
        for step in range(1, 11):
            for stream in streams:
                stream.read(n * step // 10)
        for stream in streams:
            stream.close()

    return counted(pid, f"sse-{n}", profile, work)


def measure(server: run.Server, conns: int, ns: list[int], profile: Path | None) -> float:
    with under_callgrind(server, profile) as (pid, port):
        run_once(pid, port, conns, ns[0], None)  # warm up: imports and first-use paths
        small = run_once(pid, port, conns, ns[0], None)
        large = run_once(pid, port, conns, ns[1], profile)
        return (large - small) / (conns * (ns[1] - ns[0]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="faye-eventsource,bare-gevent-sse")
    parser.add_argument("--conns", type=int, default=10, help="streams at once (K)")
    parser.add_argument("--n", default="300,1500", help="the two event counts per stream")
    parser.add_argument("--tree", type=Path, action="append", default=[])
    parser.add_argument("--profile", type=Path, metavar="DIR", help="keep callgrind dumps here")
    opts = parser.parse_args()
    ns = [int(n) for n in opts.n.split(",")]
    servers = [run.SERVERS[name] for name in opts.servers.split(",") if name]
    faye = run.SERVERS["faye-eventsource"]
    for tree in opts.tree:  # the server script puts its own checkout's faye_sync first
        script = str(tree.resolve() / "benchmarks" / "servers" / "faye_eventsource.py")
        cmd = (faye.cmd[0], script, *faye.cmd[2:])
        name = f"faye-eventsource@{tree.resolve().name}"
        servers.append(dataclasses.replace(faye, name=name, cmd=cmd, root=tree.resolve()))
    results = {s.name: measure(s, opts.conns, ns, opts.profile) for s in servers}
    rows = [[name, f"{value:,.0f}"] for name, value in results.items()]
    print(f"\ninstructions per event, {opts.conns} streams, N = {ns[0]}, {ns[1]}")
    print("\n" + run.table(["server", "instructions"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
