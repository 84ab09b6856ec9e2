"""The EventSource client against our own servers (the clock and a test app), scripted
peers for the raw HTTP cases, TLS, the real tinyproxy, and optionally Node's faye-websocket.

Every socket operation has a timeout, every server listens on 127.0.0.1 only, and every
thread started here is joined.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from faye_sync.eventsource_client import (
    MAX_RECONNECTION_TIME,
    EventSourceClient,
    ServerSentEvent,
)
from faye_sync.exceptions import ConcurrencyError, HandshakeError, NetworkError
from faye_sync.protocol.sse_parser import EventTooLargeError
from tests.net.peers import ScriptedServer, Tinyproxy, free_port
from tests.node import node_modules
from tests.servers import Server, serve

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.apps.eventsource_client_app:app"
WAIT = 5.0  # seconds: the bound on anything that should take milliseconds


def take(client: EventSourceClient, n: int) -> list[ServerSentEvent]:
    """The next ``n`` events, failing (not hanging) if they are slow to come."""
    events: list[ServerSentEvent] = []
    deadline = time.monotonic() + WAIT
    for event in client:
        events.append(event)
        if len(events) == n:
            return events
        assert time.monotonic() < deadline, f"only {len(events)} events in {WAIT} s"
    raise AssertionError(f"the iteration ended after {events}")


class Reader:
    """Iterates a client in a thread, recording events and how the iteration ended."""

    def __init__(self, client: EventSourceClient) -> None:
        self.client = client
        self.events: list[ServerSentEvent] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.client:
                self.events.append(event)
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = WAIT) -> float:
        """Join the thread; returns how long that took."""
        start = time.monotonic()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the reader did not stop"
        return time.monotonic() - start


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def seen(server: Server, name: str) -> list[str | None]:
    """The Last-Event-ID header of each request the app saw under ``name``."""
    url = f"http://127.0.0.1:{server.port}/log?name={name}"
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        result: list[str | None] = json.load(response)
    return result


@pytest.fixture(scope="module")
def app_server() -> Iterator[Server]:
    with serve("gevent", APP) as server:
        yield server


def url_of(server: Server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


# -- the clock on three servers ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gevent", "werkzeug", "waitress"])
def test_clock_ticks(kind: str) -> None:
    with serve(kind, "wsgi_examples.clock:app") as server:
        started = time.monotonic()
        with EventSourceClient(url_of(server, "/events"), proxy=False, timeout=WAIT) as client:
            events = take(client, 3)
            assert client.status_code == 200
            assert client.headers["content-type"].startswith("text/event-stream")
            assert client.retry == 1.0  # the clock's "retry: 1000"
            assert client.last_event_id == "3"
        assert client.closed
        # 0.1 s apart: each event is delivered as soon as its blank line is in.
        assert time.monotonic() - started < 2.0
    assert [(e.type, e.id, e.data) for e in events] == [
        ("tick", "1", "1"),
        ("tick", "2", "2"),
        ("tick", "3", "3"),
    ]


def test_resumes_after_last_event_id(app_server: Server) -> None:
    client = EventSourceClient(url_of(app_server, "/events"), last_event_id="41", proxy=False)
    with client:
        assert [e.id for e in take(client, 2)] == ["42", "43"]


# -- reconnection -----------------------------------------------------------------------------


def test_reconnects_after_a_drop_with_last_event_id(app_server: Server) -> None:
    name = uuid.uuid4().hex
    client = EventSourceClient(url_of(app_server, f"/drop?name={name}"), proxy=False, retry=10)
    with client:
        events = take(client, 7)
        assert client.retry == 0.05  # the server's retry replaced ours (10 s)
    assert [e.data for e in events] == [f"drop {n}" for n in range(1, 8)]
    assert [e.id for e in events] == [str(n) for n in range(1, 8)]
    assert seen(app_server, name) == [None, "3", "6"]


def test_a_silent_server_is_left_after_timeout(app_server: Server) -> None:
    name = uuid.uuid4().hex
    client = EventSourceClient(url_of(app_server, f"/silent?name={name}"), proxy=False, timeout=0.3)
    reader = Reader(client)
    wait_until(lambda: len(seen(app_server, name)) >= 3)
    client.close()
    assert reader.join() < 1.0
    assert reader.events == [] and reader.error is None


def test_close_from_another_thread_ends_a_blocked_read(app_server: Server) -> None:
    name = uuid.uuid4().hex
    client = EventSourceClient(url_of(app_server, f"/silent?name={name}"), proxy=False, timeout=30)
    reader = Reader(client)
    wait_until(lambda: len(seen(app_server, name)) == 1)
    time.sleep(0.1)  # into the read
    client.close()
    assert reader.join() < 1.0
    assert reader.error is None
    assert list(client) == []  # stays closed


def test_close_from_another_thread_ends_the_reconnection_wait(app_server: Server) -> None:
    name = uuid.uuid4().hex
    client = EventSourceClient(url_of(app_server, f"/drop?name={name}&retry=30"), proxy=False)
    reader = Reader(client)
    wait_until(lambda: len(reader.events) == 3)
    time.sleep(0.1)  # the stream has ended: waiting 30 s
    client.close()
    assert reader.join() < 1.0
    assert seen(app_server, name) == [None]


def test_close_with_nobody_reading_releases_the_connection(app_server: Server) -> None:
    client = EventSourceClient(url_of(app_server, "/events"), proxy=False)
    take(client, 1)
    sock = client._sock
    assert sock is not None
    client.close()
    assert sock.fileno() == -1
    with pytest.raises(StopIteration):
        next(client)


def test_one_reader_at_a_time(app_server: Server) -> None:
    name = uuid.uuid4().hex
    client = EventSourceClient(url_of(app_server, f"/silent?name={name}"), proxy=False)
    reader = Reader(client)
    wait_until(lambda: len(seen(app_server, name)) == 1)
    with pytest.raises(ConcurrencyError):
        next(client)
    client.close()
    reader.join()


def test_a_refused_connection_is_retried_then_given_up() -> None:
    port = free_port()
    client = EventSourceClient(
        f"http://127.0.0.1:{port}/", proxy=False, retry=0.01, max_retries=3, max_retry_delay=0.02
    )
    started = time.monotonic()
    with pytest.raises(NetworkError, match=r"giving up .* after 4 failed attempts.*ECONNREFUSED"):
        next(client)
    assert time.monotonic() - started < 1.0
    assert client.closed
    assert list(client) == []


def test_backoff_doubles_up_to_the_ceiling_with_jitter() -> None:
    client = EventSourceClient("http://127.0.0.1/", retry=1, max_retry_delay=5)
    assert client._delay(0) == 1  # after a stream that delivered: the plain retry
    for n, backoff in [(1, 1), (2, 2), (3, 4), (4, 5), (5, 5), (10_000, 5)]:
        delays = {client._delay(n) for _ in range(50)}
        assert all(backoff / 2 <= delay <= backoff for delay in delays), (n, delays)
        assert len(delays) > 1  # jittered: clients do not all come back at once
    client.retry = 60  # a server's longer retry is honoured
    assert 30 <= client._delay(3) <= 60
    client.retry = 0
    assert client._delay(0) == 0 and 0.05 <= client._delay(1) <= 0.1  # never a busy loop


def test_retry_zero_and_no_event_backs_off(app_server: Server) -> None:
    """Before: a server answering "retry: 0" and closing got thousands of requests a second."""
    name = uuid.uuid4().hex
    client = EventSourceClient(
        url_of(app_server, f"/quiet?name={name}&retry=0"), proxy=False, max_retries=None
    )
    reader = Reader(client)
    time.sleep(3)
    client.close()
    reader.join()
    assert reader.error is None and reader.events == []
    # 0.1 s doubling with jitter: at most 0.05 + 0.1 + 0.2 + 0.4 + 0.8 + 1.6 in 3 s.
    assert 2 <= len(seen(app_server, name)) <= 8


def test_each_event_resets_the_backoff(app_server: Server) -> None:
    """Ten connections of one event each, with "retry: 0": no waiting between them."""
    name = uuid.uuid4().hex
    url = url_of(app_server, f"/quiet?name={name}&retry=0&events=1")
    with EventSourceClient(url, proxy=False) as client:
        assert [e.data for e in take(client, 10)] == [f"quiet {n}" for n in range(1, 11)]
    assert seen(app_server, name)[:10] == [None, *map(str, range(1, 10))]


def test_a_huge_retry_is_capped_not_fatal(app_server: Server) -> None:
    """Before: "retry: 99999999999999999" raised OverflowError out of the iteration."""
    name = uuid.uuid4().hex
    url = url_of(app_server, f"/quiet?name={name}&retry=99999999999999999&events=1")
    client = EventSourceClient(url, proxy=False)
    reader = Reader(client)
    wait_until(lambda: len(reader.events) == 1)
    time.sleep(0.2)  # the stream has ended: waiting an hour
    assert reader.error is None, reader.error
    assert client.retry == MAX_RECONNECTION_TIME
    client.close()
    assert reader.join() < 1.0
    assert reader.error is None
    assert seen(app_server, name) == [None]


@pytest.mark.parametrize(
    "value", ["", "abc", "-1", "1e3", "1.5", "%205", "5%20", "%D9%A3", "%C2%B2", "0x10"]
)
def test_a_retry_that_is_not_ascii_digits_is_ignored(app_server: Server, value: str) -> None:
    name = uuid.uuid4().hex
    url = url_of(app_server, f"/quiet?name={name}&retry={value}&events=2")
    with EventSourceClient(url, proxy=False, retry=0.25) as client:
        assert len(take(client, 2)) == 2
        assert client.retry == 0.25


# -- refusals: no reconnection ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/nocontent", 204, "answered 204 No Content: the server asks the client to stop"),
        ("/missing", 404, "answered 404 Not Found; an event stream needs 200"),
        ("/html", 200, "Content-Type 'text/html; charset=utf-8', not text/event-stream"),
    ],
)
def test_refusals_stop_with_an_error(
    app_server: Server, path: str, status: int, message: str
) -> None:
    client = EventSourceClient(url_of(app_server, path), proxy=False, retry=0)
    with pytest.raises(HandshakeError, match=re.escape(message)) as info:
        next(client)
    assert info.value.status == status
    assert client.status_code == status
    assert client.closed
    assert list(client) == []


def test_an_oversized_event_stops_after_the_events_before_it(app_server: Server) -> None:
    client = EventSourceClient(url_of(app_server, "/big?size=2000"), max_event_size=1000)
    assert next(client).data == "small"
    with pytest.raises(EventTooLargeError, match=r"max_event_size \(1000 bytes\)"):
        next(client)
    assert client.closed
    with EventSourceClient(url_of(app_server, "/big?size=1000"), max_event_size=1000) as client:
        assert [len(e.data) for e in take(client, 2)] == [5, 1000]


def test_chunked_pieces_with_every_line_ending(app_server: Server) -> None:
    with EventSourceClient(url_of(app_server, "/raw"), proxy=False) as client:
        events = take(client, 3)
        assert client.retry == 0.05
    assert events[:2] == [
        ServerSentEvent(type="raw", data="one\ntwo é", id="1"),
        ServerSentEvent(type="message", data="three", id="2"),
    ]
    assert events[2].data == "one\ntwo é"  # reconnected; the app has no memory


# -- raw HTTP from a scripted peer -------------------------------------------------------------

STREAM = b"retry: 20\r\n\r\nid: 7\r\ndata: seven\r\n\r\n"


def chunked(body: bytes, size: int = 5) -> bytes:
    out = b""
    for i in range(0, len(body), size):
        piece = body[i : i + size]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
    return out


def test_request_head_and_last_event_id_on_reconnection() -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Type: Text/Event-Stream;charset=utf-8\r\n\r\n" + STREAM
    with ScriptedServer(response, then_close=True) as peer:
        url = f"http://user:p%40ss@127.0.0.1:{peer.port}/path?q=1#frag"
        client = EventSourceClient(url, headers={"X-Token": "abc"}, last_event_id="é1")
        with client:
            assert [e.id for e in take(client, 2)] == ["7", "7"]
        first, second = peer.requests[:2]
    assert first.startswith(b"GET /path?q=1 HTTP/1.1\r\n")
    for line in (
        b"Host: 127.0.0.1:%d" % peer.port,
        b"Accept: text/event-stream",
        b"Cache-Control: no-cache",
        b"Authorization: Basic dXNlcjpwQHNz",  # user:p@ss
        b"X-Token: abc",
        "Last-Event-ID: é1".encode(),
    ):
        assert line + b"\r\n" in first
    assert b"Last-Event-ID: 7\r\n" in second
    assert b"frag" not in first


def test_no_last_event_id_header_when_empty() -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nid\ndata: x\n\n"
    with ScriptedServer(response, then_close=True) as peer:
        client = EventSourceClient(f"http://127.0.0.1:{peer.port}/", last_event_id="3", retry=0)
        with client:
            assert [e.id for e in take(client, 2)] == ["", ""]
        assert b"Last-Event-ID: 3\r\n" in peer.requests[0]
        assert b"Last-Event-ID" not in peer.requests[1]


def test_a_chunked_body_one_byte_at_a_time() -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with ScriptedServer(head + chunked(STREAM), chunk=1) as peer:
        with EventSourceClient(f"http://127.0.0.1:{peer.port}/") as client:
            assert take(client, 1) == [ServerSentEvent(data="seven", id="7")]
            assert client.retry == 0.02


def test_an_event_arrives_while_the_stream_stays_open() -> None:
    # The peer sends one event and then nothing: no read may wait for more bytes.
    response = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: now\n\n"
    with ScriptedServer(response) as peer:
        with EventSourceClient(f"http://127.0.0.1:{peer.port}/", timeout=30) as client:
            started = time.monotonic()
            assert next(client).data == "now"
            assert time.monotonic() - started < 1.0


def test_a_broken_chunked_body_reconnects() -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    body = chunked(b"id: 1\ndata: a\n\n") + b"zz\r\n"
    with ScriptedServer(head + body) as peer:
        with EventSourceClient(f"http://127.0.0.1:{peer.port}/", retry=0.01) as client:
            assert [e.data for e in take(client, 2)] == ["a", "a"]
        assert b"Last-Event-ID: 1\r\n" in peer.requests[1]


@pytest.mark.parametrize(
    ("response", "status"),
    [
        (b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n", 302),
        (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", 503),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200),
    ],
)
def test_scripted_refusals(response: bytes, status: int) -> None:
    with ScriptedServer(response, then_close=True) as peer:
        client = EventSourceClient(f"http://127.0.0.1:{peer.port}/", retry=0)
        with pytest.raises(HandshakeError) as info:
            next(client)
        assert info.value.status == status
        assert len(peer.requests) == 1


def test_garbage_instead_of_http_is_retried() -> None:
    with ScriptedServer(b"SSH-2.0-OpenSSH\r\n\r\n", then_close=True) as peer:
        client = EventSourceClient(
            f"http://127.0.0.1:{peer.port}/", retry=0.01, max_retries=1, max_retry_delay=0.01
        )
        with pytest.raises(HandshakeError, match="Parse Error"):
            next(client)
    assert len(peer.requests) == 1  # a response that does not parse is not retried


# -- TLS and proxies ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_server(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    key_file, cert_file = directory / "key.pem", directory / "cert.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    with serve("gevent", APP, keyfile=str(key_file), certfile=str(cert_file)) as server:
        yield server


def test_over_tls(tls_server: Server, ca: trustme.CA, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    url = f"https://127.0.0.1:{tls_server.port}/events"
    with EventSourceClient(url, tls={"ca": str(ca_file)}, proxy=False) as client:
        assert [e.id for e in take(client, 3)] == ["1", "2", "3"]
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with EventSourceClient(url, tls=context, proxy=False) as client:
        assert next(client).id == "1"
    # faye's ca= shorthand, as the WebSocket client takes it.
    with EventSourceClient(url, ca=str(ca_file), proxy=False) as client:
        assert next(client).id == "1"
    with pytest.raises(TypeError, match="ca cannot be combined with an SSLContext"):
        EventSourceClient(url, tls=context, ca=str(ca_file))


def test_an_unknown_certificate_is_refused_at_once(tls_server: Server) -> None:
    url = f"https://127.0.0.1:{tls_server.port}/events"
    client = EventSourceClient(url, proxy=False, retry=0.01, max_retries=None)
    with pytest.raises(NetworkError, match="certificate verify failed"):
        next(client)


def test_through_tinyproxy(app_server: Server, tmp_path: Path) -> None:
    try:
        proxy = Tinyproxy(tmp_path)
    except FileNotFoundError:
        pytest.skip("tinyproxy is not installed (Debian: apt-get install -y tinyproxy)")
    name = uuid.uuid4().hex
    with proxy:
        url = url_of(app_server, f"/drop?name={name}")
        with EventSourceClient(url, proxy=proxy.origin()) as client:
            assert [e.id for e in take(client, 4)] == ["1", "2", "3", "4"]
        assert "CONNECT" in proxy.log()
    assert seen(app_server, name) == [None, "3"]


# -- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options", "error", "match"),
    [
        ("ws://127.0.0.1/", {}, ValueError, "not an http:// or https:// URL"),
        ("http:///nohost", {}, ValueError, "not an http"),
        ("http://127.0.0.1:99999/", {}, ValueError, "not a valid URL"),
        ("http://u:secret@[::1/", {}, ValueError, r"^<invalid URL> is not a valid URL$"),
        ("http://u:secret@h:x/", {}, ValueError, r"^http://h:x/ is not a valid URL$"),
        ("http://h/", {"headers": {"X-A": "1\r\nX-B: 2"}}, ValueError, "CR, LF or NUL"),
        ("http://h/", {"headers": {"Bad Name": "1"}}, ValueError, "invalid HTTP header name"),
        ("http://h/", {"headers": {"last-event-id": "1"}}, ValueError, "last_event_id="),
        ("http://h/", {"headers": [("Content-Length", "1")]}, ValueError, "no body"),
        ("http://h/", {"headers": {"X-A": "€"}}, ValueError, "not latin-1"),
        ("http://h/", {"last_event_id": "1\n2"}, ValueError, "CR, LF or NUL"),
        ("http://h/", {"retry": -1}, ValueError, "retry must be"),
        ("http://h/", {"retry": "1"}, TypeError, "retry must be"),
        ("http://h/", {"retry": 3601}, ValueError, "retry must be at most 3600 seconds"),
        ("http://h/", {"max_retry_delay": 1e300}, ValueError, "max_retry_delay must be at most"),
        ("http://h/", {"timeout": 0}, ValueError, "timeout must be"),
        ("http://h/", {"max_event_size": 0}, ValueError, "max_event_size"),
        ("http://h/", {"max_retries": -1}, ValueError, "max_retries"),
        ("http://h/", {"proxy": {"origin": "http://p", "nope": 1}}, TypeError, "Unrecognized"),
        ("https://h/", {"tls": {"nope": 1}}, TypeError, "Unrecognized"),
    ],
)
def test_invalid_options(url: str, options: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        EventSourceClient(url, **options)


def test_headers_replace_defaults_and_repr_hides_credentials() -> None:
    client = EventSourceClient(
        "https://me:secret@example.com/s", headers=[("accept", "text/event-stream;q=1")]
    )
    request = client._http.request_bytes()
    assert b"accept: text/event-stream;q=1\r\n" in request
    assert b"Accept: text/event-stream\r\n" not in request
    assert b"Host: example.com\r\n" in request
    assert "secret" not in repr(client)


# -- Node's faye-websocket (optional) ----------------------------------------------------------

NODE_SERVER = r"""
var http = require('http');
var EventSource = require('faye-websocket').EventSource;
var server = http.createServer(function (request, response) {
  if (!EventSource.isEventSource(request)) {
    response.writeHead(404);
    response.end();
    return;
  }
  var es = new EventSource(request, response, {ping: 1, retry: 0.05});
  var n = parseInt(es.lastEventId || '0', 10);
  var timer = setInterval(function () {
    n += 1;
    es.send('node ' + n + '\nline two', {event: 'tick', id: String(n)});
    if (n % 3 === 0) es.close();
  }, 20);
  es.onclose = function () { clearInterval(timer); };
});
server.listen(0, '127.0.0.1', function () {
  console.log('PORT ' + server.address().port);
});
process.on('SIGTERM', function () { process.exit(0); });
"""


@pytest.mark.node
def test_against_node_faye_websocket(tmp_path: Path) -> None:
    modules = node_modules()
    script = tmp_path / "server.js"
    script.write_text(NODE_SERVER)
    env = dict(os.environ, NODE_PATH=str(modules))
    process = subprocess.Popen(
        ["node", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = threading.Event()
        lines: list[str] = []

        def read_port() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if line.startswith("PORT "):
                    ready.set()
                    return

        watcher = threading.Thread(target=read_port, daemon=True)
        watcher.start()
        assert ready.wait(WAIT * 2), "".join(lines)
        watcher.join(WAIT)
        port = int(lines[-1].split()[1])
        with EventSourceClient(f"http://127.0.0.1:{port}/", proxy=False) as client:
            events = take(client, 5)
            assert client.retry == 0.05
    finally:
        process.terminate()
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(WAIT)
        if process.stdout is not None:
            process.stdout.close()
    # faye ends the response after 3 events; the client resumed with Last-Event-ID: 3.
    assert [(e.type, e.id, e.data) for e in events] == [
        ("tick", str(n), f"node {n}\nline two") for n in range(1, 6)
    ]


# -- under gevent ---------------------------------------------------------------------------


def run_gevent_clients(*args: str) -> dict[str, Any]:
    script = [sys.executable, "-m", "tests.apps.gevent_eventsource_clients", *args]
    result = subprocess.run(script, capture_output=True, text=True, timeout=90, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_clients_in_greenlets_of_a_monkey_patched_process_share_it_with_the_server() -> None:
    # The server is a greenlet of the same process: a client blocking the hub would
    # starve it, and no client would get a single event.
    report = run_gevent_clients("patched")
    assert report["ids"] == [["1", "2", "3", "4", "5"]] * 3


def test_backend_gevent_reads_without_blocking_the_hub() -> None:
    with serve("gevent", "wsgi_examples.clock:app") as server:
        report = run_gevent_clients("backend", str(server.port))
    assert report["ids"] == [["1", "2", "3", "4", "5"]] * 3
    # Five ticks of the clock take 0.5 s at the least; a ticker sleeping 10 ms ran
    # meanwhile unless the reads held the hub (it would then run a few times in all).
    assert report["ticks"] >= 10, report
