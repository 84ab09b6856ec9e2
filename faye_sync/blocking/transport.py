"""The blocking client transport shared by the WebSocket client and the EventSource client.

It opens the byte stream a client speaks HTTP over, and reads the head of the
server's answer:

* :func:`connect` resolves and connects with a deadline (optionally binding a
  local address), tunnels through an HTTP ``CONNECT`` proxy when one applies
  (``http:`` or ``https:`` proxy, Basic credentials, custom headers), and starts
  TLS to the target with certificates and host names verified by default.
* :func:`read_response_head` sends a request and parses the response head with
  ``h11``; bytes that arrived after the head (the first WebSocket frame after a
  ``101``, the start of an event stream) go back to the caller untouched.
  :func:`receive_response_head` also hands back the ``h11`` connection, so a
  caller can go on decoding the body (chunked or not) with it.
* :func:`proxy_for` resolves the ``proxy`` option: an explicit proxy, ``False``
  for none, or (by default) ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` and
  ``NO_PROXY`` from the environment.

This module is layer L2: sockets, ``ssl`` and clocks, nothing of WSGI. Proxy
credentials and URL passwords never appear in log records or exception messages.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import ipaddress
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple, NoReturn, TypeAlias, TypedDict
from urllib.parse import SplitResult, unquote, urlsplit

import h11

from ..exceptions import (
    FayeSyncError,
    HandshakeError,
    NetworkError,
    NetworkTimeoutError,
    ProxyError,
)

__all__ = [
    "DEFAULT_PORTS",
    "NetworkError",
    "NetworkTimeoutError",
    "ProxyError",
    "ProxyOption",
    "ProxySettings",
    "ResponseHead",
    "TLSOption",
    "TLSTunnelSocket",
    "connect",
    "proxy_for",
    "read_body_excerpt",
    "read_response_head",
    "receive_response_head",
    "tls_context",
]

logger = logging.getLogger(__name__)

#: Default ports of the URL schemes a client or a proxy origin may use.
DEFAULT_PORTS: Mapping[str, int] = {"ws": 80, "wss": 443, "http": 80, "https": 443}

#: The ``tls`` option: an :class:`ssl.SSLContext`, or a dict of the keys in ``_TLS_KEYS``.
TLSOption: TypeAlias = ssl.SSLContext | Mapping[str, Any] | None

#: The ``proxy`` option: ``None`` (use the environment), ``False`` (no proxy), an origin URL,
#: or a dict ``{"origin": ..., "headers": {...}, "tls": ...}``.
ProxyOption: TypeAlias = bool | str | Mapping[str, Any] | None

_TLS_KEYS = frozenset({"ca", "cert", "key", "verify", "server_hostname"})
_NET_KEYS = frozenset({"local_address", "local_port", "timeout", "family"})
_PROXY_KEYS = frozenset({"origin", "headers", "tls"})
_FAMILIES = {0: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}

# h11 finds the end of a head with this very expression (h11/_receivebuffer.py); we use it
# only to hand h11 exactly one head at a time, so the bytes after it stay ours to return.
_HEAD_END = re.compile(rb"\n\r?\n")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_RECV_SIZE = 64 * 1024
#: Interim (1xx) responses skipped before a final one, where the caller allows them at all:
#: HTTP lets any request get them (RFC 9110 §15.2); a peer sending more is flooding.
MAX_INTERIM_RESPONSES = 8


def _network_error(url: str | None, detail: str, *, timeout: bool = False) -> NetworkError:
    message = f"Network error: {url}: {detail}" if url else f"Network error: {detail}"
    cls = NetworkTimeoutError if timeout else NetworkError
    return cls(message, url=url)


def _describe_os_error(exc: OSError, where: str = "") -> str:
    # Node spells these "connect ECONNREFUSED 127.0.0.1:80"; keep the errno's name first.
    at = f" {where}" if where else ""
    if exc.errno is not None and exc.errno in errno.errorcode:
        reason = exc.strerror or os.strerror(exc.errno)
        return f"{errno.errorcode[exc.errno]}{at} ({reason})"
    return f"{exc or type(exc).__name__}{at}"


def _describe_tls_error(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    return exc.reason or str(exc) or type(exc).__name__


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def redact_url(url: str) -> str:
    """Return ``url`` without its ``user:password@`` part, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


