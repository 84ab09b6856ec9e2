"""Large messages out: header and payload in one ``sendmsg``, the rest through the writer.

Over real TCP sockets on 127.0.0.1, with threads and with gevent: a peer that
reads slowly gets the frame whole, with a ping sent meanwhile after it (never
inside it); a socket already full when the send starts (``sendmsg`` takes
nothing) still gets the frame whole.
"""

from __future__ import annotations

import os
import socket

import pytest

from faye_sync.blocking.connection import Connection
from faye_sync.blocking.large import _vector_sender
from faye_sync.protocol.hybi import HybiProtocol
from tests.hardening.helpers import Env
from tests.wire import BINARY, PING, TEXT, WAIT, FrameReader

MIB = 2**20


@pytest.fixture(params=["threads", "gevent"])
def env(request: pytest.FixtureRequest) -> Env:
    environment = Env(request.param)
    environment.warm_up()
    return environment


def read_frames(env: Env, peer: socket.socket, count: int, *, skip: int = 0) -> list[object]:
    """``count`` frames from ``peer`` after ``skip`` raw bytes, read in 64 KiB pieces."""
    reader, got = FrameReader(), b""
    while len(reader.frames) < count:
        chunk = peer.recv(65536)
        assert chunk, "the connection closed"
        if skip:
            got, chunk = chunk[:skip], chunk[skip:]
            skip -= len(got)
        reader.feed(chunk)
        env.sleep(0.001)
    return list(reader.frames)


def test_a_slow_reader_gets_the_frame_whole_and_a_ping_after_it(env: Env) -> None:
    sock, peer = env.tcp_pair()
    conn = Connection(sock, HybiProtocol(is_client=False), backend=env.backend)
    big, text = os.urandom(4 * MIB), "ß" * (2 * MIB)
    results: list[bool] = []
    sender = env.spawn(lambda: results.extend([conn.send(big), conn.send(text)]))
    first = peer.recv(100_000)  # the send is under way: the socket is full
    env.sleep(0.05)
    assert conn.ping(b"p")
    frames = FrameReader()
    frames.feed(first)
    while len(frames.frames) < 3:
        chunk = peer.recv(65536)
        assert chunk
        frames.feed(chunk)
    assert env.join(sender, WAIT)
    assert results == [True, True]
    kinds = [(f.opcode, f.payload) for f in frames.frames]
    assert (BINARY, big) == kinds[0]  # whole, the ping after it
    assert sorted(kinds[1:], key=lambda k: k[0]) == [(TEXT, text.encode()), (PING, b"p")]
    assert conn.buffered_amount == 0
    sock.close()
    peer.close()


def test_a_socket_full_before_the_send_still_gets_the_frame_whole(env: Env) -> None:
    sock, peer = env.tcp_pair()
    conn = Connection(sock, HybiProtocol(is_client=False), backend=env.backend)
    conn.send("started")  # the 'open' and first use, before the socket is filled
    filler = 0
    blocking = os.get_blocking(sock.fileno())  # a flag of the file, shared by a dup
    with socket.socket(fileno=os.dup(sock.fileno())) as raw:  # not gevent's: it would wait
        raw.setblocking(False)
        while True:  # fill the kernel's buffers with bytes outside any frame
            try:
                filler += raw.send(bytes(65536))
            except BlockingIOError:
                break
        os.set_blocking(raw.fileno(), blocking)
    payload = os.urandom(MIB)
    results: list[bool] = []
    sender = env.spawn(lambda: results.append(conn.send(payload)))
    frames = read_frames(env, peer, 1, skip=len(b"\x81\x07started") + filler)
    assert env.join(sender, WAIT)
    assert results == [True]
    assert [(f.opcode, f.payload) for f in frames] == [(BINARY, payload)]
    sock.close()
    peer.close()


def test_a_plain_socket_takes_the_one_sendmsg_path(env: Env) -> None:
    # The fallback (header and payload through the writer) is correct too, so
    # only the choice tells that the one-sendmsg path is in use.
    sock, _peer = env.tcp_pair()
    conn = Connection(sock, HybiProtocol(is_client=False), backend=env.backend)
    assert _vector_sender(conn) is not None
