"""A soak: 1,000,000 echoed 32-byte messages, RSS sampled as it goes, 127.0.0.1 only.

::

    python -m tests.load.soak                        # 1,000,000 messages, at most 600 s
    python -m tests.load.soak --messages 200000 --connections 8 --max-seconds 120

A gevent.pywsgi server (``tests.hardening.fault_app``, echo) runs in its own
process; this process, monkey-patched, runs ``--connections`` faye_sync clients,
each sending a window of messages, then reading their echoes, until the total
is reached. The server's and the client's RSS and fds are sampled every tenth of
the run. RSS is "flat" when the last sample exceeds the one taken after the
first tenth (the warm-up: allocator arenas, zlib-free buffers, caches) by less
than ``--rss-slack`` MiB. Exits 1 on an error, a wrong echo, growth, or when
``--max-seconds`` passes first.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after monkey-patching, as gevent requires
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.pool  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from faye_sync import Client  # noqa: E402
from faye_sync.exceptions import ConnectionClosed  # noqa: E402
from tests.load.common import Report, fd_count, rss_mib  # noqa: E402
from tests.servers import serve  # noqa: E402

APP = "tests.hardening.fault_app:app"
SIZE = 32


def run(total: int, connections: int, window: int, max_seconds: float, rss_slack: float) -> int:
    report = Report(f"soak: {total} messages of {SIZE} bytes over {connections} connections")
    deadline = time.monotonic() + max_seconds
    done = [0]
    errors: list[str] = []
    samples: list[tuple[int, float, float, int, int]] = []  # done, server, client RSS, fds

    with serve("gevent", APP, log=None) as server:
        pid = server.process.pid
        url = f"ws://127.0.0.1:{server.port}/soak"
        fds_before = fd_count(pid)
        samples.append((0, rss_mib(pid), rss_mib(), fds_before, fd_count()))
        step = max(1, total // 10)
        next_sample = [step]
        per_connection = total // connections

        def worker(index: int) -> None:
            ws = Client(url, timeout=10)
            if ws.failure is not None:
                errors.append(f"connect: {ws.failure}")
                return
            base = f"{index:04d}:".encode()
            try:
                sent = 0
                while sent < per_connection and time.monotonic() < deadline:
                    batch = min(window, per_connection - sent)
                    for n in range(batch):
                        ws.send(base + f"{sent + n:027d}".encode())  # 32 bytes, binary
                    for n in range(batch):
                        expected = base + f"{sent + n:027d}".encode()
                        if ws.receive(timeout=30) != expected:
                            errors.append(f"wrong echo on {index}")
                            return
                    sent += batch
                    done[0] += batch
                    if done[0] >= next_sample[0]:
                        next_sample[0] += step
                        samples.append(
                            (done[0], rss_mib(pid), rss_mib(), fd_count(pid), fd_count())
                        )
            except (ConnectionClosed, TimeoutError, OSError) as exc:
                errors.append(f"{index}: {type(exc).__name__}: {exc}")
            finally:
                ws.close()

        started = time.monotonic()
        group = gevent.pool.Group()
        for index in range(connections):
            group.spawn(worker, index)
        group.join(timeout=max(0.1, deadline - time.monotonic()))
        elapsed = time.monotonic() - started
        while fd_count(pid) > fds_before and time.monotonic() < deadline:
            gevent.sleep(0.05)
        samples.append((done[0], rss_mib(pid), rss_mib(), fd_count(pid), fd_count()))
        tracebacks = server.log().count("Traceback")

    report.add("messages echoed", done[0])
    report.add("time (s)", elapsed)
    report.add("round trips/s", done[0] / elapsed)
    report.add("messages/s (both directions)", 2 * done[0] / elapsed)
    for count, server_rss, client_rss, server_fds, client_fds in samples:
        report.add(
            f"at {count:>9}",
            f"server RSS {server_rss:7.2f} MiB, client RSS {client_rss:7.2f} MiB, "
            f"server fds {server_fds}, client fds {client_fds}",
        )
    warm = samples[min(2, len(samples) - 1)]  # after the first tenth
    last_running = samples[-2] if len(samples) > 2 else samples[-1]
    growth = last_running[1] - warm[1]
    report.add("server RSS growth after warm-up (MiB)", growth)
    report.add("server tracebacks", tracebacks)
    if growth > rss_slack:
        errors.append(f"server RSS grew by {growth:.1f} MiB after the warm-up")
    if tracebacks:
        errors.append(f"{tracebacks} tracebacks in the server log")
    if done[0] < per_connection * connections:
        errors.append(f"only {done[0]} of {per_connection * connections} messages")
    if samples[-1][3] > fds_before:
        errors.append("server fds not back to baseline")
    report.add("errors", errors[:5] or 0)
    print(report.render(), flush=True)
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--window", type=int, default=100, help="messages in flight per client")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--rss-slack", type=float, default=5.0, help="MiB of growth allowed")
    options = parser.parse_args(argv)
    return run(
        options.messages,
        options.connections,
        options.window,
        options.max_seconds,
        options.rss_slack,
    )


if __name__ == "__main__":
    sys.exit(main())
