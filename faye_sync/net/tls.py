"""TLS for the client: the ``tls`` option, and TLS inside TLS.

:func:`tls_context` turns the ``tls`` option (an :class:`ssl.SSLContext`, or a dict
of ``ca``, ``cert``, ``key``, ``verify``, ``server_hostname``) into a client
context, certificates and host names verified by default. :func:`start_tls` runs
the handshake with a deadline. :class:`TLSTunnelSocket` carries TLS inside TLS
(a ``wss:`` target behind an ``https:`` proxy), which the stdlib cannot nest.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple, NoReturn, TypeAlias

from .errors import RECV_SIZE, check_keys, remaining

__all__ = ["TLSOption", "TLSTunnelSocket", "start_tls", "tls_context"]

#: The ``tls`` option: an :class:`ssl.SSLContext`, or a dict of the keys in ``_TLS_KEYS``.
TLSOption: TypeAlias = ssl.SSLContext | Mapping[str, Any] | None

_TLS_KEYS = frozenset({"ca", "cert", "key", "verify", "server_hostname"})


def _ca_sources(ca: Any) -> list[dict[str, Any]]:
    """Turn the ``ca`` option into ``load_verify_locations`` keyword sets."""
    if ca is None:
        return []
    sources: list[dict[str, Any]] = []
    for item in list(ca) if isinstance(ca, (list, tuple)) else [ca]:
        if isinstance(item, (bytes, bytearray)):
            data = bytes(item)
            if b"-----BEGIN" in data:
                sources.append({"cadata": data.decode("ascii")})
            else:
                sources.append({"cadata": data})  # DER
        elif isinstance(item, str) and "-----BEGIN" in item:
            sources.append({"cadata": item})
        elif isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
            sources.append({"capath": path} if os.path.isdir(path) else {"cafile": path})
        else:
            raise TypeError(f"tls 'ca' must be a path or PEM/DER data, not {type(item).__name__}")
    return sources


def tls_context(tls: TLSOption = None, *, ca: Any = None) -> tuple[ssl.SSLContext, str | None]:
    """Build the client TLS context for the ``tls`` option.

    Args:
        tls: An :class:`ssl.SSLContext`, used as given; or a dict with ``ca`` (a path
            to a file or directory, PEM text, DER bytes, or a list of these; it replaces
            the system's trusted roots, as Node's ``ca`` does), ``cert`` and ``key``
            (paths, for a client certificate), ``verify`` (default ``True``: chain and
            host name are checked) and ``server_hostname`` (the name sent as SNI and
            checked against the certificate; default: the host being connected to).
            ``None`` means the system's defaults, verification on.
        ca: faye's legacy shorthand for ``tls={"ca": ...}``.

    Returns:
        The context and the ``server_hostname`` override (``None``: use the host).

    Raises:
        TypeError: An unknown key, or ``ca`` together with an ``SSLContext``.
    """
    if isinstance(tls, ssl.SSLContext):
        if ca is not None:
            raise TypeError(
                "ca cannot be combined with an SSLContext: load the CA into the context"
            )
        return tls, None
    options: dict[str, Any] = dict(tls or {})
    check_keys("tls", options, _TLS_KEYS)
    if ca is not None:
        options.setdefault("ca", ca)
    cas = _ca_sources(options.get("ca"))
    # A custom CA replaces the system roots (Node's `ca` semantics): create_default_context
    # loads the system store only when given no CA of its own.
    context = ssl.create_default_context(**(cas[0] if cas else {}))
    for source in cas[1:]:
        context.load_verify_locations(**source)
    if options.get("cert") is not None:
        context.load_cert_chain(os.fspath(options["cert"]), options.get("key"))
    elif options.get("key") is not None:
        raise TypeError("tls 'key' needs 'cert'")
    if not options.get("verify", True):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    # We only speak HTTP/1.1 over this connection; say so, so no server picks h2.
    context.set_alpn_protocols(["http/1.1"])
    server_hostname = options.get("server_hostname")
    return context, (str(server_hostname) if server_hostname else None)


def start_tls(
    sock: socket.socket,
    context: ssl.SSLContext,
    server_hostname: str,
    deadline: float | None,
) -> socket.socket:
    """Start TLS on ``sock`` and finish the handshake by ``deadline``; the TLS socket.

    A :class:`TLSTunnelSocket` (an ``https:`` proxy's tunnel) gets one more layer
    and is returned itself.
    """
    if isinstance(sock, TLSTunnelSocket):
        sock.add_tls_layer(context, server_hostname, deadline=deadline)
        return sock
    tls_sock = context.wrap_socket(
        sock, server_hostname=server_hostname, do_handshake_on_connect=False
    )
    try:
        # CPython applies the socket timeout to the whole handshake, as one deadline.
        tls_sock.settimeout(remaining(deadline))
        tls_sock.do_handshake()
    except BaseException:
        tls_sock.close()
        raise
    return tls_sock


class _Layer(NamedTuple):
    tls: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO


class TLSTunnelSocket(socket.socket):
    """A TCP socket carrying one or more TLS layers run in memory.

    The stdlib cannot wrap an :class:`ssl.SSLSocket` in another one, yet a ``wss:``
    target behind an ``https:`` proxy needs TLS inside TLS. This socket owns the TCP
    file descriptor and runs each layer as an :class:`ssl.SSLObject` over memory BIOs
    (outermost first), so ``recv``/``recv_into``/``send``/``sendall``, timeouts,
    ``fileno`` and ``makefile`` behave as on an :class:`ssl.SSLSocket`. One thread may
    receive while another sends. :meth:`pending` counts bytes already buffered in
    memory, which ``select`` on :meth:`fileno` cannot see.
    """

    def __init__(self, sock: socket.socket) -> None:
        """Take over ``sock`` (connected TCP); ``sock`` is detached and must not be used."""
        timeout = sock.gettimeout()
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.settimeout(timeout)
        self._layers: list[_Layer] = []
        # _state guards the SSLObjects and BIOs (held only for in-memory work); _sending
        # keeps encrypted records in order on the wire; _receiving admits one reader.
        self._state = threading.RLock()
        self._sending = threading.Lock()
        self._receiving = threading.Lock()
        self._plain = bytearray()  # decrypted by pending(), not yet returned by recv()
        self._at_eof = False

    # -- layers

    def add_tls_layer(
        self,
        context: ssl.SSLContext,
        server_hostname: str | None,
        *,
        deadline: float | None = None,
    ) -> None:
        """Start TLS inside the current layers and complete its handshake.

        Args:
            context: The client context.
            server_hostname: SNI and the name checked against the certificate.
            deadline: ``time.monotonic()`` value by which the handshake must be done.

        Raises:
            ssl.SSLError: The handshake failed (verification included).
            TimeoutError: The deadline passed.
            OSError: The connection failed.
        """
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(
            incoming, outgoing, server_side=False, server_hostname=server_hostname
        )
        with self._state:
            self._layers.append(_Layer(tls, incoming, outgoing))
        while True:
            with self._state:
                self._pump_incoming()
                try:
                    tls.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
                out = self._drain_outgoing()
            if out:
                self._raw_send(out, deadline)
            if done:
                return
            self._raw_receive(deadline)

    # -- plumbing (call with self._state held unless noted)

    @staticmethod
    def _write_all(tls: ssl.SSLObject, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[tls.write(view) :]

    def _drain_outgoing(self) -> bytes:
        # Push every layer's pending output down through the layers under it, innermost
        # first, so records leave in the order the TLS objects produced them.
        for index in range(len(self._layers) - 1, 0, -1):
            out = self._layers[index].outgoing.read()
            if out:
                self._write_all(self._layers[index - 1].tls, out)
        return self._layers[0].outgoing.read() if self._layers else b""

    def _has_outgoing(self) -> bool:
        return any(layer.outgoing.pending for layer in self._layers)

    def _pump_incoming(self) -> None:
        # Decrypt what each outer layer can and feed it to the layer inside it.
        for index in range(len(self._layers) - 1):
            outer, inner = self._layers[index], self._layers[index + 1]
            while True:
                try:
                    data = outer.tls.read(RECV_SIZE)
                except ssl.SSLWantReadError:
                    break
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    if not inner.incoming.eof:
                        inner.incoming.write_eof()
                    break
                if not data:
                    break
                inner.incoming.write(data)

    def _raw_send(self, data: bytes, deadline: float | None = None) -> None:
        # Called with self._sending held, or during the handshake (single user).
        if deadline is not None:
            super().settimeout(remaining(deadline))
        super().sendall(data)

    def _raw_receive(self, deadline: float | None = None) -> None:
        if deadline is not None:
            super().settimeout(remaining(deadline))
        data = super().recv(RECV_SIZE)
        with self._state:
            if data:
                self._layers[0].incoming.write(data)
            elif not self._layers[0].incoming.eof:
                self._layers[0].incoming.write_eof()

    def _flush_side_output(self) -> None:
        # Reading can make TLS write (alerts, key updates): send it in order with the rest.
        # If a sender holds the wire, leave it in the BIOs for the next send or receive to
        # drain: waiting here could deadlock with a peer that waits for us to read.
        with self._state:
            if not self._has_outgoing():
                return
        if not self._sending.acquire(blocking=False):
            return
        try:
            with self._state:
                out = self._drain_outgoing()
            if out:
                super().sendall(out)
        finally:
            self._sending.release()

    # -- socket API

    def _decrypt_locked(self, bufsize: int) -> bytes | None:
        """Plaintext now available (``b""`` at EOF), or ``None`` if more bytes must arrive."""
        if self._plain:
            data = bytes(self._plain[:bufsize])
            del self._plain[:bufsize]
            return data
        if self._at_eof:
            return b""
        self._pump_incoming()
        try:
            data = self._layers[-1].tls.read(bufsize)
        except ssl.SSLWantReadError:
            return None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            # A missing close_notify counts as EOF, as with SSLSocket's suppress_ragged_eofs.
            data = b""
        if not data:
            self._at_eof = True
        return data

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Receive up to ``bufsize`` decrypted bytes; ``b""`` at the end of the stream."""
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        if bufsize <= 0:
            return b""
        with self._receiving:
            while True:
                with self._state:
                    data = self._decrypt_locked(bufsize)
                self._flush_side_output()
                if data is not None:
                    return data
                self._raw_receive()

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Receive into ``buffer``; returns the number of bytes written (0 at EOF)."""
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data)

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Encrypt ``data`` through every layer and send all of it."""
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        payload = bytes(data)
        with self._sending:
            with self._state:
                self._write_all(self._layers[-1].tls, payload)
                out = self._drain_outgoing()
            super().sendall(out)

    def send(self, data: Any, flags: int = 0) -> int:
        """Send all of ``data`` (TLS records are written whole); returns its length."""
        payload = bytes(data)
        self.sendall(payload, flags)
        return len(payload)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Send a file through TLS (``os.sendfile`` would bypass the encryption)."""
        return self._sendfile_use_send(file, offset, count)  # type: ignore[attr-defined,no-any-return]

    def pending(self) -> int:
        """Decrypted bytes that ``recv`` returns without waiting (``select`` cannot see them).

        Records already received are decrypted now, so ``pending() > 0`` means exactly
        that the next ``recv`` will not block; it is also 1 at the end of the stream, so
        a reader that checks it before ``select`` notices EOF.
        """
        with self._state:
            if not self._plain and not self._at_eof and self._layers:
                data = self._decrypt_locked(RECV_SIZE)
                if data:
                    self._plain += data
            return len(self._plain) + (1 if self._at_eof and not self._plain else 0)

    def _unsupported(self, *_args: Any, **_kwargs: Any) -> NoReturn:
        # These would read or write the TCP stream beneath the TLS layers.
        raise NotImplementedError("not supported on a TLS tunnel socket")

    sendto = sendmsg = recvfrom = recvfrom_into = recvmsg = recvmsg_into = _unsupported

    def dup(self) -> NoReturn:
        """Not supported: a duplicate descriptor would bypass the TLS layers."""
        raise NotImplementedError("cannot dup() a TLS tunnel socket")

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The innermost peer's certificate, as :meth:`ssl.SSLSocket.getpeercert`."""
        return self._layers[-1].tls.getpeercert(binary_form) if self._layers else None

    def version(self) -> str | None:
        """The innermost layer's TLS version, e.g. ``"TLSv1.3"``."""
        return self._layers[-1].tls.version() if self._layers else None

    def cipher(self) -> tuple[str, str, int] | None:
        """The innermost layer's cipher, as :meth:`ssl.SSLSocket.cipher`."""
        return self._layers[-1].tls.cipher() if self._layers else None

    def selected_alpn_protocol(self) -> str | None:
        """The innermost layer's ALPN protocol, if any."""
        return self._layers[-1].tls.selected_alpn_protocol() if self._layers else None

    @property
    def server_hostname(self) -> str | None:
        """The SNI name of the innermost layer."""
        return self._layers[-1].tls.server_hostname if self._layers else None
