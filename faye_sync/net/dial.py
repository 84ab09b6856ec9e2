"""Dialing: the connection a client speaks HTTP over, opened within one deadline.

:func:`connect` resolves and connects (optionally binding a local address),
tunnels through an HTTP ``CONNECT`` proxy when one applies (:mod:`.proxy`), and
starts TLS to the target with certificates and host names verified by default
(:mod:`.tls`). Every failure is a :class:`~faye_sync.exceptions.NetworkError`
naming the step, the URL shown without credentials.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ..protocol.http import DEFAULT_PORTS, authority, host_and_port, host_header, redact_url
from .errors import (
    check_keys,
    deadline_after,
    describe_os_error,
    network_error,
    network_errors,
    remaining,
)
from .proxy import Proxy, ProxyOption, connect_request, proxy_exchange, proxy_for, resolve_proxy
from .tls import TLSOption, TLSTunnelSocket, start_tls, tls_context

__all__ = ["connect"]

logger = logging.getLogger(__name__)

_NET_KEYS = frozenset({"local_address", "local_port", "timeout", "family"})
_FAMILIES = {0: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}


class _NetOptions(NamedTuple):
    local_address: str | None
    local_port: int
    timeout: float | None
    family: int


def _net_options(net: Mapping[str, Any] | None) -> _NetOptions:
    options = dict(net or {})
    check_keys("net", options, _NET_KEYS)
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


def _open_tcp(
    host: str,
    port: int,
    net: _NetOptions,
    deadline: float | None,
    url: str,
) -> socket.socket:
    where = host_and_port(host, port)
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
        raise network_error(url, f"getaddrinfo {code}{host}: {exc.strerror}") from exc
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(remaining(connect_deadline))
            if net.local_address is not None or net.local_port:
                default_local = "::" if family == socket.AF_INET6 else "0.0.0.0"
                sock.bind((net.local_address or default_local, net.local_port))
            sock.connect(address)
        except TimeoutError as exc:
            sock.close()
            raise network_error(url, f"connect ETIMEDOUT {where}", timeout=True) from exc
        except OSError as exc:
            sock.close()
            last = exc
            continue
        # WebSocket and event streams are latency-bound small writes: no Nagle delay.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    if last is None:
        raise network_error(url, f"getaddrinfo returned no address for {host}")
    raise network_error(url, f"connect {describe_os_error(last, where)}") from last


def _connect_host(url: str, host: str, port: int, secure: bool) -> str:
    """The ``Host`` of a ``CONNECT``: the URL's authority as written, else built."""
    try:
        written = authority(urlsplit(url))
    except ValueError:
        written = ""
    return written or host_header(host, port, DEFAULT_PORTS["wss" if secure else "ws"])


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
        target_url = f"{scheme}://{host_header(host, port, DEFAULT_PORTS[scheme])}/"
    settings = proxy_for(target_url, proxy)
    route = _Route(
        host=host,
        port=port,
        url=redact_url(target_url),
        via=None if settings is None else resolve_proxy(settings),
        connect_host=_connect_host(target_url, host, port, secure),
        tls=tls_context(tls, ca=ca) if secure else None,
    )
    return _dial(route, _net_options(net), deadline_after(timeout))


class _Route(NamedTuple):
    host: str
    port: int
    url: str  # without credentials, for messages
    via: Proxy | None
    connect_host: str  # the Host header of a CONNECT
    tls: tuple[ssl.SSLContext, str | None] | None  # for a secure target


def _dial(route: _Route, net: _NetOptions, deadline: float | None) -> socket.socket:
    target, url, via = host_and_port(route.host, route.port), route.url, route.via
    if via is None:
        logger.debug("connecting to %s", target)
        sock = _open_tcp(route.host, route.port, net, deadline, url)
    else:
        logger.debug("connecting to %s through proxy %s", target, via.name)
        sock = _open_tcp(via.host, via.port, net, deadline, url)
    try:
        if via is not None:
            if via.tls is not None:
                with network_errors(url, f"TLS handshake with proxy {via.name}"):
                    sock = TLSTunnelSocket(sock)  # it owns the descriptor from here
                    context, server_hostname = via.tls
                    sock.add_tls_layer(context, server_hostname or via.host, deadline=deadline)
            request = connect_request(route.host, route.port, route.connect_host, via)
            with network_errors(url, f"CONNECT through proxy {via.name}"):
                proxy_exchange(sock, request, deadline, url, via.name)
        if route.tls is not None:
            with network_errors(url, f"TLS handshake with {target}"):
                context, server_hostname = route.tls
                sock = start_tls(sock, context, server_hostname or route.host, deadline)
        sock.settimeout(None)
        return sock
    except BaseException:
        sock.close()
        raise
