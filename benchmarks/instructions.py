#!/usr/bin/env python
"""CPU instructions per echoed message (and per handshake), counted by callgrind.

    python benchmarks/instructions.py                      # faye-gevent and the floor, all
    python benchmarks/instructions.py --workloads 32B-binary,handshake --n 500,2500
    python benchmarks/instructions.py --baseline 4990802   # also faye_sync at an old commit
    python benchmarks/instructions.py --tree /tmp/old      # also faye_sync from a checkout

Neither a shared machine nor its other processes move this figure. Each server
runs under ``valgrind --tool=callgrind`` (about 50x slower), started as run.py
starts it; this process is the client. For each workload it reads the server's
counter (``callgrind_control -e Ir``) before and after N sequential echoes on one
new connection, for two N, and reports (I(N2) - I(N1)) / (N2 - N1): one more
message, handshake, close and counter reads cancelled out. Each frame is sent
once the server sleeps in its event loop, as at native speed. ``handshake``
opens and closes N / 10 connections. User-space instructions only (not the
kernel's part of system calls). ``--profile DIR`` keeps a callgrind dump of each
N2 run for ``callgrind_annotate``. Needs valgrind, Linux x86-64; waits bounded.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import run  # benchmarks/run.py: the servers, ports, tables

# name: (payload size, opcode); handshake has no payload
WORKLOADS = {"32B-text": (32, 1), "32B-binary": (32, 2), "4KiB-text": (4096, 1)}
WORKLOADS |= {"4KiB-binary": (4096, 2), "handshake": (0, 0)}
MASK = b"\x37\xfa\x21\x3d"
TIMEOUT = 60.0  # seconds any one socket operation or wait may take (valgrind is slow)
QUIET = 5000  # instructions between two counter readings of an idle server
EPOLL_WAIT = {"232", "281", "441"}  # x86-64: epoll_wait, epoll_pwait, epoll_pwait2
COUNTER = re.compile(r"^\s*Th\s+\d+\s+([\d,]+)", re.M)
TREE_HELP = "also faye-gevent with faye_sync from this checkout (repeatable)"


def masked_frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)  # below 64 KiB
    head = bytes((0x80 | opcode, 0x80 | min(size, 126)))
    head += size.to_bytes(2, "big") if size >= 126 else b""
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return head + MASK + body


def idle(pid: int) -> None:
    """Wait until the server sleeps in its event loop (``epoll_wait`` with a timeout).

    Under valgrind the server is slow enough that the next frame would often be
    there before it reads again, which takes a cheaper path (no EAGAIN, no
    switch to the hub) at random; at native speed it waits for every frame.
    """
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/syscall") as f:
            call = f.read().split()
        if len(call) > 4 and call[0] in EPOLL_WAIT and call[4] != "0x0":
            return
    raise RuntimeError(f"server {pid} did not go back to its event loop in {TIMEOUT} s")


class Client:
    """One WebSocket connection, every operation bounded; frames go once ``idle``."""

    def __init__(self, port: int, pid: int) -> None:
        self.pid, self.buf = pid, b""
        idle(pid)
        self.sock = socket.create_connection((run.HOST, port), timeout=TIMEOUT)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"handshake refused: {head[:80]!r}")

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        self.buf += chunk

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self) -> tuple[int, bytes]:
        b0, b1 = self.exact(2)
        if (size := b1 & 0x7F) >= 126:
            size = int.from_bytes(self.exact(2 if size == 126 else 8), "big")
        return b0 & 0x0F, self.exact(size)

    def echo(self, frame: bytes, opcode: int, payload: bytes, count: int) -> None:
        for _ in range(count):
            idle(self.pid)
            self.sock.sendall(frame)
            if self.frame() != (opcode, payload):
                raise RuntimeError("the echo differs from what was sent")

    def close(self) -> None:
        idle(self.pid)
        self.sock.sendall(masked_frame(8, b"\x03\xe8"))
        while self.frame()[0] != 8:
            pass
        while self.sock.recv(65536):  # the server's FIN ends the session
            pass
        self.sock.close()


def counter(pid: int) -> int:
    """The server's instructions so far, all threads (a few tries: vgdb is sometimes early)."""
    for _ in range(5):
        out = subprocess.run(
            ["callgrind_control", "-e", "Ir", str(pid)], capture_output=True, text=True, timeout=30
        ).stdout
        counts = COUNTER.findall(out)
        if counts:
            return sum(int(c.replace(",", "")) for c in counts)
        time.sleep(0.2)
    raise RuntimeError(f"no callgrind counter for pid {pid}: {out.strip()!r}")


