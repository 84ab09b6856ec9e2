"""EventSource: the object on its own, then the clock and a test app on six real servers."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from faye_sync import close_all
from faye_sync.blocking.emitter import EventEmitter
from faye_sync.blocking.live import live_connections
from faye_sync.eventsource import (
    SHUTDOWN_RETRY_SPREAD,
    EventSource,
    EventSourceEvent,
    is_eventsource,
)
from tests.processes import free_port, run
from tests.servers import Server, serve
from tests.wsgi_call import StartResponse, make_environ

APP = "tests.apps.eventsource_app:app"


def new(**options: Any) -> tuple[EventSource, Iterator[bytes]]:
    es = EventSource(make_environ(), StartResponse(), **options)
    return es, iter(es.response)


# -- the object, without a server ----------------------------------------------


def test_start_response_and_preamble() -> None:
    start_response = StartResponse()
    es = EventSource(make_environ(), start_response, headers={"X-A": "1"}, retry=2)
    assert start_response.calls == [
        (
            "200 OK",
            [
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("Cache-Control", "no-cache, no-store"),
                ("X-Accel-Buffering", "no"),
                ("X-A", "1"),
            ],
        )
    ]
    es.send("early")  # before the server iterates: queued behind the preamble
    assert next(iter(es.response)) == b"retry: 2000\r\n\r\ndata: early\r\n\r\n"


def test_retry_zero_is_kept_and_none_is_five() -> None:
    assert next(new(retry=0)[1]) == b"retry: 0\r\n\r\n"
    assert next(new()[1]) == b"retry: 5000\r\n\r\n"


def test_options_are_checked() -> None:
    with pytest.raises(TypeError):
        EventSource(make_environ(), StartResponse(), pingg=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        EventSource(make_environ(), StartResponse(), headers={"X": "a\r\nb"})
    with pytest.raises(ValueError):
        EventSource(make_environ(), StartResponse(), headers={"Connection": "close"})
    with pytest.raises(ValueError):
        EventSource(make_environ(), StartResponse(), ping=-1)
    with pytest.raises(ValueError):
        EventSource(make_environ(), StartResponse(), retry=-1)
    start_response = StartResponse()
    with pytest.raises(ValueError):
        EventSource(make_environ(), start_response, headers={"X": "\0"})
    assert start_response.calls == []  # refused before anything was sent


def test_ping_zero_or_none_means_ten_seconds() -> None:
    assert new(ping=0)[0]._ping == 10
    assert new(ping=None)[0]._ping == 10
    assert new(ping=0.25)[0]._ping == 0.25


def test_is_eventsource() -> None:
    assert is_eventsource(make_environ())
    assert EventSource.is_eventsource(make_environ(HTTP_ACCEPT="text/event-stream;q=0.9"))
    assert not EventSource.is_eventsource(make_environ(HTTP_ACCEPT="text/event-stream;q=0"))
    assert not is_eventsource(make_environ(REQUEST_METHOD="POST"))
    assert not is_eventsource(make_environ(HTTP_ACCEPT="*/*"))
    del_accept = make_environ()
    del del_accept["HTTP_ACCEPT"]
    assert not is_eventsource(del_accept)


def test_url_and_last_event_id() -> None:
    environ = make_environ(QUERY_STRING="x=1", HTTP_LAST_EVENT_ID="caf\xc3\xa9", HTTP_HOST="h:8080")
    es = EventSource(environ, StartResponse())
    assert es.url == "http://h:8080/events?x=1"
    assert es.last_event_id == "café"  # WSGI's latin-1 text, read back as UTF-8
    polyfill = EventSource(make_environ(QUERY_STRING="lastEventId=9"), StartResponse())
    assert polyfill.last_event_id == "9"
    assert EventSource(make_environ(), StartResponse()).last_event_id == ""


def test_url_is_kept_after_the_server_clears_the_environ(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Servers clear the environ once the request is over; a producer failing
    # after that is logged with the URL, not with a KeyError (seen with the hub).
    environ = make_environ(QUERY_STRING="room=1")
    es = EventSource(environ, StartResponse())
    stream = iter(es.response)
    next(stream)
    environ.clear()
    assert es.url == "http://example.org/events?room=1"
    failed = threading.Event()

    def producer() -> None:
        failed.set()
        raise RuntimeError("boom")

    es.spawn(producer)
    assert failed.wait(2) and es.wait_closed(2)
    assert "producer failed: http://example.org/events?room=1" in caplog.text
    assert "KeyError" not in caplog.text


def test_eventlet_buffering_switched_off() -> None:
    environ = make_environ()
    EventSource(environ, StartResponse())
    assert environ["eventlet.minimum_write_chunk_size"] == 0


def test_open_and_close_events_in_faye_order() -> None:
    es, stream = new()
    seen: list[str] = []
    es.on("open", lambda e: seen.append(f"on open {e.type}"))
    es.onopen = lambda e: seen.append(f"onopen {e.type}")
    es.on("close", lambda e: seen.append(f"on close {e.target is es}"))
    es.onclose = lambda e: seen.append("onclose")
    assert es.ready_state == EventSource.CONNECTING
    next(stream)
    assert es.ready_state == EventSource.OPEN
    assert seen == ["onopen open", "on open open"]  # attached after construction, still seen
    assert es.close() is True
    assert es.close() is False
    es.response.close()  # type: ignore[attr-defined]  # what the server does next
    assert es.ready_state == EventSource.CLOSED
    assert seen[2:] == ["onclose", "on close True"]  # exactly once


def test_listener_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    es, stream = new()
    es.on("open", lambda e: 1 / 0)
    seen: list[EventSourceEvent] = []
    es.on("open", seen.append)
    next(stream)
    assert len(seen) == 1
    assert "open listener failed" in caplog.text
    with pytest.raises(ValueError):
        es.on("message", seen.append)


def test_listeners_are_the_emitters_off_and_remove_listener_alike() -> None:
    es, stream = new()
    seen: list[str] = []
    by_off, by_alias = (lambda e: seen.append("off")), (lambda e: seen.append("alias"))
    kept = lambda e: seen.append(f"kept {type(e).__name__} {e.type}")  # noqa: E731
    for listener in (by_off, by_alias, kept):
        es.on("open", listener)
    es.off("open", by_off)
    es.remove_listener("open", by_alias)
    es.off("open", by_off)  # absent: no error
    next(stream)
    assert seen == ["kept EventSourceEvent open"]
    assert isinstance(es, EventEmitter) and es.has_listeners("open")


def test_send_after_close_and_queue_flushed_before_end() -> None:
    es, stream = new()
    next(stream)
    assert es.send("a", id=1) is True
    assert es.send("b", event="x") is True
    assert es.ping() is True
    es.close()
    assert es.send("late") is False
    assert es.ping() is False
    # Everything queued before close() goes out, in one chunk, then the end.
    assert list(stream) == [b"id: 1\r\ndata: a\r\n\r\nevent: x\r\ndata: b\r\n\r\n:\r\n\r\n"]


def test_send_refuses_bad_fields() -> None:
    es, _ = new()
    with pytest.raises(ValueError):
        es.send("x", event="a\nb")
    with pytest.raises(ValueError):
        es.send("x", id="1\r")
    with pytest.raises(ValueError):
        es.send("x", id="1\0")


def test_send_refuses_what_it_cannot_send_faithfully() -> None:
    # A dict used to go out as its Python repr; WebSocket.send refuses it too.
    es, stream = new()
    with pytest.raises(TypeError, match=r"not dict; convert it first.*json\.dumps"):
        es.send({"n": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not int"):
        es.send(1)  # type: ignore[arg-type]
    assert es.send(b"caf\xc3\xa9") and es.ready_state != EventSource.CLOSED
    first = next(stream)  # the preamble and what was queued: nothing refused got in
    assert first.endswith(b"\r\n\r\ndata: caf\xc3\xa9\r\n\r\n") and first.count(b"data:") == 1


def test_pings_on_schedule_and_sends_from_another_thread() -> None:
    es, stream = new(ping=0.2)
    start = time.monotonic()
    next(stream)
    assert next(stream) == b":\r\n\r\n"
    assert 0.15 < time.monotonic() - start < 0.5

    threading.Timer(0.05, es.send, ("from a thread",)).start()
    waited = time.monotonic()
    chunk = next(stream)
    assert chunk.startswith(b"data: from a thread\r\n\r\n")
    assert time.monotonic() - waited < 0.15  # woken by the send, not by the next ping


def test_close_from_another_thread_ends_iteration() -> None:
    es, stream = new(ping=30)
    next(stream)
    threading.Timer(0.05, es.close).start()
    start = time.monotonic()
    assert list(stream) == []
    assert time.monotonic() - start < 1


def test_server_closing_the_iterable_fires_close() -> None:
    es, stream = new()
    closed: list[str] = []
    es.on("close", lambda e: closed.append(e.type))
    next(stream)
    es.response.close()  # type: ignore[attr-defined]  # a write failed, the server gives up
    assert closed == ["close"]
    assert es.send("x") is False
    assert list(stream) == []


def test_iterating_the_eventsource_itself() -> None:
    es = EventSource(make_environ(), StartResponse())
    assert next(iter(es)) == b"retry: 5000\r\n\r\n"
    es.close()
    assert list(iter(es)) == []


def test_spawn_runs_the_producer_once_open_and_wait_closed_wakes() -> None:
    es, stream = new()
    started = threading.Event()
    finished = threading.Event()

    def producer(name: str) -> None:
        started.set()
        es.send(name)
        if es.wait_closed(30):
            finished.set()

    es.spawn(producer, "tick")
    assert not started.wait(0.1)  # not before the stream opens
    chunk = next(stream)
    assert started.wait(2)
    if b"tick" not in chunk:
        chunk += next(stream)
    assert chunk == b"retry: 5000\r\n\r\ndata: tick\r\n\r\n"
    assert not es.wait_closed(0.01)
    es.close()
    assert finished.wait(2)


def test_a_failing_producer_closes_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    es, stream = new()

    def producer() -> None:
        raise RuntimeError("boom")

    es.spawn(producer)
    next(stream)
    assert es.wait_closed(2)
    assert "producer failed" in caplog.text
    assert list(stream) == []


def test_close_all_ends_streams_with_a_jittered_retry() -> None:
    streams = [new(retry=2) for _ in range(20)]
    closed: list[EventSource] = []
    for es, stream in streams:
        es.on("close", lambda e: closed.append(e.target))  # type: ignore[arg-type]
        next(stream)
        es.send("last")
    assert close_all() >= len(streams)
    retries = set()
    for es, stream in streams:
        assert es.ready_state == EventSource.CLOSED
        tail = b"".join(stream)  # ends: what was queued, then the retry field
        assert tail.startswith(b"data: last\r\n\r\nretry: "), tail
        retry = int(tail.removeprefix(b"data: last\r\n\r\nretry: ").removesuffix(b"\r\n\r\n"))
        assert 2000 <= retry <= 2000 + SHUTDOWN_RETRY_SPREAD * 1000
        retries.add(retry)
    assert len(retries) > 10  # spread, not one second for all (20 draws from 10,000 ms)
    deadline = time.monotonic() + 5
    while len(closed) < len(streams) and time.monotonic() < deadline:
        time.sleep(0.01)  # close is dispatched in a task of its own
    assert sorted(map(id, closed)) == sorted(id(es) for es, _ in streams)
    assert all(es.go_away() is False for es, _ in streams)  # once only
    live = live_connections()
    assert not any(es in live for es, _ in streams)  # a closed stream is no longer counted


def test_a_gone_client_is_noticed_at_the_next_ping() -> None:

    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        environ = make_environ(**{"gunicorn.socket": server_side})
        es = EventSource(environ, StartResponse(), ping=0.1)
        stream = iter(es.response)
        next(stream)
        client_side.close()
        start = time.monotonic()
        assert list(stream) == []  # ends instead of writing the ping
        assert time.monotonic() - start < 0.5
        assert es.ready_state == EventSource.CLOSED


# -- real servers -----------------------------------------------------------------

SERVERS = ["gevent", "werkzeug", "waitress", "wsgiref", "gunicorn-gevent", "gunicorn-gthread"]
# Each open stream holds a thread of the server: room for 50 clients at once
# (on gthread, faye_sync's default cap keeps a quarter of them for other requests).
OPTIONS: dict[str, dict[str, object]] = {
    "waitress": {"threads": 64},
    "gunicorn-gthread": {"threads": 80},
}


class Stream:
    """One event-stream request: its response, raw body and parsed blocks."""

    def __init__(self, port: int, path: str = "/events", headers: dict[str, str] | None = None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
        self.response = self.conn.getresponse()
        self.body = b""
        self.blocks: list[tuple[float, dict[str, str]]] = []  # (arrival, fields)
        self.ended = False
        self._pending = b""

    def read_until(self, done: Any, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not done(self):
            if self.ended:
                raise AssertionError(f"stream ended early: {self.body!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; so far: {self.body!r}")
            data = self.response.read1(65536)  # bounded by the socket timeout
            if not data:
                self.ended = True
                continue
            now = time.monotonic()
            self.body += data
            self._pending += data
            *blocks, self._pending = self._pending.split(b"\r\n\r\n")
            for block in blocks:
                fields: dict[str, str] = {}
                for line in block.decode().split("\r\n"):
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "data" and "data" in fields:
                        value = fields["data"] + "\n" + value
                    fields[name or "comment"] = value
                self.blocks.append((now, fields))

    def read_to_end(self, timeout: float = 5.0) -> None:
        try:
            self.read_until(lambda s: False, timeout)
        except AssertionError:
            if not self.ended:
                raise

    @property
    def events(self) -> list[dict[str, str]]:
        return [fields for _, fields in self.blocks if "data" in fields]

    @property
    def ids(self) -> list[int]:
        return [int(e["id"]) for e in self.events]

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.response.getheaders() if k.lower() == name.lower()]

    def close(self) -> None:
        self.response.close()
        self.conn.close()


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serve(request.param, APP, **OPTIONS.get(request.param, {})) as running:
        yield running
        assert "Traceback" not in running.log(), running.log()


def stats(server: Server, name: str) -> dict[str, float | None]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", f"/stats?name={name}")
        result: dict[str, float | None] = json.loads(conn.getresponse().read())
        return result
    finally:
        conn.close()


def test_clock_headers_retry_ids_and_pings(server: Server) -> None:
    stream = Stream(server.port)
    try:
        assert stream.response.status == 200
        assert stream.header("Content-Type") == ["text/event-stream; charset=utf-8"]
        assert stream.header("Cache-Control") == ["no-cache, no-store"]
        assert stream.header("X-Accel-Buffering") == ["no"]
        assert stream.header("Content-Length") == []
        stream.read_until(lambda s: any("comment" in f for _, f in s.blocks) and len(s.ids) >= 12)
    finally:
        stream.close()
    assert stream.body.startswith(b"retry: 1000\r\n\r\nevent: tick\r\nid: 1\r\ndata: 1\r\n\r\n")
    assert stream.ids == list(range(1, len(stream.ids) + 1))
    assert all(e == {"event": "tick", "id": e["id"], "data": e["id"]} for e in stream.events)
    arrivals = [t for t, f in stream.blocks if "data" in f]
    assert 0.05 < (arrivals[10] - arrivals[0]) / 10 < 0.2  # one tick per 0.1 s
    first_ping = next(t for t, f in stream.blocks if f == {"comment": ""})
    assert 0.8 < first_ping - stream.blocks[0][0] < 1.5  # ping every 1 s


@pytest.mark.parametrize("how", ["header", "query"])
def test_clock_resumes_after_last_event_id(server: Server, how: str) -> None:
    if how == "header":
        stream = Stream(server.port, headers={"Last-Event-ID": "41"})
    else:
        stream = Stream(server.port, path="/events?lastEventId=41")
    try:
        stream.read_until(lambda s: len(s.ids) >= 2)
    finally:
        stream.close()
    assert stream.ids[:2] == [42, 43]


def test_clock_starts_over_after_an_id_it_never_sent(server: Server) -> None:
    # "²" passes str.isdigit() but not int(): the clock must not fail on it.
    stream = Stream(server.port, path="/events?lastEventId=%C2%B2")
    try:
        stream.read_until(lambda s: len(s.ids) >= 1)
    finally:
        stream.close()
    assert stream.ids[0] == 1
    assert "Traceback" not in server.log()


def test_fifty_concurrent_clients(server: Server) -> None:
    # Connected one after another (wsgiref's listen backlog is 5: a burst of
    # connects would wait on SYN retries), then all read at once.
    streams: list[Stream] = []
    try:
        for _ in range(50):
            streams.append(Stream(server.port))

        def read(stream: Stream) -> list[int]:
            stream.read_until(lambda s: len(s.ids) >= 3, timeout=10)
            return stream.ids[:3]

        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(read, streams))
    finally:
        for stream in streams:
            stream.close()
    assert results == [[1, 2, 3]] * 50


def test_a_client_that_leaves_is_noticed_within_one_ping(server: Server) -> None:
    ping = 0.5
    name = uuid.uuid4().hex
    stream = Stream(server.port, path=f"/stream?name={name}&ping={ping}")
    stream.read_until(lambda s: s.body.startswith(b"retry: 5000\r\n\r\n"))
    left = time.time()
    stream.close()
    deadline = time.monotonic() + 3 * ping + 2
    record = stats(server, name)
    while not (record["closed"] and record["released"] and record["producer_done"]):
        assert time.monotonic() < deadline, record
        time.sleep(0.05)
        record = stats(server, name)
    assert record["opened"] is not None
    # The close event, the server letting go of the response (its thread or
    # greenlet is free again) and the producer's return, all within one ping.
    for key in ("closed", "released", "producer_done"):
        assert record[key] is not None
        assert record[key] - left < ping + 0.35, (key, record[key] - left)


def test_burst_then_close_delivers_everything_and_ends(server: Server) -> None:
    stream = Stream(server.port, path="/burst?n=300")
    try:
        stream.read_to_end()
    finally:
        stream.close()
    assert stream.ended
    assert stream.ids == list(range(1, 301))
    assert stream.events[0]["data"] == "event 1\nsecond line"
    assert b"id: 300\r\ndata: event 300\r\ndata: second line\r\n\r\n" in stream.body
    assert stream.body.endswith(b"second line\r\n\r\n")


def test_custom_headers_and_retry_zero(server: Server) -> None:
    stream = Stream(server.port, path="/custom")
    try:
        stream.read_to_end()
    finally:
        stream.close()
    assert stream.header("Content-Type") == ["text/event-stream"]  # replaced, not doubled
    assert stream.header("X-Custom") == ["yes"]
    assert stream.body == b"retry: 0\r\n\r\ndata: hello\r\n\r\n"


def test_close_all_ends_every_stream_with_a_jittered_retry(server: Server) -> None:
    streams = [Stream(server.port, path=f"/stream?name={uuid.uuid4().hex}") for _ in range(8)]
    try:
        for stream in streams:
            stream.read_until(lambda s: s.body.startswith(b"retry: 5000\r\n\r\n"))
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            conn.request("GET", "/close_all")
            assert int(conn.getresponse().read()) >= len(streams)
        finally:
            conn.close()
        retries = []
        for stream in streams:
            stream.read_to_end()  # the server ends each response (bounded: 5 s)
            assert stream.ended, stream.body
            retries.append(int(stream.blocks[-1][1]["retry"]))
        assert all(5000 <= r <= 5000 + SHUTDOWN_RETRY_SPREAD * 1000 for r in retries), retries
        assert len(set(retries)) > 1, retries  # 8 draws from 10,000 ms: not all the same
    finally:
        for stream in streams:
            stream.close()


@pytest.mark.parametrize("kind", ["wsgiref", "gevent", "werkzeug", "waitress"])
def test_the_clock_script_ends_its_streams_and_exits_on_sigterm(kind: str) -> None:
    port = free_port()
    command = [sys.executable, "-m", "wsgi_examples.clock", "--port", str(port), "--server", kind]
    with run(command, r"serving on http://127\.0\.0\.1:(\d+)/") as server:
        deadline = time.monotonic() + 10
        while True:  # the line is printed just before the server listens
            try:
                stream = Stream(server.port)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.05)
        try:
            stream.read_until(lambda s: len(s.events) >= 2)
            os.kill(server.process.pid, signal.SIGTERM)
            stream.read_to_end()
            assert stream.ended, stream.body
        finally:
            stream.close()
        retry = int(stream.blocks[-1][1]["retry"])  # clock.RETRY (1 s) plus the spread
        assert 1000 <= retry <= 1000 + SHUTDOWN_RETRY_SPREAD * 1000, stream.body[-200:]
        assert server.process.wait(timeout=10) is not None
        assert "Traceback" not in server.log(), server.log()