# --------------------------------------------------------------------------- options


class ProxySettings(TypedDict):
    """A resolved proxy: what :func:`proxy_for` returns."""

    origin: str
    headers: dict[str, str]
    tls: TLSOption


def _check_keys(kind: str, options: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name in options:
        if name not in allowed:
            # faye's wording for an unknown option.
            raise TypeError(f"Unrecognized option: {name} (in {kind})")


def _check_header(name: str, value: str) -> None:
    # faye does not check; a CR or LF here would let a caller inject headers.
    if not _TOKEN.match(name):
        raise ValueError(f"invalid header name: {name!r}")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"invalid value for header {name!r}: it contains CR, LF or NUL")


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
    _check_keys("tls", options, _TLS_KEYS)
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


class _NetOptions(NamedTuple):
    local_address: str | None
    local_port: int
    timeout: float | None
    family: int


def _net_options(net: Mapping[str, Any] | None) -> _NetOptions:
    options = dict(net or {})
    _check_keys("net", options, _NET_KEYS)
    family = options.get("family", 0)
    if family not in _FAMILIES:
        raise ValueError("net 'family' must be 0, 4 or 6")
    timeout = options.get("timeout")
    return _NetOptions(
        local_address=options.get("local_address"),
        local_port=int(options.get("local_port") or 0),
        timeout=None if timeout is None else float(timeout),
        family=_FAMILIES[family],
    )


