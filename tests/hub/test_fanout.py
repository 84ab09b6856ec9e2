"""Fan-out to EventSource and WebSocket clients over real servers, and the gevent check.

The app (``tests/apps/hub_app.py``) runs on gevent.pywsgi WITHOUT monkey-patching
(the chat demo's setup), on gunicorn's gevent worker (patched) and on werkzeug
(threads); the test publishes from its own hub on the same Redis.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from faye_sync import ConnectionClosed, EventSource, EventSourceClient, connect
from faye_sync.hub import RESET, Hub, HubMessage
from faye_sync.hub.delivery import BUDGET
from tests.hub.helpers import WAIT, until
from tests.redis_server import RedisServer
from tests.serve import HOST, READY
from tests.servers import serve

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.apps.hub_app:app"


@contextlib.contextmanager
def unpatched_gevent(env: dict[str, str]) -> Iterator[int]:
    """The app on gevent.pywsgi with no monkey-patching; yields its port."""
    process_env = dict(os.environ, PYTHONUNBUFFERED="1", **env)
    process_env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.hub.unpatched_gevent", APP],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=process_env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 15
        line = b""
        while not line.startswith(READY.encode()):
            assert time.monotonic() < deadline and process.poll() is None, line
            line = process.stdout.readline()
        yield int(line.decode().strip().removeprefix(READY))
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def app_server(kind: str, env: dict[str, str]) -> Iterator[int]:
    if kind == "gevent-unpatched":
        with unpatched_gevent(env) as port:
            yield port
    else:
        options: dict[str, Any] = {"timeout": 30} if kind.startswith("gunicorn") else {}
        with serve(kind, APP, env=env, **options) as server:
            yield server.port


def get(port: int, path: str, timeout: float = WAIT) -> bytes:
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head
    return body


@pytest.fixture
def env(redis_server: RedisServer, prefix: str) -> dict[str, str]:
    return {"HUB_URL": redis_server.url, "HUB_PREFIX": prefix, "HUB_BLOCK": "0.2"}


@pytest.fixture
def publisher(redis_server: RedisServer, prefix: str) -> Iterator[Hub]:
    with Hub.from_url(redis_server.url, prefix=prefix) as hub:
        yield hub


SERVERS = ["gevent-unpatched", "gunicorn-gevent", "gunicorn-gthread", "werkzeug"]


@pytest.mark.parametrize("kind", SERVERS)
def test_eventsource_fan_out_and_resume(kind: str, env: dict[str, str], publisher: Hub) -> None:
    start = publisher.publish("chat", "before")
    with app_server(kind, env) as port:
        url = f"http://{HOST}:{port}/events?channels=chat"
        clients = [EventSourceClient(url, last_event_id=start, timeout=WAIT) for _ in range(3)]
        sent = [publisher.publish("chat", f"m{i}", event="said") for i in range(30)]
        for client in clients[1:]:
            events = [next(client) for _ in range(30)]
            assert [(e.id, e.type, e.data) for e in events] == [
                (message_id, "said", f"m{i}") for i, message_id in enumerate(sent)
            ]
            client.close()
        # One leaves after 10 events, misses 10 more, and resumes from its last id.
        first = clients[0]
        seen = [next(first).id for _ in range(10)]
        first.close()
        sent += [publisher.publish("chat", f"m{i}", event="said") for i in range(30, 40)]
        with EventSourceClient(url, last_event_id=seen[-1], timeout=WAIT) as again:
            rest = [next(again).id for _ in range(30)]
        assert seen + rest == sent


@pytest.mark.parametrize("kind", SERVERS)
def test_websocket_fan_out_from_an_id(kind: str, env: dict[str, str], publisher: Hub) -> None:
    start = publisher.publish("chat", "before")
    with app_server(kind, env) as port:
        sockets = [
            connect(f"ws://{HOST}:{port}/ws?channels=chat,news&last_id={start}") for _ in range(3)
        ]
        sent = [publisher.publish(("chat", "news")[i % 2], f"m{i}") for i in range(30)]
        for ws in sockets:
            got = [json.loads(ws.receive(timeout=WAIT)) for _ in range(30)]
            assert [(m["id"], m["data"]) for m in got] == [
                (message_id, f"m{i}") for i, message_id in enumerate(sent)
            ]
            ws.close()


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_the_reader_never_blocks_unpatched_gevent(
    scheme: str, request: pytest.FixtureRequest, prefix: str
) -> None:
    """The reader blocked in XREAD for 10 s; another request is still answered at once.

    redis:// through gevent sockets, rediss:// through gevent's thread pool.
    """
    if scheme == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
    else:
        server, url = request.getfixturevalue("tls_redis")
    env = {"HUB_URL": url, "HUB_PREFIX": prefix, "HUB_BLOCK": "10"}
    watcher = redis.Redis.from_url(server.url, decode_responses=True)
    publisher = Hub.from_url(url, prefix=prefix)
    request.addfinalizer(publisher.close)
    with unpatched_gevent(env) as port:
        with socket.create_connection((HOST, port), timeout=WAIT) as stream:
            stream.sendall(b"GET /events?channels=idle HTTP/1.1\r\nHost: x\r\n\r\n")
            assert stream.recv(4096).startswith(b"HTTP/1.1 200")
            until(lambda: any(c.get("cmd") == "xread" for c in watcher.client_list()))
            time.sleep(0.3)  # well inside the 10 s block
            for _ in range(3):
                started = time.monotonic()
                assert get(port, "/ping", timeout=8.0) == b"pong"
                # Frozen, it would wait for the XREAD to time out (up to 10 s).
                assert time.monotonic() - started < 3.0
            message_id = publisher.publish("idle", "woken")
            received = b""
            while message_id.encode() not in received:
                received += stream.recv(4096)
            assert b"data: woken" in received
    watcher.close()


def test_an_eventsource_that_cannot_keep_up_is_ended_without_a_gap(memory_hub: Hub) -> None:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_ACCEPT": "text/event-stream"}
    es = EventSource(environ, lambda status, headers: None)
    response = iter(memory_hub.stream(es, "chat", max_messages=20))
    next(response)  # the server starts the stream, then stops reading (a slow client)
    sent = []
    for i in range(200):
        sent.append(memory_hub.publish("chat", f"{i:<1000}"))
        time.sleep(0.002)  # a steady room: the feeder sends a batch, then waits
    until(lambda: es.ready_state == EventSource.CLOSED)
    delivered = b"".join(response).decode()  # what was queued, then the end
    ids = [line[4:] for line in delivered.splitlines() if line.startswith("id: ")]
    assert 0 < len(ids) <= BUDGET // 1000 + 1  # bounded: what the pacing lets wait
    assert ids == sent[: len(ids)]  # a prefix: resuming from the last one misses nothing
    assert not memory_hub._subscriptions


def test_an_eventsource_resumes_with_a_reset_when_its_id_is_gone(
    redis_server: RedisServer, prefix: str
) -> None:
    with Hub.from_url(redis_server.url, prefix=prefix, max_len=5) as hub:
        ids = [hub.publish("chat", str(i)) for i in range(20)]
        environ = {"HTTP_LAST_EVENT_ID": ids[2], "PATH_INFO": "/"}
        es = EventSource(environ, lambda status, headers: None)
        response = iter(hub.stream(es, "chat"))
        text = ""
        deadline = time.monotonic() + WAIT
        while text.count("id: ") < 6:
            assert time.monotonic() < deadline
            text += next(response).decode()
        es.close()
    lines = text.splitlines()
    assert f"event: {RESET}" in lines and '"reason": "trimmed"' in text
    assert f"id: {ids[-1]}" in lines


def test_with_redis_down_streams_end_and_sockets_close_1013(own_redis: RedisServer) -> None:
    own_redis.stop()
    env = {"HUB_URL": own_redis.url, "HUB_BLOCK": "0.2"}
    with unpatched_gevent(env) as port:
        body = get(port, "/events?channels=chat")  # ends: the browser will retry
        assert body.startswith(b"retry:") and b"data:" not in body
        ws = connect(f"ws://{HOST}:{port}/ws?channels=chat")
        with pytest.raises(ConnectionClosed) as closed:
            ws.receive(timeout=WAIT)
        assert closed.value.code == 1013
        assert get(port, "/ping") == b"pong"


@contextlib.contextmanager
def websockets_peer(handler: Any) -> Iterator[int]:
    """A server from the websockets package (not ours), in a thread."""
    from websockets.sync.server import serve as serve_websockets

    with serve_websockets(handler, HOST, 0, max_size=None, close_timeout=1) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.socket.getsockname()[1]
        server.shutdown()
    thread.join(WAIT)


def test_attach_a_client_websocket(memory_hub: Hub) -> None:
    def echo(ws: Any) -> None:
        with contextlib.suppress(Exception):
            for message in ws:
                ws.send(message)

    with websockets_peer(echo) as port:
        client = connect(f"ws://{HOST}:{port}/")
        memory_hub.attach(client, "chat")
        sent = [f"m{i}" for i in range(5)]
        for data in sent:
            memory_hub.publish("chat", data)
        assert [client.receive(timeout=WAIT) for _ in sent] == sent
        client.close()
        until(lambda: not memory_hub._subscriptions)  # the feeder saw the close


def test_sockets_with_one_format_share_its_result(memory_hub: Hub) -> None:
    def echo(ws: Any) -> None:
        with contextlib.suppress(Exception):
            for message in ws:
                ws.send(message)

    formatted: list[str] = []

    def shout(message: HubMessage) -> str:
        formatted.append(message.data)
        return message.data.upper()

    with websockets_peer(echo) as port:
        clients = [connect(f"ws://{HOST}:{port}/") for _ in range(3)]
        subs = [memory_hub.attach(client, "chat", format=shout) for client in clients]
        memory_hub.publish("chat", "first")  # each socket's first goes through its own feeder
        assert [client.receive(timeout=WAIT) for client in clients] == ["FIRST"] * 3
        until(lambda: all(sub._sink is not None for sub in subs))  # the reader delivers now
        formatted.clear()
        sent = [f"m{i}" for i in range(5)]
        for data in sent:
            memory_hub.publish("chat", data)
        for client in clients:
            assert [client.receive(timeout=WAIT) for _ in sent] == [d.upper() for d in sent]
            client.close()
        assert formatted == sent  # once per message, not once per socket


def test_a_websocket_peer_that_never_reads_is_closed_1013() -> None:
    stop = threading.Event()
    hub = Hub.from_url("memory://", max_len=50, block=0.2)  # bounded: 50 x 64 KiB kept

    codes: list[int | None] = []

    def never_read(ws: Any) -> None:
        stop.wait(WAIT * 2)
        with contextlib.suppress(Exception):
            for _ in ws:  # now read what piled up, to the close frame
                pass
        codes.append(ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None)

    try:
        with websockets_peer(never_read) as port:
            client = connect(f"ws://{HOST}:{port}/")
            sub = hub.attach(client, "chat", max_messages=20)
            for _ in range(2000):
                if sub.overflowed:
                    break
                hub.publish("chat", "x" * 65536)
                time.sleep(0.001)
            assert sub.overflowed
            assert len(sub._queue) <= 21
            # What the reader handed the socket itself is bounded too: BUDGET, plus
            # the message that crossed it and the one the feeder was sending.
            assert client.buffered_amount <= BUDGET + 3 * 65536
            # The close frame waits behind the stuck writes; the socket is closing.
            until(lambda: client.ready_state >= 2)
            stop.set()
            until(lambda: bool(codes))
            assert codes == [1013]
    finally:
        stop.set()
        hub.close()


def test_a_replay_larger_than_the_eventsource_buffer_arrives_in_one_stream(
    env: dict[str, str], publisher: Hub
) -> None:
    """3.2 MB of history in one response (an EventSource holds 1 MiB at most by default)."""
    start = publisher.publish("chat", "before")
    sent = [publisher.publish("chat", f"{i:<4000}") for i in range(800)]
    with unpatched_gevent(env) as port:
        with socket.create_connection((HOST, port), timeout=WAIT) as sock:
            sock.sendall(f"GET /events?channels=chat&last_id={start} HTTP/1.0\r\n\r\n".encode())
            received = b""
            while f"id: {sent[-1]}\r\n".encode() not in received:
                chunk = sock.recv(1 << 20)
                assert chunk, "the stream ended before the replay did"
                received += chunk
    ids = [line[4:] for line in received.decode().splitlines() if line.startswith("id: ")]
    assert ids == sent


def test_the_reader_feeds_a_websocket_that_keeps_up_and_queues_for_one_that_falls_behind(
    memory_hub: Hub,
) -> None:
    """Live messages go from the reader straight to a socket that keeps up (no task
    switch per subscriber); one that falls behind is fed from its queue again, in
    order and complete, and goes back to direct delivery once it has caught up."""
    reading = threading.Event()
    received: list[str] = []

    def slow_then_reading(ws: Any) -> None:
        reading.wait(WAIT)
        with contextlib.suppress(Exception):
            for message in ws:
                received.append(message)

    with websockets_peer(slow_then_reading) as port:
        client = connect(f"ws://{HOST}:{port}/")
        sub = memory_hub.attach(client, "chat", max_bytes=32 << 20)
        first = memory_hub.publish("chat", "first")  # sent by the feeder: the first use
        until(lambda: sub._sink is not None)  # then live and empty: direct
        sent = [first] + [memory_hub.publish("chat", f"{i:<65536}") for i in range(200)]
        # 13 MB that nobody reads: more than the kernel's buffers (4 MiB at most) and BUDGET.
        until(lambda: sub._sink is None)  # the reader stopped: the rest went to the queue
        reading.set()
        until(lambda: len(received) == len(sent))
        assert received == ["first"] + [f"{i:<65536}" for i in range(200)]
        assert not sub.overflowed
        until(lambda: sub._sink is not None)  # caught up: direct again
        memory_hub.publish("chat", "last")
        until(lambda: len(received) == len(sent) + 1)
        assert received[-1] == "last"
        client.close()
