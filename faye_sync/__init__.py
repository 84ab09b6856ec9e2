"""WebSockets and EventSource for WSGI applications, blocking style: a port of faye-websocket."""

from __future__ import annotations

import logging

from .blocking.connection import close_all
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
    ProtocolError,
)
from .extensions import PerMessageDeflate
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
    "PerMessageDeflate",
    "ProtocolError",
    "ServerSentEvent",
    "WebSocket",
    "close_all",
    "connect",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
