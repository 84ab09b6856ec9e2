"""Faults: a peer that vanishes, resets, half-closes, never answers, or never reads.

Each fault must give exactly one ``close`` with the right code, unblock the
handler, and leave no thread, greenlet or file descriptor behind. Three rings:

* the engine in this process over real TCP sockets on 127.0.0.1, with threads
  and with gevent, for a handler that iterates, one that runs the event loop
  and one that only sends (its reader is the background pump);
* the client against a raw TCP peer that misbehaves;
* real WSGI servers (gevent.pywsgi, werkzeug threaded) in their own process,
  whose fds, threads and greenlets are counted through the app's ``/stats`` and
  from outside in ``/proc/<pid>``.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from faye_sync import Client
from faye_sync.blocking.backends import get_backend
from faye_sync.blocking.connection import Connection
from faye_sync.exceptions import ConnectionClosed
from faye_sync.protocol.hybi import HybiProtocol
from tests.servers import Server, serve
from tests.wire import (
    BINARY,
    CLOSE,
    TEXT,
    WAIT,
    RawServer,
    close_payload,
    frame,
    read_frame,
    read_frames,
    read_until_eof,
    upgrade,
)

from .helpers import (
    Env,
    Snapshot,
    logged_events,
    rss_kib,
    server_events,
    stats,
    thread_count,
    wait_until,
)

pytest.importorskip("gevent.socket")  # the gevent half of every Env test

APP = "tests.hardening.fault_app:app"
CLOSE_TIMEOUT = 0.2
PING_OPTIONS = {"ping": 0.05, "ping_timeout": 0.2}


@pytest.fixture(params=["threads", "gevent"])
def env(request: pytest.FixtureRequest) -> Env:
    environment = Env(request.param)
    environment.warm_up()
    return environment


def record(conn: Connection) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []
    conn.on("open", lambda e: seen.append(("open",)))
    conn.on("error", lambda e: seen.append(("error", e.message)))
    conn.on("close", lambda e: seen.append(("close", e.code, e.reason)))
    return seen


def handler_for(conn: Connection, style: str, env: Env) -> Callable[[], None]:
    """A handler in one of three styles; each ends as a WSGI app does, with ``run()``
    (what ``return ws.response`` does), which returns once the close is reported."""

    def iterate() -> None:
        for _ in conn:
            pass
        conn.run()

    def push() -> None:
        while conn.send("tick"):
            env.sleep(0.02)
        conn.run()

    return {"iterate": iterate, "run": conn.run, "push": push}[style]


# -------------------------------------------------------------------- faults


def vanish_mid_frame(peer: socket.socket, conn: Connection, env: Env) -> None:
    peer.sendall(frame(TEXT, b"Hello", mask=b"abcd")[:5])  # half a frame
    peer.close()


def reset(peer: socket.socket, conn: Connection, env: Env) -> None:
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # RST, not FIN


def half_close(peer: socket.socket, conn: Connection, env: Env) -> None:
    peer.shutdown(socket.SHUT_WR)  # EOF without a close frame; still reading


def close_then_half_close(peer: socket.socket, conn: Connection, env: Env) -> None:
    peer.sendall(frame(CLOSE, close_payload(1000, "bye"), mask=b"abcd"))
    peer.shutdown(socket.SHUT_WR)


def unanswered_close(peer: socket.socket, conn: Connection, env: Env) -> None:
    conn.close(4000, "are you there")  # the handler reads; this returns at once


def silent_peer(peer: socket.socket, conn: Connection, env: Env) -> None:
    pass  # never answers the keep-alive pings


@dataclass
class Fault:
    act: Callable[[socket.socket, Connection, Env], None]
    code: int
    reason: str = ""
    options: dict[str, float] = field(default_factory=dict)


FAULTS = {
    "vanish-mid-frame": Fault(vanish_mid_frame, 1006),
    "rst": Fault(reset, 1006),
    "half-close": Fault(half_close, 1006),
    "close-then-half-close": Fault(close_then_half_close, 1000, "bye"),
    "unanswered-close": Fault(unanswered_close, 1006, options={"close_timeout": CLOSE_TIMEOUT}),
    "silent-peer-ping-timeout": Fault(
        silent_peer, 1006, "ping timeout: no pong within 0.2 s", options=PING_OPTIONS
    ),
}


@pytest.mark.parametrize("style", ["iterate", "run", "push"])
@pytest.mark.parametrize("name", list(FAULTS))
def test_engine_fault_gives_one_close_and_leaks_nothing(env: Env, style: str, name: str) -> None:
    fault = FAULTS[name]
    before = Snapshot.take(greenlets=env.name == "gevent")
    server_sock, peer = env.tcp_pair()
    conn = Connection(
        server_sock, HybiProtocol(is_client=False), backend=env.backend, **fault.options
    )
    seen = record(conn)
    handler = env.spawn(handler_for(conn, style, env))
    env.sleep(0.05)  # the handler is blocked reading (or pushing) when the fault comes
    started = time.monotonic()
    fault.act(peer, conn, env)
    try:
        assert env.join(handler, WAIT), "the handler is still blocked"
        elapsed = time.monotonic() - started
        closes = [event for event in seen if event[0] == "close"]
        assert closes == [("close", fault.code, fault.reason)], seen
        assert seen[0] == ("open",) and seen[-1][0] == "close", seen
        assert elapsed < 2.0, f"{elapsed:.2f} s to notice"
        if name == "close-then-half-close":  # the peer still reads: it gets the echo
            assert read_frames(read_until_eof(peer))[-1].close_code == 1000
    finally:
        server_sock.close()  # a server socket belongs to the WSGI server: ours to close
        peer.close()
    before.assert_no_leaks(greenlets=env.name == "gevent")


def test_close_is_dispatched_before_run_returns(env: Env) -> None:
    server_sock, peer = env.tcp_pair()
    conn = Connection(server_sock, HybiProtocol(is_client=False), backend=env.backend)
    order: list[str] = []
    # A listener that takes a while (a database write, a broadcast) comes first.
    conn.on("close", lambda e: env.sleep(0.2))
    conn.on("close", lambda e: order.append("close"))

    def push_only() -> None:
        while conn.send("tick"):  # a push-only handler: the pump reads for it
            env.sleep(0.02)
        conn.run()  # what returning ws.response does
        order.append("handler-end")

    worker = env.spawn(push_only)
    try:
        env.sleep(0.1)
        # A close frame: the pump reads it and reports the close (an EOF could
        # instead be found by the handler's own send, on the handler's thread).
        peer.sendall(frame(CLOSE, close_payload(1000), mask=b"abcd"))
        assert env.join(worker, WAIT)
        env.sleep(0.3)
        assert order == ["close", "handler-end"]
    finally:
        server_sock.close()
        peer.close()


def test_close_from_the_handler_to_a_peer_that_never_answers(env: Env) -> None:
    before = Snapshot.take(greenlets=env.name == "gevent")
    server_sock, peer = env.tcp_pair()
    conn = Connection(
        server_sock, HybiProtocol(is_client=False), backend=env.backend, close_timeout=0.2
    )
    seen = record(conn)

    def handler() -> None:
        conn.close(4000, "bye")  # nobody else reads: close() waits, bounded
        for _ in conn:
            pass

    started = time.monotonic()
    worker = env.spawn(handler)
    try:
        assert env.join(worker, WAIT)
        assert 0.15 < time.monotonic() - started < 2.0
        assert seen == [("open",), ("close", 1006, "")]
        peer.settimeout(WAIT)
        assert read_frames(peer.recv(256))[0].close_code == 4000  # it was sent
    finally:
        server_sock.close()
        peer.close()
    before.assert_no_leaks(greenlets=env.name == "gevent")


def _send_queue(sock: socket.socket) -> int:
    """Bytes in ``sock``'s kernel send queue the peer has not acknowledged (SIOCOUTQ)."""
    queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    return int(struct.unpack("i", queued)[0])


