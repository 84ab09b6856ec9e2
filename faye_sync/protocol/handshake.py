"""The opening handshake of RFC 6455, sans I/O, with faye's rules and messages.

The server side takes a :class:`Request` (built from a WSGI environ by the
façade) and returns an :class:`Acceptance` (the exact 101 bytes and the frame
layer to use) or a :class:`Rejection` (an HTTP error to send, and the message
faye reports in its ``error`` and ``close`` events). The client side builds the
GET request and checks the server's response, raising
:class:`~faye_sync.exceptions.HandshakeError` with faye's texts.
"""

from __future__ import annotations

import base64
import re
import secrets
from binascii import b2a_base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from ..exceptions import HandshakeError
from ..extensions.pipeline import Extensions
from .base import FrameProtocol
from .http import DEFAULT_PORTS, HeaderList, basic_auth, check_header, host_header, split_url
from .hybi import MAX_LENGTH, HybiProtocol

__all__ = [
    "Acceptance",
    "ClientHandshake",
    "HeaderList",
    "Rejection",
    "Request",
    "accept_key",
    "check_header",
    "is_websocket",
    "server_handshake",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

try:  # CPython's own SHA-1: no OpenSSL context made per call (1,500 instructions less)
    from _sha1 import sha1 as _sha1  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import sha1 as _sha1  # type: ignore[assignment, unused-ignore]

_COMMA = re.compile(r" *, *")

# A key as every client writes it: 16 bytes in base64, 22 characters and "==". Any
# string it matches passes _valid_key's base64 check; others are checked by that.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9+/]{22}==")

# The Connection and Upgrade values browsers and libraries send, which is_websocket's
# token rules accept: one set lookup each instead of the rules.
_UPGRADE_TOKENS = frozenset({"Upgrade", "upgrade", "keep-alive, Upgrade"})
_WEBSOCKET = frozenset({"websocket", "WebSocket"})

# The 101 with no header but the three every answer has, up to the accept key:
# what HeaderList writes for them, made once.
_PLAIN_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
)


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return _accept_bytes(key).decode("ascii")


def _accept_bytes(key: str) -> bytes:
    digest = _sha1((key + GUID).encode("ascii", "surrogateescape")).digest()
    return b2a_base64(digest, newline=False)  # base64.b64encode without its Python call


def _valid_key(key: str) -> bool:
    """RFC 6455 §4.2.1: the key is 16 bytes in base64 (faye accepts any string)."""
    try:
        return len(base64.b64decode(key.encode("ascii"), validate=True)) == 16
    except (UnicodeEncodeError, ValueError):
        return False


class Request(NamedTuple):
    """An upgrade request, as the WSGI façade read it from the environ.

    ``headers`` maps lower-case names to values (repeated headers joined with
    ``", "``), ``target`` is the path with its query string, ``url`` the full
    ``ws://`` or ``wss://`` URL faye reports. Immutable: a named tuple, made
    with one C call per handshake (a frozen dataclass sets each field through
    ``object.__setattr__``).
    """

    method: str
    target: str
    headers: Mapping[str, str]
    url: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class Acceptance(NamedTuple):
    """Write ``response`` to the socket, then run ``protocol`` on it.

    A named tuple: the server's handshake makes it with one C call (``tuple.__new__``),
    pure or compiled, where a class call enters a Python ``__init__`` from C.
    """

    response: bytes
    protocol: FrameProtocol
    subprotocol: str
    version: str
    extensions: str = ""


_new_tuple = tuple.__new__


@dataclass
class Rejection:
    """Send this HTTP error; ``message`` is faye's ``error``/``close`` text."""

    status: str
    message: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return self.message.encode("utf-8")

    def response_headers(self) -> list[tuple[str, str]]:
        return [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(self.body))),
            *self.headers,
        ]


def is_websocket(method: str, connection: str | None, upgrade: str | None) -> bool:
    """faye's rule: a GET whose Connection has ``upgrade`` and Upgrade is ``websocket``.

    The Connection header is a token list (Firefox sends ``keep-alive, Upgrade``);
    Upgrade is compared whole, case-insensitively.
    """
    if method != "GET" or not connection or not upgrade:
        return False
    if connection in _UPGRADE_TOKENS and upgrade in _WEBSOCKET:
        return True  # the usual values: the rules below accept them
    tokens = connection.lower()
    if tokens != "upgrade" and "upgrade" not in (t.strip() for t in tokens.split(",")):
        return False
    return upgrade.strip().lower() == "websocket"


