"""Test WebSocket and EventSource views from an app's own tests, without a server.

::

    from faye_sync.testing import TestClient

    client = TestClient(app)             # a Flask app, Django's WSGI handler, any WSGI app

    with client.websocket("/echo", subprotocols=["chat"]) as ws:
        ws.send("hello")
        assert ws.receive(timeout=1) == "hello"

    with client.event_stream("/events", last_event_id="41") as stream:
        event = next(stream)

Nothing is faked. Each request runs the application in a thread of its own on one
end of a ``socket.socketpair()``, as a threaded WSGI server would; the other end
is faye_sync's own :class:`~faye_sync.client.Client` (real RFC 6455 frames, masked)
or :class:`~faye_sync.eventsource_client.EventSourceClient` (a real HTTP/1.1
response, parsed as a browser would). The request goes through the whole
application: Flask's hooks, Django's middleware and authentication, the
handshake checks; the application takes the socket over as on a real server
(:mod:`faye_sync.adapters.testing`).

An exception the application lets out (Flask re-raises view errors in testing
mode) is raised again when the ``with`` block ends, so a test fails where the
application failed.
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import h11

from .adapters.testing import ENVIRON_KEY, TestConnection
from .client import Client
from .closing import ClosedOnExit
from .eventsource_client import EventSourceClient
from .exceptions import FayeSyncError

__all__ = ["TestClient"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Headers = Mapping[str, str] | Iterable[tuple[str, str]]

_MAX_HEAD = 64 * 1024
_GRACE = 0.1  # seconds an application gets to return on its own once the client left


class TestClient(ClosedOnExit):
    """Opens WebSockets and event streams on a WSGI application, in this process.

    Args:
        app: the WSGI application (``flask_app``, ``django.core.wsgi.get_wsgi_application()``
            or a plain callable).
        base_url: the scheme and host the requests are addressed to; Django's
            test client uses ``testserver`` too, which its test runner allows.
        headers: headers sent with every request (a ``Cookie``, an
            ``Authorization``); a request's own headers come after them.
        timeout: seconds allowed for each step: the handshake, the application
            ending once the client has left, the close handshake.

    Use it as a context manager (or call :meth:`close`) to check at the end
    that every request's application has returned.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(
        self,
        app: WSGIApp,
        *,
        base_url: str = "http://testserver",
        headers: Headers | None = None,
        timeout: float = 5.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http:// or https:// with a host, not {base_url!r}")
        self.app = app
        self.base_url = base_url.rstrip("/")
        self.headers = _header_list(headers)
        self.timeout = timeout
        self._secure = parts.scheme == "https"
        self._exchanges: list[_Exchange] = []

    @contextlib.contextmanager
    def websocket(
        self,
        path: str,
        subprotocols: Iterable[str] | None = None,
        *,
        headers: Headers | None = None,
        **options: Any,
    ) -> Iterator[Client]:
        """Open a WebSocket on ``path``; the block gets the open :class:`Client`.

        Args:
            path: the path and query, e.g. ``"/chat?room=1"``.
            subprotocols: subprotocols to offer; ``ws.protocol`` is the chosen one.
            headers: request headers (``Origin``, ``Cookie``, ``Authorization``).
            **options: other :class:`~faye_sync.client.Client` options
                (``extensions``, ``max_length``, ``ping``, …).

        Raises:
            HandshakeError: the application refused the upgrade (``status``,
                ``headers``), e.g. 403 for an origin it does not allow.
        """
        exchange = self._start()
        scheme = "wss" if self._secure else "ws"
        url = f"{scheme}:{self.base_url.partition(':')[2]}{_absolute(path)}"
        options.setdefault("close_timeout", self.timeout)
        client = Client(
            url,
            list(subprotocols or []),
            headers=[*self.headers, *_header_list(headers)],
            timeout=self.timeout,
            sock=exchange.client_end,
            **options,
        )
        try:
            if client.failure is not None:
                raise client.failure
            yield client
        finally:
            if client.failure is None:
                client.close()
            exchange.finish(self.timeout)

    def event_stream(
        self,
        path: str,
        *,
        last_event_id: str = "",
        headers: Headers | None = None,
        **options: Any,
    ) -> EventSourceClient:
        """An :class:`~faye_sync.eventsource_client.EventSourceClient` on ``path``.

        Iterate it (or call ``next``) for events; use it as a context manager.
        It reconnects as a browser does when the stream ends, with
        ``Last-Event-ID``, running the application again.

        Args:
            path: the path and query.
            last_event_id: sent as ``Last-Event-ID`` on the first request.
            headers: request headers.
            **options: other ``EventSourceClient`` options (``retry``,
                ``timeout``, ``max_event_size``, ``max_retries``).
        """
        return _TestEventStream(
            self,
            f"{self.base_url}{_absolute(path)}",
            headers=[*self.headers, *_header_list(headers)],
            last_event_id=last_event_id,
            **options,
        )

    def close(self) -> None:
        """Wait for every request's application to return; raise what one raised.

        Raises:
            RuntimeError: an application had not returned within ``timeout``
                after its client left.
        """
        exchanges, self._exchanges = self._exchanges, []
        for exchange in exchanges:
            exchange.finish(self.timeout)

    def _start(self) -> _Exchange:
        exchange = _Exchange(self.app, self._server_environ(), self.timeout)
        self._exchanges = [e for e in self._exchanges if not e.finished]
        self._exchanges.append(exchange)
        exchange.start()
        return exchange

    def _server_environ(self) -> dict[str, Any]:
        parts = urlsplit(self.base_url)
        return {
            "SERVER_NAME": parts.hostname,
            "SERVER_PORT": str(parts.port or (443 if self._secure else 80)),
            "SERVER_SOFTWARE": "faye_sync.testing",
            "SCRIPT_NAME": "",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": parts.scheme,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }


class _TestEventStream(EventSourceClient):
    """An EventSourceClient whose every connection runs the application in a thread."""

    def __init__(self, test_client: TestClient, url: str, **options: Any) -> None:
        self._test_client = test_client
        self._own_exchanges: list[_Exchange] = []
        super().__init__(url, proxy=False, **options)

    def _connect(self) -> socket.socket:
        exchange = self._test_client._start()
        self._own_exchanges.append(exchange)
        return exchange.client_end

    def close(self) -> None:
        super().close()
        exchanges, self._own_exchanges = self._own_exchanges, []
        for exchange in exchanges:
            exchange.finish(self._test_client.timeout)


class _Exchange:
    """One request: the application in a thread, serving one end of a socket pair."""

    def __init__(self, app: WSGIApp, environ: dict[str, Any], timeout: float) -> None:
        self.app = app
        self.client_end, self.server_end = socket.socketpair()
        self.environ = environ
        self.timeout = timeout
        self.error: BaseException | None = None
        self.result: Iterable[bytes] | None = None
        self.finished = False
        self._thread = threading.Thread(target=self._serve, name="faye_sync.testing", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self, timeout: float) -> None:
        """Wait for the application to return; then raise what it raised, once.

        A streaming response the application is still producing is closed, as a
        server closes it when the client has left.
        """
        if self.finished:
            return
        self.finished = True
        with contextlib.suppress(OSError):
            self.client_end.shutdown(socket.SHUT_RDWR)
        self._thread.join(min(timeout, _GRACE))
        if self._thread.is_alive():
            # A stream waiting for its next event: a server would close it at its
            # next failed write (the next ping); the test need not wait for that.
            stream = self.environ.get("faye_sync.eventsource")
            if stream is not None:
                stream.close()  # safe from any thread
            else:
                close = getattr(self.result, "close", None)
                with contextlib.suppress(ValueError):  # a generator running in the thread
                    if close is not None:
                        close()
        self._thread.join(timeout)
        self.client_end.close()
        if self._thread.is_alive():
            raise RuntimeError(
                f"the application had not returned {timeout:g} s after its client left"
            )
        error, self.error = self.error, None
        if error is not None:
            raise error

    # -- the server's side, in the thread

    def _serve(self) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        try:
            environ = self._read_request(conn)
            if environ is not None:
                self.environ = environ
                self._respond(conn, environ)
        except BaseException as exc:  # the test's thread raises it again
            self.error = exc
        finally:
            with contextlib.suppress(OSError):
                self.server_end.shutdown(socket.SHUT_RDWR)
            self.server_end.close()

    def _read_request(self, conn: h11.Connection) -> dict[str, Any] | None:
        self.server_end.settimeout(self.timeout)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(self.server_end.recv(65536))
                continue
            if isinstance(event, h11.ConnectionClosed):
                return None
            if isinstance(event, h11.Request):
                break
        self.server_end.settimeout(None)
        leftover, _ = conn.trailing_data
        path, _, query = event.target.partition(b"?")
        environ = {
            **self.environ,
            "REQUEST_METHOD": event.method.decode("ascii"),
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_PROTOCOL": "HTTP/" + event.http_version.decode("ascii"),
            "wsgi.input": io.BytesIO(b""),
            ENVIRON_KEY: TestConnection(self.server_end, bytes(leftover)),
        }
        for name, value in event.headers:
            key = name.decode("latin-1").upper().replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            text = value.decode("latin-1")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
        return environ

    def _respond(self, conn: h11.Connection, environ: dict[str, Any]) -> None:
        connection: TestConnection = environ[ENVIRON_KEY]
        head: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            head[:] = [status, headers]
            return write

        def write(data: bytes) -> None:
            if not connection.hijacked.is_set() and data:
                self._send(conn, head, data)

        result = self.app(environ, start_response)
        self.result = result
        try:
            for chunk in result:
                write(chunk)
            if not connection.hijacked.is_set():
                self._send(conn, head, b"")
                self._send_event(conn, h11.EndOfMessage())
        except OSError:
            pass  # the client left: the server stops writing and closes the response
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _send(self, conn: h11.Connection, head: list[Any], data: bytes) -> None:
        if conn.our_state is h11.SEND_RESPONSE:
            if not head:
                raise FayeSyncError("the application wrote a body before start_response")
            status, headers = head
            code, _, reason = status.partition(" ")
            self._send_event(
                conn,
                h11.Response(
                    status_code=int(code),
                    reason=reason,
                    headers=[*headers, ("Connection", "close")],
                ),
            )
        if data:
            self._send_event(conn, h11.Data(data=data))

    def _send_event(self, conn: h11.Connection, event: Any) -> None:
        data = conn.send(event)
        if data:
            self.server_end.sendall(data)


def _absolute(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def _header_list(headers: Headers | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(name), str(value)) for name, value in items]
