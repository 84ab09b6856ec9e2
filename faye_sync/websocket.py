"""The server-side WebSocket for WSGI applications: faye's ``WebSocket``, blocking.

::

    def app(environ, start_response):
        if not WebSocket.is_websocket(environ):
            ...  # an ordinary response
        with WebSocket(environ, start_response) as ws:
            for message in ws:
                ws.send(message)
        return ws.response

Construction checks the upgrade request. A bad one, or one a server cannot hand
over (waitress), is answered with an HTTP error (``ws.response`` carries it) and
the socket reports ``error`` then ``close`` (1002), as in faye. A good one takes
the socket over from the WSGI server, writes the 101 itself and opens; events
reach listeners attached right after construction. The ``with`` block turns an
exception in the handler into a 1011 close instead of an HTTP 500 in the socket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from .adapters import hijack
from .adapters.admission import (
    REFUSAL_MESSAGE,
    REFUSAL_STATUS,
    Slot,
    admit,
    refusal_headers,
)
from .adapters.base import Environ, Hijack
from .adapters.operator import tell_operator
from .blocking.backends import BACKEND_OF_TYPE, Backend, detect_backend, get_backend
from .blocking.connection import CLOSE_TIMEOUT, SEND_TIMEOUT, Connection
from .exceptions import HijackError
from .extensions.base import Extension
from .extensions.pipeline import Extensions, accepted_before
from .protocol.base import MAX_LENGTH, FailedProtocol
from .protocol.handshake import Rejection, Request, is_websocket, server_handshake
from .wsgi_request import (
    EnvironHeaders,
    Origins,
    _request,
    origin_allowed,
    request_from_environ,
)

# EnvironHeaders, origin_allowed and request_from_environ live in wsgi_request.py now.
__all__ = ["EnvironHeaders", "WebSocket", "origin_allowed", "request_from_environ"]

StartResponse = Callable[..., Any]

log = logging.getLogger(__name__)

#: The default seconds between a server WebSocket's pings: under every common proxy's
#: idle timeout (Heroku's router 55 s, nginx and AWS ALB 60 s, Cloudflare 100 s).
PING_INTERVAL = 25.0


def _ignore_start_response(*_: Any) -> Callable[[bytes], object]:
    """For a teardown whose status the framework, or the server's error path, reports."""
    return lambda _: None


