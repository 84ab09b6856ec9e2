"""Taking connections over from real WSGI servers, checked on the wire and in their logs.

The app (``tests/apps/raw_echo.py``) writes a fake 101 and echoes raw bytes, so what
is tested is the adapter layer alone: the socket found, the read-ahead kept, the
teardown leaving nothing on the wire and nothing alarming in the server's log.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from faye_sync.adapters import Hijack, hijack
from faye_sync.adapters.base import hijacked
from faye_sync.exceptions import HijackError
from tests.servers import ACCESS_STATUS, HIJACKABLE_KINDS, Server, is_available, serve

APP = "tests.apps.raw_echo:app"
TIMEOUT = 5.0  # every socket operation in these tests
UPGRADE_REQUEST = (
    b"GET /socket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
)

#: Hijack.server on each kind.
SERVER_NAMES = {
    "werkzeug": "werkzeug",
    "gevent": "gevent.pywsgi",
    "gunicorn-sync": "gunicorn.sync",
    "gunicorn-gthread": "gunicorn.gthread",
    "gunicorn-gevent": "gunicorn.gevent",
    "gunicorn-gevent_pywsgi": "gunicorn.gevent_pywsgi",
    "wsgiref": "wsgiref",
    "django": "django",
    "eventlet": "eventlet",
}

SYNC_WARNING = "gunicorn's sync worker serves one connection at a time"


def _server_params() -> Iterator[Any]:
    for kind in HIJACKABLE_KINDS:
        marks = [] if is_available(kind) else [pytest.mark.skip(reason=f"{kind} not installed")]
        yield pytest.param((kind, {}), id=kind, marks=marks)
    yield pytest.param(("werkzeug", {"debugger": True}), id="werkzeug-debugger")


@pytest.fixture(scope="module", params=list(_server_params()))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    kind, options = request.param
    with serve(kind, APP, **options) as running:
        yield running


class Peer:
    """A raw-socket client: the bytes it has read and not yet consumed stay in ``pending``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = b""

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError(f"EOF before {marker!r}; got {self.pending!r}")
            self.pending += data
        head, _, self.pending = self.pending.partition(marker)
        return head + marker

    def read_exactly(self, expected: bytes) -> bytes:
        """The next ``len(expected)`` bytes (fewer at EOF); asserts they are ``expected``."""
        while len(self.pending) < len(expected):
            data = self.sock.recv(65536)
            if not data:
                break
            self.pending += data
        got, self.pending = self.pending[: len(expected)], self.pending[len(expected) :]
        assert got == expected
        return bytes(got)

    def read_to_eof(self) -> bytes:
        rest, self.pending = self.pending, b""
        while data := self.sock.recv(65536):
            rest += data
        return rest


@pytest.fixture
def connect(server: Server) -> Iterator[Any]:
    opened: list[socket.socket] = []

    def open_hijacked(pipelined: bytes = b"") -> Peer:
        sock = server.connect(timeout=TIMEOUT)
        opened.append(sock)
        sock.sendall(UPGRADE_REQUEST + pipelined)  # one write: one TCP segment on loopback
        peer = Peer(sock)
        head = peer.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), head
        return peer

    yield open_hijacked
    for sock in opened:
        sock.close()


def test_echo_round_trips(connect: Any) -> None:
    peer = connect()
    peer.sock.sendall(b"hello\n")
    assert peer.read_exactly(b"hello\n") == b"hello\n"
    big = b"x" * 100_000 + b"\n"
    peer.sock.sendall(big)
    assert peer.read_exactly(big) == big


def test_pipelined_bytes_are_recovered(connect: Any) -> None:
    peer = connect(pipelined=b"early\n")
    peer.read_exactly(b"early\n")
    peer.sock.sendall(b"info\n")
    peer.read_exactly(b"info\n")
    # From hijack.buffered, not from the socket: the server had read them already.
    assert b"buffered=6 " in peer.read_until(b"\n")


