"""WebSockets and EventSource for WSGI applications, blocking style: a port of faye-websocket."""

from __future__ import annotations

import logging

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
from .websocket import WebSocket

__version__ = "0.1.0.dev0"

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
