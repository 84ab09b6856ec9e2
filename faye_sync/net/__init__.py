"""How a client gets its connection: the mirror of :mod:`faye_sync.adapters`.

A server's adapter finds the socket a WSGI server holds; this package opens one
for the WebSocket client and the EventSource client, and reads the head of the
server's answer:

* :mod:`.dial`: :func:`connect` resolves and connects with a deadline (optionally
  binding a local address), through a proxy when one applies, then starts TLS.
* :mod:`.proxy`: the ``proxy`` option, ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
  ``ALL_PROXY`` / ``NO_PROXY`` from the environment, and the ``CONNECT`` tunnel.
* :mod:`.tls`: the ``tls`` option (verification on by default) and
  :class:`TLSTunnelSocket`, TLS inside TLS for a ``wss:`` target behind an
  ``https:`` proxy.
* :mod:`.http_head`: :func:`receive_response_head` sends the request and reads
  the response head with ``h11``, handing back the bytes after it untouched.

This package is at the level of :mod:`faye_sync.blocking` (L2): sockets, ``ssl``
and clocks, nothing of WSGI; the HTTP rules themselves are in
:mod:`faye_sync.protocol.http`. Proxy credentials and URL passwords never
appear in log records or exception messages.
"""

from __future__ import annotations

from .dial import connect
from .http_head import ResponseHead, read_body_excerpt, receive_response_head
from .proxy import ProxyOption, ProxySettings, proxy_for
from .tls import TLSOption, TLSTunnelSocket, tls_context

__all__ = [
    "ProxyOption",
    "ProxySettings",
    "ResponseHead",
    "TLSOption",
    "TLSTunnelSocket",
    "connect",
    "proxy_for",
    "read_body_excerpt",
    "receive_response_head",
    "tls_context",
]