def test_socket_is_blocking_and_named(server: Server, connect: Any) -> None:
    peer = connect()
    peer.sock.sendall(b"info\n")
    peer.read_exactly(b"info\n")
    line = peer.read_until(b"\n").decode()
    assert f"server={SERVER_NAMES[server.kind]} timeout=None " in line


def test_pywsgi_reader_is_closed_to_free_its_buffer(server: Server, connect: Any) -> None:
    # Its 8 KiB buffer would otherwise stay for the life of every idle WebSocket.
    peer = connect(pipelined=b"early\n")
    peer.read_exactly(b"early\n")
    peer.sock.sendall(b"info\n")
    peer.read_exactly(b"info\n")
    line = peer.read_until(b"\n").decode()
    assert "buffered=6 " in line  # what it held was taken first
    pywsgi = server.kind in ("gevent", "gunicorn-gevent_pywsgi")
    assert ("reader_closed=True" in line) == pywsgi, line
    peer.sock.sendall(b"bye\n")
    peer.read_exactly(b"bye\nend\n")
    assert peer.read_to_eof() == b""


def test_finish_sends_eof_promptly_and_nothing_else(connect: Any) -> None:
    peer = connect()
    peer.sock.sendall(b"bye\n")
    started = time.monotonic()
    peer.read_exactly(b"bye\nend\n")
    assert peer.read_to_eof() == b""  # no "HTTP/1.1 200" or chunk terminator appended
    assert time.monotonic() - started < 1.0


def test_server_log_is_clean(server: Server, connect: Any) -> None:
    start = len(server.log())
    peer = connect()
    peer.sock.sendall(b"bye\n")
    peer.read_exactly(b"bye\nend\n")
    assert peer.read_to_eof() == b""
    status = ACCESS_STATUS[server.kind]
    if status is not None:
        server.wait_for_log(rf'"GET /socket HTTP/1\.1" {status} ', start=start)
    else:
        time.sleep(0.1)  # would a late traceback appear?
    log = server.log()[start:]
    assert "Traceback" not in log
    assert "[ERROR]" not in log and "[CRITICAL]" not in log


def test_client_vanishing_mid_session_is_quiet(server: Server, connect: Any) -> None:
    start = len(server.log())
    peer = connect()
    peer.sock.sendall(b"half a line")
    peer.read_exactly(b"half a line")
    peer.sock.close()  # the app's recv() sees EOF and finishes
    status = ACCESS_STATUS[server.kind]
    if status is not None:
        server.wait_for_log(rf'"GET /socket HTTP/1\.1" {status} ', start=start)
    assert "Traceback" not in server.log()[start:]


def _http_response(server: Server, request: bytes) -> tuple[str, bytes]:
    """Send ``request``; return the status line and the body (by Content-Length)."""
    with server.connect(timeout=TIMEOUT) as sock:
        sock.sendall(request)
        peer = Peer(sock)
        head = peer.read_until(b"\r\n\r\n").decode("latin-1")
        lengths = [line for line in head.split("\r\n") if line.lower().startswith("content-length")]
        assert lengths, head
        length = int(lengths[0].partition(":")[2])
        while len(peer.pending) < length:
            peer.pending += sock.recv(65536)
        return head.partition("\r\n")[0], peer.pending[:length]


def test_non_get_gets_an_http_error(server: Server) -> None:
    request = UPGRADE_REQUEST.replace(b"GET ", b"POST ").replace(
        b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"
    )
    status, body = _http_response(server, request)
    assert status.endswith(" 405 Method Not Allowed")  # wsgiref answers in HTTP/1.0
    assert b"must be a GET request, not POST" in body


@pytest.mark.skipif(not is_available("gunicorn-sync"), reason="gunicorn not installed")
def test_gunicorn_sync_worker_warns_once() -> None:
    with serve("gunicorn-sync", APP) as sync:
        for _ in range(2):
            with sync.connect(timeout=TIMEOUT) as sock:
                sock.sendall(UPGRADE_REQUEST + b"bye\n")
                peer = Peer(sock)
                peer.read_until(b"\r\n\r\n")
                peer.read_exactly(b"bye\nend\n")
                assert peer.read_to_eof() == b""
        sync.wait_for_log(r"WARNING faye_sync: " + SYNC_WARNING)
        assert sync.log().count(SYNC_WARNING) == 1