def settled(pid: int, limit: float = 20.0) -> int:
    """The counter once the server has finished the last connection's teardown.

    Each reading wakes the server's event loop (vgdb interrupts its poll): about
    1,400 instructions, so "idle" means less than QUIET between two readings.
    """
    deadline, last = time.monotonic() + limit, counter(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = counter(pid)
        if now - last < QUIET:
            return now
        last = now
    raise RuntimeError(f"server {pid} did not go idle within {limit} s")


def counted(pid: int, label: str, profile: Path | None, work: Callable[[], object]) -> int:
    """The instructions ``pid`` runs for ``work()``, between two settled counts.

    With ``profile``, the counters are zeroed first and dumped as ``label`` after,
    so that the dump holds only this run's costs.
    """
    if profile:
        subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True, timeout=30)
    before = settled(pid)
    work()
    after = settled(pid)
    if profile:
        dump = ["callgrind_control", f"--dump={label}", str(pid)]
        subprocess.run(dump, capture_output=True, timeout=30)
    return after - before


def run_once(pid: int, port: int, workload: str, n: int, profile: Path | None) -> int:
    """The server's instructions for ``n`` echoes on one connection (or n / 10 handshakes)."""
    size, opcode = WORKLOADS[workload]

    def work() -> None:
        if workload == "handshake":
            for _ in range(n // 10):
                Client(port, pid).close()
            return
        payload = bytes(i % 94 + 33 for i in range(size))  # ASCII: valid text, too
        client = Client(port, pid)
        client.echo(masked_frame(opcode, payload), opcode, payload, n)
        client.close()

    return counted(pid, f"{workload}-{n}", profile, work)


def start(server: run.Server, port: int, out_dir: Path) -> subprocess.Popen[bytes]:
    """``server`` under callgrind on ``port``; its log and callgrind files go to ``out_dir``."""
    valgrind = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out_dir}/{server.name}.%p")
    env = dict(os.environ, PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join([str(server.root), str(run.SERVERS_DIR)])
    with open(out_dir / f"{server.name}.log", "ab") as log:
        return subprocess.Popen(
            [*valgrind, *server.command(port)],
            cwd=server.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )


@contextlib.contextmanager
def under_callgrind(server: run.Server, profile: Path | None) -> Iterator[tuple[int, int]]:
    """``server`` started under callgrind and listening: its (pid, port); stopped after.

    Its callgrind files go to ``profile``, or to a temp directory removed after.
    """
    out_dir = profile or Path(tempfile.mkdtemp(prefix="faye-instr-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    port = run.free_port()
    proc = start(server, port, out_dir)
    try:
        run.wait_port(port, proc, timeout=180.0)
        yield proc.pid, port
    finally:
        stop(proc)
        if profile is None:  # the callgrind files of a plain run are not needed
            shutil.rmtree(out_dir, ignore_errors=True)


def measure(server: run.Server, works: list[str], ns: list[int], profile: Path | None) -> dict:
    """Instructions per message (per connection for handshake) of each workload."""
    with under_callgrind(server, profile) as (pid, port):
        Client(port, pid).close()  # warm up: imports and first-use paths
        results = {}
        for work in works:
            small = run_once(pid, port, work, ns[0], None)
            large = run_once(pid, port, work, ns[1], profile)
            scale = 10 if work == "handshake" else 1
            results[work] = (large - small) / (ns[1] // scale - ns[0] // scale)
        return results


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (both servers close their sockets and exit), so callgrind writes its file."""
    for sig, wait in ((signal.SIGTERM, 120.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            break
        os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="faye-gevent,floor-pywsgi")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--n", default="500,2500", help="the two message counts N1,N2")
    parser.add_argument("--tree", type=Path, action="append", default=[], help=TREE_HELP)
    parser.add_argument("--baseline", metavar="REV", help="also faye-gevent at git REV")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="keep callgrind dumps here")
    opts = parser.parse_args()
    ns = [int(n) for n in opts.n.split(",")]
    works = opts.workloads.split(",")
    servers = [run.SERVERS[name] for name in opts.servers.split(",") if name]
    for tree in opts.tree:
        name = f"faye-gevent@{tree.resolve().name}"
        servers.append(dataclasses.replace(run.SERVERS["faye-gevent"], name=name, root=tree))
    if opts.baseline:
        servers.append(run.baseline_server(opts.baseline))
    results = {s.name: measure(s, works, ns, opts.profile) for s in servers}
    floor = results.get(run.FLOOR)
    mine = [name for name in results if name != run.FLOOR]
    headers = ["workload", *results, *(f"{name} / floor" for name in mine if floor)]
    rows = []
    for work in works:
        row = [work, *(f"{results[name][work]:,.0f}" for name in results)]
        if floor:
            row += [f"{results[name][work] / floor[work]:.3f}" for name in mine]
        rows.append(row)
    unit = "instructions per message (per connection for handshake)"
    print(f"\n{unit}, N = {ns[0]}, {ns[1]}\n\n" + run.table(headers, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
