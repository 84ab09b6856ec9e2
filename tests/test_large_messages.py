"""Large messages on real servers: the in-place read and the one-``sendmsg`` write (issue 14).

On gevent.pywsgi and gunicorn gthread, an echo without extensions (so that the
large-frame path runs) takes 1 MiB and 16 MiB + 1 messages, text and binary,
from the websockets and wsproto packages and from a raw client that cuts a
frame into many TCP segments with pauses; fragmented large messages with a
ping between the fragments; and it refuses a message over ``max_length``
with 1009, and invalid UTF-8 with 1007, before the rest of the frame is sent.
The faye_sync client does the same round trip (it reads unmasked frames in
place and masks what it sends).
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
from collections.abc import Iterator

import pytest
import wsproto
import wsproto.events as wse
from websockets.sync.client import connect

from faye_sync import Client
from tests.servers import Server, serve
from tests.wire import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    WAIT,
    frame,
    read_frame,
    upgrade,
)

APP = "tests.apps.large_echo:app"
MIB = 2**20
BIG = 2 * WAIT  # the bound on a round trip of 16 MiB on a loaded machine


@pytest.fixture(scope="module", params=["gevent", "gunicorn-gthread"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    options = {"timeout": 30} if request.param.startswith("gunicorn") else {}
    with serve(request.param, APP, **options) as running:
        yield running


def messages() -> list[str | bytes]:
    return [
        os.urandom(MIB),
        "é€😀x" * (MIB // 10),  # multi-byte characters across every read
        os.urandom(16 * MIB + 1),
        "y" * (16 * MIB + 1),
    ]


def test_websockets_round_trip(server: Server) -> None:
    url = f"ws://127.0.0.1:{server.port}/"
    with connect(url, compression=None, max_size=None, open_timeout=WAIT) as ws:
        for message in messages():
            ws.send(message)
            assert ws.recv(timeout=BIG) == message
    assert "Traceback" not in server.log()


def wsproto_exchange(sock: socket.socket, conn: wsproto.WSConnection, data: bytes) -> list[object]:
    """Send ``data``; return the events up to the next whole message (or the close)."""
    sock.sendall(data)
    events: list[object] = []
    sock.settimeout(BIG)
    while not any(isinstance(e, wse.CloseConnection) or _last(e) for e in events):
        chunk = sock.recv(MIB)
        assert chunk, "the server closed"
        conn.receive_data(chunk)
        events.extend(conn.events())
    return events


def _last(event: object) -> bool:
    return isinstance(event, wse.Message) and event.message_finished


def test_wsproto_round_trip_whole_and_fragmented(server: Server) -> None:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
    conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    sock.sendall(conn.send(wse.Request(host=f"127.0.0.1:{server.port}", target="/")))
    while not any(isinstance(e, wse.AcceptConnection) for e in conn.events()):
        conn.receive_data(sock.recv(65536))
    text, binary = "ü" * (MIB // 2), os.urandom(MIB)
    for whole in (text, binary):
        kind = wse.TextMessage if isinstance(whole, str) else wse.BytesMessage
        events = wsproto_exchange(sock, conn, conn.send(kind(data=whole)))
        assert _joined(events) == whole
        # the same in 4 fragments, a ping between the second and the third
        quarter = len(whole) // 4
        parts = [whole[i * quarter : (i + 1) * quarter] for i in range(3)]
        parts.append(whole[3 * quarter :])
        data = conn.send(kind(data=parts[0], message_finished=False))
        data += conn.send(kind(data=parts[1], message_finished=False))
        data += conn.send(wse.Ping(payload=b"between"))
        data += conn.send(kind(data=parts[2], message_finished=False))
        data += conn.send(kind(data=parts[3], message_finished=True))
        events = wsproto_exchange(sock, conn, data)
        assert _joined(events) == whole
        assert wse.Pong(payload=b"between") in events
    sock.sendall(conn.send(wse.CloseConnection(code=1000)))
    sock.close()


def _joined(events: list[object]) -> str | bytes:
    data = [e.data for e in events if isinstance(e, wse.Message)]
    return "".join(data) if isinstance(data[0], str) else b"".join(data)


def test_a_frame_cut_into_many_segments_with_pauses(server: Server) -> None:
    sock, rest = upgrade(server)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opcode, payload in ((BINARY, os.urandom(MIB + 5)), (TEXT, ("ä" * MIB).encode())):
        data = frame(opcode, payload, mask=os.urandom(4))
        cuts = [0, 1, 2, 9, 14, 15, 100, 4096, 65535, 65536, 65537, 300_001, len(data)]
        for start, end in itertools.pairwise(cuts):
            sock.sendall(data[start:end])
            time.sleep(0.02)  # each piece its own segment, read on its own
        got, echoed, rest = read_frame(sock, rest)
        assert (got, echoed) == (opcode, payload)
    sock.close()


def close_code_after(server: Server, path: str, data: bytes) -> tuple[int, str]:
    """Send ``data`` (a frame's start only); the server's close frame must come anyway."""
    sock, rest = upgrade(server, path)
    sock.sendall(data)
    opcode, payload, rest = read_frame(sock, rest)
    sock.close()
    assert opcode == CLOSE
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


def test_a_message_just_over_max_length_closes_1009_before_its_payload(server: Server) -> None:
    limit = MIB
    header = struct.pack("!BBQ", 0x80 | BINARY, 0xFF, limit + 1) + os.urandom(4)
    assert close_code_after(server, f"/?max_length={limit}", header + bytes(1000)) == (
        1009,
        "WebSocket frame length too large",
    )
    # fragmented: the second fragment's header takes the message over the limit
    first = frame(BINARY, bytes(limit // 2), fin=False, mask=os.urandom(4))
    second = struct.pack("!BBQ", 0x80 | CONTINUATION, 0xFF, limit // 2 + 1) + os.urandom(4)
    assert close_code_after(server, f"/?max_length={limit}", first + second)[0] == 1009
    assert "close 1009" in server.log()


def test_invalid_utf8_in_a_large_text_frame_closes_1007_before_the_rest(server: Server) -> None:
    payload = b"a" * 200_000 + b"\xff" + b"b" * 800_000
    data = frame(TEXT, payload, mask=os.urandom(4))[:300_000]  # the rest never comes
    assert close_code_after(server, "/", data)[0] == 1007


def test_an_unmasked_large_frame_is_refused(server: Server) -> None:
    data = frame(BINARY, bytes(MIB), mask=None)[:100_000]
    assert close_code_after(server, "/", data)[0] == 1002


def test_a_ping_between_large_fragments_is_answered_first(server: Server) -> None:
    sock, rest = upgrade(server)
    parts = [os.urandom(300_000) for _ in range(3)]
    sock.sendall(frame(BINARY, parts[0], fin=False, mask=os.urandom(4)))
    sock.sendall(frame(CONTINUATION, parts[1], fin=False, mask=os.urandom(4)))
    sock.sendall(frame(PING, b"now", mask=os.urandom(4)))
    opcode, payload, rest = read_frame(sock, rest)
    assert (opcode, payload) == (PONG, b"now")  # before the message is complete
    sock.sendall(frame(CONTINUATION, parts[2], mask=os.urandom(4)))
    opcode, payload, rest = read_frame(sock, rest)
    assert (opcode, payload) == (BINARY, b"".join(parts))
    sock.close()


def test_the_faye_sync_client_round_trip(server: Server) -> None:
    with Client(f"ws://127.0.0.1:{server.port}/", max_length=2**26) as ws:
        for message in messages():
            assert ws.send(message)
            assert ws.receive(timeout=BIG) == message
