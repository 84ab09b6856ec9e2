"""Concurrency: many senders on one socket, sending while receiving, closing
from another thread, and the same with greenlets.

The wire is read by the independent reference parser (tests/hardening/helpers),
so a frame cut by another frame shows up as a bad payload or a bad header.
"""

from __future__ import annotations

import gc
import socket
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from faye_sync.blocking.backends import get_backend
from faye_sync.blocking.connection import Connection, close_all
from faye_sync.exceptions import ConnectionClosed
from faye_sync.protocol.hybi import HybiProtocol
from tests.wire import CLOSE, PING, WAIT, FrameReader, close_payload, frame

from .helpers import Snapshot, negotiated_pair, wait_until

SENDERS = 100
PER_SENDER = 20


def payload(sender: int, n: int) -> str:
    # Sizes cross the 7-bit/16-bit length forms; the prefix names sender and order.
    return f"{sender:03d}:{n:03d}:" + "x" * ((sender * 131 + n * 17) % 3000)


def check_order(received: list[str]) -> None:
    """Every message intact, and each sender's messages in the order sent."""
    last: dict[int, int] = {}
    for message in received:
        sender, n, body = message.split(":", 2)
        assert body == "x" * ((int(sender) * 131 + int(n) * 17) % 3000), message[:20]
        assert last.get(int(sender), -1) == int(n) - 1, f"sender {sender} out of order"
        last[int(sender)] = int(n)
    assert len(received) == SENDERS * PER_SENDER


def read_wire(sock: socket.socket, count: int, reader: FrameReader) -> None:
    """Read raw frames from ``sock`` until ``count`` data frames have arrived."""
    sock.settimeout(WAIT)
    while sum(1 for f in reader.frames if f.opcode in (1, 2)) < count:
        chunk = sock.recv(1 << 20)
        assert chunk, "EOF before every frame arrived"
        reader.feed(chunk)


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
def test_100_threads_sending_on_one_socket_keep_every_frame_whole(deflate: bool) -> None:
    get_backend("threads").call_later(0, lambda: None)
    before = Snapshot.take()
    server_protocol, _ = negotiated_pair(deflate=deflate)
    a, b = socket.socketpair()
    try:
        server = Connection(a, server_protocol, backend=get_backend("threads"))
        barrier = threading.Barrier(SENDERS)

        def sender(index: int) -> None:
            barrier.wait(WAIT)
            for n in range(PER_SENDER):
                assert server.send(payload(index, n))

        threads = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
        for thread in threads:
            thread.start()
        reader = FrameReader()
        read_wire(b, SENDERS * PER_SENDER, reader)
        for thread in threads:
            thread.join(WAIT)
            assert not thread.is_alive()
        # Decode as the peer would: with deflate, the frames must also be in
        # the order the shared compression context produced them.
        inflater = zlib.decompressobj(-15)
        received = []
        for item in reader.frames:
            assert item.fin and not item.masked and item.opcode == 1
            data = item.payload
            if deflate:
                assert item.rsv == 4
                data = inflater.decompress(data + b"\x00\x00\xff\xff")
            received.append(data.decode("utf-8"))
        check_order(received)
        readers = [t for t in threading.enumerate() if t.name == "faye_sync-task"]
        assert len(readers) <= 1, f"{len(readers)} pumps for one connection"
        b.sendall(frame(CLOSE, close_payload(1000), mask=b"abcd"))
        assert wait_until(lambda: server.ready_state == 3, WAIT)
    finally:
        a.close()
        b.close()
    before.assert_no_leaks()


