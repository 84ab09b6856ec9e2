"""The send path and per-connection bounds (issue 13, items 1, 2, 5, 6 and 7b).

* Control frames go out at once whatever the application has queued: pongs for
  a burst of pings, the answer to a close after it, and keep-alive pings stuck
  behind a large frame do not kill a peer that is reading it.
* Memory one connection may hold is bounded in bytes: unread messages kept for
  a later ``receive()``, inflation (``max_length``, 1 MiB by default) and an
  endless fragmented message.
* ``send_timeout`` bounds a send to a peer that does not read; ``buffered_amount``
  counts the bytes not yet written; ``idle_timeout`` closes silent sockets.

Real servers (gevent.pywsgi and werkzeug's threaded server) run
``tests.hardening.send_path_app`` in their own process; engine tests run
connections over TCP sockets on 127.0.0.1 with threads and with gevent.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from faye_sync import WebSocket
from faye_sync.blocking.connection import Connection
from faye_sync.client import Client
from faye_sync.protocol.hybi import HybiProtocol
from tests.servers import Server, serve
from tests.wire import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    WAIT,
    Frame,
    FrameReader,
    close_payload,
    frame,
    open_websocket,
)

from .helpers import Env, server_events, stats, wait_until

APP = "tests.hardening.send_path_app:app"
KIB, MIB = 1024, 1024 * 1024
MASK = b"abcd"


# ------------------------------------------------------------------ real servers


@pytest.fixture(scope="module", params=["gevent", "werkzeug"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serve(request.param, APP) as running:
        yield running


def open_ws(
    server: Server, query: str, *, deflate: bool = False, receive_buffer: int | None = None
) -> tuple[socket.socket, bytes]:
    """A raw upgraded connection to ``/ws?query``; returns it and the bytes read past the 101.

    ``receive_buffer`` fixes the socket's receive buffer (no autotuning).
    """
    sock, head, rest = open_websocket(
        server,
        f"/ws?{query}",
        headers="Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else "",
        receive_buffer=receive_buffer,
    )
    assert head.startswith(b"HTTP/1.1 101"), f"{head!r}; log:\n{server.log()}"
    assert (b"permessage-deflate" in head) == deflate, head
    return sock, rest


def read_until(
    sock: socket.socket,
    reader: FrameReader,
    done: Callable[[list[Frame]], bool],
    timeout: float = WAIT,
) -> list[Frame]:
    """Read frames until ``done(frames)`` or EOF or ``timeout``; returns all frames."""
    deadline = time.monotonic() + timeout
    while not done(reader.frames):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except (TimeoutError, ConnectionError):
            break
        if not data:
            break
        reader.feed(data)
    return reader.frames


def closed_with(frames: list[Frame]) -> bool:
    return any(f.opcode == CLOSE for f in frames)


def finish(sock: socket.socket, reader: FrameReader, code: int = 1000) -> list[Frame]:
    """Send a close and read to the server's answer."""
    sock.sendall(frame(CLOSE, close_payload(code), mask=MASK))
    frames = read_until(sock, reader, closed_with)
    sock.close()
    return frames


# --------------------------------------------------- item 1: control frames go out


PINGS = 200


def burst_of_pings() -> bytes:
    return b"".join(frame(PING, bytes([n]) * 125, mask=MASK) for n in range(PINGS))


def test_a_burst_of_pings_is_answered_at_once(server: Server) -> None:
    sock, rest = open_ws(server, "id=burst")
    reader = FrameReader()
    reader.feed(rest)
    sock.sendall(burst_of_pings())
    frames = read_until(sock, reader, lambda got: len(got) >= PINGS)
    pongs = [f.payload for f in frames if f.opcode == PONG]
    assert pongs == [bytes([n]) * 125 for n in range(PINGS)], f"{len(pongs)} pongs"
    assert finish(sock, reader)[-1].close_code == 1000


