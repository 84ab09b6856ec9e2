"""What every server adapter shares: the :class:`Hijack` it returns and the socket helpers.

An adapter turns one WSGI ``environ`` into the connection socket, the bytes the server
had already read past the request headers, and a teardown that leaves the server
nothing to write. It knows nothing about WebSocket framing: after :func:`hijack
<faye_sync.adapters.hijack>` the caller owns the socket until it calls
:meth:`Hijack.finish`.

The teardown is the same on every server (checked on twelve of them):
shut the socket down instead of closing it, so the server's own late write fails with
``EPIPE`` (which every server treats as "client went away") and its next read sees EOF
instead of parsing WebSocket frames as a keep-alive request; call ``start_response`` so
the server has a status to log (``101``) and no ``write() before start_response`` to
assert; return an empty body.
"""

from __future__ import annotations

import io
import socket
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faye_sync.exceptions import HijackError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse

__all__ = [
    "Adapter",
    "Environ",
    "Hijack",
    "buffered_reader_of",
    "drain_buffered_reader",
    "drain_stream",
    "hijacked",
    "server_software",
    "socket_of",
    "socket_under",
]

#: A WSGI environ as adapters read it (never written to).
Environ = Mapping[str, Any]


@dataclass(slots=True)  # one per open WebSocket: no __dict__
class Hijack:
    """A connection taken over from the WSGI server.

    Attributes:
        socket: The connection socket, in blocking mode with no timeout (whatever the
            server had set, such as cheroot's 10 s, is reset). Under gevent or eventlet
            it is their cooperative socket object.
        buffered: Bytes the server had already read past the request headers (a
            pipelined first frame). They come before anything read from ``socket``.
        server: Which server the connection came from, e.g. ``"werkzeug"``,
            ``"gevent.pywsgi"``, ``"gunicorn.gthread"``, ``"wsgiref"``.
        on_finish: A server-specific step :meth:`finish` runs before ``start_response``
            (eventlet's ``already_handled`` flag); ``None`` on most servers.
    """

    socket: socket.socket
    buffered: bytes
    server: str
    on_finish: Callable[[], None] | None = field(default=None, repr=False)
    _finished: bool = field(default=False, init=False, repr=False)

    def finish(self, start_response: StartResponse, *, shut_down: bool = True) -> list[bytes]:
        """End the WSGI call so that the server adds nothing to the connection.

        Call it after the session is over (the close handshake done) and return its
        value from the WSGI application. The socket is shut down, never closed: the
        server still holds the same object (and its buffered reader) and closes it
        itself; closing it from here causes ``EBADF`` in gunicorn and ``IOClosed`` in
        eventlet. Calling it again returns ``[]`` and does nothing else.

        Args:
            start_response: The ``start_response`` the application was called with.
            shut_down: False when the caller has shut the socket down itself.

        Returns:
            The empty body the application returns.
        """
        if self._finished:
            return []
        self._finished = True
        if shut_down:
            # The peer gets FIN now; the server's header write that follows fails with
            # EPIPE (not logged as an error by any server we support) and its next
            # keep-alive read returns EOF, so it closes the connection at once.
            try:
                self.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the peer already closed it (ENOTCONN): nothing is left to stop
        if self.on_finish is not None:
            self.on_finish()
        # With a status set, the access log says 101 and werkzeug's ``write()`` does not
        # assert; the headers themselves never reach the wire (the socket is shut).
        start_response("101 Switching Protocols", [])
        return []


def hijacked(sock: socket.socket, buffered: bytes, server: str) -> Hijack:
    """``Hijack(sock, buffered, server)`` without a class call (it enters ``__init__`` from C)."""
    hijack: Hijack = _new(Hijack)
    hijack.socket = sock
    hijack.buffered = buffered
    hijack.server = server
    hijack.on_finish = None
    hijack._finished = False
    return hijack


_new = object.__new__


def buffered_reader_of(stream: object) -> io.BufferedReader | None:
    """Find the :class:`io.BufferedReader` under a server's ``wsgi.input``.

    Servers wrap the connection's ``rfile`` differently: werkzeug, wsgiref and gevent
    (for upgrade requests) pass it as is; gevent's ``Input`` and eventlet's ``Input``
    keep it as ``.rfile``; Django's ``LimitedStream`` keeps only its bound ``read``
    method (``_read``), whose ``__self__`` is the reader.

    Returns:
        The reader, or ``None`` if none of these shapes matches.
    """
    if type(stream) is io.BufferedReader:  # gevent.pywsgi's, for upgrade requests
        return stream
    bound_read = getattr(stream, "_read", None)
    for candidate in (
        stream,
        getattr(stream, "rfile", None),
        getattr(bound_read, "__self__", None),
    ):
        if isinstance(candidate, io.BufferedReader):
            return candidate
    return None


def socket_of(reader: io.BufferedReader) -> socket.socket | None:
    """The socket a ``sock.makefile("rb")`` reader reads from, or ``None``.

    ``makefile`` builds ``BufferedReader(SocketIO(sock))`` and ``SocketIO`` keeps the
    socket as ``_sock``: the only way to it on servers that put no socket in environ
    (gevent.pywsgi, wsgiref, Django). The socket may be gevent's, which is not a
    subclass of :class:`socket.socket`, so it is recognised by its methods.
    """
    sock: socket.socket | None = getattr(reader.raw, "_sock", None)
    if sock is None or type(sock) in _SOCKET_TYPES:
        return sock
    if not all(callable(getattr(sock, name, None)) for name in ("recv", "sendall", "shutdown")):
        return None
    _SOCKET_TYPES.add(type(sock))  # a class's methods: checked once per type
    return sock


# Types that passed socket_of's check: their instances need not be looked at again.
_SOCKET_TYPES: set[type] = set()