def _parse_proxy_origin(origin: str) -> SplitResult:
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise ValueError(f"invalid proxy origin: {redact_url(origin)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"proxy origin must be an http: or https: URL, not {redact_url(origin)}")
    return parts


def _no_proxy_matches(host: str, port: int, no_proxy: str) -> bool:
    host = host.lower().strip("[]").rstrip(".")
    try:
        host_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        host_ip = None
    for raw in re.split(r"[\s,]+", no_proxy.strip().lower()):
        entry = raw
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port: int | None = None
        if entry.startswith("["):  # [v6] or [v6]:port
            inside, _, rest = entry[1:].partition("]")
            entry = inside
            if rest.startswith(":") and rest[1:].isdigit():
                entry_port = int(rest[1:])
        elif entry.count(":") == 1:  # name:port or v4:port
            name, _, port_text = entry.partition(":")
            if port_text.isdigit():
                entry, entry_port = name, int(port_text)
        if entry_port is not None and entry_port != port:
            continue
        if host_ip is not None:
            try:
                if host_ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry = entry.removeprefix("*").lstrip(".").rstrip(".")
        if entry and (host == entry or host.endswith("." + entry)):
            return True
    return False


def _proxy_from_environment(url: str) -> str | None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    environ = os.environ
    secure = scheme in ("wss", "https")

    def lookup(name: str) -> str | None:
        # Lower case wins, as in curl and urllib. Under CGI a request's "Proxy:" header
        # becomes HTTP_PROXY (httpoxy), so the upper-case HTTP_PROXY is then ignored.
        value = environ.get(name.lower())
        if not value and not (name == "HTTP_PROXY" and "REQUEST_METHOD" in environ):
            value = environ.get(name.upper())
        return value.strip() if value and value.strip() else None

    origin = lookup("HTTPS_PROXY" if secure else "HTTP_PROXY") or lookup("ALL_PROXY")
    if origin is None:
        return None
    no_proxy = lookup("NO_PROXY")
    port = parts.port or DEFAULT_PORTS[scheme]
    if no_proxy and _no_proxy_matches(parts.hostname, port, no_proxy):
        return None
    if "://" not in origin:
        origin = "http://" + origin  # "proxy:3128" is common in the wild
    scheme_of_proxy = origin.partition("://")[0].lower()
    if scheme_of_proxy not in ("http", "https"):
        # socks5:// and friends are for other tools sharing the variable; we cannot use them.
        logger.warning(
            "ignoring the %s proxy from the environment: only http: and https: proxies are "
            "supported",
            scheme_of_proxy,
        )
        return None
    return origin


def proxy_for(url: str, proxy_option: ProxyOption = None) -> ProxySettings | None:
    """Resolve the ``proxy`` option for a connection to ``url``.

    Args:
        url: The target URL (``ws``, ``wss``, ``http`` or ``https``).
        proxy_option: ``False`` for a direct connection; an origin URL
            (``"http://user:pass@proxy:3128"`` or ``"https://..."``); a dict with
            ``origin`` (required), ``headers`` (extra ``CONNECT`` headers) and ``tls``
            (for the TLS connection to an ``https:`` proxy); or ``None`` to read the
            environment: ``https_proxy`` for ``wss``/``https`` targets, ``http_proxy``
            for ``ws``/``http``, then ``all_proxy`` (lower case first, then upper case),
            skipped when ``no_proxy`` matches the target host (``*``, host names and
            domain suffixes, IP addresses and CIDR networks, each optionally ``:port``).

    Returns:
        The proxy to use, normalized, or ``None`` for a direct connection.

    Raises:
        TypeError: An unknown key or an option of the wrong type.
        ValueError: An origin that is not an ``http:``/``https:`` URL, or a bad header.
    """
    if proxy_option is False:
        return None
    if proxy_option is None:
        origin = _proxy_from_environment(url)
        if origin is None:
            return None
        _parse_proxy_origin(origin)
        return {"origin": origin, "headers": {}, "tls": None}
    if isinstance(proxy_option, str):
        _parse_proxy_origin(proxy_option)
        return {"origin": proxy_option, "headers": {}, "tls": None}
    if isinstance(proxy_option, Mapping):
        _check_keys("proxy", proxy_option, _PROXY_KEYS)
        origin = proxy_option.get("origin")
        if not isinstance(origin, str):
            raise TypeError("proxy 'origin' is required and must be a URL string")
        _parse_proxy_origin(origin)
        headers = {str(k): str(v) for k, v in dict(proxy_option.get("headers") or {}).items()}
        for name, value in headers.items():
            _check_header(name, value)
        tls = proxy_option.get("tls")
        if tls is not None and not isinstance(tls, (ssl.SSLContext, Mapping)):
            raise TypeError("proxy 'tls' must be an SSLContext or a dict")
        return {"origin": origin, "headers": headers, "tls": tls}
    raise TypeError(
        f"proxy must be None, False, an origin URL or a dict, not {type(proxy_option).__name__}"
    )


# --------------------------------------------------------------------------- deadlines


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline``; raises ``TimeoutError`` once it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


# --------------------------------------------------------------------------- TLS in TLS


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
                    data = outer.tls.read(_RECV_SIZE)
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
            super().settimeout(_remaining(deadline))
        super().sendall(data)

    def _raw_receive(self, deadline: float | None = None) -> None:
        if deadline is not None:
            super().settimeout(_remaining(deadline))
        data = super().recv(_RECV_SIZE)
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
                data = self._decrypt_locked(_RECV_SIZE)
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


# --------------------------------------------------------------------------- response head


class ResponseHead(NamedTuple):
    """The head of an HTTP/1.x response.

    Attributes:
        status: The status code, e.g. ``101``.
        reason: The reason phrase (may be empty).
        headers: Names lower-cased, values of repeated names joined with ``", "`` (faye's form).
        raw_headers: ``(name, value)`` pairs as received, original case and order.
        leftover: Bytes received after the head: the start of the body, or the first
            frames after a ``101``.
    """

    status: int
    reason: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    leftover: bytes


def _client_connection_for(request: bytes, max_head: int) -> h11.Connection:
    """An h11 client connection in the state ``request`` leaves it in.

    h11 must know the request (HEAD, CONNECT, a proposed Upgrade) to read the response
    right, and we send the caller's bytes verbatim; so we parse them back with an h11
    server and replay the events into the client.
    """
    server = h11.Connection(h11.SERVER, max_incomplete_event_size=max(len(request), 16 * 1024))
    client = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head)
    server.receive_data(request)
    try:
        while True:
            event = server.next_event()
            if event is h11.NEED_DATA:
                raise ValueError("the request is incomplete")
            if isinstance(event, (h11.Request, h11.Data, h11.EndOfMessage)):
                client.send(event)
            if isinstance(event, h11.EndOfMessage):
                return client
    except h11.ProtocolError:
        # No detail and no chain: h11's message may quote a header line, and the request
        # may carry credentials (Authorization, Proxy-Authorization).
        raise ValueError("not a valid HTTP/1.1 request") from None


