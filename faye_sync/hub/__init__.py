"""The hub: one room across threads, workers and hosts (memory, or Redis Streams).

Delivery: ordered per channel (one id order across the channels of a hub),
at-least-once to every subscriber within the retention window, and an explicit
``reset`` event when a client asks for what is no longer retained.

::

    from faye_sync.hub import Hub

    hub = Hub.from_url("redis://127.0.0.1:6379/0")
    hub.publish("chat", "hello")
"""

from __future__ import annotations

from ..exceptions import HubError, HubUnavailable
from .core import Hub
from .engine import Engine, State
from .message import RESET, HubMessage
from .subscription import Subscription

__all__ = [
    "RESET",
    "Engine",
    "Hub",
    "HubError",
    "HubMessage",
    "HubUnavailable",
    "State",
    "Subscription",
]
