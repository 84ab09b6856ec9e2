#!/usr/bin/env python
"""Fan-out on one Redis: the chat demo on the hub against Flask-SocketIO's message queue.

    python benchmarks/fanout.py                       # 1,000 WebSocket + 1,000 EventSource
    python benchmarks/fanout.py --ws 200 --sse 200    # a smaller scale
    python benchmarks/fanout.py --out benchmarks/results/2026-12-03-fanout.md

For each server and each publish rate: a fresh redis-server (``--save ""``), the server on
``gunicorn -k gevent -w 4``, the subscribers (benchmarks/loadgen/fanout.js, Node, raw
sockets), then one publisher in this process (no web server in it):

* faye: ``benchmarks/servers/faye_hub_fanout.py`` (the chat demo's URLs and channel,
  without its join/leave events) with ``CHAT_BROKER``; subscribers are ``--ws`` chat
  WebSockets and ``--sse`` feeds (``/events``); the publisher is ``hub.publish`` (the
  demo's ``publish_chat``). ``faye-chat`` (not by default) is the demo itself.
* socketio: Flask-SocketIO with ``message_queue`` (python-socketio's RedisManager) on the
  same gunicorn; ``--ws + --sse`` Socket.IO clients over WebSockets (it has no
  EventSource); the publisher is ``RedisManager(write_only=True).emit``, as its docs show
  for a Celery task.

Each message's text is "TAG seq publish_time_ms". The generator reports deliveries per
second in its window, publish-to-delivery latency p50/p99, and, after a tenth of each
kind's connections were dropped mid-window and reconnected 0.5 s later (faye's with their
last id, Socket.IO's as its client does), the messages each connection lost from its first
one to the end. Everything is bounded (a few minutes) and on 127.0.0.1; every process this
starts is stopped and reaped.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FANOUT_JS = BENCH / "loadgen" / "fanout.js"
HOST = "127.0.0.1"
WORKERS = 4
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            socket.create_connection((HOST, port), timeout=1).close()
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{process.args!r} is not serving on {port}")
        time.sleep(0.05)


@contextlib.contextmanager
def running(
    command: list[str], *, env: dict[str, str] | None = None, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own session; SIGTERM then SIGKILL to its group at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", HOST, "--save", ""]
    command += ["--appendonly", "no", "--dir", str(tmp)]
    with running(command, log=tmp / "redis.log") as process:
        wait_for_port(port, process, STARTUP_TIMEOUT)
        yield f"redis://{HOST}:{port}/0"


def socketio_worker() -> str:
    """The gevent worker Flask-SocketIO documents for what is installed.

    python-engineio serves WebSockets through gevent-websocket when that package
    is importable, and then needs its gunicorn worker; otherwise through
    simple-websocket on gunicorn's own gevent worker.
    """
    if importlib.util.find_spec("geventwebsocket") is not None:
        return "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"
    return "gevent"


def gunicorn(app: str, port: int, worker: str = "gevent") -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "-k", worker, "-w", str(WORKERS),
        "--worker-connections", "10000", "-b", f"{HOST}:{port}", "--log-level", "warning",
        app,
    ]  # fmt: skip


class Publisher:
    """Publishes "TAG seq time_ms" at ``rate`` per second from a thread of this process."""

    def __init__(self, send: Callable[[str], object], tag: str, rate: float) -> None:
        self.send, self.tag, self.rate = send, tag, rate
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            try:
                self.send(f"{self.tag} {self.sent} {time.time() * 1000:.3f}")
                self.sent += 1
            except Exception:  # counted, and the run goes on: a benchmark, not a test
                self.failed += 1
            # Paced from the start, so that a slow publish is caught up.
            delay = started + self.sent / self.rate - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.send(f"{self.tag} end {self.sent - 1}")


def faye_publisher(
    broker: str, retain: int
) -> tuple[Callable[[str], object], Callable[[], None], str]:
    sys.path.insert(0, str(ROOT))
    from faye_sync.hub import Hub
    from wsgi_examples.chat import publish_chat

    # The publisher's XADD is what trims the stream: its max_len is the retention.
    hub = Hub.from_url(broker, max_len=retain)
    since = publish_chat(hub, "bench", "start")
    return (lambda text: publish_chat(hub, "bench", text)), hub.close, since


def socketio_publisher(
    broker: str, retain: int
) -> tuple[Callable[[str], object], Callable[[], None], str]:
    import socketio  # type: ignore[import-untyped]

    del retain  # Socket.IO keeps nothing for clients that reconnect
    manager = socketio.RedisManager(broker, channel="flask-socketio", write_only=True)
    return (lambda text: manager.emit("chat", text)), (lambda: None), ""


SERVERS: dict[str, dict[str, Any]] = {
    "faye": {
        "label": "faye_sync hub fan-out (Redis Streams), the demo's URLs",
        "app": "benchmarks.servers.faye_hub_fanout:app",
        "env": "CHAT_BROKER",
        "publisher": faye_publisher,
    },
    "faye-chat": {  # the demo itself: its feeds also carry every join and leave
        "label": "faye_sync chat demo on the hub",
        "app": "wsgi_examples.chat:app",
        "env": "CHAT_BROKER",
        "publisher": faye_publisher,
    },
    "socketio": {
        "label": "Flask-SocketIO, message_queue (RedisManager)",
        "app": "benchmarks.servers.flask_socketio_chat:app",
        "env": "SOCKETIO_REDIS",
        "publisher": socketio_publisher,
    },
}


def read_line(process: subprocess.Popen[str], want: str, timeout: float) -> str:
    """The next stdout line of ``process`` starting with ``want`` (bounded)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    lines: list[str] = []

    def reader() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith(want):
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if not lines or not lines[-1].startswith(want):
        raise RuntimeError(f"no {want} from the generator in {timeout} s: {lines[-5:]}")
    return lines[-1]