def _decode_head(event: h11.Response | h11.InformationalResponse, leftover: bytes) -> ResponseHead:
    raw = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in event.headers.raw_items()
    ]
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return ResponseHead(
        status=event.status_code,
        reason=event.reason.decode("latin-1"),
        headers=headers,
        raw_headers=raw,
        leftover=leftover,
    )


def receive_response_head(
    sock: socket.socket,
    request: bytes,
    *,
    timeout: float | None,
    max_head: int = 64 * 1024,
    max_interim: int = MAX_INTERIM_RESPONSES,
    url: str | None = None,
) -> tuple[ResponseHead, h11.Connection]:
    """Send ``request`` and read the response head; also return the h11 connection.

    Like :func:`read_response_head`, but the returned ``h11.Connection`` stands just
    after the head: feed it ``head.leftover`` and then the socket's bytes, and read
    ``h11.Data`` events to decode the body (chunked, sized, or until close). After a
    ``101`` (or a ``200`` to ``CONNECT``) it is in ``SWITCHED_PROTOCOL`` and of no
    further use.

    Raises:
        ValueError: ``request`` is not a complete HTTP/1.1 request.
    """
    conn = _client_connection_for(request, max_head)
    deadline = _deadline(timeout)
    previous_timeout = sock.gettimeout()
    safe_url = redact_url(url) if url else None
    buffer = bytearray()
    searched = 0
    head_bytes = 0  # of the interim heads already read: max_head bounds them all together
    interim = 0
    try:
        sock.settimeout(_remaining(deadline))
        sock.sendall(request)
        while True:
            match = _HEAD_END.search(buffer, max(0, searched - 2))
            if match is None:
                searched = len(buffer)
                if head_bytes + len(buffer) > max_head:
                    raise HandshakeError(f"Parse Error: response head larger than {max_head} bytes")
                sock.settimeout(_remaining(deadline))
                chunk = sock.recv(_RECV_SIZE)
                if not chunk:
                    raise _network_error(
                        safe_url,
                        "connection closed before the response head was complete"
                        if buffer
                        else "connection closed before any response arrived",
                    )
                buffer += chunk
                continue
            end = match.end()
            if head_bytes + end > max_head:
                raise HandshakeError(f"Parse Error: response head larger than {max_head} bytes")
            conn.receive_data(bytes(buffer[:end]))
            del buffer[:end]
            head_bytes += end
            searched = 0
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise HandshakeError("Parse Error") from exc
            if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                # 100 Continue, 103 Early Hints: the real answer follows, up to a bound.
                interim += 1
                if interim > max_interim:
                    raise _interim_error(event, max_interim)
                continue
            if isinstance(event, (h11.Response, h11.InformationalResponse)):
                return _decode_head(event, bytes(buffer)), conn
            raise HandshakeError("Parse Error")
    except TimeoutError as exc:
        if isinstance(exc, FayeSyncError):
            raise
        within = "in time" if timeout is None else f"within {timeout:g}s"
        raise _network_error(safe_url, f"no complete response head {within}", timeout=True) from exc
    except ssl.SSLError as exc:
        raise _network_error(safe_url, _describe_tls_error(exc)) from exc
    except OSError as exc:
        if isinstance(exc, FayeSyncError):
            raise
        raise _network_error(safe_url, _describe_os_error(exc)) from exc
    finally:
        try:
            sock.settimeout(previous_timeout)
        except OSError:
            pass


def _interim_error(event: h11.InformationalResponse, max_interim: int) -> HandshakeError:
    status = event.status_code
    headers = _decode_head(event, b"").headers
    if max_interim == 0:  # a WebSocket handshake: only a 101 or a final status may come
        return HandshakeError(f"Unexpected response code: {status}", status=status, headers=headers)
    return HandshakeError(
        f"Parse Error: more than {max_interim} interim (1xx) responses",
        status=status,
        headers=headers,
    )


