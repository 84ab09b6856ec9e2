"""A real nginx in front, configured with the README's nginx block (issue 15, item 3).

Debian's nginx runs from a prefix in a temporary directory (``daemon off``, its own
pid file, error log and temp paths there) on a free port of 127.0.0.1, in front of
gunicorn. The ``location`` blocks are the README's, extracted from README.rst, with
only the upstream port changed (and, where a test says so, one directive). Skipped
where nginx is not installed; CI installs it (.ci/run).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.processes import free_port
from tests.readme import of_kind
from tests.servers import serve

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")

APP = "tests.apps.behind_proxy:app"
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

CONFIG = """
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
{user}
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
{temp_paths}
    server {{
        listen 127.0.0.1:{port};
{locations}
    }}
}}
"""


def readme_locations() -> str:
    blocks = of_kind("nginx")
    assert len(blocks) == 1, [block.where for block in blocks]
    return blocks[0].text


@contextlib.contextmanager
def nginx(locations: str, upstream: int, tmp_path: Path) -> Iterator[int]:
    """nginx serving ``locations`` (upstream 127.0.0.1:8000 becomes ``upstream``)."""
    assert NGINX is not None
    assert "127.0.0.1:8000" in locations
    locations = locations.replace("127.0.0.1:8000", f"127.0.0.1:{upstream}")
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    for name in TEMP_PATHS:
        (prefix / name).mkdir()
        (prefix / name).chmod(0o777)  # nginx's workers drop root for nobody
    temp_paths = "\n".join(f"    {name}_temp_path {prefix}/{name};" for name in TEMP_PATHS)
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    for _ in range(3):  # another process may take the free port before nginx binds it
        port = free_port()
        config = prefix / "nginx.conf"
        config.write_text(
            CONFIG.format(
                prefix=prefix,
                user=user,
                temp_paths=temp_paths,
                port=port,
                locations=locations,
            ),
            encoding="utf-8",
        )
        process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            if _listening(port, process):
                yield port
                return
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGQUIT)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
    log = (prefix / "error.log").read_text(errors="replace")
    raise AssertionError(f"nginx did not start:\n{log}")


def _listening(port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def upstream() -> Iterator[int]:
    with serve("gunicorn-gthread", APP, threads=8, timeout=60) as server:
        yield server.port


def with_directive(locations: str, location: str, old: str, new: str) -> str:
    """Change one directive of one location block of the README's configuration."""
    pattern = re.compile(rf"(location {re.escape(location)} \{{.*?)({old})(.*?\}})", re.DOTALL)
    changed, count = pattern.subn(lambda m: m.group(1) + new + m.group(3), locations)
    assert count == 1, f"no {old!r} in location {location}"
    return changed


def test_websocket_through_nginx(upstream: int, tmp_path: Path) -> None:
    with nginx(readme_locations(), upstream, tmp_path) as port:
        with connect(f"ws://127.0.0.1:{port}/chat", open_timeout=5, close_timeout=5) as ws:
            for message in ("hello", b"\x00binary", "x" * 100_000):
                ws.send(message)
                assert ws.recv(timeout=5) == message
            ws.close(4000, "done")
        assert ws.close_code == 4000


def first_event_within(port: int, seconds: float) -> bytes:
    """What arrives on /events within ``seconds``; the stream itself stays open for 30 s."""
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        sock.sendall(
            b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        )
        received = b""
        deadline = time.monotonic() + seconds
        while b"data: first" not in received and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        return received


@pytest.mark.parametrize("buffering", ["README (proxy_buffering off)", "nginx's default"])
def test_eventsource_events_arrive_at_once(upstream: int, tmp_path: Path, buffering: str) -> None:
    locations = readme_locations()
    if buffering == "nginx's default":  # with the README's line left out
        locations = with_directive(locations, "/events", r"proxy_buffering off;", "")
    with nginx(locations, upstream, tmp_path) as port:
        received = first_event_within(port, 3.0)
    assert received.startswith(b"HTTP/1.1 200 OK"), received
    assert b"event: hello\r\nid: 1\r\ndata: first\r\n\r\n" in received


SHORT_TIMEOUT = r"proxy_read_timeout 75s;"


@pytest.mark.parametrize(("ping", "survives"), [(0.5, True), (None, False)])
def test_ping_under_proxy_read_timeout_keeps_the_socket(
    upstream: int, tmp_path: Path, ping: float | None, survives: bool
) -> None:
    """proxy_read_timeout 2s: pings every half second keep an idle socket; without, nginx
    cuts it."""
    locations = with_directive(readme_locations(), "/chat", SHORT_TIMEOUT, "proxy_read_timeout 2s;")
    query = f"?ping={ping or 'off'}"
    with nginx(locations, upstream, tmp_path) as port:
        url = f"ws://127.0.0.1:{port}/chat{query}"
        with connect(url, open_timeout=5, close_timeout=5, ping_interval=None) as ws:
            idle_until = time.monotonic() + 4  # twice the timeout, sending nothing
            if survives:
                time.sleep(4)
                ws.send("still here")
                assert ws.recv(timeout=5) == "still here"
            else:
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=10)
                assert closed.value.rcvd is None  # no close frame: the client reports 1006
                assert time.monotonic() < idle_until + 4