def _blocked(env: Env, sock: socket.socket, count: Callable[[], int], quiet: float = 0.2) -> int:
    """Wait (bounded) until the sender on ``sock`` is blocked in the kernel; ``count()`` then.

    Blocked: its bytes wait in the send queue (the peer's window is shut) and ``count``
    has not moved for ``quiet`` seconds. A fixed sleep is not enough on a loaded machine,
    where filling the two socket buffers (some MiB on loopback) can take longer than it.
    """
    deadline = time.monotonic() + WAIT
    seen = count()
    while time.monotonic() < deadline:
        env.sleep(quiet)
        now = count()
        if now == seen and _send_queue(sock) > 0:
            return now
        seen = now
    raise AssertionError(f"the sender never blocked ({seen} sends)")


@pytest.mark.parametrize("backend_name", ["threads", "gevent"])
def test_a_peer_that_never_reads_holds_back_only_its_own_sender(backend_name: str) -> None:
    """Backpressure: the sender blocks in the socket, memory does not grow."""
    environment = Env(backend_name)
    environment.warm_up()
    before = Snapshot.take(greenlets=backend_name == "gevent")
    slow_sock, slow_peer = environment.tcp_pair()
    fast_sock, fast_peer = environment.tcp_pair()
    # The ping timeout must outlast finding the sender blocked (_blocked's quiet time)
    # and the echoes below, or the check that it stays blocked would prove nothing.
    slow = Connection(
        slow_sock,
        HybiProtocol(is_client=False),
        backend=environment.backend,
        ping=0.05,
        ping_timeout=0.5,
    )
    fast = Connection(fast_sock, HybiProtocol(is_client=False), backend=environment.backend)
    slow_seen = record(slow)
    sent = [0]

    def flood() -> None:
        chunk = b"x" * 65536
        while slow.send(chunk):
            sent[0] += 1

    def echo() -> None:
        for message in fast:
            fast.send(message)

    flooder, echoer = environment.spawn(flood), environment.spawn(echo)
    try:
        blocked_at = _blocked(environment, slow_sock, lambda: sent[0])
        # The other connection is served while the flood is blocked.
        fast_peer.settimeout(WAIT)
        for n in range(20):
            payload = f"m{n}".encode()
            fast_peer.sendall(frame(TEXT, payload, mask=b"abcd"))
            assert read_frame(fast_peer, b"")[1] == payload
        # Still blocked: what the socket buffers hold, not an ever-growing queue.
        assert sent[0] - blocked_at <= 1
        # No pongs from the silent slow peer: the ping timeout frees the sender.
        assert environment.join(flooder, WAIT)
        # The pump may be the one reporting it, a moment after send returned False.
        closed = ("close", 1006, "ping timeout: no pong within 0.5 s")
        assert wait_until(lambda: slow_seen[-1] == closed, WAIT), slow_seen
        fast_peer.sendall(frame(CLOSE, close_payload(1000), mask=b"abcd"))
        assert environment.join(echoer, WAIT)
    finally:
        for sock in (slow_sock, slow_peer, fast_sock, fast_peer):
            sock.close()
    before.assert_no_leaks(greenlets=backend_name == "gevent")


