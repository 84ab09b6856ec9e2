"""The server WebSocket pings by default, under every common proxy's idle timeout.

Browsers send no pings, so an idle socket behind nginx, an AWS ALB, Cloudflare or
Heroku's router is cut after 55-100 s unless the server sends something
(issue 15, item 4; tests/test_nginx.py shows the cut and the cure through nginx).
"""

from __future__ import annotations

import select
import time

import pytest

from faye_sync.websocket import PING_INTERVAL
from tests.servers import serve
from tests.wire import upgrade


def test_the_default_is_under_every_common_proxy_timeout() -> None:
    # Heroku's router 55 s, nginx and AWS ALB 60 s, Cloudflare 100 s: two pings a window.
    assert PING_INTERVAL * 2 <= 55


@pytest.mark.slow
def test_an_idle_websocket_gets_pings_by_default_and_none_when_off() -> None:
    with serve("gevent", "tests.apps.behind_proxy:app") as server:
        default, default_rest = upgrade(server, "/chat")
        off, off_rest = upgrade(server, "/chat?ping=off")
        with default, off:
            opened = time.monotonic()
            received = default_rest
            while len(received) < 2 and time.monotonic() - opened < PING_INTERVAL + 10:
                if select.select([default], [], [], 1.0)[0]:
                    chunk = default.recv(4096)
                    assert chunk, "the server closed the idle socket"
                    received += chunk
            assert received[:1] == b"\x89", received  # FIN + ping
            assert time.monotonic() - opened >= PING_INTERVAL - 2
            off.setblocking(False)
            with pytest.raises(BlockingIOError):
                off_rest += off.recv(4096)
            assert off_rest == b""