def server_handshake(
    request: Request,
    *,
    protocols: Sequence[str] | str | None = None,
    extensions: Extensions | None = None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    max_length: int = MAX_LENGTH,
) -> Acceptance | Rejection:
    """Answer an RFC 6455 upgrade request with faye's checks, in faye's order.

    Custom ``headers`` come first on the wire and win name clashes, as in faye.
    A version other than 13 gets 426 with ``Sec-WebSocket-Version: 13``
    (RFC 6455 §4.4) where faye sends 400; a request without ``Host`` gets 400
    (RFC 6455 §4.2.1, RFC 9112 §3.2) where faye answers 101.
    """
    key = _check_request(request)
    if isinstance(key, Rejection):
        return key
    header = request.headers.get
    accepted = ""
    if extensions is not None:
        offered = header("sec-websocket-extensions")
        if offered:  # nothing offered: nothing to negotiate
            try:
                accepted = extensions.generate_response(offered) or ""
            except ValueError:
                return Rejection(
                    "400 Bad Request", f"Invalid Sec-WebSocket-Extensions header: {offered}"
                )
    # Without protocols of ours no offer can match: the header is not read.
    subprotocol = (
        select_subprotocol(header("sec-websocket-protocol"), protocols) if protocols else ""
    )
    protocol = HybiProtocol(
        is_client=False,
        max_length=max_length,
        extensions=extensions if accepted else None,
    )
    if headers is None:  # the usual answer: what _response_head writes, from a template
        # accept_key's, inline: the key is ASCII here (_check_request)
        accept = b2a_base64(_sha1((key + GUID).encode()).digest(), newline=False)
        if not subprotocol and not accepted:
            head = _PLAIN_101 + accept + b"\r\n\r\n"
        else:
            head = _PLAIN_101 + accept + b"\r\n"
            if subprotocol:
                head += _header_line("Sec-WebSocket-Protocol", subprotocol)
            if accepted:
                head += _header_line("Sec-WebSocket-Extensions", accepted)
            head += b"\r\n"
    else:
        head = _response_head(key, headers, subprotocol, accepted)
    return _new_tuple(Acceptance, (head, protocol, subprotocol, protocol.version, accepted))


def _response_head(
    key: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
    subprotocol: str,
    accepted: str,
) -> bytes:
    response = HeaderList()
    response.update(headers)
    response.add("Upgrade", "websocket")
    response.add("Connection", "Upgrade")
    response.add("Sec-WebSocket-Accept", accept_key(key))
    if subprotocol:
        response.set("Sec-WebSocket-Protocol", subprotocol)
    if accepted:
        response.set("Sec-WebSocket-Extensions", accepted)
    return b"HTTP/1.1 101 Switching Protocols\r\n" + response.to_bytes() + b"\r\n"


def _header_line(name: str, value: str) -> bytes:
    """One header as ``HeaderList.set`` checks and writes it."""
    check_header(name, value)
    return f"{name}: {value.strip()}\r\n".encode("latin-1")


def _check_request(request: Request) -> Rejection | str:
    """faye's checks of an upgrade request, in faye's order: a rejection, or the key."""
    header = request.headers.get
    connection, upgrade = header("connection"), header("upgrade")
    usual = request.method == "GET" and connection in _UPGRADE_TOKENS and upgrade in _WEBSOCKET
    if not usual and not is_websocket(request.method, connection, upgrade):
        return Rejection("400 Bad Request", "Not a WebSocket request")
    if header("host") is None:
        return Rejection("400 Bad Request", "Missing handshake request header: Host")
    version = header("sec-websocket-version")
    if version != "13":
        shown = "undefined" if version is None else version
        return Rejection(
            "426 Upgrade Required",
            f"Unsupported WebSocket version: {shown}",
            [("Sec-WebSocket-Version", "13")],
        )
    key: str | None = header("sec-websocket-key")
    if not key:
        return Rejection("400 Bad Request", "Missing handshake request header: Sec-WebSocket-Key")
    if _PLAIN_KEY.fullmatch(key) is None and not _valid_key(key):
        return Rejection("400 Bad Request", f"Invalid Sec-WebSocket-Key header: {key}")
    return key