# -------------------------------------------------------------- the client


def _linger_reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _hold(conn: socket.socket) -> None:
    """Alive but silent: read and ignore everything until the client hangs up."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and conn.recv(4096):
        pass


CLIENT_FAULTS: dict[str, tuple[Callable[[socket.socket], None], dict[str, Any], int]] = {
    "vanish-mid-frame": (lambda c: c.sendall(frame(TEXT, b"Hello", mask=None)[:4]), {}, 1006),
    "rst": (_linger_reset, {}, 1006),
    "half-close": (lambda c: c.shutdown(socket.SHUT_WR), {}, 1006),
    "silent-peer-ping-timeout": (_hold, PING_OPTIONS, 1006),
    "unanswered-close": (_hold, {"close_timeout": CLOSE_TIMEOUT}, 1006),
}


@pytest.mark.parametrize("name", list(CLIENT_FAULTS))
def test_client_fault_gives_one_close_and_leaks_nothing(name: str) -> None:
    script, options, code = CLIENT_FAULTS[name]
    get_backend("threads").call_later(0, lambda: None)  # the timer thread, made once
    before = Snapshot.take()
    with RawServer(then=script, record=False) as peer:
        ws = Client(peer.url, timeout=WAIT, **options)
        seen = record(ws)
        if name == "unanswered-close":
            ws.close(1000)  # nobody else reads: waits for the close timeout
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.receive(timeout=WAIT)
        assert closed.value.code == code
        assert [event[0] for event in seen] == ["open", "close"], seen
    before.assert_no_leaks()


# ------------------------------------------------------------ real servers


@pytest.fixture(scope="module", params=["gevent", "werkzeug"])
def real_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serve(request.param, APP) as server:
        warm_up(server)
        yield server


def warm_up(server: Server) -> None:
    """One connection that uses a timer: what lives for good exists before a baseline
    (the threads backend's one timer thread, imports, the server's own pools)."""
    sock, rest = upgrade(server, "/ws?id=warm-up&mode=close&close_timeout=1")
    sock.settimeout(WAIT)
    # The close frame may come in the same read as the 101.
    assert read_frame(sock, rest)[0] == CLOSE
    sock.sendall(frame(CLOSE, close_payload(4000), mask=b"abcd"))
    read_until_eof(sock)
    sock.close()
    server.wait_for_log(r"handler-end id=warm-up", timeout=WAIT)


COUNTS = ("fds", "threads", "greenlets", "handlers")


def settled(server: Server, baseline: dict[str, Any]) -> None:
    """Wait (bounded) until the server's counts are back to ``baseline``."""
    now: dict[str, Any] = {}

    def back() -> bool:
        nonlocal now
        now = stats(server)
        return all(now[key] <= baseline[key] for key in COUNTS)

    assert wait_until(back, WAIT, step=0.05), f"before: {baseline}, after: {now}"