class WebSocket(Connection):
    """A server-side WebSocket on the request's own thread or greenlet.

    Args:
        environ, start_response: the WSGI call being upgraded. A framework that
            calls ``start_response`` itself passes None and returns
            :meth:`respond` from its response object.
        protocols: subprotocols the server speaks; the client's first choice
            among them is picked (``protocol`` is ``""`` if none matches).
        extensions: extension objects, e.g. ``[PerMessageDeflate()]``.
        headers: extra headers for the 101 response (CR/LF refused).
        max_length: the largest message accepted, also after inflation
            (1 MiB; faye's is 64 MiB). Larger ones close the connection (1009).
        ping: seconds between keep-alive pings; 25 by default (faye: off), under
            the idle timeouts of nginx, load balancers and PaaS routers (55-100 s),
            which browsers never reset (they send no pings); None turns them off.
        ping_timeout: close with 1006 when a ping gets no pong in this time
            (not counted while the ping waits behind a frame the peer is taking).
        close_timeout: seconds to wait for the peer's close frame (faye: 30).
        send_timeout: close with 1006 when the peer takes no byte of what we
            write for this long (60 s, nginx's ``send_timeout``); ``send`` then
            returns False. None waits for ever.
        idle_timeout: close with 1001 after this long without receiving a
            byte (pongs count); off by default.
        allow_drafts: also accept hixie-75/76 clients (off, as in faye 0.8).
        allowed_origins: exact origins or regexes; ``None`` in the list admits
            requests without Origin. Others get 403 before any 101.
            Above the process's limit of open sockets and streams
            (``faye_sync.set_connection_limit``) a handshake gets 503 with
            ``Retry-After`` the same way.
        backend: ``"threads"`` or ``"gevent"``; detected by default.

    A server that cannot hand over its socket (waitress, mod_wsgi, HTTP/2) is
    answered like a bad handshake: the socket reports ``error`` then ``close``
    (1002), ``ws.response`` is the :class:`~faye_sync.exceptions.HijackError`'s
    status (501) with its message, which names the server and what to use, and
    the server's error log gets it once.

    Used as a context manager, the session ends with the block: an exception in
    it closes the socket with 1011 and goes to the server's error log, never as
    an HTTP 500 into the socket.
    """

    # Slots, as the connection's; "__dict__" keeps users' own attributes working
    # (its dict is made with the first one).
    __slots__ = (
        "__dict__",
        "_environ",
        "_hijack",
        "_slot",
        "_start_response",
        "extensions",
        "protocol",
    )

    # The HTTP error of a refused handshake: set in its instance dict, so that the
    # accepted ones (nearly all) have no slot for it.
    _rejection: Rejection | None = None

    def __init__(
        self,
        environ: dict[str, Any],
        start_response: StartResponse | None,
        protocols: Sequence[str] | str | None = None,
        *,
        extensions: Iterable[Extension] | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        max_length: int = MAX_LENGTH,
        ping: float | None = PING_INTERVAL,
        ping_timeout: float | None = None,
        close_timeout: float = CLOSE_TIMEOUT,
        send_timeout: float | None = SEND_TIMEOUT,
        idle_timeout: float | None = None,
        allow_drafts: bool = False,
        allowed_origins: Origins | None = None,
        backend: str | None = None,
    ) -> None:
        self._start_response = start_response
        self._environ = environ
        self._hijack: Hijack | None = None
        self._slot: Slot | None = None  # None again once responded (see respond)
        request = _request(environ, "ws" if allow_drafts else None)  # ws.url: when asked
        self.protocol = self.extensions = ""  # what the 101 agreed on; empty if refused
        outcome = self._handshake(
            request, protocols, extensions, headers, max_length, allow_drafts, allowed_origins
        )
        slot = None if isinstance(outcome, Rejection) else admit(environ, "websocket")
        if slot is None and not isinstance(outcome, Rejection):
            outcome = Rejection(REFUSAL_STATUS, REFUSAL_MESSAGE, refusal_headers())
        if isinstance(outcome, Rejection):
            self._refuse(outcome, backend)
            return
        assert slot is not None
        self._hijack = self._take_over(environ, slot, backend)
        if self._hijack is None:
            return
        sock = self._hijack.socket
        chosen: Backend = (
            get_backend(backend)
            if backend
            else BACKEND_OF_TYPE.get(type(sock)) or detect_backend(sock)
        )
        super().__init__(
            sock,
            outcome.protocol,
            backend=chosen,
            buffered=self._hijack.buffered,
            ping=ping,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            send_timeout=send_timeout,
            idle_timeout=idle_timeout,
        )
        self._slot = slot
        self.protocol = outcome.subprotocol
        self.extensions = outcome.extensions
        # The 101 waits for the first use of the socket (or accept()), behind the
        # ``open`` listeners: a client can talk as soon as it has its 101, so the
        # view's set-up (joining a room, subscribing) must be done by then. It is
        # the write under way: every frame, pongs included, goes after it.
        self._partial = memoryview(outcome.response)

    @property
    def url(self) -> str:
        """The request's URL, ``ws://`` or ``wss://``; made from the environ when asked."""
        return request_from_environ(self._environ).url

    def _take_over(self, environ: Environ, slot: Slot, backend: str | None) -> Hijack | None:
        """The connection from the server, or None when it cannot give it (refused)."""
        try:
            return hijack(environ)
        except HijackError as error:
            # Refused like a bad handshake: ws.response answers with the error's status.
            slot.release()
            self._refuse(Rejection(error.status_line, f"{error}\n"), backend)
            tell_operator(
                environ,
                f"WebSocket refused ({error.status_line}): {error}",
                level=logging.ERROR,
                once=True,
            )
            return None
        except BaseException:
            slot.release()
            raise

    def accept(self) -> None:
        """Send the ``101 Switching Protocols`` now, after the ``open`` listeners.

        The 101 goes out by itself when the socket is first used (``send``,
        ``receive``, iteration, ``ping``, ``close``, or ``response`` once the
        handler returns), so whatever the handler does before that is in place
        when the client learns it is connected. A handler that waits for
        something else first (a queue, a subscription) calls ``accept()``
        before waiting. Does nothing after the first call or for a rejected
        handshake.
        """
        if not self._started:
            self._start()
        if self._partial is not None and self._rejection is None:
            with self._send_lock:  # bounded: a stalled peer is cut after send_timeout
                self._drain()

    def _release(self, code: int) -> None:
        """Closed: free the admission slot, keep the counts for ``faye_sync.stats()``."""
        slot = self._slot
        if slot is not None:
            slot.release(code, self._messages_in, self._messages_out, self._bytes_in, self._written)

    def __del__(self) -> None:
        """Collected: if its handler never returned ``ws.response``, say so and free the slot.

        A handler that raised, or returned something else than ws.response, leaves
        the socket unclosed: its slot is freed (counted as 1006) and the operator is
        told what to return. (A method, not a ``weakref.finalize``: that cost 0.3 KB
        and a tenth of a handshake for every socket.)
        """
        slot = getattr(self, "_slot", None)  # None: refused, or __init__ raised
        if slot is None:
            return
        try:
            slot.release(1006)  # dropped unclosed
            tell_operator(  # it has a slot: it was never responded
                self._environ,
                f"WebSocket for {self.url} was dropped unfinished: the WSGI call must "
                "return ws.response (or use 'with WebSocket(...) as ws:'), else the "
                "server may write its own response into the upgraded socket",
                level=logging.ERROR,
            )
        except (AttributeError, TypeError):  # the interpreter is exiting: modules are gone
            pass

    def __enter__(self) -> WebSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        """End the session with the block, as ``ws.response`` does; 1011 if the block raised.

        After a 101 there is no HTTP response left to turn into a 500: a server that
        tried would write it into the socket, where the client reads it as a broken
        frame (1002). So an ``Exception`` closes the socket with 1011, goes to the
        server's error log with its traceback, and the request ends as a finished
        WebSocket. Anything else (``SystemExit``, gevent's ``GreenletExit``) closes
        with 1001 and goes on, into a socket already shut.
        """
        if self._hijack is None:
            return False  # a refused handshake: ws.response answers with the HTTP error
        if exc is None:
            if self._start_response is None:
                self.run()  # a framework calls respond() with its own start_response
            else:
                self.respond(self._start_response)
            return False
        if not isinstance(exc, Exception):
            self._end_after_failure(1001)
            return False
        self._end_after_failure(1011, self._start_response)
        tell_operator(
            self._environ,
            f"WebSocket handler for {self.url} raised {exc!r}; closed the WebSocket with 1011",
            level=logging.ERROR,
            exc=exc,
        )
        return True

    def _end_after_failure(
        self, code: int = 1011, start_response: StartResponse | None = None
    ) -> None:
        """Close with ``code`` after the handler failed, and shut the socket.

        Whatever the server or framework writes afterwards goes into a shut socket,
        where it fails quietly instead of following the frames on the wire.
        """
        self.go_away(code, "")
        while True:  # bounded: the close timeout ends the session whatever the peer does
            try:
                self.run()
                break
            except Exception:
                log.warning("WebSocket listener failed while closing", exc_info=True)
        if self._hijack is not None:
            self._slot = None  # responded; released as it closed: nothing left for __del__
            # The connection shut the socket when it closed: once is enough.
            self._hijack.finish(start_response or _ignore_start_response, shut_down=False)

    def _refuse(self, rejection: Rejection, backend: str | None) -> None:
        self._rejection = rejection
        code = 1013 if rejection.status == REFUSAL_STATUS else 1002  # 1013: try again later
        protocol = FailedProtocol(rejection.message.rstrip("\n"), code)
        super().__init__(None, protocol, backend=get_backend(backend or "threads"))

    @staticmethod
    def is_websocket(environ: Mapping[str, Any]) -> bool:
        """faye's test: a GET with ``Connection: upgrade`` and ``Upgrade: websocket``."""
        return is_websocket(
            environ.get("REQUEST_METHOD", ""),
            environ.get("HTTP_CONNECTION"),
            environ.get("HTTP_UPGRADE"),
        )

    @staticmethod
    def _handshake(
        request: Request,
        protocols: Sequence[str] | str | None,
        extensions: Iterable[Extension] | None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
        max_length: int,
        allow_drafts: bool,
        allowed_origins: Origins | None,
    ) -> Any:
        if allowed_origins is not None and not origin_allowed(
            request.header("origin"), allowed_origins
        ):
            origin = request.header("origin")
            return Rejection("403 Forbidden", f"Origin not allowed: {origin}")
        if allow_drafts and not (
            request.header("sec-websocket-version") or request.header("sec-websocket-key")
        ):
            from .protocol.drafts import draft_handshake

            if is_websocket(
                request.method, request.header("connection"), request.header("upgrade")
            ):
                return draft_handshake(request, max_length=max_length, headers=headers)
        pipeline = None
        # A request that offers no extension (most clients but browsers) needs no
        # pipeline, only its checks: done here if they passed before (a sixth of the
        # pipeline's cost), else by Extensions, which raises. Headers: _request's.
        if extensions and (
            request.headers._environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS")  # type: ignore[attr-defined]
            or not accepted_before(extensions, max_length)
        ):
            pipeline = Extensions(extensions, max_length=max_length)
        return server_handshake(
            request,
            protocols=protocols,
            extensions=pipeline,
            headers=headers,
            max_length=max_length,
        )

    @property
    def response(self) -> Iterable[bytes]:
        """The WSGI return value: runs the connection to its end, then tears down.

        For a rejected handshake it is the HTTP error faye sends.
        """
        if self._start_response is None:
            raise TypeError(
                "this WebSocket was made without start_response: return "
                "ws.respond(start_response) from the WSGI call instead"
            )
        # Responded: ``with`` did it. [] as respond() would say, one call sooner.
        responded = self._slot is None and self._hijack is not None  # see respond()
        return [] if responded else self.respond(self._start_response)

    def respond(self, start_response: StartResponse) -> Iterable[bytes]:
        """Run to the end, then report the status through ``start_response``.

        The 101 is logged for an upgrade; the HTTP error for a rejection.
        """
        # An upgraded socket drops its slot once responded (no slot of its own for that):
        # ``with`` did it, and the handler returns ws.response.
        if self._slot is None and self._hijack is not None:
            return []
        if self._closed_event is None or self._pump_active or self._messages or not self._started:
            self.run()  # (else it has nothing left to do: a call less)
        if self._rejection is not None:
            rejection = self._rejection
            start_response(rejection.status, rejection.response_headers())
            return [rejection.body]
        assert self._hijack is not None
        self._slot = None  # responded; released as it closed: nothing left for __del__
        # The connection shut the socket when it closed: once is enough.
        return self._hijack.finish(start_response, shut_down=False)