@pytest.mark.skipif(not is_available("waitress"), reason="waitress not installed")
def test_waitress_is_refused_with_an_http_error() -> None:
    with serve("waitress", APP) as waitress:
        status, body = _http_response(waitress, UPGRADE_REQUEST)
        assert status == "HTTP/1.1 501 Not Implemented"
        assert body.startswith(b"waitress cannot hand a WebSocket its socket")
        assert b"gunicorn" in body
        assert "Traceback" not in waitress.log()


@pytest.mark.skipif(not is_available("gunicorn-gthread"), reason="gunicorn not installed")
def test_gthread_idle_connection_outlives_worker_timeout() -> None:
    # gthread's main loop keeps notifying the arbiter while a pool thread holds the
    # connection; the sync worker would be killed here ("WORKER TIMEOUT"). The loop
    # notifies about once a second, so --timeout 1 would leave no room on a busy machine.
    with serve("gunicorn-gthread", APP, timeout=2) as gthread:
        with gthread.connect(timeout=TIMEOUT) as sock:
            sock.sendall(UPGRADE_REQUEST)
            peer = Peer(sock)
            peer.read_until(b"\r\n\r\n")
            time.sleep(4.5)  # idle for more than twice --timeout
            sock.sendall(b"info\n")
            peer.read_exactly(b"info\n")
            assert "timeout=None" in peer.read_until(b"\n").decode()
            sock.sendall(b"bye\n")
            peer.read_exactly(b"bye\nend\n")
            assert peer.read_to_eof() == b""
        gthread.wait_for_log(r'"GET /socket HTTP/1\.1" 101 ')
        assert "WORKER TIMEOUT" not in gthread.log()


# Environs made by hand, for refusals and for the parts no real server exercises.


def _environ(**extra: Any) -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", **extra}


@pytest.mark.parametrize(
    ("environ", "status", "words"),
    [
        pytest.param(
            _environ(SERVER_PROTOCOL="HTTP/2.0", **{"gunicorn.socket": object()}),
            505,
            "HTTP/2.0 multiplexes",
            id="http2",
        ),
        pytest.param(
            _environ(SERVER_PROTOCOL="HTTP/1.0", SERVER_SOFTWARE="WSGIServer/0.2"),
            505,
            "needs HTTP/1.1",
            id="http1.0",
        ),
        pytest.param(
            _environ(REQUEST_METHOD="HEAD", **{"werkzeug.socket": object()}),
            405,
            "not HEAD",
            id="head",
        ),
        pytest.param(
            _environ(SERVER_SOFTWARE="waitress", **{"waitress.client_disconnected": None}),
            501,
            "waitress cannot",
            id="waitress",
        ),
        pytest.param(
            _environ(**{"mod_wsgi.version": (5, 0)}),
            501,
            "mod_wsgi cannot",
            id="mod_wsgi",
        ),
        pytest.param(
            _environ(**{"uwsgi.version": b"2.0"}),
            501,
            "uWSGI cannot",
            id="uwsgi",
        ),
        pytest.param(
            _environ(SERVER_SOFTWARE="granian", **{"wsgi.input": io.BytesIO()}),
            501,
            "SERVER_SOFTWARE granian, wsgi.input BytesIO",
            id="unknown",
        ),
        pytest.param(
            _environ(SERVER_SOFTWARE="WSGIServer/0.2", **{"wsgi.input": io.BytesIO()}),
            501,
            "wsgiref: wsgi.input is not the handler's reader",
            id="wsgiref-wrapped-input",
        ),
    ],
)
def test_refusals_name_the_problem(environ: dict[str, Any], status: int, words: str) -> None:
    with pytest.raises(HijackError) as refused:
        hijack(environ)
    assert refused.value.status == status
    assert refused.value.status_line == f"{status} {HTTPStatus(status).phrase}"
    assert words in str(refused.value)


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server_side, client_side = socket.socketpair()
    client_side.settimeout(TIMEOUT)
    yield server_side, client_side
    server_side.close()
    client_side.close()


