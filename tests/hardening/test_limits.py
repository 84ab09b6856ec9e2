"""Limits: what a hostile peer can make us allocate, and how fast we refuse it.

Memory is measured with :mod:`tracemalloc` (Python allocations, zlib's output
buffers included), peak and current, around the protocol calls only.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import pytest

from faye_sync import Client, PerMessageDeflate, connect
from faye_sync.blocking.backends import get_backend
from faye_sync.blocking.connection import Connection
from faye_sync.exceptions import ConnectionClosed, HandshakeError, NetworkError
from faye_sync.protocol.events import Close, Error, Message
from faye_sync.protocol.handshake import accept_key
from faye_sync.protocol.hybi import MAX_LENGTH, HybiProtocol
from tests.wire import BINARY, CLOSE, CONTINUATION, TEXT, WAIT, frame, read_frames

from .helpers import Snapshot, negotiated_pair

KIB, MIB = 1024, 1024 * 1024
TOO_LARGE = "WebSocket frame length too large"


@contextlib.contextmanager
def measured() -> Iterator[dict[str, int]]:
    """Peak and final traced memory, in bytes, of the block."""
    result: dict[str, int] = {}
    tracemalloc.start()
    try:
        yield result
    finally:
        result["current"], result["peak"] = tracemalloc.get_traced_memory()
        tracemalloc.stop()


def deflated(data_size: int, *, chunk: int = MIB) -> bytes:
    """``data_size`` zero bytes as one permessage-deflate message body (tail removed)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = b"\0" * chunk
    parts = [compressor.compress(zeros) for _ in range(data_size // chunk)]
    parts.append(compressor.compress(b"\0" * (data_size % chunk)))
    body = b"".join(parts) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    return body[:-4]


# ---------------------------------------------------------- declared lengths


@pytest.mark.parametrize("is_client", [False, True], ids=["server", "client"])
@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
def test_a_declared_2_40_byte_frame_fails_at_once_without_allocating(
    is_client: bool, deflate: bool
) -> None:
    server, client = negotiated_pair(deflate=deflate)
    protocol = client if is_client else server
    header = frame(BINARY, b"", declared=2**40, mask=None if is_client else b"abcd")
    with measured() as memory:
        protocol.receive_data(header)  # the header alone: not one payload byte
        events = protocol.events_received()
    assert events == [Error(TOO_LARGE, 1009), Close(1009, TOO_LARGE)]
    [reply] = read_frames(protocol.data_to_send())
    assert reply.close_code == 1009
    assert memory["peak"] < 64 * KIB, memory


def test_the_length_check_comes_before_the_extended_length_is_complete() -> None:
    # max_length 100: a 16-bit length field announcing 126 bytes is refused
    # as soon as it is read, before any payload.
    protocol = HybiProtocol(is_client=False, max_length=100)
    protocol.receive_data(frame(BINARY, b"", declared=126, mask=b"abcd")[:4])
    assert protocol.events_received() == [Error(TOO_LARGE, 1009), Close(1009, TOO_LARGE)]


def test_a_64_bit_length_with_the_top_bit_set_is_a_protocol_error() -> None:
    protocol = HybiProtocol(is_client=False)
    protocol.receive_data(b"\x82\xff" + struct.pack("!Q", 2**63) + b"abcd")
    [error, close] = protocol.events_received()
    assert (error.code, close.code) == (1002, 1002)  # type: ignore[union-attr]


def test_messages_summed_over_fragments_are_limited() -> None:
    protocol = HybiProtocol(is_client=False, max_length=1000)
    protocol.receive_data(frame(TEXT, b"a" * 600, fin=False))
    assert protocol.events_received() == []
    protocol.receive_data(frame(CONTINUATION, b"", declared=401)[:4])  # 16-bit length
    assert protocol.events_received() == [Error(TOO_LARGE, 1009), Close(1009, TOO_LARGE)]


@pytest.mark.parametrize("backend_name", ["threads", "gevent"])
def test_a_declared_2_40_byte_frame_closes_a_live_socket_with_1009_at_once(
    backend_name: str,
) -> None:
    if backend_name == "gevent":
        gevent_socket = pytest.importorskip("gevent.socket")
        a, b = gevent_socket.socketpair()
    else:
        a, b = socket.socketpair()
    with a, b:
        server = Connection(a, HybiProtocol(is_client=False), backend=get_backend(backend_name))
        b.settimeout(WAIT)
        b.sendall(frame(BINARY, b"", declared=2**40, mask=b"abcd"))  # and stays open
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            server.receive(timeout=WAIT)
        assert closed.value.code == 1009
        assert time.monotonic() - started < 1.0
        reply = b.recv(256)
        assert read_frames(reply)[0].close_code == 1009


# ------------------------------------------------------------ tiny fragments


def feed_fragments(
    protocol: HybiProtocol, opcode: int, fragment: bytes, count: int, batch: int = 4096
) -> None:
    """Open a message with ``opcode`` and add ``count`` continuation fragments."""
    protocol.receive_data(frame(opcode, fragment, fin=False))
    chunk = frame(CONTINUATION, fragment, fin=False) * batch
    for _ in range(count // batch):
        protocol.receive_data(chunk)


def test_kilobyte_fragments_cost_about_their_payload() -> None:
    protocol = HybiProtocol(is_client=False, max_length=MIB)
    with measured() as memory:
        feed_fragments(protocol, BINARY, b"x" * KIB, 900, batch=100)
        assert protocol.events_received() == []
    assert memory["current"] < 1.5 * 900 * KIB, memory


@pytest.mark.parametrize(
    ("opcode", "fragment"), [(BINARY, b"x"), (TEXT, b"xy")], ids=["binary-1", "text-2"]
)
def test_tiny_fragments_cost_a_bounded_multiple_of_max_length(opcode: int, fragment: bytes) -> None:
    # Small numbers: tracemalloc slows parsing fifty times. The ratio is what counts.
    limit = 16 * KIB
    protocol = HybiProtocol(is_client=False, max_length=limit)
    with measured() as memory:
        # Under the limit: the message is legal and still being received.
        feed_fragments(protocol, opcode, fragment, limit // len(fragment) - 1024, batch=1024)
        assert protocol.events_received() == []
    assert memory["current"] < 4 * limit, f"{memory['current']} bytes held for a {limit} limit"


def test_endless_empty_fragments_stay_bounded() -> None:
    protocol = HybiProtocol(is_client=False, max_length=16 * KIB)
    with measured() as memory:
        # 12,288 frames, 74 KB on the wire and not one payload byte; the memory
        # kept grows with the count (about 9 bytes each) as long as the peer goes on.
        feed_fragments(protocol, BINARY, b"", 12 * 1024)
    closed = any(isinstance(e, Close) for e in protocol.events_received())
    assert closed or memory["current"] < 48 * KIB, memory


# ------------------------------------------------------------ deflate bombs


@pytest.fixture(scope="module")
def bomb_16m() -> bytes:
    return deflated(16 * MIB)  # about 16 KB on the wire


@pytest.mark.parametrize("is_client", [False, True], ids=["server", "client"])
def test_a_deflate_bomb_is_1009_with_bounded_memory(bomb_16m: bytes, is_client: bool) -> None:
    limit = MIB
    server, client = negotiated_pair(deflate=True, max_length=limit)
    protocol = client if is_client else server
    data = frame(BINARY, bomb_16m, rsv1=True, mask=None if is_client else b"abcd")
    with measured() as memory:
        protocol.receive_data(data)
        events = protocol.events_received()
    assert events == [Error(TOO_LARGE, 1009), Close(1009, TOO_LARGE)]
    # CPython's zlib builds its output in blocks and joins them: twice the
    # limit at the peak, plus the wire bytes and their copy with the tail.
    assert memory["peak"] < 2.2 * limit + 3 * len(data), memory


@pytest.mark.parametrize("drop", [False, True], ids=["kept", "dropped"])
def test_a_failed_inflation_keeps_nothing(bomb_16m: bytes, drop: bool) -> None:
    gc.disable()  # what reference counting alone frees, as between two gc runs
    try:
        with measured() as memory:
            server, client = negotiated_pair(deflate=True, max_length=MIB)
            server.receive_data(frame(BINARY, bomb_16m, rsv1=True))
            assert server.events_received()[-1] == Close(1009, TOO_LARGE)
            if drop:
                del server, client
    finally:
        gc.enable()
    assert memory["current"] < 256 * KIB, memory


def test_a_deflate_bomb_split_in_fragments_is_1009(bomb_16m: bytes) -> None:
    server, _ = negotiated_pair(deflate=True, max_length=MIB)
    pieces = [bomb_16m[i : i + 1000] for i in range(0, len(bomb_16m), 1000)]
    wire = frame(BINARY, pieces[0], fin=False, rsv1=True)
    wire += b"".join(frame(CONTINUATION, p, fin=False) for p in pieces[1:-1])
    wire += frame(CONTINUATION, pieces[-1])
    with measured() as memory:
        server.receive_data(wire)
    assert server.events_received()[-1] == Close(1009, TOO_LARGE)
    assert memory["peak"] < 4 * MIB, memory


def test_the_default_limit_holds_after_inflation() -> None:
    server, _ = negotiated_pair(deflate=True)
    data = frame(BINARY, deflated(MAX_LENGTH + 1), rsv1=True)  # 64 MiB of zeros, 66 KB
    with measured() as memory:
        server.receive_data(data)
    assert server.events_received() == [Error(TOO_LARGE, 1009), Close(1009, TOO_LARGE)]
    assert memory["peak"] < 2.2 * MAX_LENGTH, memory  # zlib's blocks, joined: see above


def test_inflating_to_exactly_max_length_is_allowed() -> None:
    limit = 100_000
    server, _ = negotiated_pair(deflate=True, max_length=limit)
    server.receive_data(frame(BINARY, deflated(limit), rsv1=True))
    assert server.events_received() == [Message(b"\0" * limit)]
    server.receive_data(frame(BINARY, deflated(limit + 1), rsv1=True))
    assert server.events_received()[-1] == Close(1009, TOO_LARGE)


def test_a_deflate_bomb_through_the_engine_closes_both_ends_with_1009(bomb_16m: bytes) -> None:
    server_protocol, client_protocol = negotiated_pair(deflate=True, max_length=MIB)
    a, b = socket.socketpair()
    with a, b:
        threads = get_backend("threads")
        server = Connection(a, server_protocol, backend=threads)
        client = Connection(b, client_protocol, backend=threads)
        closes: list[int | None] = []
        client.on("close", lambda event: closes.append(event.code))
        b.sendall(frame(BINARY, bomb_16m, rsv1=True, mask=b"abcd"))  # the raw bomb
        with pytest.raises(ConnectionClosed) as closed:
            server.receive(timeout=WAIT)
        assert closed.value.code == 1009
        with pytest.raises(ConnectionClosed):
            client.receive(timeout=WAIT)
        assert closes == [1009]


# ---------------------------------------------- the client's handshake response


class RawServer:
    """A one-connection TCP server on 127.0.0.1:0 that runs ``script(conn)``."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(script,), daemon=True)
        self.thread.start()

    def _run(self, script: Callable[[socket.socket], None]) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError as exc:  # pragma: no cover - the client never came
            self.error = exc
            return
        with conn:
            conn.settimeout(WAIT)
            try:
                script(conn)
            except OSError:
                pass  # the client hung up on us: expected in these tests

    def close(self) -> None:
        self.thread.join(WAIT)
        self.listener.close()


def read_request(conn: socket.socket) -> bytes:
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        if not chunk:
            break
        request += chunk
    return request


def key_of(request: bytes) -> str:
    for line in request.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "sec-websocket-key":
            return value.strip()
    raise AssertionError("no key")


def valid_101(request: bytes) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key_of(request))}\r\n"
    ).encode()


def endless_headers(conn: socket.socket) -> None:
    conn.sendall(valid_101(read_request(conn)))
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:  # 1 KiB per millisecond, never ending
        conn.sendall(b"X-Filler: " + b"y" * 1000 + b"\r\n")
        time.sleep(0.001)


def one_huge_line(conn: socket.socket) -> None:
    conn.sendall(valid_101(read_request(conn)) + b"X-Huge: " + b"z" * (4 * MIB))


def silence_until_eof(conn: socket.socket) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and conn.recv(4096):
        pass


def silence(conn: socket.socket) -> None:
    """Read the request, answer nothing, until the client gives up and hangs up."""
    read_request(conn)
    silence_until_eof(conn)


@pytest.mark.parametrize("script", [endless_headers, one_huge_line], ids=lambda f: f.__name__)
def test_an_oversized_handshake_response_is_an_error_not_a_wait(
    script: Callable[[socket.socket], None],
) -> None:
    before = Snapshot.take()
    peer = RawServer(script)
    try:
        started = time.monotonic()
        with pytest.raises(HandshakeError, match="larger than") as failure:
            connect(f"ws://127.0.0.1:{peer.port}/", timeout=10)
        assert time.monotonic() - started < 3.0  # long before the 10 s timeout
        assert "Error during WebSocket handshake" in str(failure.value)
    finally:
        peer.close()
    before.assert_no_leaks()


def test_an_oversized_response_reports_error_then_close_1002() -> None:
    peer = RawServer(one_huge_line)
    try:
        ws = Client(f"ws://127.0.0.1:{peer.port}/", timeout=10)
        seen: list[tuple[str, object]] = []
        ws.on("error", lambda e: seen.append(("error", e.message)))
        ws.on("close", lambda e: seen.append(("close", e.code)))
        with pytest.raises(ConnectionClosed):
            ws.receive(timeout=WAIT)
        assert [kind for kind, _ in seen] == ["error", "close"]
        assert seen[-1] == ("close", 1002)
    finally:
        peer.close()


def test_a_silent_server_is_a_timeout_within_the_bound() -> None:
    before = Snapshot.take()
    peer = RawServer(silence)
    try:
        started = time.monotonic()
        with pytest.raises(NetworkError, match="no complete response head"):
            connect(f"ws://127.0.0.1:{peer.port}/", timeout=0.5)
        assert 0.4 < time.monotonic() - started < 2.0
    finally:
        peer.close()
    before.assert_no_leaks()


def test_a_client_refuses_a_frame_declaring_2_40_bytes() -> None:
    def declare_huge(conn: socket.socket) -> None:
        conn.sendall(valid_101(read_request(conn)) + b"\r\n")
        conn.sendall(frame(BINARY, b"", declared=2**40, mask=None))
        silence_until_eof(conn)  # open: the client must not wait for the payload

    peer = RawServer(declare_huge)
    try:
        ws = connect(f"ws://127.0.0.1:{peer.port}/", timeout=WAIT)
        with pytest.raises(ConnectionClosed) as closed:
            ws.receive(timeout=WAIT)
        assert closed.value.code == 1009
    finally:
        peer.close()


def test_permessage_deflate_limit_applies_to_the_client_too(bomb_16m: bytes) -> None:
    def send_bomb(conn: socket.socket) -> None:
        head = valid_101(read_request(conn)) + b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
        conn.sendall(head + b"\r\n" + frame(BINARY, bomb_16m, rsv1=True, mask=None))
        silence_until_eof(conn)

    peer = RawServer(send_bomb)
    try:
        ws = connect(
            f"ws://127.0.0.1:{peer.port}/",
            extensions=[PerMessageDeflate()],
            max_length=MIB,
            timeout=WAIT,
        )
        with pytest.raises(ConnectionClosed) as closed:
            ws.receive(timeout=WAIT)
        assert closed.value.code == 1009
    finally:
        peer.close()


def test_close_frame_is_what_a_1009_sends() -> None:
    # The reply to an oversized frame is a single, well-formed close frame.
    protocol = HybiProtocol(is_client=False, max_length=10)
    protocol.receive_data(frame(TEXT, b"x" * 11, mask=b"abcd"))
    [reply] = read_frames(protocol.data_to_send())
    assert (reply.opcode, reply.close_code, reply.payload[2:]) == (
        CLOSE,
        1009,
        TOO_LARGE.encode(),
    )
