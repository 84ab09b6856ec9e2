"""Strict where RFC 6455 and RFC 7692 say MUST (issue 13, items 7-11), on real sockets.

Each probe is a peer written by hand on 127.0.0.1: a raw server for our
:class:`~faye_sync.Client` (it answers the handshake itself, then sends frames
faye's driver would accept), or a raw client for the echo example on
gevent.pywsgi. What faye does is in each test's comment; we take the RFC.
"""

from __future__ import annotations

import socket
import time
import zlib
from collections.abc import Iterator

import pytest

from faye_sync import Client, PerMessageDeflate
from faye_sync.exceptions import ConnectionClosed
from tests.servers import Server, serve
from tests.wire import (
    CLOSE,
    PING,
    PONG,
    TEXT,
    WAIT,
    Frame,
    FrameReader,
    RawServer,
    close_payload,
    frame,
    open_websocket,
    parse_head,
    read_head,
    upgrade_101,
)

MASK = b"\x37\xfa\x21\x3d"
DEFLATE_RESPONSE = "permessage-deflate"


def closes(ws: Client) -> list[tuple[int | None, str | None]]:
    seen: list[tuple[int | None, str | None]] = []
    ws.on("close", lambda event: seen.append((event.code, event.reason)))
    return seen


def received_until_closed(ws: Client) -> list[object]:
    """Every message the client delivers until it closes (bounded by ``WAIT``)."""
    messages: list[object] = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            messages.append(ws.receive(timeout=max(0.0, deadline - time.monotonic())))
        except (TimeoutError, ConnectionClosed):
            break
    return messages


def bad_deflate() -> bytes:
    return b"\xff\xff\xff\xff"  # block type 3: not DEFLATE data


# ------------------------------------------------- 7a: a flood of interim responses


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def flood_interim_heads(conn: socket.socket) -> None:
    """Send ``100 Continue`` heads until the client hangs up (bounded: 20 s, 10 MB)."""
    burst = CONTINUE * 1000
    deadline = time.monotonic() + 20
    sent = 0
    while time.monotonic() < deadline and sent < 10_000_000:
        try:
            conn.sendall(burst)
        except OSError:
            return
        sent += len(burst)


def test_the_client_refuses_an_interim_response_flood_at_once() -> None:
    # Before: the client skipped every 100 Continue and read the flood until its own
    # timeout (10 s by default; 20 s here), then reported a network timeout (1006).
    # RFC 6455 §4.1: the handshake's answer is a 101 or a final status; the websockets
    # package refuses an interim one at once, and so do we.
    with RawServer(respond=lambda _: CONTINUE, then=flood_interim_heads) as server:
        started = time.monotonic()
        ws = Client(server.url, timeout=20, close_timeout=WAIT)
        elapsed = time.monotonic() - started
        seen = closes(ws)
        assert received_until_closed(ws) == []
    message = "Error during WebSocket handshake: Unexpected response code: 100"
    assert seen == [(1002, message)]
    assert ws.status_code == 100
    assert str(ws.failure) == message
    assert elapsed < WAIT  # not the 20 s timeout


# --------------------------------------------------------- 8: masked frames to a client


@pytest.mark.parametrize(
    "script",
    [frame(TEXT, b"masked text", mask=MASK), frame(PING, b"masked ping", mask=MASK)],
    ids=["text", "ping"],
)
def test_the_client_fails_on_a_masked_frame_from_the_server(script: bytes) -> None:
    # faye delivers the masked text and answers the masked ping. RFC 6455 §5.1: "A client
    # MUST close a connection if it detects a masked frame": 1002, nothing delivered.
    with RawServer(script) as server:
        ws = Client(server.url, timeout=WAIT, close_timeout=WAIT)
        seen = closes(ws)
        assert received_until_closed(ws) == []
    assert seen == [(1002, "Received masked frame from the server")]
    frames = server.frames()
    assert [f.opcode for f in frames] == [CLOSE]  # no pong
    assert frames[0].masked and frames[0].close_code == 1002


# ------------------------------------------ 9: data that is not DEFLATE, client side


def test_the_client_closes_with_1007_on_data_that_is_not_deflate() -> None:
    # faye: 1010 (its extension_error). RFC 6455 §7.4.1: 1010 is the client's "you did not
    # accept my extension"; a message that does not decode is invalid payload data, 1007.
    script = frame(TEXT, bad_deflate(), rsv1=True, mask=None)
    with RawServer(script, respond=lambda r: upgrade_101(r, DEFLATE_RESPONSE)) as server:
        ws = Client(server.url, extensions=[PerMessageDeflate()], timeout=WAIT, close_timeout=WAIT)
        assert ws.extensions == DEFLATE_RESPONSE
        seen = closes(ws)
        assert received_until_closed(ws) == []
    assert seen == [(1007, "permessage-deflate: invalid block type")]
    assert [f.close_code for f in server.frames()] == [1007]


# ------------------------------------- 10: a close reason that is not UTF-8, client side


def test_the_client_answers_a_close_reason_that_is_not_utf8_with_1007() -> None:
    # faye: 1002. RFC 6455 §8.1: invalid UTF-8 is invalid payload data, 1007.
    script = frame(CLOSE, b"\x03\xe8\xc3\x28", mask=None)
    with RawServer(script) as server:
        ws = Client(server.url, timeout=WAIT, close_timeout=WAIT)
        seen = closes(ws)
        assert received_until_closed(ws) == []
    assert seen == [(1007, "")]
    assert [f.close_code for f in server.frames()] == [1007]


