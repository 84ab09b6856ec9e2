"""Shared tools for the hardening tests (the raw frames are in tests/wire.py).

Protocol pairs are negotiated through the real handshake code, connections run
over TCP on 127.0.0.1 with threads or gevent (:class:`Env`), and resources (file
descriptors, threads, greenlets) are counted so fault tests can prove nothing leaked.
"""

from __future__ import annotations

import gc
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faye_sync import PerMessageDeflate
from faye_sync.blocking.backends import get_backend
from faye_sync.extensions.pipeline import Extensions
from faye_sync.protocol.handshake import Acceptance, ClientHandshake, Request, server_handshake
from faye_sync.protocol.hybi import MAX_LENGTH, HybiProtocol
from tests.servers import Server
from tests.wire import WAIT, parse_head

#: Close codes a peer may put on the wire (RFC 6455 §7.4, faye's list).
VALID_CLOSE_CODES = frozenset([*range(1000, 1004), *range(1007, 1015), *range(3000, 5000)])
#: The codes faye_sync documents for failures it detects itself.
FAILURE_CODES = frozenset({1002, 1007, 1009, 1011})  # RFC 6455 §7.4.1 (faye: 1003, 1010)


# ------------------------------------------------------------------ protocols


def feed(protocol: HybiProtocol, data: bytes) -> None:
    """``receive_data``, then go on past pauses as the engine does on its next read.

    The protocol pauses before a close or failure that follows a message in the
    same read, so the message can be answered first; ``receive_data(b"")`` resumes.
    """
    protocol.receive_data(data)
    for _ in range(len(data) + 1):
        if not protocol.paused:
            return
        protocol.receive_data(b"")
    raise AssertionError("receive_data(b'') never got past the pause")


def negotiated_pair(
    *,
    deflate: bool = False,
    max_length: int = MAX_LENGTH,
    server_deflate: PerMessageDeflate | None = None,
    client_deflate: PerMessageDeflate | None = None,
) -> tuple[HybiProtocol, HybiProtocol]:
    """A (server, client) pair of open protocols, negotiated by the real handshake."""
    client_extensions = (
        Extensions([client_deflate or PerMessageDeflate()], max_length=max_length)
        if deflate
        else None
    )
    client = ClientHandshake(
        "ws://example.com/chat", extensions=client_extensions, max_length=max_length
    )
    request_head = client.request_bytes().decode("latin-1").split("\r\n")
    request_headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in request_head[1:] if line)
    }
    server_extensions = (
        Extensions([server_deflate or PerMessageDeflate()], max_length=max_length)
        if deflate
        else None
    )
    accepted = server_handshake(
        Request("GET", "/chat", request_headers),
        extensions=server_extensions,
        max_length=max_length,
    )
    assert isinstance(accepted, Acceptance), accepted
    status, headers = parse_head(accepted.response)
    client_side = client.process_response(status, headers)
    server_protocol, client_protocol = accepted.protocol, client_side.protocol
    assert isinstance(server_protocol, HybiProtocol)
    assert isinstance(client_protocol, HybiProtocol)
    if deflate:
        assert client_side.extensions.startswith("permessage-deflate")
    return server_protocol, client_protocol


# ---------------------------------------------------------------- environments


