"""5,000 concurrent WebSocket connections with echo traffic, on gevent, 127.0.0.1 only.

::

    python -m tests.load.load_gevent                      # 5,000 connections, 10 messages each
    python -m tests.load.load_gevent --connections 500 --messages 5 --max-seconds 60

A gevent.pywsgi server (``tests.hardening.fault_app``, echo) runs in its own
process; this process is monkey-patched and opens every connection with
faye_sync's own ``Client``, each in a greenlet. All connections are open at the
same moment (a barrier), then each sends its messages and checks every echo,
then all close. Figures: connect time, messages per second, errors, the
server's fds and RSS before, at the peak and after, and the time until the
server's fds are back where they started. Exits 1 on any error or when
``--max-seconds`` passes first (every wait is bounded by it).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after monkey-patching, as gevent requires
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.lock  # noqa: E402
import gevent.pool  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from faye_sync import Client  # noqa: E402
from faye_sync.exceptions import ConnectionClosed  # noqa: E402
from tests.load.common import Report, fd_count, raise_nofile, rss_mib  # noqa: E402
from tests.servers import serve  # noqa: E402

APP = "tests.hardening.fault_app:app"


def run(connections: int, messages: int, max_seconds: float, connect_concurrency: int) -> int:
    limit = raise_nofile(2 * connections + 1024)  # the server inherits it
    report = Report(f"load: {connections} gevent connections x {messages} echoes")
    report.add("RLIMIT_NOFILE", limit)
    if limit < connections + 256:
        print(f"RLIMIT_NOFILE {limit} is too low for {connections} connections", flush=True)
        return 1
    deadline = time.monotonic() + max_seconds
    errors: Counter[str] = Counter()
    clients: list[Client | None] = [None] * connections
    all_open = gevent.event.Event()
    opened = [0]
    sent = [0]

    def left() -> float:
        return max(0.1, deadline - time.monotonic())

    with serve("gevent", APP, backlog=4096, log=None) as server:
        pid = server.process.pid
        url = f"ws://127.0.0.1:{server.port}/load"
        fds_before, rss_before = fd_count(pid), rss_mib(pid)
        report.add("server fds before", fds_before)
        report.add("server RSS before (MiB)", rss_before)

        gate = gevent.lock.Semaphore(connect_concurrency)  # no SYN flood on the backlog

        def session(index: int) -> None:
            try:
                with gate:
                    ws = Client(url, timeout=left())
                if ws.failure is not None:
                    errors[f"connect: {type(ws.failure).__name__}"] += 1
                    return
                clients[index] = ws
                opened[0] += 1
                if opened[0] == connections:
                    all_open.set()
                if not all_open.wait(left()):
                    errors["barrier timeout"] += 1
                    return
                for n in range(messages):
                    text = f"{index}:{n}"
                    ws.send(text)
                    if ws.receive(timeout=left()) != text:
                        errors["wrong echo"] += 1
                    sent[0] += 1
            except (ConnectionClosed, TimeoutError, OSError) as exc:
                errors[f"session: {type(exc).__name__}"] += 1

        started = time.monotonic()
        group = gevent.pool.Group()
        for index in range(connections):
            group.spawn(session, index)
        if not all_open.wait(left()):
            errors["not all connected in time"] += 1
        connected = time.monotonic()
        report.add("connect phase (s)", connected - started)
        report.add("server fds, all open", fd_count(pid))
        report.add("client fds, all open", fd_count())
        group.join(timeout=left())
        echoed = time.monotonic()
        echo_time = echoed - connected
        report.add("echo phase (s)", echo_time)
        report.add("messages echoed", sent[0])
        report.add("round trips/s", sent[0] / echo_time if echo_time else 0.0)
        report.add("messages/s (both directions)", 2 * sent[0] / echo_time if echo_time else 0.0)
        report.add("server RSS, peak phase (MiB)", rss_mib(pid))
        report.add("client RSS (MiB)", rss_mib())

        close_started = time.monotonic()
        closers = gevent.pool.Group()
        for ws in clients:
            if ws is not None:
                closers.spawn(ws.close)
        closers.join(timeout=left())
        report.add("client close() calls done (s)", time.monotonic() - close_started)
        while fd_count(pid) > fds_before and time.monotonic() < deadline:
            gevent.sleep(0.05)
        report.add("time to close, server fds back (s)", time.monotonic() - close_started)
        report.add("server fds after", fd_count(pid))
        report.add("server RSS after (MiB)", rss_mib(pid))
        log = server.log()
        tracebacks = log.count("Traceback")
        closes = Counter(
            line.split(" ", 2)[2]
            for line in log.splitlines()
            if line.startswith('event id=- ["close')
        )
        report.add("server close events", dict(closes))
        report.add("server tracebacks", tracebacks)
        if tracebacks:
            errors["server tracebacks"] += tracebacks
        if fd_count(pid) > fds_before:
            errors["server fds not back to baseline"] += 1
    if sent[0] != connections * messages:
        errors["messages missing"] += connections * messages - sent[0]
    if time.monotonic() > deadline:
        errors["deadline passed"] += 1
    report.add("errors", dict(errors) or 0)
    report.add("total time (s)", report.elapsed())
    print(report.render(), flush=True)
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--messages", type=int, default=10, help="echoes per connection")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--connect-concurrency", type=int, default=500)
    options = parser.parse_args(argv)
    return run(
        options.connections, options.messages, options.max_seconds, options.connect_concurrency
    )


if __name__ == "__main__":
    sys.exit(main())