def test_a_close_after_a_burst_of_pings_is_answered_at_once(server: Server) -> None:
    sock, rest = open_ws(server, "id=burst-close")
    reader = FrameReader()
    reader.feed(rest)
    sock.sendall(burst_of_pings() + frame(CLOSE, close_payload(1000), mask=MASK))
    frames = read_until(sock, reader, closed_with)
    assert [f.opcode for f in frames] == [PONG] * PINGS + [CLOSE]
    assert frames[-1].close_code == 1000
    assert server_events(server, "burst-close")[-1] == ["close", 1000, ""]


def test_keep_alive_pings_behind_a_large_frame_spare_a_peer_that_reads_it(server: Server) -> None:
    """The ping waits for the frame being written; its pong timeout must not kill
    a peer that is taking the frame (at most 3 MB/s here: 4 s for the frame, far
    longer than the pong timeout), only one that is not. The pong timeout leaves a
    loaded machine a second to answer each ping.

    The peer's receive buffer is fixed at 64 KiB: with Linux's autotuning on
    127.0.0.1 it holds megabytes, and the ping would wait in it, out of our reach.
    """
    size = 12 * MIB
    sock, rest = open_ws(
        server,
        f"id=ping-big&mode=big&size={size}&ping=0.5&ping_timeout=1.5",
        receive_buffer=64 * KIB,
    )
    reader = FrameReader()
    reader.feed(rest)
    deadline = time.monotonic() + 4 * WAIT
    sock.settimeout(WAIT)
    pings_after = 0  # keep-alive pings answered once the frame is in
    while pings_after < 2 and time.monotonic() < deadline:
        data = sock.recv(64 * KIB)
        if not data:
            break
        for got in reader.feed(data):
            if got.opcode == PING:
                sock.sendall(frame(PONG, got.payload, mask=MASK))
                pings_after += any(f.opcode == BINARY for f in reader.frames)
        time.sleep(0.02)  # a reader that keeps up, slowly
    assert [len(f.payload) for f in reader.frames if f.opcode == BINARY] == [size]
    assert pings_after == 2, server.log()
    assert finish(sock, reader)[-1].close_code == 1000
    assert server_events(server, "ping-big")[-1] == ["close", 1000, ""]


# ------------------------------------------------------ item 2: bounded memory


