"""The chat demo, driven through its command line: WebSocket clients and raw HTTP for the feed.

The demo process is started by tests/chat_demo.py (the browser test uses it too).
"""

from __future__ import annotations

import codecs
import contextlib
import http.client
import itertools
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.chat_demo import TIMEOUT, Demo, run_demo
from tests.hub_cluster.clients import drain, id_key, silent_chat_socket
from wsgi_examples.chat import CLOSE_TIMEOUT, HISTORY


class EventStreamParser:
    """The event-stream format as a browser parses it: ``events`` (their fields) and ``retry``.

    Bytes arrive in pieces cut anywhere: inside a UTF-8 character, or between the CR and the
    LF of a line's CRLF (which is one line end, not a line end and a blank line).
    """

    def __init__(self) -> None:
        self.events: list[dict[str, str]] = []
        self.retry: str | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._pending = ""
        self._fields: dict[str, str] = {}

    def feed(self, data: bytes) -> None:
        text = self._pending + self._decoder.decode(data)
        # A CR at the end may be the first half of a CRLF: its line ends with the next piece.
        held = "\r" if text.endswith("\r") else ""
        *lines, rest = re.split(r"\r\n|\r|\n", text.removesuffix(held))
        self._pending = rest + held
        for line in lines:
            self._line(line)

    def _line(self, line: str) -> None:
        if not line:  # a blank line dispatches the event
            if "data" in self._fields:
                self.events.append(self._fields)
            self._fields = {}
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "retry":
            self.retry = value
        elif name == "data" and "data" in self._fields:
            self._fields["data"] += "\n" + value
        elif name:  # an empty name is a comment (the keep-alive ping)
            self._fields[name] = value


class Feed:
    """A raw HTTP reader of ``/events`` that parses the stream as a browser would."""

    def __init__(self, port: int, headers: dict[str, str] | None = None, path: str = "/events"):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
        self.response = self.conn.getresponse()
        self.parser = EventStreamParser()
        self.ended = False

    @property
    def events(self) -> list[dict[str, str]]:
        return self.parser.events

    @property
    def retry(self) -> str | None:
        return self.parser.retry

    def read_until(self, done: Callable[[Feed], bool], timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not done(self):
            if self.ended or time.monotonic() > deadline:
                raise AssertionError(f"feed ended or timed out; events so far: {self.events}")
            data = self.response.read1(65536)  # bounded by the socket timeout
            if not data:
                self.ended = True
            self.parser.feed(data)

    def chats(self) -> list[tuple[str, str, str]]:
        """(id, name, text) of the chat events so far."""
        found = []
        for event in self.events:
            if event.get("event") == "chat":
                data = json.loads(event["data"])
                found.append((event["id"], data["name"], data["text"]))
        return found

    def has_text(self, text: str) -> Callable[[Feed], bool]:
        return lambda feed: any(t == text for _, _, t in feed.chats())

    @property
    def ids(self) -> list[str]:
        return [event["id"] for event in self.events]

    def close(self) -> None:
        self.response.close()
        self.conn.close()


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with run_demo() as running:
        yield running
        assert "Traceback" not in running.log()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def say(demo: Demo, name: str, text: str) -> str:
    """Send ``text`` as ``name`` and return its id once the server has broadcast it."""
    with connect(demo.ws_url(name), open_timeout=TIMEOUT) as ws:
        ws.send(text)
        message = json.loads(ws.recv(timeout=TIMEOUT))
        assert message["text"] == text
        return str(message["id"])


def in_order(ids: list[str]) -> bool:
    """The ids increase and never repeat."""
    return ids == sorted(set(ids), key=id_key)


def test_the_feed_parser_takes_a_stream_cut_anywhere() -> None:
    """What the server writes may reach the client in pieces cut at any byte."""
    stream = (
        b"retry: 1000\r\n\r\n:\r\n\r\nevent: chat\r\nid: 1-0\r\ndata: \xe2\x9c\x93 one\r\n\r\n"
        b"id: 2-0\rdata: a\ndata: b\r\n\n"
    )
    expected = [
        {"event": "chat", "id": "1-0", "data": "\u2713 one"},
        {"id": "2-0", "data": "a\nb"},
    ]
    for cut in range(len(stream) + 1):
        parser = EventStreamParser()
        parser.feed(stream[:cut])
        parser.feed(stream[cut:])
        assert (parser.events, parser.retry) == (expected, "1000"), f"cut at byte {cut}"


# -- the page -------------------------------------------------------------------------


def test_page_is_html(demo: Demo) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200
        assert response.getheader("Content-Type") == "text/html; charset=utf-8"
        assert "<title>faye_sync chat</title>" in body
        assert 'new EventSource("/events"' in body
        # User text goes in with textContent only.
        assert ".innerHTML" not in body
        assert "insertAdjacentHTML" not in body

        conn.request("GET", "/nowhere")
        response = conn.getresponse()
        response.read()
        assert response.status == 404

        conn.request("GET", "/chat")  # not an upgrade
        response = conn.getresponse()
        response.read()
        assert response.status == 400
    finally:
        conn.close()


# -- the chat -------------------------------------------------------------------------


def test_broadcast_reaches_every_socket_sender_included(demo: Demo) -> None:
    names = [unique(n) for n in ("ann", "bob", "cy")]
    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(connect(demo.ws_url(n), open_timeout=TIMEOUT)) for n in names
        ]
        # Until a socket's own message comes back, it may not have joined yet.
        for name, ws in zip(names, sockets, strict=True):
            ws.send(f"hello from {name}")
            while json.loads(ws.recv(timeout=TIMEOUT))["name"] != name:
                pass
        for ws in sockets:  # drop what arrived before every socket had joined
            with contextlib.suppress(TimeoutError):
                while True:
                    ws.recv(timeout=0.2)

        sockets[0].send(b"binary is ignored")
        sockets[0].send("Hello, <b>everyone</b> ✓")
        received = [json.loads(ws.recv(timeout=TIMEOUT)) for ws in sockets]
        assert [m["name"] for m in received] == [names[0]] * 3
        assert [m["text"] for m in received] == ["Hello, <b>everyone</b> ✓"] * 3
        assert len({m["id"] for m in received}) == 1

        sockets[2].send("and back")
        received = [json.loads(ws.recv(timeout=TIMEOUT)) for ws in sockets]
        assert [(m["name"], m["text"]) for m in received] == [(names[2], "and back")] * 3


