"""Keep-alive pings come from one shared sweep per interval, not a timer per connection.

Real socket pairs; the peer is a raw socket that reads the server's frames.
"""

from __future__ import annotations

import gc
import select
import socket
import time
import weakref
from collections.abc import Iterator

import pytest

from faye_sync.blocking.backends import get_backend
from faye_sync.blocking.connection import Connection
from faye_sync.protocol.hybi import HybiProtocol

WAIT = 5.0


def server_on(sock: socket.socket, ping: float) -> Connection:
    return Connection(
        sock, HybiProtocol(is_client=False), backend=get_backend("threads"), ping=ping
    )


def pings_seen(peer: socket.socket, count: int) -> int:
    """Read ping frames (0x89, empty mask bit, short payload) until ``count`` or WAIT."""
    seen, data = 0, b""
    deadline = time.monotonic() + WAIT
    while seen < count and time.monotonic() < deadline:
        if not select.select([peer], [], [], 0.2)[0]:
            continue
        chunk = peer.recv(4096)
        assert chunk, "the server closed the connection"
        data += chunk
        while len(data) >= 2 and len(data) >= 2 + data[1]:
            assert data[0] == 0x89, data  # nothing but pings is sent
            seen += 1
            data = data[2 + data[1] :]
    return seen


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made = [socket.socketpair() for _ in range(6)]
    yield made
    for a, b in made:
        a.close()
        b.close()


def test_every_connection_of_an_interval_gets_its_pings(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    servers = []
    for own, _ in pairs:
        server = server_on(own, ping=0.1)
        server.ping()  # the first use starts its timers; this ping is sent now
        servers.append(server)
        time.sleep(0.013)  # deadlines spread over the interval
    for _, peer in pairs:
        assert pings_seen(peer, 4) == 4  # that one and three from the sweep
    for server in servers:
        server.go_away(1001, "")


def test_a_closed_connection_leaves_the_sweep_and_a_dropped_one_is_collected(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    (own_a, peer_a), (own_b, peer_b), (own_c, _) = pairs[:3]
    closed, kept, dropped = (server_on(own, ping=0.05) for own in (own_a, own_b, own_c))
    for server in (closed, kept, dropped):
        server.ping()  # first use: starts the timers, sends one ping
    closed.go_away(1001, "")
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ m for b, m in zip(b"\x03\xe9", mask[:2], strict=True))
    peer_a.sendall(b"\x88\x82" + mask + masked)  # the peer's close frame (1001)
    closed.run()  # reads the peer's answer: closed
    gone = weakref.ref(dropped)
    del dropped, server  # the loop variable held it too
    gc.collect()
    assert gone() is None  # the sweep holds connections weakly
    assert pings_seen(peer_b, 4) == 4  # the others' pings go on
    sent = b""
    while True:  # the first ping and the close frame, then the end: no more pings
        chunk = peer_a.recv(4096)
        if not chunk:
            break
        sent += chunk
    assert sent == b"\x89\x00\x88\x02\x03\xe9", sent
    kept.go_away(1001, "")
