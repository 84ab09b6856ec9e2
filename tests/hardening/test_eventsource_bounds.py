"""EventSource under a client that reads slowly or not at all: memory bounded in bytes.

Issue 13, item 3. The object on its own first (``buffered_amount``, the
overflow, the option), then real servers with a raw client socket whose receive
buffer is small and which never reads; the server's memory is read from
``/proc/<pid>/status`` from outside.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from faye_sync.eventsource import EventSource
from faye_sync.protocol.sse import DEFAULT_MAX_BUFFERED, encode_event
from faye_sync.protocol.sse_parser import EventStreamParser
from tests.apps.eventsource_flood_app import rss_kib
from tests.servers import Server, serve
from tests.wsgi_call import StartResponse, make_environ

APP = "tests.apps.eventsource_flood_app:app"
WAIT = 10.0  # the bound on waits that should end within a few pings
MIB = 1024 * 1024


def new(**options: Any) -> tuple[EventSource, Iterator[bytes]]:
    es = EventSource(make_environ(), StartResponse(), **options)
    return es, iter(es.response)


def wait_for(condition: Callable[[], object], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.05)


# -- the object on its own ------------------------------------------------------------


def test_buffered_amount_counts_the_queue_and_the_chunk_being_written() -> None:
    es, stream = new()
    assert es.buffered_amount == 0
    next(stream)  # the preamble: the server writes it
    es.send("a" * 100)
    queued = es.buffered_amount
    assert queued > 100
    chunk = next(stream)  # handed to the server, whose write has not returned
    assert len(chunk) == queued == es.buffered_amount
    es.send("b")
    assert es.buffered_amount > queued
    es.close()
    next(stream)  # the server came back: the first chunk was written
    with pytest.raises(StopIteration):
        next(stream)  # ... and the second
    assert es.buffered_amount == 0


def test_a_send_over_the_limit_closes_the_stream_once(caplog: pytest.LogCaptureFixture) -> None:
    es, stream = new(max_buffered=1000)
    closes: list[int] = []  # the thread each close listener ran in
    closed = threading.Event()
    es.on("close", lambda event: (closes.append(threading.get_ident()), closed.set()))
    next(stream)
    assert es.send("x" * 500, id=1)
    with caplog.at_level(logging.WARNING, logger="faye_sync.eventsource"):
        assert not es.send("x" * 500, id=2)  # 500 + framing would pass 1000
        assert not es.send("y", id=3)  # closed: nothing may overtake id 2
        assert not es.ping()
    assert es.ready_state == EventSource.CLOSED
    assert closed.wait(5)
    # Once, and not inside the send: a publisher's send is never held up by listeners.
    assert len(closes) == 1 and closes[0] != threading.get_ident()
    warnings = [r for r in caplog.records if "not reading" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    # What was queued still goes out, then the stream ends (the client resumes after id 1).
    rest = b"".join(stream)
    assert b"id: 1\r\n" in rest and b"id: 2" not in rest and b"id: 3" not in rest


def test_one_event_larger_than_the_limit_goes_when_nothing_is_buffered() -> None:
    es, stream = new(max_buffered=100)
    next(stream)
    assert es.send("x" * 1000)
    assert not es.send("y")
    assert b"x" * 1000 in b"".join(stream)


def test_encoded_events_go_in_one_step_all_or_none() -> None:
    es, stream = new(max_buffered=1000)
    next(stream)
    one, two = encode_event("a", id=1), encode_event("b", event="x", id=2)
    assert es.send_encoded(one, two)
    assert es.buffered_amount == len(one) + len(two)
    # A batch that would pass the limit is refused whole and closes the stream:
    # the client resumes after id 2, so no event of the batch may go out.
    assert not es.send_encoded(encode_event("c" * 400, id=3), encode_event("d" * 600, id=4))
    assert es.ready_state == EventSource.CLOSED
    assert b"".join(stream) == one + two


def test_no_limit_and_the_default() -> None:
    es, _ = new(max_buffered=None)
    assert all(es.send("x" * 1024) for _ in range(4 * 1024))  # 4 MiB and more
    assert es.buffered_amount > 4 * MIB
    es, _ = new()
    sent = 0
    while es.send("x" * 1024):
        sent += 1
    assert DEFAULT_MAX_BUFFERED == MIB
    assert MIB - 2048 < es.buffered_amount <= MIB
    assert sent == es.buffered_amount // len(b"data: " + b"x" * 1024 + b"\r\n\r\n")


@pytest.mark.parametrize("value", [0, -1])
def test_max_buffered_must_be_positive(value: int) -> None:
    with pytest.raises(ValueError, match="max_buffered"):
        new(max_buffered=value)


@pytest.mark.parametrize("value", [1.5, "1024", True])
def test_max_buffered_must_be_an_int(value: Any) -> None:
    with pytest.raises(TypeError, match="max_buffered"):
        new(max_buffered=value)


def test_what_is_queued_is_dropped_when_the_server_lets_go() -> None:
    es, stream = new(max_buffered=None)
    next(stream)
    for _ in range(1000):
        es.send("x" * 1000)
    es.response.close()  # type: ignore[attr-defined]  (the server: the client has gone)
    assert es.buffered_amount == 0
    assert es._queue == []


# -- real servers -------------------------------------------------------------------

KINDS = ["gevent", "gunicorn-gthread"]


def get(server: Server, path: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request("GET", path)
        result: dict[str, Any] = json.loads(conn.getresponse().read())
        return result
    finally:
        conn.close()


def open_stream(server: Server, query: str, last_event_id: str = "") -> socket.socket:
    """An event-stream request on a socket with a small receive buffer (set before connecting)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect((server.host, server.port))
    resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
    sock.sendall(
        # Connection: close, so that the end of a stream is the end of the connection.
        f"GET /flood?{query} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n"
        f"Connection: close\r\n{resume}\r\n".encode()
    )
    return sock