def test_name_from_query_string(demo: Demo) -> None:
    with connect(
        f"ws://127.0.0.1:{demo.port}/chat?name=%C3%89lo%C3%AFse%0Ax", open_timeout=TIMEOUT
    ) as ws:
        ws.send("hi")
        assert json.loads(ws.recv(timeout=TIMEOUT))["name"] == "Éloïse x"
    with connect(f"ws://127.0.0.1:{demo.port}/chat", open_timeout=TIMEOUT) as ws:
        ws.send("hi")
        assert json.loads(ws.recv(timeout=TIMEOUT))["name"] == "anonymous"


def test_a_chat_socket_resumes_after_its_last_event_id(demo: Demo) -> None:
    name = unique("back")
    first = say(demo, name, "before")
    missed = [unique("missed") for _ in range(3)]
    for text in missed:
        say(demo, "other", text)
    url = f"{demo.ws_url(name)}&lastEventId={first}"
    with connect(url, open_timeout=TIMEOUT) as ws:
        got = [json.loads(ws.recv(timeout=TIMEOUT)) for _ in missed]
        assert [m["text"] for m in got] == missed, "exactly what it missed, in order"
        assert in_order([first, *(m["id"] for m in got)])
        ws.send("and live")
        assert json.loads(ws.recv(timeout=TIMEOUT))["text"] == "and live"


def test_a_chat_socket_that_never_reads_does_not_stall_the_room(demo: Demo) -> None:
    """Issue 13, item 5 (the demo's half): one silent member is cut off, the others go on."""
    silent = silent_chat_socket(demo.port)
    # 2,000 characters each (the most the demo takes): 8 MB in all, more than the kernel's
    # socket buffers (a few MB on loopback) and the hub's queue (1 MiB) hold together.
    count, text = 4000, "x" * 1990 + "{n:>10}"
    try:
        with (
            connect(demo.ws_url(unique("talker")), open_timeout=TIMEOUT) as talker,
            connect(demo.ws_url(unique("reader")), open_timeout=TIMEOUT) as reader,
        ):
            got: dict[ClientConnection, list[str]] = {talker: [], reader: []}
            for n in range(count):
                talker.send(text.format(n=n))
                if n % 100 == 99:  # the others get everything so far, promptly
                    for ws, texts in got.items():
                        while not texts or texts[-1] != text.format(n=n):
                            texts.append(json.loads(ws.recv(timeout=TIMEOUT))["text"])
        frames, code, ended = drain(silent, CLOSE_TIMEOUT + 10)
    finally:
        silent.close()
    for texts in got.values():
        assert texts == [text.format(n=n) for n in range(count)], "the others lost nothing"
    assert frames < count, f"the silent socket was sent all {count}: never cut off"
    # Cut off: a close frame (1013, try again later) when it could still be written, and
    # the connection ends within the demo's close timeout in any case.
    assert ended, "the silent socket is still open"
    assert code in (1013, None), code


# -- the feed -------------------------------------------------------------------------