def read_response_head(
    sock: socket.socket,
    request: bytes,
    *,
    timeout: float | None,
    max_head: int = 64 * 1024,
    max_interim: int = MAX_INTERIM_RESPONSES,
    url: str | None = None,
) -> ResponseHead:
    """Send ``request`` with ``sendall``, then read the response head with h11.

    Up to ``max_interim`` informational responses other than ``101`` (``100
    Continue``, ``103 Early Hints``) are skipped; one more is a
    :class:`HandshakeError`, and ``max_head`` bounds all the heads together, so a
    peer flooding interim heads is refused at once. The socket's own timeout is
    restored afterwards.

    Args:
        sock: A connected socket (plain, TLS, or :class:`TLSTunnelSocket`).
        request: The complete request bytes, sent verbatim.
        timeout: Seconds for sending and reading the whole head (``None``: no limit).
        max_head: The largest head accepted, in bytes (interim heads included).
        max_interim: How many interim responses to skip; with 0 the first one is an
            ``Unexpected response code`` (a WebSocket handshake, RFC 6455 §4.1).
        url: The target URL, for error messages (credentials are removed).

    Returns:
        ``(status, reason, headers, raw_headers, leftover)`` as a :class:`ResponseHead`.

    Raises:
        HandshakeError: A garbled (``"Parse Error"``) or oversized head, or too many
            interim responses.
        NetworkTimeoutError: The timeout passed first.
        NetworkError: The connection failed or closed before the head was complete.
        ValueError: ``request`` is not a complete HTTP/1.1 request.
    """
    head, _ = receive_response_head(
        sock, request, timeout=timeout, max_head=max_head, max_interim=max_interim, url=url
    )
    return head


# --------------------------------------------------------------------------- connect


def _open_tcp(
    host: str,
    port: int,
    net: _NetOptions,
    deadline: float | None,
    url: str,
) -> socket.socket:
    where = _hostport(host, port)
    connect_deadline = deadline
    if net.timeout is not None:
        own = time.monotonic() + net.timeout
        connect_deadline = own if deadline is None else min(own, deadline)
    try:
        # getaddrinfo cannot be given a timeout: the system resolver's own limits apply.
        infos = socket.getaddrinfo(host, port, net.family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        # Node's wording for an unknown name is "getaddrinfo ENOTFOUND <host>".
        code = "ENOTFOUND " if exc.errno == socket.EAI_NONAME else ""
        raise _network_error(url, f"getaddrinfo {code}{host}: {exc.strerror}") from exc
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(connect_deadline))
            if net.local_address is not None or net.local_port:
                default_local = "::" if family == socket.AF_INET6 else "0.0.0.0"
                sock.bind((net.local_address or default_local, net.local_port))
            sock.connect(address)
        except TimeoutError as exc:
            sock.close()
            raise _network_error(url, f"connect ETIMEDOUT {where}", timeout=True) from exc
        except OSError as exc:
            sock.close()
            last = exc
            continue
        # WebSocket and event streams are latency-bound small writes: no Nagle delay.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    if last is None:
        raise _network_error(url, f"getaddrinfo returned no address for {host}")
    raise _network_error(url, f"connect {_describe_os_error(last, where)}") from last


def _start_tls(
    sock: socket.socket,
    context: ssl.SSLContext,
    server_hostname: str,
    deadline: float | None,
) -> socket.socket:
    if isinstance(sock, TLSTunnelSocket):
        sock.add_tls_layer(context, server_hostname, deadline=deadline)
        return sock
    tls_sock = context.wrap_socket(
        sock, server_hostname=server_hostname, do_handshake_on_connect=False
    )
    try:
        # CPython applies the socket timeout to the whole handshake, as one deadline.
        tls_sock.settimeout(_remaining(deadline))
        tls_sock.do_handshake()
    except BaseException:
        tls_sock.close()
        raise
    return tls_sock