def read_to_end(sock: socket.socket, timeout: float = WAIT) -> bytes:
    """Everything until the server ends the connection (EOF or reset), within ``timeout``."""
    received = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return bytes(received)
        if not data:
            return bytes(received)
        received += data
    raise AssertionError(f"the connection was still open after {timeout} s")


@pytest.fixture(params=KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serve(request.param, APP) as running:
        yield running
        assert "Traceback" not in running.log(), running.log()


def test_a_client_that_never_reads_gets_a_bounded_stream(server: Server) -> None:
    """Before: 64 MiB queued, every send True, the stream open for ever."""
    name = uuid.uuid4().hex
    pid = get(server, f"/stats?name={name}")["pid"]
    before = rss_kib(pid)
    sock = open_stream(server, f"name={name}&size=1000&count={64 * 1024}&ping=1&sndbuf=4096")
    with sock:
        wait_for(lambda: get(server, f"/stats?name={name}").get("done"))
        record = get(server, f"/stats?name={name}")
        grown = (rss_kib(pid) - before) / 1024
        assert record["refused"], record
        assert record["peak"] <= DEFAULT_MAX_BUFFERED, record
        assert grown < 16, f"the server grew by {grown:.0f} MiB"
        # The client neither reads nor leaves: after two pings without progress the
        # server shuts the connection down, which ends its blocked write.
        wait_for(lambda: get(server, f"/stats?name={name}").get("released"))
        read_to_end(sock)
    assert server.log().count("the client is not reading") == 1, server.log()
    # The server logs before it shuts down; a log line may land a moment after the
    # client has seen the end of its connection.
    wait_for(lambda: "shutting its connection down" in server.log())


def test_memory_queued_for_a_client_that_left_is_released(server: Server) -> None:
    """Before: the queue stayed with the EventSource (32 MiB here) until it was collected."""
    name = uuid.uuid4().hex
    pid = get(server, f"/stats?name={name}")["pid"]
    before = rss_kib(pid)
    query = f"name={name}&size=1000&count={32 * 1024}&max_buffered=0&hold=1"
    with open_stream(server, query):
        wait_for(lambda: get(server, f"/stats?name={name}").get("done"))
        assert (rss_kib(pid) - before) / 1024 > 24  # no limit: it is all queued
    wait_for(lambda: get(server, f"/stats?name={name}").get("released"))
    where = get(server, f"/where?name={name}")
    assert where["alive"], where  # still referenced by the app (hold=1) ...
    assert where["queued"] == 0, where  # ... but holding nothing
    # The server's own write of the last chunk may still be unwinding on a loaded
    # machine: the memory must come back, within a bound, not at one instant.
    wait_for(lambda: (get(server, f"/where?name={name}")["rss_kib"] - before) / 1024 < 8)


def test_a_reader_that_falls_behind_resumes_with_nothing_lost(server: Server) -> None:
    """The stream ends when full; each reconnection resumes after the last id received."""
    # Each connection delivers at least max_buffered (64 KiB, ~500 events) before the
    # stream ends, however slow the reader: the attempts are bounded by the count.
    count, base = 100_000, uuid.uuid4().hex
    ids: list[int] = []
    last_id = ""
    for attempt in range(400):
        name = f"{base}-{attempt}"
        query = f"name={name}&size=100&count={count}&max_buffered=65536&ping=1"
        with open_stream(server, query, last_id) as sock:
            if attempt == 0:  # fall behind: read nothing until the stream is full
                stats = f"/stats?name={name}"
                wait_for(lambda: get(server, stats).get("done"))  # noqa: B023 (called here)
                assert get(server, stats)["refused"]
            parser = EventStreamParser(last_event_id=last_id)
            body = read_until_id(sock, str(count))
            _, _, events = body.partition(b"\r\n\r\n")
            parser.receive_data(dechunk(events))
            received = [int(event.id) for event in parser.events_received()]
            assert received, f"attempt {attempt} delivered nothing after {last_id!r}"
            ids += received
            last_id = parser.last_event_id
        if last_id == str(count):
            break
    assert attempt >= 1
    assert ids == list(range(1, count + 1))


def read_until_id(sock: socket.socket, last: str) -> bytes:
    """Read until the server ends the stream or the event with id ``last`` has arrived."""
    received = bytearray()
    deadline = time.monotonic() + WAIT
    marker = f"id: {last}\r\n".encode()
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return bytes(received)
        if not data:
            return bytes(received)
        start = max(0, len(received) - len(marker))
        received += data
        found = received.find(marker, start)
        # Each chunk holds whole events: the blank line after the id is in it.
        if found >= 0 and received.find(b"\r\n\r\n", found) >= 0:
            return bytes(received)
    raise AssertionError(f"the stream neither ended nor reached id {last} in {WAIT} s")


def dechunk(body: bytes) -> bytes:
    """The payload of a chunked body (complete chunks only: the stream may be cut)."""
    payload = bytearray()
    while body:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep or not size_line:
            break
        size = int(size_line.split(b";")[0], 16)
        if size == 0 or len(rest) < size + 2:
            payload += rest[:size] if size else b""
            break
        payload += rest[:size]
        body = rest[size + 2 :]
    return bytes(payload)