def test_100_greenlets_sending_on_one_socket_keep_every_frame_whole() -> None:
    gevent = pytest.importorskip("gevent")
    gevent_socket = pytest.importorskip("gevent.socket")
    a, b = gevent_socket.socketpair()
    gevent.sleep(0)
    before = Snapshot.take(greenlets=True)
    try:
        server = Connection(a, HybiProtocol(is_client=False), backend=get_backend("gevent"))

        def sender(index: int) -> None:
            for n in range(PER_SENDER):
                assert server.send(payload(index, n))
                if n % 3 == 0:
                    gevent.sleep(0)  # let the others in between messages

        greenlets = [gevent.spawn(sender, i) for i in range(SENDERS)]
        reader = FrameReader()
        read_wire(b, SENDERS * PER_SENDER, reader)
        gevent.joinall(greenlets, timeout=WAIT, raise_error=True)
        check_order([f.payload.decode("utf-8") for f in reader.frames])
        b.sendall(frame(CLOSE, close_payload(1000), mask=b"abcd"))
        assert wait_until(lambda: (gevent.sleep(0.01), server.ready_state == 3)[1], WAIT)
    finally:
        a.close()
        b.close()
    before.assert_no_leaks(greenlets=True)


Pair = tuple[Connection, Connection, tuple[socket.socket, socket.socket]]


def connected_pair(deflate: bool = False, **options: Any) -> Pair:
    """A server and a client Connection over a socketpair, and the sockets."""
    server_protocol, client_protocol = negotiated_pair(deflate=deflate)
    a, b = socket.socketpair()
    threads = get_backend("threads")
    return (
        Connection(a, server_protocol, backend=threads, **options),
        Connection(b, client_protocol, backend=threads, **options),
        (a, b),
    )


def close_sockets(sockets: tuple[socket.socket, socket.socket]) -> None:
    for sock in sockets:  # the engine never closes a server socket: ours to close
        sock.close()


