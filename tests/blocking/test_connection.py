"""The blocking engine over real socket pairs, with threads and with gevent.

A server Connection faces a client Connection (or a raw socket playing a
misbehaving peer). Every wait is bounded; the leak fixture checks threads and
file descriptors before and after.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from faye_sync.blocking.backends import get_backend
from faye_sync.blocking.connection import CLOSED, OPEN, Connection, close_all
from faye_sync.exceptions import ConcurrencyError, ConnectionClosed
from faye_sync.protocol.hybi import HybiProtocol
from tests.wire import PING, PONG, TEXT, FrameReader, masked
from tests.wire import frame as wire_frame

WAIT = 5.0


def make(sock: socket.socket, *, client: bool, **options: Any) -> Connection:
    return Connection(
        sock, HybiProtocol(is_client=client), backend=get_backend("threads"), **options
    )


def events(conn: Connection) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    conn.on("open", lambda e: seen.append(("open", None)))
    conn.on("error", lambda e: seen.append(("error", e.message)))
    conn.on("close", lambda e: seen.append(("close", (e.code, e.reason))))
    return seen


def in_thread(fn: Any) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_text_and_binary_round_trip(pair: tuple[socket.socket, socket.socket]) -> None:
    protocol = HybiProtocol(is_client=False, max_length=4 * 1024 * 1024)
    server = Connection(pair[0], protocol, backend=get_backend("threads"))
    client = make(pair[1], client=True)
    assert client.send("héllo")
    assert client.send(b"\x00\xff")
    assert client.send(bytearray(b"ba"))
    assert server.receive(timeout=WAIT) == "héllo"
    assert server.receive(timeout=WAIT) == b"\x00\xff"
    assert server.receive(timeout=WAIT) == b"ba"
    big = os.urandom(4 * 1024 * 1024)
    sender = in_thread(lambda: client.send(big))
    assert server.receive(timeout=WAIT) == big
    sender.join(WAIT)


def test_send_refuses_other_types(pair: tuple[socket.socket, socket.socket]) -> None:
    conn = make(pair[0], client=False)
    with pytest.raises(TypeError, match="send\\(\\) takes str"):
        conn.send(42)  # type: ignore[arg-type]


def test_send_nowait_queues_in_order_with_send_and_never_waits(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server = make(pair[0], client=False)
    client = make(pair[1], client=True)
    # Read at the end: the server's reading is not held up either. Written raw, so
    # that the client starts no reader of its own (a send would: it never reads),
    # which would take the server's frames off the socket pair at once.
    pair[1].sendall(masked(TEXT, b"warm"))
    server.send("first")  # the first use: before it, send_nowait's frames would wait
    # 900 KiB nobody reads yet: more than the socket pair's buffers hold (and under
    # the 1 MiB max_length).
    big = b"x" * (900 << 10)
    assert server.send_nowait(big, "after big")
    assert server.buffered_amount > 0  # the rest went to the background, not waited for
    receiver: list[Any] = []
    reading = in_thread(lambda: receiver.extend(client.receive(timeout=WAIT) for _ in range(4)))
    assert server.send("last")  # a send waits behind what send_nowait queued
    reading.join(WAIT)
    assert receiver == ["first", big, "after big", "last"]
    assert server.receive(timeout=WAIT) == "warm"
    with pytest.raises(TypeError, match="send_nowait\\(\\) takes str"):
        server.send_nowait("ok", 42)  # type: ignore[arg-type]
    server.close()
    assert not server.send_nowait("closed")


def test_receive_timeout(pair: tuple[socket.socket, socket.socket]) -> None:
    server = make(pair[0], client=False)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        server.receive(timeout=0.2)
    assert 0.15 < time.monotonic() - started < 2


def test_close_handshake_reports_one_close_each_side(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = make(pair[0], client=False), make(pair[1], client=True)
    server_events, client_events = events(server), events(client)
    reader = in_thread(lambda: list(client))
    server.close(4000, "custom")
    with pytest.raises(ConnectionClosed) as info:
        server.receive(timeout=WAIT)
    assert (info.value.code, info.value.reason) == (4000, "custom")
    reader.join(WAIT)
    assert server_events == [("open", None), ("close", (4000, "custom"))]
    assert client_events == [("open", None), ("close", (4000, "custom"))]
    assert server.ready_state == client.ready_state == CLOSED
    assert not server.send("late")


def test_iteration_ends_when_peer_closes(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = make(pair[0], client=False), make(pair[1], client=True)
    client.send("a")
    client.send("b")
    client.close()
    assert list(server) == ["a", "b"]
    assert server.ready_state == CLOSED


def test_peer_vanishing_gives_1006(pair: tuple[socket.socket, socket.socket]) -> None:
    server = make(pair[0], client=False)
    seen = events(server)
    pair[1].sendall(b"\x81\x85\x00\x00\x00\x00Hel")  # half a frame, then gone
    pair[1].close()
    assert list(server) == []
    assert seen == [("open", None), ("close", (1006, ""))]


def test_protocol_error_reports_error_then_close(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server = make(pair[0], client=False)
    seen = events(server)
    pair[1].sendall(b"\x81\x05Hello")  # unmasked: a server refuses it
    assert list(server) == []
    message = "Received unmasked frame but masking is required"
    # faye: 1003; RFC 6455 §7.4.1 names 1002 for a protocol error
    assert seen == [("open", None), ("error", message), ("close", (1002, message))]
    pair[1].settimeout(WAIT)
    assert pair[1].recv(100).startswith(b"\x88")


def test_ping_callback_runs_on_matching_pong(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = make(pair[0], client=False), make(pair[1], client=True)
    ponged = threading.Event()
    reader = in_thread(lambda: list(client))
    assert server.ping("mic check", ponged.set)
    with pytest.raises(TimeoutError):
        server.receive(timeout=0.5)  # reading lets the pong in
    assert ponged.is_set()
    server.close()
    reader.join(WAIT)


def test_event_style_run_dispatches_messages(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = make(pair[0], client=False), make(pair[1], client=True)
    server.on("message", lambda e: server.send(e.data))
    runner = in_thread(server.run)
    client.send("echo me")
    assert client.receive(timeout=WAIT) == "echo me"
    client.close()
    runner.join(WAIT)
    assert not runner.is_alive()


def test_push_only_handler_answers_pings_and_sees_close(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server = make(pair[0], client=False)
    seen = events(server)
    peer = pair[1]
    peer.settimeout(WAIT)
    assert server.send("tick")  # never reads: a pump starts
    assert peer.recv(100) == b"\x81\x04tick"
    peer.sendall(b"\x89\x80\x00\x00\x00\x00")  # a masked ping, empty
    assert peer.recv(100) == b"\x8a\x00"
    peer.sendall(b"\x88\x80\x00\x00\x00\x00")  # the peer closes
    assert peer.recv(100) == b"\x88\x02\x03\xe8"
    deadline = time.monotonic() + WAIT
    while ("close", (1000, "")) not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [("open", None), ("close", (1000, ""))]


def test_pump_hands_the_socket_to_a_later_receive(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = make(pair[0], client=False), make(pair[1], client=True)
    server.send("welcome")  # starts the pump
    assert client.receive(timeout=WAIT) == "welcome"
    client.send("one")
    assert server.receive(timeout=WAIT) == "one"
    client.send("two")
    assert server.receive(timeout=WAIT) == "two"


def test_ping_timeout_closes_a_silent_peer(pair: tuple[socket.socket, socket.socket]) -> None:
    server = make(pair[0], client=False, ping=0.1, ping_timeout=0.3)
    seen = events(server)
    started = time.monotonic()
    assert list(server) == []  # the raw peer never answers the pings
    assert time.monotonic() - started < 3
    assert seen[-1] == ("close", (1006, "ping timeout: no pong within 0.3 s"))


def test_keepalive_pings_are_answered_by_a_live_peer(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server = make(pair[0], client=False, ping=0.05, ping_timeout=0.5)
    client = make(pair[1], client=True)
    reader = in_thread(lambda: list(client))
    with pytest.raises(TimeoutError):
        server.receive(timeout=1.0)  # pings every 50 ms, pongs read here
    assert server.ready_state == OPEN
    server.close()
    reader.join(WAIT)


def test_ping_timeout_counts_from_the_ping_it_waits_for(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """A peer that answers each ping 0.15 s late, well within ping_timeout.

    The timeout of an answered ping must not fire against the next one: it did,
    closing a live connection with 1006 as soon as a ping was out when an older
    ping's 0.5 s were up.
    """
    server = make(pair[0], client=False, ping=0.05, ping_timeout=0.5)
    seen = events(server)
    peer = pair[1]
    peer.settimeout(0.05)
    reader, pongs = FrameReader(), 0
    receiver = in_thread(lambda: server.run())  # reads the pongs
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and server.ready_state == OPEN:
        try:
            data = peer.recv(4096)
            for got in reader.feed(data):
                assert got.opcode == PING, got
                time.sleep(0.15)
                peer.sendall(wire_frame(PONG, got.payload))
                pongs += 1
        except TimeoutError:
            continue
        except OSError:  # closed by the server: the assertion below says why
            break
    assert server.ready_state == OPEN, seen
    assert pongs >= 5
    server.close()
    receiver.join(WAIT)


def test_close_timeout_ends_a_peer_that_never_answers(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server = make(pair[0], client=False, close_timeout=0.3)
    seen = events(server)
    started = time.monotonic()
    server.close()  # nobody else reads: close waits for the answer, up to the timeout
    assert 0.2 < time.monotonic() - started < 3
    assert seen[-1] == ("close", (1006, ""))
    server.run()  # returns at once: already closed


def test_concurrent_receivers_are_refused(pair: tuple[socket.socket, socket.socket]) -> None:
    server = make(pair[0], client=False)

    def receive_until_closed() -> None:
        with pytest.raises(ConnectionClosed):
            server.receive()

    blocked = in_thread(receive_until_closed)
    time.sleep(0.1)
    with pytest.raises(ConcurrencyError):
        server.receive(timeout=0.1)
    pair[1].close()
    blocked.join(WAIT)


def test_many_threads_sending_never_interleave(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = make(pair[0], client=False), make(pair[1], client=True)
    payloads = {f"{n:03d}:" + "x" * (n * 97 % 5000) for n in range(100)}
    senders = [in_thread(lambda p=p: client.send(p)) for p in payloads]
    received = {server.receive(timeout=WAIT) for _ in payloads}
    for sender in senders:
        sender.join(WAIT)
    assert received == payloads


def test_close_from_another_thread_unblocks_receive(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = make(pair[0], client=False), make(pair[1], client=True)
    outcome: list[Any] = []

    def receive() -> None:
        try:
            server.receive()
        except ConnectionClosed as exc:
            outcome.append(exc.code)

    reader = in_thread(receive)
    peer_reader = in_thread(lambda: list(client))
    time.sleep(0.05)
    server.close(1000, "bye")
    reader.join(WAIT)
    peer_reader.join(WAIT)
    assert outcome == [1000]


def test_buffered_bytes_are_parsed_first(pair: tuple[socket.socket, socket.socket]) -> None:
    frame = b"\x81\x82" + b"\x00\x00\x00\x00" + b"hi"
    server = Connection(
        pair[0], HybiProtocol(is_client=False), backend=get_backend("threads"), buffered=frame
    )
    assert server.receive(timeout=WAIT) == "hi"


@pytest.fixture
def gevent_pair() -> Iterator[tuple[Connection, Connection]]:
    """A server and a client connection over a gevent socket pair."""
    gevent_socket = pytest.importorskip("gevent.socket")
    a, b = gevent_socket.socketpair()
    backend = get_backend("gevent")
    yield (
        Connection(a, HybiProtocol(is_client=False), backend=backend),
        Connection(b, HybiProtocol(is_client=True), backend=backend),
    )
    a.close()
    b.close()


def test_gevent_backend_echo(gevent_pair: tuple[Connection, Connection]) -> None:
    import gevent

    server, client = gevent_pair

    def echo() -> None:
        for message in server:
            server.send(message)

    worker = gevent.spawn(echo)
    results = []
    for n in range(50):
        client.send(f"m{n}")
        results.append(client.receive(timeout=WAIT))
    client.close()
    worker.join(WAIT)
    assert results == [f"m{n}" for n in range(50)]
    assert worker.dead


def test_many_greenlets_sending_never_interleave(
    gevent_pair: tuple[Connection, Connection],
) -> None:
    # On gevent the frame layer is guarded by greenlets not switching inside it (the
    # backend's mutex is a no-op); large frames make senders block and switch mid-write.
    import gevent

    server, client = gevent_pair
    payloads = {f"{n:03d}:" + "x" * (n * 9973 % 300_000) for n in range(60)}
    senders = [gevent.spawn(client.send, p) for p in payloads]
    received = {server.receive(timeout=WAIT) for _ in payloads}
    gevent.joinall(senders, timeout=WAIT)
    assert received == payloads
    assert all(sender.value is True for sender in senders)


def test_a_sender_that_comes_during_a_flush_that_switches_gets_the_lock(
    gevent_pair: tuple[Connection, Connection],
) -> None:
    # The non-blocking flush (a ping here; pongs, the 101, a close reply) takes and
    # releases the greenlet send lock inline. A send that switches greenlets (gevent's
    # TLS send may wait) lets a sender come and wait for the lock meanwhile: the flush
    # must hand it over (FIFO) as release() does, and the frames must not interleave.
    import gevent

    server, client = gevent_pair
    send_now = server._send_now
    assert send_now is not None

    def switching_send(sock: Any, data: Any) -> int:
        gevent.sleep(0.01)  # another greenlet runs now: the sender below
        return send_now(sock, data)

    server._send_now = switching_send
    pinger = gevent.spawn(server.ping, b"first")
    gevent.sleep(0)  # the ping's flush starts, holds the lock, and switches in the send
    assert server._send_lock.locked()
    sender = gevent.spawn(server.send, "behind the ping")
    gevent.joinall([pinger, sender], timeout=WAIT)
    assert pinger.value is True and sender.value is True  # the sender was handed the lock
    assert not server._send_lock.locked()
    assert client.receive(timeout=WAIT) == "behind the ping"  # whole, after the ping


def test_frame_length_header_alone_fails_without_allocating(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server = make(pair[0], client=False)
    seen = events(server)
    pair[1].sendall(b"\x82\xff" + struct.pack("!Q", 2**40) + b"\x00\x00\x00\x00")
    assert list(server) == []
    assert seen[-1] == ("close", (1009, "WebSocket frame length too large"))


def test_close_all_sends_1001_to_every_open_connection() -> None:
    pairs = [socket.socketpair() for _ in range(3)]
    servers = [make(a, client=False) for a, _ in pairs]
    clients = [make(b, client=True) for _, b in pairs]
    seen = [events(client) for client in clients]
    readers = [in_thread(lambda s=s: list(s)) for s in servers]
    assert close_all(1001, "restarting") >= 3
    for client, client_events in zip(clients, seen, strict=True):
        assert list(client) == []
        assert client_events[-1] == ("close", (1001, "restarting"))
    for reader in readers:
        reader.join(WAIT)
        assert not reader.is_alive()
    for a, b in pairs:
        a.close()
        b.close()


def test_close_all_refuses_codes_that_may_not_be_sent(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    conn = make(pair[0], client=False)
    with pytest.raises(ValueError, match="1005 is not a close code"):
        close_all(1005)
    assert conn.ready_state == OPEN


def test_echo_goes_out_before_a_failure_in_the_same_read(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server = make(pair[0], client=False)
    echo = in_thread(lambda: [server.send(m) for m in server])
    peer = pair[1]
    peer.settimeout(WAIT)
    peer.sendall(b"\x81\x85\x00\x00\x00\x00Hello" + b"\x83\x80\x00\x00\x00\x00")
    received = b""
    while chunk := peer.recv(1024):
        received += chunk
    echo.join(WAIT)
    reason = b"Unrecognized frame opcode: 3"
    assert received == b"\x81\x05Hello" + bytes([0x88, 2 + len(reason)]) + b"\x03\xea" + reason


def test_simultaneous_closes_never_lose_a_close_frame() -> None:
    # Both peers close at once, each with a reader running: a close frame taken
    # off the queue must still be written before the socket is shut down.
    for _ in range(30):
        a, b = socket.socketpair()
        server, client = make(a, client=False), make(b, client=True)
        seen = [events(server), events(client)]
        go = threading.Barrier(2)
        threads = [in_thread(lambda c=c: list(c)) for c in (server, client)]
        threads += [
            in_thread(lambda c=c, code=code, go=go: (go.wait(WAIT), c.go_away(code, "bye")))
            for c, code in ((server, 4001), (client, 4002))
        ]
        for thread in threads:
            thread.join(WAIT)
        # Each side reports the peer's code, or its own when the peer answered
        # it before closing itself: never 1006 (a close frame lost).
        for side in seen:
            assert side[-1] in (("close", (4001, "bye")), ("close", (4002, "bye"))), side
        a.close()
        b.close()
