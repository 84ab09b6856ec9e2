"""WebSockets and EventSource for WSGI applications, blocking style: a port of faye-websocket."""

from __future__ import annotations

import logging
from importlib.machinery import EXTENSION_SUFFIXES

from .adapters.admission import set_connection_limit
from .blocking.live import close_all
from .client import Client, connect
from .eventsource import EventSource
from .eventsource_client import EventSourceClient, EventTooLargeError, ServerSentEvent
from .exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    FayeSyncError,
    HandshakeError,
    HijackError,
    HubError,
    HubUnavailable,
    NetworkError,
    NetworkTimeoutError,
    ProtocolError,
    ProxyError,
)
from .extensions import PerMessageDeflate
from .metrics import Stats, add_gauge, stats
from .protocol import hybi as _hybi
from .websocket import WebSocket

__version__ = "0.1.0.dev0"

#: True when the frame layer in use is the one mypyc compiled (a wheel built where
#: mypy and a C compiler were; setup.py), False for the pure-Python package.
__compiled__ = str(_hybi.__file__).endswith(tuple(EXTENSION_SUFFIXES))

__all__ = [
    "Client",
    "ConcurrencyError",
    "ConnectionClosed",
    "EventSource",
    "EventSourceClient",
    "EventTooLargeError",
    "FayeSyncError",
    "HandshakeError",
    "HijackError",
    "HubError",
    "HubUnavailable",
    "NetworkError",
    "NetworkTimeoutError",
    "PerMessageDeflate",
    "ProtocolError",
    "ProxyError",
    "ServerSentEvent",
    "Stats",
    "WebSocket",
    "add_gauge",
    "close_all",
    "connect",
    "set_connection_limit",
    "stats",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
