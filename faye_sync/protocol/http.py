"""The HTTP/1.1 rules the server and both clients share, each written once. Sans I/O.

Header names are tokens (RFC 9110 §5.6.2) and values hold no CR, LF or NUL (or
a caller could inject headers); URLs are split with their port checked and shown
without credentials; ``user:password@`` becomes Basic authorization; the Host
header and ``host:port`` are written as RFC 9112 §3.2 and RFC 3986 §3.2.2 say.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from urllib.parse import SplitResult, unquote, urlsplit

__all__ = [
    "DEFAULT_PORTS",
    "TOKEN",
    "HeaderList",
    "authority",
    "basic_auth",
    "check_header",
    "host_and_port",
    "host_header",
    "redact_url",
    "split_url",
]

#: Default ports of the URL schemes a client, a server or a proxy origin may use.
DEFAULT_PORTS: Mapping[str, int] = {"ws": 80, "wss": 443, "http": 80, "https": 443}

#: RFC 9110 §5.6.2 ``token``: a header name, an extension or parameter name. Use
#: ``fullmatch`` for a whole string, ``match(text, pos)`` to scan one.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

# faye lets these repeat; for every other header the first one set wins.
_REPEATABLE = frozenset({"set-cookie", "set-cookie2", "warning", "www-authenticate"})


def check_header(name: str, value: str) -> None:
    """Refuse a header that would break the HTTP message (header injection).

    The value is not shown in the message: it may be a credential.

    Raises:
        ValueError: the name is not a token, or the value holds CR, LF or NUL or
            is not latin-1 (what HTTP/1.1 and PEP 3333 can carry).
    """
    if not TOKEN.fullmatch(name):
        raise ValueError(f"invalid HTTP header name: {name!r}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"HTTP header {name!r} holds CR, LF or NUL")
    if not value.isascii():
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"HTTP header {name!r} is not latin-1") from None


class HeaderList:
    """Headers in the order set, with faye's rule: the first of a name wins."""

    def __init__(self) -> None:
        self._items: list[tuple[str, str]] = []
        self._names: set[str] = set()

    def set(self, name: str, value: str) -> None:
        value = str(value)
        check_header(name, value)
        self.add(name, value.strip())

    def add(self, name: str, value: str) -> None:
        """:meth:`set` for a name and value known to be valid (our own headers)."""
        lower = name.lower()
        if lower in self._names and lower not in _REPEATABLE:
            return
        self._names.add(lower)
        self._items.append((name, value))

    def update(self, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> None:
        if headers is None:
            return
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in items:
            self.set(name, value)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def to_bytes(self) -> bytes:
        return "".join(f"{k}: {v}\r\n" for k, v in self._items).encode("latin-1")


def redact_url(url: str) -> str:
    """Return ``url`` without its ``user:password@`` part, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=authority(parts)).geturl()


def split_url(url: str, schemes: Collection[str], *, expected: str, what: str = "") -> SplitResult:
    """Split ``url``, checking its port, its scheme and that it names a host.

    Args:
        url: the URL.
        schemes: the schemes accepted, lower case.
        expected: what the URL should be, for the message: ``"an http:// or https:// URL"``.
        what: the URL's role, put before it in messages (``"proxy origin "``).

    Raises:
        ValueError: naming the URL without its credentials.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise ValueError(f"{what}{redact_url(url)} is not a valid URL") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{what}{redact_url(url)} is not {expected}")
    return parts


def authority(parts: SplitResult) -> str:
    """The URL's ``host[:port]`` as written, without ``user:password@``."""
    return parts.netloc.rpartition("@")[2]


def host_and_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets (a ``CONNECT`` target, a log line)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_header(host: str, port: int, default_port: int) -> str:
    """The ``Host`` value for ``host`` and ``port``: the port only when not the default."""
    host_text = f"[{host}]" if ":" in host else host
    return host_text if port == default_port else f"{host_text}:{port}"


def basic_auth(parts: SplitResult) -> str | None:
    """``Basic <base64>`` from the URL's ``user:password@``, or ``None`` without one.

    Like Node's ``url.parse``, percent-escapes in the userinfo are decoded first.
    """
    if parts.username is None:
        return None
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
