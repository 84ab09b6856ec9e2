#!/usr/bin/env python
"""What one 1 MiB echo costs the faye_sync server: instructions, system calls, bytes allocated.

    python benchmarks/large_cost.py --measure callgrind --type binary
    python benchmarks/large_cost.py --measure strace --type text --server gthread

Figures that a busy 2-core machine does not move, unlike rates: the echo server
(``wsgi_examples.echo``, as ``benchmarks/run.py`` starts it) runs under
``valgrind --tool=callgrind`` (user-space instructions, libc's ``memcpy``
included; the kernel's copies are not) or ``strace -c`` (system calls by name).
A websockets client sends ``--messages`` messages one at a time after a warm-up;
only those are counted, and the figures are divided by their number.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_command(server: str, port: int) -> list[str]:
    if server == "gevent":
        return [
            sys.executable,
            "-m",
            "wsgi_examples.echo",
            "--port",
            str(port),
            "--server",
            "gevent",
        ]
    return [
        *(sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "8", "-w", "1"),
        *("-b", f"{HOST}:{port}", "wsgi_examples.echo:app"),
    ]


def wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port} after {timeout} s")


def echo(port: int, message: str | bytes, count: int) -> None:
    url = f"ws://{HOST}:{port}/"
    with connect(url, compression=None, max_size=None, open_timeout=120) as ws:
        for _ in range(count):
            ws.send(message)
            if ws.recv(timeout=120) != message:
                raise AssertionError("the echo differs")


def measure_callgrind(args: argparse.Namespace, message: str | bytes) -> float:
    # Two runs, of 5 and of 5 + --messages echoes: the difference is the messages'
    # cost, without start-up, handshake and exit (callgrind_control cannot reach
    # gunicorn's forked worker).
    few = run_callgrind(args, message, 5)
    many = run_callgrind(args, message, 5 + args.messages)
    return (many - few) / args.messages


def start_callgrind(
    server: str, name: str, *options: str
) -> tuple[int, Path, subprocess.Popen[bytes]]:
    """The echo server under callgrind, listening: its port, output folder and process."""
    port = free_port()
    out = Path(tempfile.mkdtemp(prefix="faye-cg-"))
    cmd = [
        *("valgrind", "--tool=callgrind", *options, f"--callgrind-out-file={out}/{name}"),
        *server_command(server, port),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(port, 120)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        raise
    return port, out, proc


def run_callgrind(args: argparse.Namespace, message: str | bytes, count: int) -> int:
    port, out, proc = start_callgrind(args.server, "cg.%p")
    try:
        echo(port, message, count)
    finally:
        # gunicorn: a graceful stop from the master, so that the worker writes its file
        os.kill(proc.pid, signal.SIGTERM if args.server == "gthread" else signal.SIGINT)
        proc.wait(timeout=120)
    totals: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the worker may still be writing its file
        texts = [path.read_text(errors="replace") for path in out.iterdir()]
        found = [re.search(r"^totals:\s+(\d+)", text, re.M) for text in texts]
        totals = [int(match.group(1)) for match in found if match]
        if len(totals) == (2 if args.server == "gthread" else 1):
            break
        time.sleep(1)
    else:
        raise TimeoutError(f"no complete callgrind files in {out}")
    return sum(totals)  # gunicorn: the master's and the worker's


def measure_functions(args: argparse.Namespace, message: str | bytes) -> list[tuple[float, str]]:
    """Instructions per echo by function, the top ones (gevent: one process to toggle)."""
    port, out, proc = start_callgrind("gevent", "cg", "--instr-atstart=no")
    try:
        url = f"ws://{HOST}:{port}/"
        with connect(url, compression=None, max_size=None, open_timeout=120) as ws:
            toggle = ["callgrind_control", "-i"]
            for _ in range(3):
                ws.send(message)
                ws.recv(timeout=120)
            subprocess.run([*toggle, "on", str(proc.pid)], check=True, capture_output=True)
            for _ in range(args.messages):
                ws.send(message)
                if ws.recv(timeout=120) != message:
                    raise AssertionError("the echo differs")
            subprocess.run([*toggle, "off", str(proc.pid)], check=True, capture_output=True)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", str(out / "cg")], capture_output=True, text=True
    ).stdout
    rows = []
    for line in text.splitlines():
        match = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+)", line)
        if match and "PROGRAM TOTALS" not in line:
            count = int(match.group(1).replace(",", "")) / args.messages
            rows.append((count, match.group(2).rsplit("/", 1)[-1].split(" ")[0]))
    return rows[:8]


def measure_strace(args: argparse.Namespace, message: str | bytes) -> dict[str, float]:
    port = free_port()
    proc = subprocess.Popen(
        server_command(args.server, port),
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_port(port, 60)
        echo(port, message, 3)
        log = Path(tempfile.mkdtemp(prefix="faye-st-")) / "strace.txt"
        pids = [str(proc.pid), *children(proc.pid)]
        tracer = subprocess.Popen(
            ["strace", "-f", "-c", "-o", str(log), *(f"-p{pid}" for pid in pids)],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        echo(port, message, args.messages)
        time.sleep(0.5)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    calls = {}
    for line in log.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[3].isdigit():
            calls[fields[-1]] = int(fields[3]) / args.messages
    return calls


def measure_tracemalloc(args: argparse.Namespace, message: str | bytes) -> float:
    """Peak bytes allocated while a Connection (threads, a socket pair) echoes one message.

    The peer is a raw socket: its frame is made before tracing starts, and the
    echo is read into a buffer made before too, so only the library allocates.
    """
    import threading
    import tracemalloc

    from faye_sync.blocking.backends import get_backend
    from faye_sync.blocking.connection import Connection
    from faye_sync.protocol.hybi import HybiProtocol

    key = os.urandom(4)
    payload = message.encode() if isinstance(message, str) else message
    head = bytes([0x81 if isinstance(message, str) else 0x82, 0xFF]) + len(payload).to_bytes(8)
    frame = head + key + _mask(payload, key)
    ours, theirs = socket.socketpair()
    server = Connection(
        ours, HybiProtocol(is_client=False, max_length=2**27), backend=get_backend("threads")
    )
    echo = bytearray(len(payload) + 10)
    peaks = []
    for _ in range(args.messages):

        def peer() -> None:
            theirs.sendall(frame)
            view, got = memoryview(echo), 0
            while got < len(echo):
                got += theirs.recv_into(view[got:])

        thread = threading.Thread(target=peer)
        tracemalloc.start()
        thread.start()
        received = server.receive(timeout=60)
        server.send(received)
        del received
        thread.join(60)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert echo[10:] == payload
    return sorted(peaks)[len(peaks) // 2]


def _mask(payload: bytes, key: bytes) -> bytes:
    from faye_sync.protocol.masking import apply_mask

    return apply_mask(payload, key)


def children(pid: int) -> list[str]:
    result = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return result.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--measure",
        choices=("callgrind", "functions", "strace", "tracemalloc"),
        default="callgrind",
    )
    parser.add_argument("--server", choices=("gevent", "gthread"), default="gevent")
    parser.add_argument("--type", choices=("binary", "text"), default="binary")
    parser.add_argument("--size", type=int, default=2**20)
    parser.add_argument("--messages", type=int, default=20)
    args = parser.parse_args()
    message: str | bytes = os.urandom(args.size) if args.type == "binary" else "x" * args.size
    if args.measure == "callgrind":
        per = measure_callgrind(args, message)
        print(f"{args.server} {args.type} {args.size} B: {per:,.0f} instructions per echo")
    elif args.measure == "functions":
        for count, name in measure_functions(args, message):
            print(f"{count:12,.0f}  {name}")
    elif args.measure == "tracemalloc":
        peak = measure_tracemalloc(args, message)
        print(f"threads {args.type} {args.size} B: peak {peak / 2**20:.2f} MiB allocated per echo")
    else:
        calls = measure_strace(args, message)
        shown = ", ".join(f"{name} {count:.1f}" for name, count in sorted(calls.items()))
        print(f"{args.server} {args.type} {args.size} B, calls per echo: {shown}")


if __name__ == "__main__":
    main()