def split_protocols(protocols: Sequence[str] | str | None) -> list[str]:
    if not protocols:
        return []
    if isinstance(protocols, str):
        return [p for p in _COMMA.split(protocols.strip()) if p]
    return list(protocols)


def select_subprotocol(offer: str | None, supported: Sequence[str] | str | None) -> str:
    """faye's rule: the client's first choice that the server supports, else ''."""
    ours = split_protocols(supported)
    for candidate in split_protocols(offer):
        if candidate in ours:
            return candidate
    return ""


class ClientHandshake:
    """The client's GET request and the checks of the server's answer.

    Args:
        url: a ``ws://`` or ``wss://`` URL; anything else raises ValueError.
        protocols: subprotocols to offer.
        headers: extra request headers (written after faye's own).
        extensions: extensions to offer, or None.
        max_length: the frame layer's limit.
        key: the ``Sec-WebSocket-Key`` (random unless a test fixes it).
    """

    def __init__(
        self,
        url: str,
        protocols: Sequence[str] | str | None = None,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        extensions: Extensions | None = None,
        max_length: int = MAX_LENGTH,
        key: str | None = None,
    ) -> None:
        parts = split_url(url, ("ws", "wss"), expected="a valid WebSocket URL")
        self.url = url
        self.secure = parts.scheme == "wss"
        self.host = parts.hostname or ""
        self.port = parts.port or DEFAULT_PORTS[parts.scheme]
        self.host_header = host_header(self.host, self.port, DEFAULT_PORTS[parts.scheme])
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.protocols = split_protocols(protocols)
        self.key = key or base64.b64encode(secrets.token_bytes(16)).decode("ascii")
        self.extensions = extensions
        self.max_length = max_length

        request = HeaderList()
        request.set("Host", self.host_header)
        request.set("Upgrade", "websocket")
        request.set("Connection", "Upgrade")
        request.set("Sec-WebSocket-Key", self.key)
        request.set("Sec-WebSocket-Version", "13")
        if self.protocols:
            request.set("Sec-WebSocket-Protocol", ", ".join(self.protocols))
        authorization = basic_auth(parts)
        if authorization is not None:
            request.set("Authorization", authorization)
        request.update(headers)
        if extensions is not None:
            offer = extensions.generate_offer()
            if offer:
                request.set("Sec-WebSocket-Extensions", offer)
        self._request = request

    def request_bytes(self) -> bytes:
        return (
            f"GET {self.target} HTTP/1.1\r\n".encode("latin-1") + self._request.to_bytes() + b"\r\n"
        )

    def process_response(self, status: int, headers: Mapping[str, str]) -> Acceptance:
        """Check the response (``headers`` keyed by lower-case name).

        Raises:
            HandshakeError: with faye's message; ``status``/``headers`` attached.
        """

        def fail(why: str) -> HandshakeError:
            return HandshakeError(
                f"Error during WebSocket handshake: {why}", status=status, headers=headers
            )

        if status != 101:
            raise fail(f"Unexpected response code: {status}")
        upgrade = headers.get("upgrade")
        if upgrade is None:
            raise fail("'Upgrade' header is missing")
        if upgrade.lower() != "websocket":
            raise fail("'Upgrade' header value is not 'WebSocket'")
        connection = headers.get("connection")
        if connection is None:
            raise fail("'Connection' header is missing")
        # RFC 6455 §4.1: a token list holding "Upgrade" (faye wants exactly "Upgrade")
        if "upgrade" not in (token.strip() for token in connection.lower().split(",")):
            raise fail("'Connection' header value is not 'Upgrade'")
        if headers.get("sec-websocket-accept") != accept_key(self.key):
            raise fail("Sec-WebSocket-Accept mismatch")
        subprotocol = headers.get("sec-websocket-protocol")
        if subprotocol is not None and subprotocol not in self.protocols:
            raise fail("Sec-WebSocket-Protocol mismatch")
        accepted = headers.get("sec-websocket-extensions") or ""
        active = None
        if self.extensions is not None:
            try:
                self.extensions.activate(accepted)
            except ValueError as exc:
                raise fail(str(exc)) from None
            active = self.extensions if accepted else None
        elif accepted:
            name = accepted.split(";")[0].strip()
            raise fail(f'Server sent an extension response for unknown extension "{name}"')
        protocol = HybiProtocol(is_client=True, max_length=self.max_length, extensions=active)
        return Acceptance(b"", protocol, subprotocol or "", protocol.version, accepted)
