"""HTTP ``CONNECT`` proxies for the client: the ``proxy`` option, the environment, the tunnel.

:func:`proxy_for` resolves the ``proxy`` option: an explicit proxy, ``False`` for
none, or (by default) ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` and
``NO_PROXY`` from the environment. :func:`resolve_proxy` makes it ready to dial,
:func:`connect_request` writes faye's ``CONNECT`` and :func:`proxy_exchange`
checks the proxy's answer. Proxy credentials never appear in log records or
exception messages.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import ssl
from collections.abc import Mapping
from typing import Any, NamedTuple, TypeAlias, TypedDict
from urllib.parse import SplitResult, urlsplit

from ..exceptions import HandshakeError, NetworkError, ProxyError
from ..protocol.http import (
    DEFAULT_PORTS,
    basic_auth,
    check_header,
    host_and_port,
    split_url,
)
from .errors import check_keys, remaining
from .http_head import receive_response_head
from .tls import TLSOption, tls_context

__all__ = [
    "Proxy",
    "ProxyOption",
    "ProxySettings",
    "connect_request",
    "proxy_exchange",
    "proxy_for",
    "resolve_proxy",
]

logger = logging.getLogger(__name__)

#: The ``proxy`` option: ``None`` (use the environment), ``False`` (no proxy), an origin URL,
#: or a dict ``{"origin": ..., "headers": {...}, "tls": ...}``.
ProxyOption: TypeAlias = bool | str | Mapping[str, Any] | None

_PROXY_KEYS = frozenset({"origin", "headers", "tls"})


class ProxySettings(TypedDict):
    """A resolved proxy: what :func:`proxy_for` returns."""

    origin: str
    headers: dict[str, str]
    tls: TLSOption


def _parse_proxy_origin(origin: str) -> SplitResult:
    return split_url(
        origin, ("http", "https"), expected="an http: or https: URL", what="proxy origin "
    )


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
        check_keys("proxy", proxy_option, _PROXY_KEYS)
        origin = proxy_option.get("origin")
        if not isinstance(origin, str):
            raise TypeError("proxy 'origin' is required and must be a URL string")
        _parse_proxy_origin(origin)
        headers = {str(k): str(v) for k, v in dict(proxy_option.get("headers") or {}).items()}
        for name, value in headers.items():
            check_header(name, value)
        tls = proxy_option.get("tls")
        if tls is not None and not isinstance(tls, (ssl.SSLContext, Mapping)):
            raise TypeError("proxy 'tls' must be an SSLContext or a dict")
        return {"origin": origin, "headers": headers, "tls": tls}
    raise TypeError(
        f"proxy must be None, False, an origin URL or a dict, not {type(proxy_option).__name__}"
    )


class Proxy(NamedTuple):
    """A proxy ready to dial."""

    name: str  # scheme://host:port, never with credentials
    host: str
    port: int
    auth: str | None  # the Proxy-Authorization value: "Basic <base64 of user:password>"
    headers: dict[str, str]
    tls: tuple[ssl.SSLContext, str | None] | None  # for an https: proxy


def resolve_proxy(settings: ProxySettings) -> Proxy:
    origin = _parse_proxy_origin(settings["origin"])
    host = origin.hostname or ""
    port = origin.port or DEFAULT_PORTS[origin.scheme]
    return Proxy(
        name=f"{origin.scheme}://{host_and_port(host, port)}",
        host=host,
        port=port,
        auth=basic_auth(origin),
        headers=settings["headers"],
        tls=tls_context(settings["tls"]) if origin.scheme == "https" else None,
    )


def connect_request(host: str, port: int, host_header: str, via: Proxy) -> bytes:
    # faye's CONNECT, byte for byte (WDN proxy.js); its header set wins name clashes.
    lines = [
        f"CONNECT {host_and_port(host, port)} HTTP/1.1",
        f"Host: {host_header}",
        "Connection: keep-alive",
        "Proxy-Connection: keep-alive",
    ]
    taken = {"host", "connection", "proxy-connection"}
    if via.auth is not None:
        lines.append(f"Proxy-Authorization: {via.auth}")
        taken.add("proxy-authorization")
    for name, value in via.headers.items():
        if name.lower() not in taken:
            lines.append(f"{name}: {value.strip()}")
            taken.add(name.lower())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def proxy_exchange(
    sock: socket.socket, request: bytes, deadline: float | None, url: str, proxy_name: str
) -> None:
    refused = f"Can't establish a connection to the server at {url}"
    try:
        head, _ = receive_response_head(sock, request, timeout=remaining(deadline), url=url)
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
