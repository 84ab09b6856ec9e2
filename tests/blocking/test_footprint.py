"""What an idle connection holds (issue 14: memory per idle WebSocket).

A server keeps thousands of idle connections: these check that the per-connection
objects stay without an instance dict and make their queues only when used, and
that what the API promises still works (iteration, users' own attributes, ``url``).
"""

from __future__ import annotations

import socket
from typing import Any

from faye_sync.blocking.backends import get_backend
from faye_sync.blocking.connection import Connection
from faye_sync.exceptions import ConnectionClosed
from faye_sync.protocol.hybi import HybiProtocol
from faye_sync.websocket import WebSocket

WAIT = 5.0


def test_the_frame_layer_has_no_instance_dict() -> None:
    protocol = HybiProtocol(is_client=False)
    assert not hasattr(protocol, "__dict__")
    assert protocol.large_frame is None


def test_an_idle_connection_has_no_dict_and_no_queues(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server = Connection(pair[0], HybiProtocol(is_client=False), backend=get_backend("threads"))
    client = Connection(pair[1], HybiProtocol(is_client=True), backend=get_backend("threads"))
    assert not hasattr(server, "__dict__")
    assert client.send("one")
    assert server.receive(timeout=WAIT) == "one"
    assert server.send("two")
    assert client.receive(timeout=WAIT) == "two"
    # Written at once: nothing queued, so no list is kept either.
    assert (server._urgent, server._pending) == (None, None)
    assert server.buffered_amount == 0
    client.go_away(1000, "")
    assert list(server) == []  # reads the close and answers it
    client.run()  # reads the answer


def test_iteration_yields_every_message_then_stops_at_the_close(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server = Connection(pair[0], HybiProtocol(is_client=False), backend=get_backend("threads"))
    client = Connection(pair[1], HybiProtocol(is_client=True), backend=get_backend("threads"))
    for message in ("a", "b", b"c"):
        assert client.send(message)
    client.go_away(1000, "done")
    assert list(server) == ["a", "b", b"c"]
    assert list(server) == []  # closed: a new loop ends at once
    try:
        server.receive(timeout=WAIT)
    except ConnectionClosed as closed:
        assert closed.code == 1000
    else:
        raise AssertionError("receive() after the close must raise ConnectionClosed")
    client.run()  # reads the server's answer to its close


def _environ() -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/chat",
        "QUERY_STRING": "room=1",
        "SERVER_NAME": "example.org",
        "wsgi.url_scheme": "https",
        "HTTP_HOST": "example.org:8443",
    }


def test_a_websocket_takes_users_attributes_and_reports_its_url() -> None:
    # No Upgrade header: refused before any socket is touched.
    ws = WebSocket(_environ(), lambda status, headers: None)
    assert ws.url == "wss://example.org:8443/app/chat?room=1"
    ws.room = "lobby"  # type: ignore[attr-defined]
    assert ws.room == "lobby"  # type: ignore[attr-defined]
    list(ws.response)


def draft_app(environ: dict[str, Any], start_response: Any) -> Any:
    """Accepts hixie drafts: their 101 names the URL, which a WebSocket no longer keeps."""
    with WebSocket(environ, start_response, allow_drafts=True) as ws:
        for message in ws:
            ws.send(message)
    return ws.response


def test_a_draft_handshake_still_names_the_url() -> None:
    from tests.servers import serve

    with serve("gevent", "tests.blocking.test_footprint:draft_app") as server:
        with socket.create_connection((server.host, server.port), timeout=WAIT) as sock:
            sock.sendall(
                b"GET /app/chat?room=1 HTTP/1.1\r\nHost: example.org:8000\r\n"
                b"Upgrade: WebSocket\r\nConnection: Upgrade\r\nOrigin: http://example.org\r\n\r\n"
            )
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                assert chunk, head
                head += chunk
    assert head.startswith(b"HTTP/1.1 101 Web Socket Protocol Handshake\r\n"), head
    assert b"WebSocket-Location: ws://example.org:8000/app/chat?room=1\r\n" in head, head


def test_a_websocket_object_stays_a_small_object() -> None:
    # Under 512 bytes (with its 16-byte GC header) Python's small-object allocator
    # takes it; above, malloc does, with its own overhead. 45 slots (384 bytes on
    # 3.11) since the timer settings are shared, the rarely used state is made when
    # first needed, a refused handshake's error lives in its instance dict and the
    # closing flag is a bit of ``_reported``; the count, unlike the size, is the
    # same on every Python.
    slots = [
        name
        for cls in WebSocket.__mro__
        for name in (
            (cls.__dict__["__slots__"],)
            if isinstance(cls.__dict__.get("__slots__"), str)
            else cls.__dict__.get("__slots__", ())
        )
    ]
    assert len(slots) <= 45, slots
    size = WebSocket.__basicsize__ + 16
    assert size < 512, size


def test_idle_connections_share_their_timeouts_and_make_no_timers(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    threads = get_backend("threads")
    one = Connection(pair[0], HybiProtocol(is_client=False), backend=threads, ping=25.0)
    two = Connection(pair[1], HybiProtocol(is_client=True), backend=threads, ping=25.0)
    assert one._timeouts is two._timeouts
    assert one._timeouts.ping == 25.0 and one._timeouts.send_timeout == 60.0
    assert two.send("one")
    assert one.receive(timeout=WAIT) == "one"
    assert (one._timers, two._timers) == (None, None)  # no timer has run: none made
    two.go_away(1000, "")
    assert list(one) == []
    two.run()
    assert two._timers is not None and two._timers.close is not None  # its close timer


def test_on_type_attributes_work_without_slots_of_their_own(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    threads = get_backend("threads")
    server = Connection(pair[0], HybiProtocol(is_client=False), backend=threads)
    client = Connection(pair[1], HybiProtocol(is_client=True), backend=threads)
    seen: list[Any] = []
    assert server.onmessage is None and not server.has_listeners("message")
    server.onmessage = lambda event: seen.append(("on", event.data))
    server.on("message", lambda event: seen.append(("listener", event.data)))
    assert server.has_listeners("message")
    server.onclose = seen.append
    server.onclose = None  # replaced by nothing: not called
    assert server.onclose is None
    assert client.send("hi")
    client.go_away(1000, "")
    server.run()
    client.run()
    assert seen == [("on", "hi"), ("listener", "hi")]  # onmessage first, as in faye