def socket_under(stream: object) -> socket.socket | None:
    """The socket under a server's stream (``wsgi.input``), or ``None``.

    :func:`buffered_reader_of`, then :func:`socket_of`: the way to the connection
    on the servers that put no socket in environ (gevent.pywsgi, wsgiref, Django).
    """
    reader = buffered_reader_of(stream)
    return None if reader is None else socket_of(reader)


def drain_stream(stream: object, sock: socket.socket) -> bytes:
    """What the server's reader under ``stream`` read ahead from ``sock`` (or ``b""``).

    Nothing is taken from a reader over another socket (a middleware's stream,
    a chunked request body): a WebSocket handshake has no body, so nothing was
    read ahead there in practice.
    """
    reader = buffered_reader_of(stream)
    if reader is None or socket_of(reader) is not sock:
        return b""
    return drain_buffered_reader(reader, sock)


def drain_buffered_reader(reader: io.BufferedReader, sock: socket.socket) -> bytes:
    """Take what ``reader`` has already buffered, without waiting for more.

    Servers read the request headers through a buffered reader, so bytes the client
    sent in the same packet (a pipelined first frame) sit in its buffer, where reading
    the socket will never see them. ``peek()`` returns the buffer without a raw read
    when it is not empty, but reads the socket (and would block) when it is. Under a
    ``sock.makefile()`` reader (every server's) that read goes to a stand-in that finds
    nothing: no system call, no ``EAGAIN``; what the kernel holds stays there for the
    session's own reads. Other readers get the read with the socket made non-blocking
    for that one call (the caller resets the timeout afterwards).

    Args:
        reader: The server's buffered reader over ``sock``.
        sock: The socket under ``reader``.

    Returns:
        The buffered bytes (possibly empty).
    """
    raw = reader.raw
    if type(raw) is socket.SocketIO and getattr(raw, "_sock", None) is sock:
        raw._sock = _NOTHING_TO_READ  # type: ignore[attr-defined]  # see socket_of
        try:
            peeked = reader.peek()
        finally:
            raw._sock = sock  # type: ignore[attr-defined]
        return reader.read(len(peeked)) if peeked else b""
    sock.setblocking(False)
    try:
        peeked = reader.peek()
    except BlockingIOError:
        return b""  # gevent and eventlet sockets raise instead of SocketIO's None
    except ssl.SSLWantReadError:
        return b""  # SocketIO lets this one through: it has no EAGAIN errno
    return reader.read(len(peeked)) if peeked else b""


class _NothingToRead:
    """What ``SocketIO.readinto`` reads from while :func:`drain_buffered_reader` peeks.

    Its end of stream makes ``peek()`` return the reader's buffer as it is. (Bytes a
    TLS socket decrypted but has not returned stay in it: the backends read those
    before they wait on the socket.)
    """

    __slots__ = ()

    # ``recv_into(buffer)`` returns 0, the end of stream: ``SocketIO.readinto`` calls it
    # with the buffer alone. A C function (an empty tuple's ``count``) rather than a
    # method: no Python frame, entered from C, per handshake.
    recv_into: Callable[[Any], int] = ().count


_NOTHING_TO_READ = _NothingToRead()


class Adapter(ABC):
    """How to take the connection from one WSGI server.

    Subclasses say whether an environ comes from their server and where its socket and
    buffered bytes are; :meth:`hijack` is the same for all of them.
    """

    #: The server's name in messages, e.g. ``"gunicorn"``.
    name: str

    @abstractmethod
    def recognises(self, environ: Environ) -> bool:
        """Whether ``environ`` comes from this adapter's server (documented keys only)."""

    @abstractmethod
    def find_socket(self, environ: Environ) -> socket.socket | None:
        """The connection socket, found without changing anything (``None`` if absent)."""

    @abstractmethod
    def take_buffered(self, environ: Environ, sock: socket.socket) -> bytes:
        """Remove and return the bytes the server read past the request headers."""

    def server_name(self, environ: Environ) -> str:
        """The precise server (worker class, Django or plain wsgiref) for :attr:`Hijack.server`."""
        return self.name

    def missing_socket_hint(self) -> str:
        """Where the socket was expected, for the :class:`HijackError` message."""
        return "no connection socket in the WSGI environ"

    def before_hijack(self, environ: Environ) -> None:
        """A server-specific step when the connection is taken (warnings, idle flags)."""
        return None

    def on_finish(self, environ: Environ) -> Callable[[], None] | None:
        """A server-specific step for :meth:`Hijack.finish`, if the server needs one."""
        return None

    def require_socket(self, environ: Environ) -> socket.socket:
        """The socket, or :class:`HijackError` saying where it was expected; touches nothing."""
        sock = self.find_socket(environ)
        if sock is None:
            raise HijackError(
                f"{self.server_name(environ)}: {self.missing_socket_hint()} "
                "(did a middleware replace it?)"
            )
        return sock

    def hijack(self, environ: Environ) -> Hijack:
        """Take the connection: socket, buffered bytes, blocking mode, teardown hook."""
        sock = self.require_socket(environ)
        buffered = self.take_buffered(environ, sock)
        # The session owns its deadlines: a timeout the server left (cheroot's 10 s)
        # would fire mid-session, and cheroot then writes "408" into the stream.
        sock.settimeout(None)
        self.before_hijack(environ)
        return Hijack(
            socket=sock,
            buffered=buffered,
            server=self.server_name(environ),
            on_finish=self.on_finish(environ),
        )


def server_software(environ: Environ) -> str:
    """``SERVER_SOFTWARE``, or ``""`` where the server sets none (eventlet, uWSGI)."""
    value = environ.get("SERVER_SOFTWARE", "")
    return value if isinstance(value, str) else ""
