"""Peers for the client network tests: a scripted HTTP(S) server, a TLS front, and tinyproxy.

Everything listens on 127.0.0.1 only, every socket operation has a timeout, and
``stop()`` joins every thread it started (and fails the test if one is stuck).

* :class:`ScriptedServer` accepts connections (optionally TLS, recording the SNI
  names it was offered), reads one request head, answers a fixed byte string
  (optionally one byte at a time), and then echoes or waits for the peer to close.
* :class:`TLSFront` terminates TLS and relays the plain bytes to another port, as
  stunnel would: it puts an ``https:`` face on tinyproxy, which cannot listen on TLS.
* :class:`Tinyproxy` runs the real ``tinyproxy`` program (Debian package
  ``tinyproxy``) with a generated configuration, optionally with ``BasicAuth``.
"""

from __future__ import annotations

import contextlib
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from tests.processes import free_port

HOST = "127.0.0.1"
IO_TIMEOUT = 5.0

OK_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)


def read_head(sock: socket.socket, limit: int = 256 * 1024) -> bytes:
    """Read until the blank line ending an HTTP head (a test-side boundary search only)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            break
    return data


class _Threads:
    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, target: Callable[..., object], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def join(self) -> None:
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(IO_TIMEOUT * 2)
        stuck = [t for t in threads if t.is_alive()]
        assert not stuck, f"threads still running: {stuck}"


class _Listener:
    """Accept loop in a thread; subclasses handle each connection in its own thread."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.sni: list[str | None] = []
        self.peers: list[tuple[str, int]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = _Threads()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind((HOST, 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        if tls is not None:
            tls.sni_callback = self._record_sni

    def _record_sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        self.sni.append(name)

    def __enter__(self) -> _Listener:
        self._threads.start(self._accept_loop)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._threads.join()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.peers.append(peer)
            conn.settimeout(IO_TIMEOUT)
            self._track(conn)
            self._threads.start(self._serve_safely, conn)

    def _serve_safely(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self._track(self.tls.wrap_socket(conn, server_side=True))
            self.serve(conn)
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(exc)
        finally:
            conn.close()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def wait_closed(self, conn: socket.socket) -> None:
        """Wait (bounded) until the peer closes or the server stops."""
        conn.settimeout(0.1)
        deadline = time.monotonic() + IO_TIMEOUT
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if not conn.recv(4096):
                    return
            except TimeoutError:
                continue


class ScriptedServer(_Listener):
    """Answers each request head with ``response`` (bytes, or a function of the request).

    Args:
        response: The bytes to send after reading the request head.
        tls: A server-side context (TLS is started before the request is read).
        chunk: Send the response in pieces of this many bytes, pausing between them.
        silent: Accept (and complete TLS, if any) but never read or answer.
        silent_tls: Accept TCP but never answer the TLS handshake.
        echo: After the response, echo every byte received until the peer closes.
        then_close: Close the connection right after the response.
    """

    def __init__(
        self,
        response: bytes | Callable[[bytes], bytes] = OK_101,
        *,
        tls: ssl.SSLContext | None = None,
        chunk: int | None = None,
        silent: bool = False,
        silent_tls: bool = False,
        echo: bool = False,
        then_close: bool = False,
    ) -> None:
        super().__init__(tls)
        self.then_close = then_close
        self.response = response
        self.chunk = chunk
        self.silent = silent
        self.silent_tls = silent_tls
        self.echo = echo
        self.requests: list[bytes] = []

    def __enter__(self) -> ScriptedServer:
        super().__enter__()
        return self

    def _serve_safely(self, conn: socket.socket) -> None:
        if self.silent_tls:
            try:
                self.wait_closed(conn)
            finally:
                conn.close()
            return
        super()._serve_safely(conn)

    def serve(self, conn: socket.socket) -> None:
        if self.silent:
            self.wait_closed(conn)
            return
        request = read_head(conn)
        self.requests.append(request)
        response = self.response(request) if callable(self.response) else self.response
        if self.chunk:
            for start in range(0, len(response), self.chunk):
                conn.sendall(response[start : start + self.chunk])
                time.sleep(0.001)
        else:
            conn.sendall(response)
        if self.then_close:
            return
        if self.echo:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    return
                if not data:
                    return
                conn.sendall(data)
        else:
            self.wait_closed(conn)


class TLSFront(_Listener):
    """Terminates TLS on 127.0.0.1 and relays the plain bytes to ``HOST:upstream_port``."""

    def __init__(self, tls: ssl.SSLContext, upstream_port: int) -> None:
        super().__init__(tls)
        self.upstream_port = upstream_port

    def __enter__(self) -> TLSFront:
        super().__enter__()
        return self

    def serve(self, conn: socket.socket) -> None:
        with socket.create_connection((HOST, self.upstream_port), timeout=IO_TIMEOUT) as up:
            self._track(up)
            ends: list[socket.socket] = [conn, up]
            while not self._stop.is_set():
                # TLS may hold decrypted bytes that select() cannot see.
                ready: list[socket.socket] = [
                    s for s in ends if isinstance(s, ssl.SSLSocket) and s.pending()
                ]
                if not ready:
                    ready, _, _ = select.select(ends, [], [], 0.1)
                for sock in ready:
                    try:
                        data = sock.recv(65536)
                    except ssl.SSLWantReadError:
                        continue
                    if not data:
                        return
                    (up if sock is conn else conn).sendall(data)


class Tinyproxy:
    """The real tinyproxy on 127.0.0.1 and a free port, with ``BasicAuth`` if given."""

    def __init__(self, workdir: Path, auth: tuple[str, str] | None = None) -> None:
        binary = shutil.which("tinyproxy")
        if binary is None:
            raise FileNotFoundError("tinyproxy")
        self.binary = binary
        self.workdir = workdir
        self.auth = auth
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "tinyproxy.log"

    def __enter__(self) -> Tinyproxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        for _attempt in range(5):  # the free port may be taken between probe and bind
            self.port = free_port()
            config = self.workdir / "tinyproxy.conf"
            lines = [
                f"Port {self.port}",
                f"Listen {HOST}",
                "Timeout 30",
                "MaxClients 50",
                f"Allow {HOST}",
                "LogLevel Connect",
                # No ConnectPort lines: CONNECT is then allowed to every port.
            ]
            if self.auth is not None:
                lines.append(f"BasicAuth {self.auth[0]} {self.auth[1]}")
            config.write_text("\n".join(lines) + "\n")
            log = self.log_path.open("wb")
            self.process = subprocess.Popen(
                [self.binary, "-d", "-c", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            if self._wait_listening():
                return
            self.stop()
        raise RuntimeError(f"tinyproxy did not start:\n{self.log()}")

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + 10
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def origin(self, userinfo: str | None = None) -> str:
        prefix = f"{userinfo}@" if userinfo else ""
        return f"http://{prefix}{HOST}:{self.port}"


@contextlib.contextmanager
def saturated_listener() -> Iterator[int]:
    """A port whose accept queue is full, so a new connect hangs (SYNs are dropped)."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    try:
        for _ in range(16):
            probe = socket.socket()
            probe.settimeout(0.3)
            try:
                probe.connect((HOST, port))
            except TimeoutError:
                probe.close()
                break
            held.append(probe)
        else:
            raise RuntimeError("could not fill the accept queue")
        yield port
    finally:
        for sock in held:
            sock.close()
        listener.close()