# ------------------------------------- 11: a violation after our close ends it at once


def test_a_violation_after_the_clients_close_ends_the_connection_at_once() -> None:
    # faye ignores a violation once it has sent its close frame and waits for its close
    # timeout (30 s by default); RFC 6455 §7.1.7: fail, i.e. close the connection now.
    def after_the_clients_close(conn: socket.socket) -> None:
        reader = FrameReader()
        deadline = time.monotonic() + WAIT
        while not any(f.opcode == CLOSE for f in reader.frames) and time.monotonic() < deadline:
            reader.feed(conn.recv(4096))
        conn.sendall(frame(0x3, b"", mask=None))  # a reserved opcode instead of a close

    with RawServer(then=after_the_clients_close) as server:
        ws = Client(server.url, timeout=WAIT, close_timeout=30)
        seen = closes(ws)
        started = time.monotonic()
        ws.close(4000, "bye")
        assert received_until_closed(ws) == []
        elapsed = time.monotonic() - started
    assert seen == [(1002, "Unrecognized frame opcode: 3")]
    assert elapsed < WAIT  # not the 30 s close timeout


# ------------------------------------------------------- the server side, raw client


@pytest.fixture(scope="module")
def echo() -> Iterator[Server]:
    with serve("gevent", "wsgi_examples.echo:app") as server:
        yield server


def exchange(server: Server, *frames: bytes, deflate: bool = False) -> list[Frame]:
    """Upgrade, send ``frames``, and return what the server writes until it closes."""
    offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else ""
    sock, head, rest = open_websocket(server, "/", headers=offer)
    with sock:
        status, headers = parse_head(head)
        assert status == 101
        if deflate:
            assert headers["sec-websocket-extensions"].startswith("permessage-deflate")
        sock.sendall(b"".join(frames))
        reader = FrameReader()
        reader.feed(rest)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reader.feed(chunk)
        assert time.monotonic() < deadline, "the server did not close the connection"
    return reader.frames


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        # faye: 1003 ("unacceptable"). RFC 6455 §7.4.1: 1002 for a protocol error.
        ((frame(TEXT, b"Hello", mask=None),), 1002),
        ((frame(0x3, b"", mask=None),), 1002),  # reserved opcode, and unmasked
        ((frame(0x3, b"", mask=MASK),), 1002),
        ((frame(0xB, b"", mask=MASK),), 1002),
        # faye: 1002. RFC 6455 §8.1: a close reason that is not UTF-8 is 1007.
        ((frame(CLOSE, b"\x03\xe8\xc3\x28", mask=MASK),), 1007),
        # faye: 1010. Data that does not inflate is invalid payload data: 1007.
        ((frame(TEXT, bad_deflate(), rsv1=True, mask=MASK),), 1007),
    ],
    ids=[
        "unmasked",
        "reserved-opcode-unmasked",
        "reserved-opcode-3",
        "reserved-opcode-11",
        "close-reason-not-utf8",
        "not-deflate",
    ],
)
def test_the_server_closes_with_the_rfc_code(
    echo: Server, frames: tuple[bytes, ...], code: int
) -> None:
    sent = exchange(echo, *frames, deflate=True)
    assert [f.opcode for f in sent] == [CLOSE]
    assert sent[0].close_code == code
    assert not sent[0].masked
    assert "Traceback" not in echo.log()


def test_the_server_still_echoes_good_deflate_and_pongs(echo: Server) -> None:
    # The control: the same exchange with valid data is answered, not closed.
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = (compressor.compress(b"fine") + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    sent = exchange(
        echo,
        frame(TEXT, payload, rsv1=True, mask=MASK),
        frame(PING, b"p", mask=MASK),
        frame(CLOSE, close_payload(1000), mask=MASK),
        deflate=True,
    )
    # the pong is written by the frame layer at once, so it may overtake the echo
    assert sorted((f.opcode, f.rsv) for f in sent[:2]) == [(TEXT, 4), (PONG, 0)]
    (echoed,) = (f for f in sent if f.opcode == TEXT)
    assert zlib.decompressobj(-15).decompress(echoed.payload + b"\x00\x00\xff\xff") == b"fine"
    assert (sent[2].opcode, sent[2].close_code) == (CLOSE, 1000)


# -------------------------------------------------------- 11: handshake differences


def test_the_server_answers_a_request_without_host_with_400(echo: Server) -> None:
    # faye answers 101. RFC 6455 §4.2.1 (and RFC 9112 §3.2): Host is required, else 400.
    with echo.connect(timeout=WAIT) as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head, _ = read_head(sock)
    status, headers = parse_head(head)
    assert status == 400
    assert "sec-websocket-accept" not in headers


def test_the_client_accepts_upgrade_among_other_connection_tokens() -> None:
    # faye refuses "Connection: Upgrade, keep-alive"; RFC 6455 §4.1 asks for the token.
    def respond(request: dict[str, str]) -> bytes:
        return upgrade_101(request).replace(
            b"Connection: Upgrade\r\n", b"Connection: keep-alive, Upgrade\r\n"
        )

    script = frame(TEXT, b"hello", mask=None) + frame(CLOSE, close_payload(1000), mask=None)
    with RawServer(script, respond=respond) as server:
        ws = Client(server.url, timeout=WAIT, close_timeout=WAIT)
        assert ws.failure is None
        seen = closes(ws)
        assert received_until_closed(ws) == ["hello"]
    assert seen == [(1000, "")]
    assert [f.close_code for f in server.frames()] == [1000]