def test_feed_has_ids_and_resumes_after_last_event_id(demo: Demo) -> None:
    name = unique("feed")
    texts = [unique("m") for _ in range(3)]
    feed = Feed(demo.port)
    try:
        assert feed.response.status == 200
        assert feed.response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        first = say(demo, name, texts[0])
        feed.read_until(feed.has_text(texts[0]))
        assert feed.retry == "1000"
        assert in_order(feed.ids)
        assert re.fullmatch(r"\d+-\d+", first), "the hub's ids"
        assert (first, name, texts[0]) in feed.chats()

        # Joins and leaves are in the feed too.
        def mine(feed: Feed) -> list[str]:
            return [e["event"] for e in feed.events if json.loads(e["data"])["name"] == name]

        feed.read_until(lambda f: "leave" in mine(f))
        assert mine(feed) == ["join", "chat", "leave"]
    finally:
        feed.close()

    # While this client is away, more is said.
    for text in texts[1:3]:
        say(demo, name, text)

    resumes = [
        Feed(demo.port, {"Last-Event-ID": str(first)}),
        Feed(demo.port, path=f"/events?lastEventId={first}"),  # what a reloaded page uses
    ]
    try:
        live = unique("live")
        for feed in resumes:
            feed.read_until(feed.has_text(texts[2]))
        say(demo, name, live)
        for feed in resumes:
            feed.read_until(feed.has_text(live))  # then it streams live
            assert id_key(feed.ids[0]) > id_key(first), "nothing up to Last-Event-ID is sent again"
            assert in_order(feed.ids)
            assert [t for _, _, t in feed.chats()] == [*texts[1:3], live]
    finally:
        for feed in resumes:
            feed.close()


def test_history_is_bounded_and_a_trimmed_id_gets_a_reset(demo: Demo) -> None:
    name = unique("many")
    texts = [f"{name} {n}" for n in range(HISTORY + 20)]
    ids = []
    with connect(demo.ws_url(name), open_timeout=TIMEOUT) as ws:
        for text in texts:  # one at a time, as people type
            ws.send(text)
            while (message := json.loads(ws.recv(timeout=TIMEOUT)))["text"] != text:
                pass
            ids.append(message["id"])
    # A first connection gets the history the room keeps: the last messages, in order.
    feed = Feed(demo.port)
    try:
        feed.read_until(feed.has_text(texts[-1]))
        mine = [t for _, _, t in feed.chats() if t.startswith(f"{name} ")]
        assert HISTORY <= len(mine) < len(texts), "the oldest are gone, the last HISTORY kept"
        assert mine == texts[-len(mine) :]
        assert in_order(feed.ids)
        oldest_kept = feed.chats()[0][0]
    finally:
        feed.close()
    # An id older than what is kept (trimmed), or from before the room's store started
    # (a restart): a reset event says so, then the history follows.
    for last_id, reason in ((ids[0], "trimmed"), ("1-0", "epoch")):
        feed = Feed(demo.port, {"Last-Event-ID": last_id})
        try:
            feed.read_until(feed.has_text(texts[-1]))
            # One reset per channel that lost something, before anything after it.
            resets = list(itertools.takewhile(lambda e: e["event"] == "reset", feed.events))
            rest = feed.events[len(resets) :]
            assert resets, "the gap is said"
            assert {json.loads(r["data"])["reason"] for r in resets} == {reason}
            assert "chat" in {json.loads(r["data"])["channel"] for r in resets}
            assert next(e["id"] for e in rest if e["event"] == "chat") == oldest_kept
            assert in_order([e["id"] for e in rest])
            assert all(e["event"] != "reset" for e in rest)
        finally:
            feed.close()


def test_a_last_event_id_that_is_not_ours_gets_the_history(demo: Demo) -> None:
    text = unique("any")
    say(demo, "x", text)
    fresh = Feed(demo.port)
    try:
        fresh.read_until(fresh.has_text(text))
    finally:
        fresh.close()
    for last_id in ("²", "abc", "-1", "", "12"):
        feed = Feed(demo.port, {"Last-Event-ID": last_id})
        try:
            feed.read_until(feed.has_text(text))
            assert feed.response.status == 200
            assert feed.ids[0] == fresh.ids[0], "the same history as a first connection"
        finally:
            feed.close()


# -- shutting down --------------------------------------------------------------------


def test_sigterm_says_going_away_and_exits() -> None:
    with run_demo() as demo:
        feed = Feed(demo.port)  # the first page load, on a room where nothing was said yet
        try:
            with connect(demo.ws_url("leaver"), open_timeout=TIMEOUT) as ws:
                ws.send("bye")
                ws.recv(timeout=TIMEOUT)
                feed.read_until(feed.has_text("bye"))
                assert [e["event"] for e in feed.events] == ["join", "chat"], "and no reset"
                started = time.monotonic()
                os.kill(demo.process.pid, signal.SIGTERM)
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=TIMEOUT)
                assert ws.close_code == 1001  # "going away"
                feed.read_until(lambda f: f.ended)  # the stream ends cleanly
        finally:
            feed.close()
        assert demo.process.wait(timeout=TIMEOUT) == 0
        assert time.monotonic() - started < 4
        log = demo.log()
        assert "chat stopped" in log
        assert "Traceback" not in log
        assert '"GET /chat?name=leaver HTTP/1.1" 101' in log  # the handler finished
