"""Chat clients that count what they get: chat sockets and feeds that resume after a drop.

A :class:`Subscriber` runs in its own thread. It connects to the first port of its list and,
when the connection ends (a worker killed, a master stopped, a stream ended), reconnects to
the next port with the last id it saw (``lastEventId=`` for a chat socket, ``Last-Event-ID``
for a feed), as the page's JavaScript and a browser's EventSource do. Every wait is bounded.

:func:`tally` turns what one subscriber got into counts against what the publisher had
accepted: delivered, lost, duplicated, and the gaps announced by a ``reset`` event.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from tests.wire import upgrade_request

HOST = "127.0.0.1"
TIMEOUT = 5.0  # seconds: connect and handshake bounds
POLL = 0.25  # seconds a read waits before checking whether to stop
RECONNECT_DELAY = 0.1  # seconds between a drop and the next attempt


def id_key(message_id: str) -> tuple[int, int]:
    """A hub id ("<ms>-<seq>") as a pair that sorts as the ids do."""
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class Delivery:
    id: str
    event: str  # "chat", "join", "leave" or "reset"
    data: dict[str, Any]


@dataclass
class Subscriber:
    """A chat socket (``kind="ws"``) or a feed (``kind="sse"``) that reconnects and resumes."""

    kind: str
    ports: Sequence[int]
    name: str = "counter"
    last_id: str = ""  # where the first connection resumes from ("" = live / all retained)
    reconnect: bool = True
    deliveries: list[Delivery] = field(default_factory=list)
    connects: int = 0  # connections that were accepted (101 or 200)
    drops: list[str] = field(default_factory=list)  # why each connection ended
    close_codes: list[int | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"{self.kind}-{self.name}")
        self._thread.daemon = True

    # -- control -------------------------------------------------------------------

    def start(self) -> Subscriber:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT + 2 * POLL)
        assert not self._thread.is_alive(), f"{self.name} did not stop"

    def wait_for(self, done: Callable[[Subscriber], bool], timeout: float, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not done(self):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.kind} {self.name}: not {what or 'done'} after {timeout} s; "
                    f"{len(self.deliveries)} deliveries, {self.connects} connects, "
                    f"drops {self.drops[-3:]}"
                )
            time.sleep(0.02)

    def wait_connected(self, connects: int = 1, timeout: float = 10.0) -> None:
        self.wait_for(lambda s: s.connects >= connects, timeout, f"connected {connects} times")

    # -- what it got -----------------------------------------------------------------

    def chat_ids(self) -> list[str]:
        with self._lock:
            return [d.id for d in self.deliveries if d.event == "chat"]

    def texts(self) -> list[str]:
        with self._lock:
            return [d.data["text"] for d in self.deliveries if d.event == "chat"]

    def resets(self) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.event == "reset"]

    def has_ids(self, ids: Iterable[str]) -> bool:
        return set(ids) <= set(self.chat_ids())

    # -- the connection loop ---------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            port = self.ports[attempt % len(self.ports)]
            attempt += 1
            try:
                if self.kind == "ws":
                    self._chat_socket(port)
                else:
                    self._feed(port)
                self.drops.append("ended")
            except (OSError, ConnectionClosed, InvalidHandshake, ValueError) as error:
                self.drops.append(f"{type(error).__name__}: {error}")
            if not self.reconnect:
                return
            self._stop.wait(RECONNECT_DELAY)

    def _add(self, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries.append(delivery)
            self.last_id = delivery.id

    def _chat_socket(self, port: int) -> None:
        url = f"ws://{HOST}:{port}/chat?name={quote(self.name)}"
        if self.last_id:
            url += f"&lastEventId={quote(self.last_id)}"
        with connect(url, open_timeout=TIMEOUT, close_timeout=1, max_size=None) as ws:
            self.connects += 1
            try:
                while not self._stop.is_set():
                    try:
                        message = json.loads(ws.recv(timeout=POLL))
                    except TimeoutError:
                        continue
                    if "reset" in message:
                        self._add(Delivery(message["id"], "reset", message["reset"]))
                    elif "id" in message:
                        self._add(Delivery(message["id"], "chat", message))
            finally:
                self.close_codes.append(ws.close_code)

    def _feed(self, port: int) -> None:
        """A feed over HTTP/1.0 on a raw socket: no chunking, and a read timeout is harmless."""
        headers = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id else ""
        request = (
            f"GET /events HTTP/1.0\r\nHost: {HOST}:{port}\r\n"
            f"Accept: text/event-stream\r\n{headers}\r\n"
        )
        with socket.create_connection((HOST, port), timeout=TIMEOUT) as sock:
            sock.sendall(request.encode())
            sock.settimeout(POLL)
            parser = _EventStreamParser()
            head = b""
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return  # the stream ended: resume elsewhere
                if parser.head_done:
                    events = parser.feed(data)
                else:
                    head += data
                    if b"\r\n\r\n" not in head:
                        continue
                    status_line, _, rest = head.partition(b"\r\n")
                    if b" 200 " not in status_line + b" ":
                        raise ValueError(f"feed answered {status_line!r}")
                    self.connects += 1
                    parser.head_done = True
                    events = parser.feed(rest.partition(b"\r\n\r\n")[2])
                for event in events:
                    self._add(event)


class _EventStreamParser:
    """Just enough of the WHATWG event-stream parser: ``id``, ``event``, ``data``."""

    def __init__(self) -> None:
        self.head_done = False
        self._pending = b""
        self._fields: dict[str, str] = {}

    def feed(self, data: bytes) -> list[Delivery]:
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        found = []
        for raw in lines:
            line = raw.rstrip(b"\r").decode()
            if not line:
                if "data" in self._fields:
                    fields, self._fields = self._fields, {}
                    found.append(
                        Delivery(
                            fields.get("id", ""),
                            fields.get("event", "message"),
                            json.loads(fields["data"]),
                        )
                    )
                self._fields = {}
                continue
            name, _, value = line.partition(":")
            if name:  # an empty name is a comment (the keep-alive ping)
                self._fields[name] = value.removeprefix(" ")
        return found


# -- a chat member that never reads ----------------------------------------------------


def silent_chat_socket(port: int) -> socket.socket:
    """A chat socket that completes its handshake and then never reads (tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(upgrade_request("/chat?name=silent", f"127.0.0.1:{port}"))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # one byte at a time: nothing after the head is read
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def drain(sock: socket.socket, timeout: float) -> tuple[int, int | None, bool]:
    """Read what the server sent until it closes: (text frames, close code or None, ended).

    ``ended``: the server closed the connection (EOF or reset) within ``timeout``.
    """
    sock.settimeout(1)
    data = b""
    ended = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not ended:
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            continue
        except ConnectionResetError:
            chunk = b""
        ended = not chunk
        data += chunk
    frames, code, pos = 0, None, 0
    while pos + 2 <= len(data):
        opcode, length, pos = data[pos] & 0x0F, data[pos + 1] & 0x7F, pos + 2
        if length == 126:
            length, pos = int.from_bytes(data[pos : pos + 2], "big"), pos + 2
        elif length == 127:
            length, pos = int.from_bytes(data[pos : pos + 8], "big"), pos + 8
        payload, pos = data[pos : pos + length], pos + length
        if opcode == 1:
            frames += 1
        elif opcode == 8 and len(payload) >= 2:
            code = int.from_bytes(payload[:2], "big")
    return frames, code, ended


# -- counting ---------------------------------------------------------------------------


@dataclass
class Tally:
    """What one subscriber got of the ``accepted`` ids."""

    expected: int
    delivered: int  # accepted ids it got (once or more)
    lost: int  # accepted ids it never got, with no reset announcing them
    duplicated: int  # extra copies of accepted ids
    announced: int  # accepted ids it never got, inside a gap a reset announced
    resets: int


def tally(subscriber: Subscriber, accepted: Sequence[str]) -> Tally:
    """Count ``subscriber``'s chat deliveries against the ids a publisher was given.

    A reset at position p announces the gap from the id the client had asked for (its
    ``last_id`` field) up to the next chat message after it: an accepted id missing
    from that range is "announced", any other missing id is "lost".
    """
    with subscriber._lock:
        deliveries = list(subscriber.deliveries)
    wanted = set(accepted)
    got = [d.id for d in deliveries if d.event == "chat" and d.id in wanted]
    unique = set(got)
    gaps = []
    for index, delivery in enumerate(deliveries):
        if delivery.event != "reset":
            continue
        start = id_key(delivery.data.get("last_id") or "0-0")
        after = [d.id for d in deliveries[index + 1 :] if d.event == "chat"]
        gaps.append((start, id_key(after[0]) if after else (1 << 62, 0)))
    missing = [i for i in accepted if i not in unique]
    announced = [i for i in missing if any(lo < id_key(i) < hi for lo, hi in gaps)]
    return Tally(
        expected=len(accepted),
        delivered=len(unique),
        lost=len(missing) - len(announced),
        duplicated=len(got) - len(unique),
        announced=len(announced),
        resets=len(gaps),
    )


def in_one_order(subscribers: Sequence[Subscriber], accepted: Sequence[str]) -> bool:
    """Every subscriber got the accepted ids in the same order, and that order is id order."""
    order = sorted(accepted, key=id_key)
    for subscriber in subscribers:
        mine = [i for i in subscriber.chat_ids() if i in set(accepted)]
        if mine != order:
            return False
    return True


def stop_all(subscribers: Iterable[Subscriber]) -> None:
    subscribers = list(subscribers)
    for subscriber in subscribers:  # all at once, then wait for each
        subscriber._stop.set()
    for subscriber in subscribers:
        with contextlib.suppress(AssertionError):
            subscriber.stop()


def explain(subscribers: Sequence[Subscriber], accepted: Sequence[str]) -> str:
    """Who lost or doubled what (for assertion messages)."""
    lines = []
    for subscriber in subscribers:
        counts = tally(subscriber, accepted)
        if counts.lost or counts.duplicated:
            got = set(subscriber.chat_ids())
            missing = [i for i in accepted if i not in got][:5]
            lines.append(
                f"{subscriber.name}: {counts}; first missing {missing}; "
                f"connects {subscriber.connects}; drops {subscriber.drops[-3:]}"
            )
    return "\n".join(lines)