class _Proxy(NamedTuple):
    name: str  # scheme://host:port, never with credentials
    host: str
    port: int
    auth: str | None  # base64 of "user:password", for Proxy-Authorization: Basic
    headers: dict[str, str]
    tls: tuple[ssl.SSLContext, str | None] | None  # for an https: proxy


def _resolve_proxy(settings: ProxySettings) -> _Proxy:
    origin = _parse_proxy_origin(settings["origin"])
    host = origin.hostname or ""
    port = origin.port or DEFAULT_PORTS[origin.scheme]
    auth = None
    if origin.username is not None:
        # Like Node's url.parse, percent-escapes in the userinfo are decoded first.
        credentials = f"{unquote(origin.username)}:{unquote(origin.password or '')}"
        auth = base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    return _Proxy(
        name=f"{origin.scheme}://{_hostport(host, port)}",
        host=host,
        port=port,
        auth=auth,
        headers=settings["headers"],
        tls=tls_context(settings["tls"]) if origin.scheme == "https" else None,
    )


def _connect_request(host: str, port: int, host_header: str, via: _Proxy) -> bytes:
    # faye's CONNECT, byte for byte (WDN proxy.js); its header set wins name clashes.
    lines = [
        f"CONNECT {_hostport(host, port)} HTTP/1.1",
        f"Host: {host_header}",
        "Connection: keep-alive",
        "Proxy-Connection: keep-alive",
    ]
    taken = {"host", "connection", "proxy-connection"}
    if via.auth is not None:
        lines.append(f"Proxy-Authorization: Basic {via.auth}")
        taken.add("proxy-authorization")
    for name, value in via.headers.items():
        if name.lower() not in taken:
            lines.append(f"{name}: {value.strip()}")
            taken.add(name.lower())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _host_header(url: str, host: str, port: int, secure: bool) -> str:
    try:
        netloc = urlsplit(url).netloc.rpartition("@")[2]
    except ValueError:
        netloc = ""
    if netloc:
        return netloc
    default = DEFAULT_PORTS["wss" if secure else "ws"]
    host_text = f"[{host}]" if ":" in host else host
    return host_text if port == default else f"{host_text}:{port}"


def connect(
    host: str,
    port: int,
    *,
    secure: bool,
    proxy: ProxyOption = None,
    tls: TLSOption = None,
    ca: Any = None,
    net: Mapping[str, Any] | None = None,
    timeout: float | None = 10.0,
    target_url: str | None = None,
) -> socket.socket:
    """Open the connection a client speaks HTTP over.

    Args:
        host: The target host name or IP address (IPv6 without brackets).
        port: The target port.
        secure: Start TLS to the target (``wss:``/``https:``).
        proxy: See :func:`proxy_for`: ``None`` reads the environment, ``False``
            connects directly, a URL or a dict names the proxy.
        tls: For the target: an :class:`ssl.SSLContext` or a dict (see :func:`tls_context`).
            Verification is on unless ``{"verify": False}``.
        ca: faye's legacy shorthand for ``tls={"ca": ...}``.
        net: ``local_address`` and ``local_port`` to bind, ``timeout`` for the TCP
            connect, ``family`` (0, 4 or 6).
        timeout: Seconds for everything done here: connect, proxy exchange and TLS
            handshakes. ``None`` waits as long as the OS does.
        target_url: The URL being opened, for proxy selection from the environment,
            the ``CONNECT`` ``Host`` header and error messages (credentials are never
            shown). Default: built from ``host``, ``port`` and ``secure``.

    Returns:
        A connected blocking socket, its timeout reset to ``None``: a plain socket, an
        :class:`ssl.SSLSocket`, or a :class:`TLSTunnelSocket` when the proxy is
        ``https:``.

    Raises:
        NetworkError: DNS, connect, TLS (e.g. verification) or I/O failure.
        NetworkTimeoutError: The timeout passed.
        ProxyError: The proxy answered anything but ``200``, or garbage.
        TypeError: An unknown option name.
        ValueError: A malformed option.
    """
    if target_url is None:
        scheme = "wss" if secure else "ws"
        target_url = f"{scheme}://{_host_header('', host, port, secure)}/"
    url = redact_url(target_url)
    settings = proxy_for(target_url, proxy)
    via = None if settings is None else _resolve_proxy(settings)
    net_options = _net_options(net)
    target_tls = tls_context(tls, ca=ca) if secure else None
    deadline = _deadline(timeout)

    if via is None:
        logger.debug("connecting to %s", _hostport(host, port))
        sock = _open_tcp(host, port, net_options, deadline, url)
    else:
        logger.debug("connecting to %s through proxy %s", _hostport(host, port), via.name)
        sock = _open_tcp(via.host, via.port, net_options, deadline, url)
    try:
        if via is not None:
            if via.tls is not None:
                with _step(url, f"TLS handshake with proxy {via.name}"):
                    sock = TLSTunnelSocket(sock)
                    context, server_hostname = via.tls
                    sock.add_tls_layer(context, server_hostname or via.host, deadline=deadline)
            request = _connect_request(
                host, port, _host_header(target_url, host, port, secure), via
            )
            with _step(url, f"CONNECT through proxy {via.name}"):
                _proxy_exchange(sock, request, deadline, url, via.name)
        if target_tls is not None:
            with _step(url, f"TLS handshake with {_hostport(host, port)}"):
                context, server_hostname = target_tls
                sock = _start_tls(sock, context, server_hostname or host, deadline)
        sock.settimeout(None)
        return sock
    except BaseException:
        sock.close()
        raise