def one_point(name: str, rate: float, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    server = SERVERS[name]
    ws, sse = (args.ws + args.sse, 0) if name == "socketio" else (args.ws, args.sse)
    with redis_server(tmp) as broker:
        port = free_port()
        env = {server["env"]: broker}
        worker = socketio_worker() if name == "socketio" else "gevent"
        with running(
            gunicorn(server["app"], port, worker), env=env, log=tmp / f"{name}.log"
        ) as proc:
            wait_for_port(port, proc, STARTUP_TIMEOUT)
            time.sleep(1.0)  # every worker booted
            send, close, since = server["publisher"](broker, args.retain)
            tag = secrets.token_hex(4)
            command = ["node", str(FANOUT_JS), "--kind", name, "--port", str(port)]
            command += ["--ws", str(ws), "--sse", str(sse), "--tag", tag]
            command += ["--warmup", str(args.warmup), "--duration", str(args.duration)]
            command += ["--churn", str(args.churn), "--since", since]
            generator = subprocess.Popen(
                command, stdout=subprocess.PIPE, text=True, start_new_session=True
            )
            publisher = Publisher(send, tag, rate)
            try:
                read_line(generator, "READY", 90)
                publisher.start()
                read_line(generator, "END", args.warmup + args.duration + 30)
                publisher.stop()
                line = read_line(generator, "RESULT", 60).removeprefix("RESULT ")
                result: dict[str, Any] = json.loads(line)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(generator.pid, signal.SIGKILL)
                generator.wait(5)
                close()
    result.update(server=name, rate=rate, published=publisher.sent, failed=publisher.failed)
    return result


def combined(result: dict[str, Any]) -> dict[str, Any]:
    """Both kinds of subscribers together."""
    kinds = [result[k] for k in ("ws", "sse") if k in result]
    lat_p50 = [k["p50_ms"] for k in kinds if k["p50_ms"] is not None]
    lat_p99 = [k["p99_ms"] for k in kinds if k["p99_ms"] is not None]
    return {
        "rate": sum(k["rate"] for k in kinds),
        "p50_ms": max(lat_p50) if lat_p50 else None,
        "p99_ms": max(lat_p99) if lat_p99 else None,
        "expected": sum(k["expected"] for k in kinds),
        "lost": sum(k["lost"] for k in kinds),
        "announced": sum(k.get("announced", 0) for k in kinds),
        "duplicated": sum(k["duplicated"] for k in kinds),
        "reconnects": sum(k["reconnects"] for k in kinds),
        "unfinished": sum(k.get("unfinished", 0) for k in kinds),
        "resets": sum(k["resets"] for k in kinds),
    }


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"# Fan-out on one Redis ({date.today().isoformat()})",
        "",
        f"`python benchmarks/fanout.py --ws {args.ws} --sse {args.sse} --rates "
        f"{','.join(str(r) for r in args.rates)} --duration {args.duration} "
        f"--retain {args.retain}`",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end. "
        f"gunicorn -k gevent -w {WORKERS}, one redis-server, one publisher process, "
        f"subscribers from one Node process (benchmarks/loadgen/fanout.js).",
        "",
        f"faye: {args.ws} chat WebSockets + {args.sse} EventSource feeds; socketio: "
        f"{args.ws + args.sse} Socket.IO WebSocket clients (it has no EventSource). "
        f"Mid-window {args.churn:.0%} of each kind's connections were dropped and "
        "reconnected 0.5 s later. Latency is of live deliveries: a message replayed to a "
        "client that reconnected (published while it was away) counts as delivered and as "
        "replayed, not in the latency (it would add the time away). Lost: messages a "
        "connection never got with nothing said; reset-announced: missing on a connection "
        f"that got a `reset` (a gap past the room's retention of {args.retain} messages, "
        "said). In the first table, "
        "p50/p99 are the slower kind's. Unfinished: connections that had not got the last "
        "message 20 s after the window (their losses are not counted).",
        "",
        "| server | publish/s | subscribers | delivered/s | p50 ms | p99 ms | expected "
        "| lost | reset-announced | duplicated | resets | reconnects | unfinished |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        total = combined(result)
        subscribers = sum(result[k]["subscribers"] for k in ("ws", "sse") if k in result)
        lines.append(
            f"| {result['server']} | {result['rate']:g} | {subscribers} | {fmt(total['rate'], 0)}"
            f" | {fmt(total['p50_ms'])} | {fmt(total['p99_ms'])} | {total['expected']:,}"
            f" | {total['lost']:,} | {total['announced']:,} | {total['duplicated']:,}"
            f" | {total['resets']} | {total['reconnects']} | {total['unfinished']} |"
        )
    lines += ["", "Per kind:", ""]
    lines += [
        "| server | publish/s | kind | delivered/s | p50 ms | p99 ms | replayed | lost | closes |"
    ]
    lines += ["|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        for kind in ("ws", "sse"):
            if kind in result:
                k = result[kind]
                lines.append(
                    f"| {result['server']} | {result['rate']:g} | {kind} | {fmt(k['rate'], 0)}"
                    f" | {fmt(k['p50_ms'])} | {fmt(k['p99_ms'])} | {k['replayed']:,}"
                    f" | {k['lost']:,}"
                    f" | {k['close_codes'] or '-'} |"
                )
    lines += ["", "Ratios faye / socketio at the same publish rate:", ""]
    lines += ["| publish/s | delivered/s | p99 latency (lower is better) | lost |"]
    lines += ["|---|---|---|---|"]
    for rate in args.rates:
        pair = {r["server"]: combined(r) for r in results if r["rate"] == rate}
        if not {"faye", "socketio"} <= set(pair):
            continue
        faye, peer = pair["faye"], pair["socketio"]
        rate_ratio = faye["rate"] / peer["rate"] if peer["rate"] else None
        p99 = (
            faye["p99_ms"] / peer["p99_ms"]
            if faye["p99_ms"] is not None and peer["p99_ms"]
            else None
        )
        lines.append(
            f"| {rate:g} | {fmt(rate_ratio, 2)}x | {fmt(p99, 2)}x "
            f"| {faye['lost']} vs {peer['lost']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ws", type=int, default=1000, help="chat WebSockets (faye)")
    parser.add_argument("--sse", type=int, default=1000, help="EventSource feeds (faye)")
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",")],
        default=[10.0, 50.0, 100.0, 200.0],
        help="publish rates, messages per second (comma-separated)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds (≤ 30)")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--churn", type=float, default=0.1, help="share of connections dropped")
    parser.add_argument(
        "--retain",
        type=int,
        default=10_000,
        help="messages the faye room keeps for clients that reconnect (the hub's default; "
        "the chat demo keeps 200)",
    )
    parser.add_argument("--servers", default="faye,socketio")
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--load", type=Path, help="only print the report of a --json file")
    args = parser.parse_args()
    if args.load:
        print(report(json.loads(args.load.read_text()), args))
        return
    args.duration = min(args.duration, 30.0)
    if shutil.which("redis-server") is None or shutil.which("node") is None:
        raise SystemExit("needs redis-server and node on PATH")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 2,000+ sockets per side

    results = []
    with tempfile.TemporaryDirectory(prefix="faye_sync-fanout-") as tmp:
        for rate in args.rates:
            for name in args.servers.split(","):
                print(f"{name} at {rate:g}/s ...", file=sys.stderr, flush=True)
                result = one_point(name, rate, args, Path(tmp))
                print(json.dumps(result), file=sys.stderr, flush=True)
                results.append(result)
    text = report(results, args)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