def _wsgiref_like(server_side: socket.socket, client_side: socket.socket) -> io.BufferedReader:
    """A server that has read the request headers, and one byte-string past them."""
    server_side.settimeout(10.0)  # what cheroot leaves on its connections
    reader = server_side.makefile("rb")
    client_side.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nearly")
    while reader.readline() not in (b"\r\n", b""):
        pass
    return reader


def test_a_refused_hijack_touches_nothing(socket_pair: tuple[socket.socket, socket.socket]) -> None:
    server_side, client_side = socket_pair
    reader = _wsgiref_like(server_side, client_side)
    environ = _environ(REQUEST_METHOD="POST", SERVER_SOFTWARE="WSGIServer/0.2")
    with pytest.raises(HijackError, match="not POST"):
        hijack({**environ, "wsgi.input": reader})
    assert server_side.gettimeout() == 10.0
    assert reader.peek() == b"early"


def test_hijack_error_answers_with_its_status() -> None:
    answered: list[tuple[str, list[tuple[str, str]]]] = []
    body = HijackError("no socket here", status=505, phrase="HTTP Version Not Supported").respond(
        lambda status, headers: answered.append((status, headers))
    )
    assert body == [b"no socket here\n"]
    assert answered[0][0] == "505 HTTP Version Not Supported"
    assert ("Content-Length", "15") in answered[0][1]


