"""WebSocket extensions: faye's websocket-extensions framework, made synchronous.

Pass extension objects to a WebSocket or Client (``extensions=[PerMessageDeflate()]``);
each connection negotiates them through its own :class:`Extensions`. Writing an
extension means providing the contract in :mod:`faye_sync.extensions.base`.
"""

from __future__ import annotations

from .base import (
    ClientSession,
    Extension,
    ExtensionMessage,
    Params,
    ParamValue,
    ServerSession,
    Session,
)
from .parser import parse_header, serialize_params
from .permessage_deflate import PerMessageDeflate
from .pipeline import Extensions

__all__ = [
    "ClientSession",
    "Extension",
    "ExtensionMessage",
    "Extensions",
    "ParamValue",
    "Params",
    "PerMessageDeflate",
    "ServerSession",
    "Session",
    "parse_header",
    "serialize_params",
]