def _vanish(sock: socket.socket) -> None:
    sock.sendall(frame(TEXT, b"Hi!", mask=b"abcd")[:4])
    sock.close()


def _reset(sock: socket.socket) -> None:
    _linger_reset(sock)
    sock.close()


def _close_then_half_close(sock: socket.socket) -> None:
    sock.sendall(frame(CLOSE, close_payload(1000, "bye"), mask=b"abcd"))
    sock.shutdown(socket.SHUT_WR)


# name -> (query, what the peer does, close code, reason)
REAL_FAULTS: dict[str, tuple[str, Callable[[socket.socket], None], int, str]] = {
    "vanish-mid-frame": ("", _vanish, 1006, ""),
    "rst": ("", _reset, 1006, ""),
    "half-close": ("", lambda s: s.shutdown(socket.SHUT_WR), 1006, ""),
    "close-then-half-close": ("", _close_then_half_close, 1000, "bye"),
    "unanswered-close": (f"mode=close&close_timeout={CLOSE_TIMEOUT}", lambda s: None, 1006, ""),
    "silent-peer-ping-timeout": (
        "ping=0.05&ping_timeout=0.2",
        lambda s: None,
        1006,
        "ping timeout: no pong within 0.2 s",
    ),
}


@pytest.mark.parametrize("name", list(REAL_FAULTS))
def test_real_server_fault_gives_one_close_and_leaks_nothing(
    real_server: Server, name: str
) -> None:
    query, act, code, reason = REAL_FAULTS[name]
    pid = real_server.process.pid
    fds_at_rest = len(os.listdir(f"/proc/{pid}/fd"))  # counted from outside, nothing in flight
    baseline = stats(real_server)
    tag = uuid.uuid4().hex[:12]
    sock, rest = upgrade(real_server, f"/ws?id={tag}&{query}")
    try:
        act(sock)
        events = server_events(real_server, tag)
        assert events == [["open"], ["close", code, reason]], events
        if sock.fileno() != -1:  # still ours: the server ends its side, we see EOF
            frames = read_frames(read_until_eof(sock, rest))
            if name in ("unanswered-close", "close-then-half-close"):
                assert frames[-1].opcode == CLOSE
    finally:
        sock.close()
    assert "Traceback" not in real_server.log()
    settled(real_server, baseline)
    assert wait_until(lambda: len(os.listdir(f"/proc/{pid}/fd")) <= fds_at_rest, WAIT)
    assert logged_events(real_server, tag) == events  # still exactly one close