def test_read_ahead_is_recovered_and_timeout_reset(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    from django.core.handlers.wsgi import LimitedStream

    server_side, client_side = socket_pair
    reader = _wsgiref_like(server_side, client_side)
    environ = _environ(
        SERVER_SOFTWARE="WSGIServer/0.2 CPython/3.11", **{"wsgi.input": LimitedStream(reader, 0)}
    )
    taken = hijack(environ)
    assert (taken.socket, taken.buffered, taken.server) == (server_side, b"early", "django")
    assert taken.socket.gettimeout() is None


def test_nothing_read_ahead_does_not_block(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    server_side, _ = socket_pair
    environ = _environ(
        SERVER_SOFTWARE="WSGIServer/0.2", **{"wsgi.input": server_side.makefile("rb")}
    )
    assert hijack(environ).buffered == b""  # would hang on a blocking peek()


def test_bytes_the_reader_has_not_buffered_stay_in_the_socket(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    server_side, client_side = socket_pair
    reader = server_side.makefile("rb")
    client_side.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    while reader.readline() not in (b"\r\n", b""):
        pass
    client_side.sendall(b"later")  # in the kernel, not in the reader's buffer
    environ = _environ(SERVER_SOFTWARE="WSGIServer/0.2", **{"wsgi.input": reader})
    size = sys.getsizeof(vars(reader.raw))
    taken = hijack(environ)
    assert taken.buffered == b""  # the drain made no read of the socket...
    server_side.settimeout(TIMEOUT)
    assert server_side.recv(16) == b"later"  # ...so the session reads them from it
    assert reader.raw._sock is server_side  # type: ignore[attr-defined]  # put back
    # No key added to the SocketIO's attributes, even for a while: its dict would stay
    # the larger for as long as the server keeps the reader.
    assert sys.getsizeof(vars(reader.raw)) == size


def _hijack_from_wsgiref(server_side: socket.socket) -> Hijack:
    environ = _environ(
        SERVER_SOFTWARE="WSGIServer/0.2", **{"wsgi.input": server_side.makefile("rb")}
    )
    return hijack(environ)


def test_finish_shuts_down_once_and_reports_101(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    server_side, client_side = socket_pair
    taken = _hijack_from_wsgiref(server_side)
    calls: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        calls.append((status, headers))
        return lambda data: None

    assert taken.finish(start_response) == []
    assert taken.finish(start_response) == []
    assert calls == [("101 Switching Protocols", [])]
    assert client_side.recv(1) == b""  # FIN sent
    assert server_side.fileno() != -1  # shut down, not closed: the server closes it


def test_finish_leaves_a_socket_its_caller_shut_down_alone(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    server_side, client_side = socket_pair
    taken = _hijack_from_wsgiref(server_side)
    calls: list[str] = []
    assert taken.finish(lambda status, headers: calls.append(status), shut_down=False) == []
    assert calls == ["101 Switching Protocols"]
    server_side.sendall(b"still open")  # no second shutdown: the caller did it (or not)
    assert client_side.recv(16) == b"still open"


def test_importing_adapters_imports_no_server() -> None:
    servers = ("gevent", "gunicorn", "werkzeug", "eventlet", "django", "waitress")
    code = (
        "import sys, faye_sync.adapters; "
        f"print(sorted(name for name in {servers!r} if name in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "[]"


PYWSGI = "gevent/26.9 Python/3.11"


@pytest.mark.parametrize(
    ("extra", "status", "words"),
    [
        pytest.param({"REQUEST_METHOD": "POST"}, 405, "not POST", id="post"),
        pytest.param({"SERVER_PROTOCOL": "HTTP/1.0"}, 505, "needs HTTP/1.1", id="http1.0"),
        pytest.param({"uwsgi.version": b"2.0"}, 501, "uWSGI cannot", id="uwsgi"),
        pytest.param({"mod_wsgi.version": (5, 0)}, 501, "mod_wsgi cannot", id="mod_wsgi"),
    ],
)
def test_pywsgi_shaped_environs_are_refused_as_any_other(
    socket_pair: tuple[socket.socket, socket.socket],
    extra: dict[str, Any],
    status: int,
    words: str,
) -> None:
    # pywsgi's usual environ is taken in one step: the refusals still come first.
    server_side, client_side = socket_pair
    reader = _wsgiref_like(server_side, client_side)
    environ = {**_environ(SERVER_SOFTWARE=PYWSGI, **{"wsgi.input": reader}), **extra}
    with pytest.raises(HijackError, match=words) as refused:
        hijack(environ)
    assert refused.value.status == status
    assert server_side.gettimeout() == 10.0
    assert reader.peek() == b"early"


def test_pywsgi_shaped_environ_with_werkzeugs_socket_goes_to_werkzeug(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    server_side, client_side = socket_pair
    reader = _wsgiref_like(server_side, client_side)
    environ = _environ(SERVER_SOFTWARE=PYWSGI, **{"wsgi.input": reader})
    taken = hijack({**environ, "werkzeug.socket": server_side})
    assert (taken.socket, taken.buffered, taken.server) == (server_side, b"early", "werkzeug")


def test_pywsgi_reader_gives_its_read_ahead_and_is_closed(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    server_side, client_side = socket_pair
    reader = _wsgiref_like(server_side, client_side)
    taken = hijack(_environ(SERVER_SOFTWARE=PYWSGI, **{"wsgi.input": reader}))
    assert (taken.socket, taken.buffered, taken.server) == (server_side, b"early", "gevent.pywsgi")
    assert taken.socket.gettimeout() is None
    assert reader.closed
    assert "readinto" not in vars(reader.raw)  # SocketIO's own method again
    assert "early" in repr(taken) and "gevent.pywsgi" in repr(taken)


def test_a_hijack_made_without_its_class_call_is_a_whole_one_and_finishes_once(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    server_side, _ = socket_pair
    fast = hijacked(server_side, b"ahead", "gevent.pywsgi")
    assert fast == Hijack(server_side, b"ahead", "gevent.pywsgi")  # every field set
    hooked: list[int] = []
    own = Hijack(server_side, b"", "custom", on_finish=lambda: hooked.append(1))
    answered: list[str] = []
    assert own.finish(lambda status, headers: answered.append(status)) == []
    assert own.finish(lambda status, headers: answered.append(status)) == []
    assert hooked == [1] and answered == ["101 Switching Protocols"]