@contextlib.contextmanager
def _step(url: str, what: str) -> Iterator[None]:
    """Turn the OS and TLS errors of one step of :func:`connect` into ours, naming the step."""
    try:
        yield
    except FayeSyncError:
        raise
    except TimeoutError as exc:
        raise _network_error(url, f"{what} timed out", timeout=True) from exc
    except ssl.SSLError as exc:
        raise _network_error(url, f"{what} failed: {_describe_tls_error(exc)}") from exc
    except OSError as exc:
        raise _network_error(url, f"{what} failed: {_describe_os_error(exc)}") from exc


def _proxy_exchange(
    sock: socket.socket, request: bytes, deadline: float | None, url: str, proxy_name: str
) -> None:
    refused = f"Can't establish a connection to the server at {url}"
    try:
        head = read_response_head(sock, request, timeout=_remaining(deadline), url=url)
    except ProxyError:
        raise
    except HandshakeError as exc:
        raise ProxyError(
            f"{refused}: proxy sent an invalid response ({exc})", proxy=proxy_name
        ) from exc
    except NetworkError as exc:
        raise type(exc)(f"{exc} (from proxy {proxy_name})", url=exc.url) from exc
    if head.status != 200:
        # faye accepts exactly 200, not any 2xx.
        reason = f" {head.reason}" if head.reason else ""
        raise ProxyError(
            f"{refused}: proxy answered {head.status}{reason}",
            status=head.status,
            headers=head.headers,
            proxy=proxy_name,
        )
    if head.leftover:
        # Nothing may precede our first byte in the tunnel; dropping it (as faye does)
        # would corrupt the stream silently.
        raise ProxyError(
            f"{refused}: proxy sent data after its 200 response",
            status=head.status,
            headers=head.headers,
            proxy=proxy_name,
        )


def read_body_excerpt(
    sock: socket.socket,
    conn: h11.Connection,
    leftover: bytes,
    *,
    limit: int = 4096,
    timeout: float = 1.0,
) -> bytes:
    """The first ``limit`` bytes of a response body, for an error message; never raises.

    ``conn`` and ``leftover`` are what :func:`receive_response_head` returned. Reading
    stops at the body's end, at ``limit`` bytes, after ``timeout`` seconds in all, or
    at any error: the excerpt explains a refusal, it is not the response.
    """
    deadline = time.monotonic() + timeout
    body = bytearray()
    previous_timeout = sock.gettimeout()
    try:
        if leftover:  # h11 takes empty data for the end of the connection
            conn.receive_data(leftover)
        while len(body) < limit:
            event = conn.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            elif event is h11.NEED_DATA:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                conn.receive_data(sock.recv(_RECV_SIZE))
            else:
                break  # the end of the body, or of the connection
    except (OSError, h11.ProtocolError):
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(previous_timeout)
    return bytes(body[:limit])