def deflated_zeros(size: int, compressor: Any) -> bytes:
    """``size`` zero bytes as a permessage-deflate message body (tail removed)."""
    body: bytes = compressor.compress(bytes(size)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return body[:-4]


def test_the_default_max_length_is_1_mib(server: Server) -> None:
    assert WebSocket.__init__.__kwdefaults__["max_length"] == MIB
    assert Client.__init__.__kwdefaults__["max_length"] == MIB
    sock, rest = open_ws(server, "id=max-length")
    reader = FrameReader()
    reader.feed(rest)
    sock.sendall(frame(BINARY, bytes(MIB), mask=MASK))
    read_until(sock, reader, lambda got: len(got) >= 1)
    assert len(reader.frames[0].payload) == MIB
    try:
        sock.sendall(frame(BINARY, bytes(MIB + 1), mask=MASK))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server failed the connection on the header, before the body was all sent
    assert read_until(sock, reader, closed_with)[-1].close_code == 1009
    sock.close()


def test_compressed_bombs_at_the_echo_handler_hold_little_memory(server: Server) -> None:
    """Eight ~61 KB messages inflating to 60 MiB each, on eight connections."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = frame(BINARY, deflated_zeros(60 * MIB, compressor), rsv1=True, mask=MASK)
    assert len(bomb) < 70 * KIB
    before = stats(server, reset=True)
    socks = [open_ws(server, f"id=bomb{n}&deflate=1", deflate=True)[0] for n in range(8)]
    for sock in socks:
        sock.sendall(bomb)
    for sock in socks:
        frames = read_until(sock, FrameReader(), closed_with, timeout=4 * WAIT)
        assert frames and frames[-1].close_code == 1009, frames
        sock.close()
    after = stats(server)
    grown = (after["peak_kib"] - before["rss_kib"]) // 1024
    print(f"bombs at echo: peak +{grown} MiB")
    assert grown < 40, f"the server's peak grew by {grown} MiB"


def test_unread_messages_are_bounded_in_bytes(server: Server) -> None:
    """A handler that only sends keeps messages for a later receive(): 200 of
    nearly max_length each (200 MiB inflated) must not all be held."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    message = frame(BINARY, deflated_zeros(MIB - 1, compressor), rsv1=True, mask=MASK)
    before = stats(server, reset=True)
    sock, _ = open_ws(server, "id=unread&mode=push&deflate=1", deflate=True)
    sock.settimeout(WAIT)
    for _ in range(200):
        sock.sendall(message)  # ~1 KB each: the socket buffers take them all
    time.sleep(1.0)  # let the server's reader do what it will with them
    after = stats(server)
    sock.close()
    grown = (after["peak_kib"] - before["rss_kib"]) // 1024
    print(f"unread: peak +{grown} MiB")
    assert grown < 24, f"the server's peak grew by {grown} MiB"


def test_an_endless_fragmented_message_is_cut_at_max_length(server: Server) -> None:
    before = stats(server, reset=True)
    sock, rest = open_ws(server, "id=fragments")
    reader = FrameReader()
    reader.feed(rest)
    chunk = bytes(64 * KIB)
    sock.sendall(frame(BINARY, chunk, fin=False, mask=MASK))
    sent = len(chunk)
    sock.settimeout(WAIT)
    try:
        while sent < 80 * MIB:  # bounded: faye's 64 MiB default would be reached
            sock.sendall(frame(CONTINUATION, chunk, fin=False, mask=MASK))
            sent += len(chunk)
    except OSError:
        pass  # the server closed: it read no further
    frames = read_until(sock, reader, closed_with)
    sock.close()
    assert frames and frames[-1].close_code == 1009
    after = stats(server)
    grown = (after["peak_kib"] - before["rss_kib"]) // 1024
    print(f"fragments: cut after {sent // KIB} KiB sent, peak +{grown} MiB")
    assert grown < 16, f"the server's peak grew by {grown} MiB"


# --------------------------------------------------- item 5: send_timeout, buffered


@pytest.fixture(params=["threads", "gevent"])
def env(request: pytest.FixtureRequest) -> Env:
    environment = Env(request.param)
    environment.warm_up()
    return environment


def server_connection(env: Env, sock: socket.socket, **options: Any) -> Connection:
    return Connection(sock, HybiProtocol(is_client=False), backend=env.backend, **options)


def test_send_to_a_peer_that_never_reads_gives_up_after_send_timeout(env: Env) -> None:
    sock, peer = env.tcp_pair()
    conn = server_connection(env, sock, send_timeout=0.3)
    closes: list[tuple[int, str]] = []
    conn.on("close", lambda e: closes.append((e.code, e.reason)))
    results: list[bool] = []

    def flood() -> None:
        chunk = b"x" * 65536
        while conn.send(chunk):
            pass
        results.append(False)

    started = time.monotonic()
    flooder = env.spawn(flood)
    try:
        assert env.join(flooder, WAIT), "send is still blocked"
        assert time.monotonic() - started >= 0.3
        assert results == [False]
        # The close is reported by the thread the abort wakes (the pump), not by send():
        # on a loaded machine it may come a moment after send returned False.
        assert wait_until(lambda: bool(closes)), "no close reported"
        assert closes == [(1006, "send timeout: the peer took no data for 0.3 s")]
        assert conn.send("more") is False
    finally:
        sock.close()
        peer.close()


def test_one_stuck_peer_holds_a_fan_out_back_only_for_send_timeout(env: Env) -> None:
    """A chat room sending to each socket in turn: the silent member costs the
    others at most send_timeout, once."""
    stuck_sock, stuck_peer = env.tcp_pair()
    live_sock, live_peer = env.tcp_pair()
    stuck = server_connection(env, stuck_sock, send_timeout=0.3)
    live = server_connection(env, live_sock, send_timeout=0.3)
    rounds = 40
    chunk = b"y" * 256 * KIB  # 10 MiB in all: more than the stuck socket's buffers take

    def fan_out() -> None:
        for _ in range(rounds):
            for conn in (stuck, live):
                conn.send(chunk)

    sender = env.spawn(fan_out)
    received = 0
    live_peer.settimeout(WAIT)
    try:
        while received < rounds * (len(chunk) + 10):
            data = live_peer.recv(256 * KIB)
            assert data, "the live peer's connection ended"
            received += len(data)
            env.sleep(0)
        assert env.join(sender, WAIT)
        assert stuck.ready_state == 3 and live.ready_state == 1
    finally:
        for sock in (stuck_sock, stuck_peer, live_sock, live_peer):
            sock.close()


def test_buffered_amount_counts_what_the_peer_has_not_taken(env: Env) -> None:
    sock, peer = env.tcp_pair()
    conn = server_connection(env, sock)
    assert conn.buffered_amount == 0
    size = 16 * MIB
    results: list[bool] = []
    sender = env.spawn(lambda: results.append(conn.send(bytes(size))))
    try:
        assert wait_until(lambda: (env.sleep(0.01), conn.buffered_amount > 0)[1], WAIT)
        amount = conn.buffered_amount
        assert 0 < amount <= size + 10
        got = 0
        peer.settimeout(WAIT)
        while got < size + 10:
            data = peer.recv(MIB)
            assert data
            got += len(data)
        assert env.join(sender, WAIT)
        assert results == [True]
        assert conn.buffered_amount == 0
    finally:
        sock.close()
        peer.close()


def test_send_timeout_on_a_real_server(server: Server) -> None:
    sock, _ = open_ws(server, "id=flood&mode=flood&send_timeout=0.5")
    try:
        server.wait_for_log(r"^sent id=flood \d+$", timeout=WAIT)
        assert server_events(server, "flood")[-1] == [
            "close",
            1006,
            "send timeout: the peer took no data for 0.5 s",
        ]
    finally:
        sock.close()


# ----------------------------------------------------------- item 6: idle_timeout


def test_idle_timeout_closes_a_silent_socket_with_1001(server: Server) -> None:
    sock, rest = open_ws(server, "id=idle&idle_timeout=0.5")
    reader = FrameReader()
    reader.feed(rest)
    started = time.monotonic()
    frames = read_until(sock, reader, closed_with)
    assert frames and frames[-1].close_code == 1001, frames
    assert frames[-1].payload[2:] == b"idle timeout: nothing received for 0.5 s"
    assert 0.4 <= time.monotonic() - started < WAIT
    sock.sendall(frame(CLOSE, close_payload(1001), mask=MASK))
    assert server_events(server, "idle")[-1][:2] == ["close", 1001]
    sock.close()


def test_idle_timeout_spares_a_socket_that_answers_keep_alive_pings(server: Server) -> None:
    sock, rest = open_ws(server, "id=alive&idle_timeout=2.0&ping=0.4")  # 5 pings a period
    reader = FrameReader()
    reader.feed(rest)
    deadline = time.monotonic() + 4.0
    sock.settimeout(0.1)
    while time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        assert data
        for got in reader.feed(data):
            assert got.opcode == PING, got
            sock.sendall(frame(PONG, got.payload, mask=MASK))
    assert sum(f.opcode == PING for f in reader.frames) >= 5
    assert finish(sock, reader)[-1].close_code == 1000


def test_idle_timeout_counts_messages_as_activity(server: Server) -> None:
    sock, rest = open_ws(server, "id=talk&idle_timeout=2.0")  # 4 messages a period
    reader = FrameReader()
    reader.feed(rest)
    for n in range(8):
        sock.sendall(frame(TEXT, b"%d" % n, mask=MASK))
        read_until(sock, reader, lambda got, n=n: len(got) > n)  # type: ignore[misc]
        time.sleep(0.5)
    assert [f.payload for f in reader.frames] == [b"%d" % n for n in range(8)]
    assert finish(sock, reader)[-1].close_code == 1000


def test_go_away_wakes_a_send_blocked_on_a_peer_that_never_reads(env: Env) -> None:
    """What the hub does with a slow subscriber: go_away(1013) from elsewhere ends
    a blocked send within close_timeout, even with no send_timeout."""
    sock, peer = env.tcp_pair()
    conn = server_connection(env, sock, send_timeout=None, close_timeout=0.3)
    results: list[bool] = []

    def flood() -> None:
        chunk = b"z" * 65536
        while conn.send(chunk):
            pass
        results.append(False)

    flooder = env.spawn(flood)
    try:
        assert wait_until(lambda: (env.sleep(0.01), conn.buffered_amount > 0)[1], WAIT)
        conn.go_away(1013, "try again later")
        assert env.join(flooder, WAIT), "send is still blocked"
        assert results == [False]
        assert conn.ready_state == 3
    finally:
        sock.close()
        peer.close()


def test_pongs_a_peer_does_not_read_are_bounded(env: Env) -> None:
    """A peer that pings without reading: queued pongs stay under 64 KiB (oldest
    dropped; plus the write under way, itself at most one read's pongs), and the
    latest ping is still answered once it reads."""
    sock, peer = env.tcp_pair()
    # Small kernel buffers (no autotuning): else 2.5 MB of pongs fit in them.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * KIB)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KIB)
    conn = server_connection(env, sock)
    pings = [frame(PING, b"%06d" % n + bytes(119), mask=MASK) for n in range(20000)]
    reader = env.spawn(lambda: [None for _ in conn])
    sender = env.spawn(lambda: peer.sendall(b"".join(pings)))  # 2.7 MB, 2.5 MB of pongs
    try:
        assert env.join(sender, 4 * WAIT)
        assert wait_until(lambda: (env.sleep(0.01), conn.buffered_amount > 0)[1], WAIT)
        env.sleep(0.2)
        assert 0 < conn.buffered_amount <= 3 * 64 * KIB  # not the 2.5 MB of pongs
        last = b"%06d" % 19999 + bytes(119)
        frames = read_until(
            peer, FrameReader(), lambda got: got[-1].payload == last if got else False
        )
        assert frames[-1].opcode == PONG and frames[-1].payload == last
        assert conn.ready_state == 1
        peer.sendall(frame(CLOSE, close_payload(1000), mask=MASK))
        assert env.join(reader, WAIT)
    finally:
        sock.close()
        peer.close()


# ------------------------------------------------------------------ TLS sockets


def test_over_tls_pings_go_out_beside_large_messages(tmp_path: Any) -> None:
    """wss: senders write whole TLS records, pings go out without waiting."""
    trustme = pytest.importorskip("trustme")
    from websockets.sync.server import ServerConnection
    from websockets.sync.server import serve as serve_websockets

    def echo(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with serve_websockets(echo, "127.0.0.1", 0, ssl=context, max_size=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        client = Client(f"wss://localhost:{port}/", tls={"ca": str(ca_file)}, max_length=4 * MIB)
        pongs: list[int] = []
        big = bytes(3 * MIB)
        senders = [threading.Thread(target=client.send, args=(big,)) for _ in range(2)]
        for sender in senders:
            sender.start()
        for n in range(20):
            assert client.ping(b"%d" % n, lambda n=n: pongs.append(n))  # type: ignore[misc]
        assert client.receive(timeout=WAIT) == big
        assert client.receive(timeout=WAIT) == big
        for sender in senders:
            sender.join(WAIT)
        deadline = time.monotonic() + WAIT
        while len(pongs) < 20 and time.monotonic() < deadline:  # pongs after the echoes
            with pytest.raises(TimeoutError):
                client.receive(timeout=0.1)
        assert pongs == list(range(20))
        assert client.buffered_amount == 0
        client.close()
        assert client.ready_state == 3
        server.shutdown()
        thread.join(WAIT)