def test_real_server_client_that_never_reads(real_server: Server) -> None:
    """A flooding handler blocks on its own socket; the process stays small and responsive."""
    baseline = stats(real_server)
    pid = real_server.process.pid
    rss_before = rss_kib(pid)
    tag = uuid.uuid4().hex[:12]
    slow, _ = upgrade(real_server, f"/ws?id={tag}&mode=flood")
    try:
        time.sleep(0.3)  # socket buffers full: the handler is blocked in send
        rss_blocked = rss_kib(pid)
        echo_tag = uuid.uuid4().hex[:12]
        other, _ = upgrade(real_server, f"/ws?id={echo_tag}")
        with other:
            other.settimeout(WAIT)
            for n in range(10):  # served at once, while the flood is blocked
                started = time.monotonic()
                other.sendall(frame(BINARY, b"%d" % n, mask=b"abcd"))
                assert read_frame(other, b"")[1] == b"%d" % n
                assert time.monotonic() - started < 0.5
            other.sendall(frame(CLOSE, close_payload(1000), mask=b"abcd"))
            read_until_eof(other)
        rss_later = rss_kib(pid)
    finally:
        _reset(slow)  # the slow client goes away: its handler must end
    assert server_events(real_server, tag) == [["open"], ["close", 1006, ""]]
    # 64 KiB messages written as fast as the socket took them: the process grew
    # by a few messages at most, not by the flood.
    assert rss_blocked - rss_before < 8 * 1024, (rss_before, rss_blocked)
    assert rss_later - rss_before < 8 * 1024, (rss_before, rss_later)
    settled(real_server, baseline)


def test_gevent_server_survives_a_ping_timeout_during_a_blocked_send() -> None:
    with serve("gevent", APP) as server:
        tag = uuid.uuid4().hex[:12]
        slow, _ = upgrade(server, f"/ws?id={tag}&mode=flood&ping=0.1&ping_timeout=0.3")
        try:
            events = server_events(server, tag)  # we never read, so never pong
            assert events == [["open"], ["close", 1006, "ping timeout: no pong within 0.3 s"]]
            time.sleep(0.3)  # the crash, when it comes, is right after the app returns
            assert server.process.poll() is None, f"the server died:\n{server.log()[-600:]}"
            stats(server)
        finally:
            slow.close()


def test_real_server_process_threads_and_fds_return_to_baseline(real_server: Server) -> None:
    """Counted from outside (/proc/<pid>): OS threads (werkzeug's one per request,
    the pumps) and fds end with five connections that vanish at once."""
    pid = real_server.process.pid
    before = thread_count(pid)
    fds_before = len(os.listdir(f"/proc/{pid}/fd"))
    tags = [uuid.uuid4().hex[:12] for _ in range(5)]
    socks = [upgrade(real_server, f"/ws?id={tag}")[0] for tag in tags]
    for sock in socks:
        sock.close()
    for tag in tags:
        assert server_events(real_server, tag) == [["open"], ["close", 1006, ""]]
    assert wait_until(lambda: thread_count(pid) <= before, WAIT), (before, thread_count(pid))
    assert wait_until(lambda: len(os.listdir(f"/proc/{pid}/fd")) <= fds_before, WAIT)