class Env:
    """Threads or gevent: how to make sockets, run a handler and wait for it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.backend = get_backend(name)
        if name == "gevent":
            import gevent.socket

            self.sockets: Any = gevent.socket
        else:
            self.sockets = socket

    def tcp_pair(self) -> tuple[socket.socket, socket.socket]:
        """(server side, peer side) of one TCP connection on 127.0.0.1."""
        listener = self.sockets.socket(socket.AF_INET, socket.SOCK_STREAM)
        with listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            peer = self.sockets.socket(socket.AF_INET, socket.SOCK_STREAM)
            peer.settimeout(WAIT)
            peer.connect(listener.getsockname())
            listener.settimeout(WAIT)
            server, _ = listener.accept()
            server.settimeout(None)  # the engine wants a blocking socket
        return server, peer

    def spawn(self, fn: Callable[[], object]) -> Any:
        if self.name == "gevent":
            import gevent

            return gevent.spawn(fn)
        thread = threading.Thread(target=fn, daemon=True)
        thread.start()
        return thread

    def join(self, handle: Any, timeout: float = WAIT) -> bool:
        handle.join(timeout)
        return bool(handle.dead) if self.name == "gevent" else not handle.is_alive()

    def sleep(self, seconds: float) -> None:
        if self.name == "gevent":
            import gevent

            gevent.sleep(seconds)
        else:
            time.sleep(seconds)

    def warm_up(self) -> None:
        # Create what lives for the whole process (gevent's hub and its fds, the
        # threads backend's timer thread) before the snapshot, so it is not
        # counted as a leak.
        server, peer = self.tcp_pair()
        server.close()
        peer.close()
        self.backend.call_later(0, lambda: None)
        self.sleep(0.01)


# ------------------------------------------------------- the test apps' reports


def stats(server: Server, *, reset: bool = False) -> dict[str, Any]:
    """The counts a hardening app reports at ``/stats`` (``reset``: start its peaks anew)."""
    url = f"{server.url}stats{'?reset=1' if reset else ''}"
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def server_events(server: Server, tag: str) -> list[list[Any]]:
    """The events connection ``tag`` reported, once its handler ended and it closed.

    The close event is waited for on its own: it may come after the handler
    returned (see test_close_is_dispatched_before_run_returns).
    """
    server.wait_for_log(rf"^handler-end id={tag}$", timeout=WAIT)
    server.wait_for_log(rf'^event id={tag} \["close"', timeout=WAIT)
    return logged_events(server, tag)


def logged_events(server: Server, tag: str) -> list[list[Any]]:
    """The events connection ``tag`` has reported so far (the app logs one JSON list each)."""
    pattern = re.compile(rf"^event id={tag} (.*)$", re.MULTILINE)
    return [json.loads(match.group(1)) for match in pattern.finditer(server.log())]


# ------------------------------------------------------------------- resources


def open_fds(pid: int | str = "self") -> dict[int, str]:
    """Open file descriptors of a process and what they point to."""
    base = f"/proc/{pid}/fd"
    result: dict[int, str] = {}
    for name in os.listdir(base):
        try:
            result[int(name)] = os.readlink(f"{base}/{name}")
        except OSError:  # closed meanwhile (the listing's own directory fd)
            continue
    return result


def thread_count(pid: int) -> int:
    """Threads of another process (its /proc tasks)."""
    return len(os.listdir(f"/proc/{pid}/task"))


def rss_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")  # pragma: no cover - every Linux has it


def live_greenlets() -> int:
    """Greenlets that have started and not finished (0 when gevent is not loaded)."""
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return 0
    # type(), not isinstance(): isinstance reads __class__, which lazy objects
    # (Django's settings) compute, and may raise.
    kind = greenlet.greenlet
    return sum(
        1 for obj in gc.get_objects() if issubclass(type(obj), kind) and bool(obj) and not obj.dead
    )


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


# The one timer thread of the threads backend lives for the whole process by
# design (a shared service, not a per-connection thread): it is not a leak.
PERSISTENT_THREADS = frozenset({"faye_sync-timers"})


@dataclass
class Snapshot:
    """This process's fds, threads and greenlets at one moment."""

    fds: dict[int, str]
    threads: set[int]
    greenlets: int

    @classmethod
    def take(cls, *, greenlets: bool = False) -> Snapshot:
        return cls(
            open_fds(),
            {t.ident for t in threading.enumerate() if t.ident is not None},
            live_greenlets() if greenlets else 0,
        )

    def leaks(self, *, greenlets: bool = False) -> list[str]:
        """What is open now and was not at the snapshot (empty when nothing leaked)."""
        now = Snapshot.take(greenlets=greenlets)
        problems = [f"fd {fd} -> {now.fds[fd]}" for fd in sorted(set(now.fds) - set(self.fds))]
        problems += [
            f"thread {t.name}"
            for t in threading.enumerate()
            if t.ident not in self.threads and t.name not in PERSISTENT_THREADS and t.is_alive()
        ]
        if greenlets and now.greenlets > self.greenlets:
            problems.append(f"{now.greenlets - self.greenlets} greenlet(s)")
        return problems

    def assert_no_leaks(self, *, greenlets: bool = False, timeout: float = WAIT) -> None:
        """Wait (bounded) for threads to finish, then require nothing new to be open."""
        problems: list[str] = []

        def clean() -> bool:
            nonlocal problems
            problems = self.leaks(greenlets=greenlets)
            return not problems

        if greenlets:  # dead greenlets linger until their last reference goes
            gc.collect()
        assert wait_until(clean, timeout, step=0.05), f"leaked: {problems}"
