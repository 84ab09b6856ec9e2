"""faye's websocket-extensions contract, made synchronous.

An *extension* (for example :class:`~faye_sync.extensions.PerMessageDeflate`) is a
factory of *sessions*, one per connection. The client asks each extension for a
session and sends its offer; the server builds a session from the offers it
accepts and answers with its response parameters. Once negotiated, every data
message passes through the active sessions: outgoing in negotiation order,
incoming in reverse. A session raises :class:`~faye_sync.exceptions.ProtocolError`
with a close code (1007 for data it cannot decode, 1009 for a message over
``max_length``) to fail the connection; any other exception fails it with 1011
(faye sends 1010 for both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "ClientSession",
    "Extension",
    "ExtensionMessage",
    "ParamValue",
    "Params",
    "ServerSession",
    "Session",
]

ParamValue = bool | int | str | list[bool | int | str]
"""A parameter value: a flag (``True``), a number, a string, or a repeated parameter."""

Params = dict[str, ParamValue]


@dataclass(slots=True)
class ExtensionMessage:
    """A data message between the frame layer and the extension sessions."""

    rsv1: bool
    rsv2: bool
    rsv3: bool
    opcode: int
    data: bytes


class Session(Protocol):
    """What every session does once the connection is open."""

    def process_incoming_message(self, message: ExtensionMessage) -> ExtensionMessage: ...

    def process_outgoing_message(self, message: ExtensionMessage) -> ExtensionMessage: ...

    def close(self) -> None: ...


class ClientSession(Session, Protocol):
    """A client's session: offers parameters, then accepts the server's choice."""

    def generate_offer(self) -> Params | list[Params] | None:
        """The parameters to offer (several sets are offered in order), or None."""
        ...

    def activate(self, params: Params) -> bool:
        """Accept the server's response parameters; anything but True rejects them."""
        ...


class ServerSession(Session, Protocol):
    """A server's session, made from the offers the client sent for its extension."""

    def generate_response(self) -> Params:
        """The parameters of the response header."""
        ...


class Extension(Protocol):
    """An extension as faye's framework sees it (``type`` is always ``"permessage"``)."""

    name: str
    type: str
    rsv1: bool
    rsv2: bool
    rsv3: bool

    def create_client_session(self, *, max_length: int) -> ClientSession | None: ...

    def create_server_session(
        self, offers: list[Params], *, max_length: int
    ) -> ServerSession | None: ...