def spawn(fn: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
def test_sending_while_another_thread_receives_both_ways(deflate: bool) -> None:
    get_backend("threads").call_later(0, lambda: None)
    before = Snapshot.take()
    server, client, sockets = connected_pair(deflate)
    count = 2000
    got: dict[str, list[str | bytes]] = {"server": [], "client": []}

    def receiver(conn: Connection, name: str) -> Callable[[], None]:
        def run() -> None:
            for _ in range(count):
                got[name].append(conn.receive(timeout=WAIT))

        return run

    def sender(conn: Connection, tag: str) -> Callable[[], None]:
        def run() -> None:
            for n in range(count):
                assert conn.send(f"{tag}{n}" if n % 2 else f"{tag}{n}".encode())

        return run

    workers = [
        spawn(receiver(server, "server")),
        spawn(receiver(client, "client")),
        spawn(sender(server, "s")),
        spawn(sender(client, "c")),
    ]
    for worker in workers:
        worker.join(WAIT * 2)
        assert not worker.is_alive()
    expected = {
        "server": [f"c{n}" if n % 2 else f"c{n}".encode() for n in range(count)],
        "client": [f"s{n}" if n % 2 else f"s{n}".encode() for n in range(count)],
    }
    assert got == expected
    closer = spawn(lambda: list(client))
    server.close()
    closer.join(WAIT)
    close_sockets(sockets)
    before.assert_no_leaks()


def test_two_peers_sending_and_pinging_both_ways_do_not_deadlock() -> None:
    server, client, sockets = connected_pair()
    messages = 100  # 64 KiB each: far more than the socket buffers hold
    done: list[str] = []

    def sender(conn: Connection, name: str) -> Callable[[], None]:
        def run() -> None:
            for n in range(messages):
                if not (conn.send(b"x" * 65536) and conn.ping(b"%d" % n)):
                    return
            done.append(f"{name} sent")

        return run

    def receiver(conn: Connection, name: str) -> Callable[[], None]:
        def run() -> None:
            try:
                for _ in range(messages):
                    conn.receive(timeout=WAIT)
            except (ConnectionClosed, TimeoutError):
                return
            done.append(f"{name} received")

        return run

    workers = [
        spawn(sender(server, "server")),
        spawn(sender(client, "client")),
        spawn(receiver(server, "server")),
        spawn(receiver(client, "client")),
    ]
    deadline = time.monotonic() + 2.0  # unblocked, it takes about 0.2 s
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    finished = sorted(done)
    for sock in sockets:  # wakes every blocked thread, so none outlives the test
        sock.shutdown(socket.SHUT_RDWR)
    for worker in workers:
        worker.join(WAIT)
    close_sockets(sockets)
    assert finished == ["client received", "client sent", "server received", "server sent"]


def test_close_from_another_thread_while_one_receives_repeatedly() -> None:
    get_backend("threads").call_later(0, lambda: None)
    before = Snapshot.take()
    for round_ in range(20):
        server, client, sockets = connected_pair()
        closes: list[tuple[int | None, str | None]] = []
        server.on("close", lambda e, seen=closes: seen.append((e.code, e.reason)))
        outcome: list[Any] = []

        def receive(conn: Connection = server, out: list[Any] = outcome) -> None:
            try:
                out.append(conn.receive(timeout=WAIT))
            except ConnectionClosed as exc:
                out.append(exc.code)

        receiver = spawn(receive)
        peer = spawn(lambda c=client: list(c))
        if round_ % 2:
            time.sleep(0.005)  # sometimes the receiver is already blocked, sometimes not
        server.close(4000 + round_, "bye")
        receiver.join(WAIT)
        peer.join(WAIT)
        assert not receiver.is_alive() and not peer.is_alive()
        assert outcome == [4000 + round_]
        assert wait_until(lambda c=closes: bool(c), WAIT)
        assert closes == [(4000 + round_, "bye")]
        close_sockets(sockets)
    before.assert_no_leaks()


def test_concurrent_closes_send_one_close_frame() -> None:
    get_backend("threads").call_later(0, lambda: None)
    before = Snapshot.take()
    a, b = socket.socketpair()
    server = Connection(a, HybiProtocol(is_client=False), backend=get_backend("threads"))
    closes: list[int | None] = []
    server.on("close", lambda e: closes.append(e.code))
    reader = spawn(lambda: list(server))
    time.sleep(0.02)
    barrier = threading.Barrier(20)

    def close_it(code: int) -> None:
        barrier.wait(WAIT)
        server.close(code)

    closers = [spawn(lambda c=code: close_it(c)) for code in range(4000, 4020)]
    for closer in closers:
        closer.join(WAIT)
    wire = FrameReader()
    b.settimeout(WAIT)
    wire.feed(b.recv(4096))
    assert [f.opcode for f in wire.frames] == [CLOSE]
    code = wire.frames[0].close_code
    b.sendall(frame(CLOSE, close_payload(code or 1000), mask=b"abcd"))
    reader.join(WAIT)
    assert closes == [code]
    a.close()
    b.close()
    before.assert_no_leaks()


def test_pings_and_sends_from_many_threads_do_not_interleave() -> None:
    a, b = socket.socketpair()
    try:
        server = Connection(a, HybiProtocol(is_client=False), backend=get_backend("threads"))
        barrier = threading.Barrier(40)

        def work(index: int) -> None:
            barrier.wait(WAIT)
            for n in range(25):
                if index % 2:
                    assert server.ping(b"%d-%d" % (index, n))
                else:
                    assert server.send(b"%d-%d" % (index, n) * 500)

        workers = [spawn(lambda i=i: work(i)) for i in range(40)]
        reader = FrameReader()
        b.settimeout(WAIT)
        while len(reader.frames) < 40 * 25:
            chunk = b.recv(1 << 20)
            assert chunk
            reader.feed(chunk)
        for worker in workers:
            worker.join(WAIT)
        pings = [f for f in reader.frames if f.opcode == PING]
        data = [f for f in reader.frames if f.opcode == 2]
        assert len(pings) == len(data) == 500
        for item in data:
            head = item.payload.split(b"-")[0]
            unit = item.payload[: len(item.payload) // 500]
            assert item.payload == unit * 500 and unit.startswith(head)
        # End it properly: a live connection over a closed socket would be left
        # for close_all() to trip on (see test_close_all_survives_a_dead_socket).
        b.sendall(frame(CLOSE, close_payload(1000), mask=b"abcd"))
        assert wait_until(lambda: server.ready_state == 3, WAIT)
    finally:
        a.close()
        b.close()


def test_close_all_survives_a_dead_socket() -> None:
    # A handler died without closing its WebSocket; the WSGI server closed the
    # socket. The Connection stays registered until it is garbage-collected.
    dead_a, dead_b = socket.socketpair()
    dead = Connection(dead_a, HybiProtocol(is_client=False), backend=get_backend("threads"))
    dead_a.close()
    dead_b.close()
    live_a, live_b = socket.socketpair()
    live = Connection(live_a, HybiProtocol(is_client=False), backend=get_backend("threads"))
    wire = FrameReader()
    raised = None
    try:
        try:
            close_all(1001, "restart")
        except ValueError as exc:
            # Keep its text, not the exception: its traceback would keep the dead
            # connection registered, for other tests' close_all() to trip on.
            raised = repr(exc)
        live_b.setblocking(False)  # written at once if at all: never wait here
        try:
            wire.feed(live_b.recv(4096))
        except BlockingIOError:
            pass
        assert raised is None, f"close_all() raised {raised}"
        assert [f.close_code for f in wire.frames] == [1001], "the live one was not told"
    finally:
        # Leave no registered connection behind for another test's close_all().
        del dead
        gc.collect()
        live_b.setblocking(True)
        live_b.sendall(frame(CLOSE, close_payload(1001), mask=b"abcd"))
        if wire.frames:  # it is closing: reading the answer finishes it
            live.run()
        else:
            live.close(1000)
            live.run()
        live_a.close()
        live_b.close()


def test_close_from_another_thread_while_a_send_is_blocked_is_bounded() -> None:
    a, b = socket.socketpair()  # b never reads
    try:
        server = Connection(
            a, HybiProtocol(is_client=False), backend=get_backend("threads"), close_timeout=0.3
        )
        closes: list[int | None] = []
        server.on("close", lambda e: closes.append(e.code))
        flooder = spawn(lambda: [None for _ in iter(lambda: server.send(b"x" * 65536), False)])
        time.sleep(0.2)  # the socket buffers are full: send is blocked
        closer = spawn(lambda: server.close(1000, "stop"))
        closer.join(1.0)  # close_timeout is 0.3 s
        assert not closer.is_alive(), "close() is still blocked behind the send"
        flooder.join(WAIT)
        # Either thread may report the close; it is reported once, with 1006.
        assert wait_until(lambda: closes == [1006], WAIT), closes
        time.sleep(0.05)
        assert closes == [1006]
    finally:
        # shutdown wakes the blocked threads (close alone would not), so none outlives us.
        a.shutdown(socket.SHUT_RDWR)
        a.close()
        b.close()


def test_close_all_from_another_thread_while_a_send_is_blocked_is_bounded() -> None:
    """close_all() is the non-blocking way to stop: it never waits on the send lock."""
    a, b = socket.socketpair()
    try:
        server = Connection(
            a, HybiProtocol(is_client=False), backend=get_backend("threads"), close_timeout=0.3
        )
        closes: list[int | None] = []
        server.on("close", lambda e: closes.append(e.code))
        flooder = spawn(lambda: [None for _ in iter(lambda: server.send(b"x" * 65536), False)])
        time.sleep(0.2)
        started = time.monotonic()
        assert close_all(1001, "restart") >= 1
        assert time.monotonic() - started < 0.1  # never blocks
        flooder.join(WAIT)
        assert not flooder.is_alive()
        assert wait_until(lambda: closes == [1006], WAIT), closes  # by the close timeout
    finally:
        a.close()
        b.close()
