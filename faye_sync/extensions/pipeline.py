"""One connection's extensions: negotiation, then the message pipeline.

This is faye's websocket-extensions 0.2.0 made synchronous. faye's pipeline lets
sessions finish out of order and re-orders their results; here every session
returns its result before the next message is handled, so order is kept by
construction and what remains of faye's machinery is the error rule: once a
session fails in one direction, that direction stays failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from types import MappingProxyType

from ..exceptions import ProtocolError
from .base import ClientSession, Extension, ExtensionMessage, Params, Session
from .parser import is_token, parse_header, serialize_params

__all__ = ["MAX_LENGTH", "Extensions", "accepted_before"]

MAX_LENGTH = 2**20  # as the frame layer's: 1 MiB

_MISSING = object()

# Extension names that passed add()'s token check: a name is checked once per process.
_VALID_NAMES: set[str] = set()


class Extensions:
    """The extensions of one WebSocket connection, client or server side.

    Build a fresh one per connection. A client calls :meth:`generate_offer`
    then :meth:`activate` with the server's response; a server calls
    :meth:`generate_response` with the client's offer. The frame layer then
    uses :meth:`valid_frame_rsv`, :meth:`process_incoming_message`,
    :meth:`process_outgoing_message` and :meth:`close`.

    Args:
        extensions: extensions to register, in order (see :meth:`add`).
        max_length: the largest message, in bytes, that sessions may produce;
            passed to every session (permessage-deflate stops inflating there).

    Raises:
        TypeError: an extension is invalid (see :meth:`add`), or
            ``max_length`` is not an integer.
        ValueError: ``max_length`` is negative.
    """

    def __init__(
        self, extensions: Iterable[Extension] = (), *, max_length: int = MAX_LENGTH
    ) -> None:
        if type(max_length) is not int:
            raise TypeError(f"max_length must be an integer, not {max_length!r}")
        if max_length < 0:
            raise ValueError(f"max_length must not be negative, not {max_length}")
        self.max_length = max_length
        self._registered: dict[str, Extension] = {}
        for extension in extensions:
            self.add(extension)

    # Until negotiation or a failure sets them (a server that is offered nothing, most
    # connections, sets none of them: class attributes, never changed in place).
    _offered: Mapping[str, tuple[Extension, ClientSession]] = MappingProxyType({})
    _active: Sequence[tuple[Extension, Session]] = ()
    _rsv_allowed = (False, False, False)
    _incoming_error: ProtocolError | None = None
    _outgoing_error: ProtocolError | None = None

    def __repr__(self) -> str:
        names = ", ".join(self._registered)
        active = ", ".join(extension.name for extension, _ in self._active)
        return f"<Extensions registered=[{names}] active=[{active}]>"

    @property
    def active(self) -> list[str]:
        """The names of the negotiated extensions, in pipeline order."""
        return [extension.name for extension, _ in self._active]

    def add(self, extension: Extension) -> None:
        """Register an extension; negotiation tries them in registration order.

        Raises:
            TypeError: ``name`` is not a header token, ``type`` is not
                ``"permessage"``, an ``rsv`` field is not a bool, or an
                extension with that name is already registered.
        """
        name = _usual_name(extension)
        if name is not None and name not in self._registered:
            self._registered[name] = extension
            return
        self._add_checked(extension)

    def _add_checked(self, extension: Extension) -> None:
        """:meth:`add` with every check in turn, each with its message."""
        name = getattr(extension, "name", _MISSING)
        if not isinstance(name, str):
            raise TypeError("extension.name must be a string")
        if not is_token(name):
            raise TypeError(f"extension.name must be a header token, not {name!r}")
        if getattr(extension, "type", _MISSING) != "permessage":
            raise TypeError('extension.type must be "permessage"')
        for field in ("rsv1", "rsv2", "rsv3"):
            if not isinstance(getattr(extension, field, _MISSING), bool):
                raise TypeError(f"extension.{field} must be True or False")
        if name in self._registered:
            raise TypeError(f'An extension with name "{name}" is already registered')
        self._registered[name] = extension
        if type(name) is str and len(_VALID_NAMES) < 64:  # bounded: names come from code
            _VALID_NAMES.add(name)

    # ------------------------------------------------------------ client side

    def generate_offer(self) -> str | None:
        """Build the client's ``Sec-WebSocket-Extensions`` header.

        Every registered extension is asked for a session and its offers, even
        ones that would clash on RSV bits: the server picks.

        Returns:
            The header value, or None when nothing is offered.
        """
        offers: list[str] = []
        offered: dict[str, tuple[Extension, ClientSession]] = {}
        self._offered = offered
        for extension in self._registered.values():
            session = extension.create_client_session(max_length=self.max_length)
            if session is None:
                continue
            offered[extension.name] = (extension, session)
            offer = session.generate_offer()
            if offer is None:
                continue
            for params in offer if isinstance(offer, list) else [offer]:
                offers.append(serialize_params(extension.name, params))
        return ", ".join(offers) or None

    def activate(self, header: str) -> None:
        """Apply the server's response; the pipeline follows the server's order.

        Raises:
            ValueError: the header does not parse, names an extension we did
                not offer (or names one twice), makes two extensions share an
                RSV bit, or carries parameters a session rejects.
        """
        active: list[tuple[Extension, Session]] = []
        reserved: dict[int, str] = {}
        for name, params in parse_header(header):
            record = self._offered.get(name)
            if record is None:
                raise ValueError(
                    f'Server sent an extension response for unknown extension "{name}"'
                )
            extension, session = record
            clash = _clash(extension, reserved)
            if clash is not None:
                bit, other = clash
                raise ValueError(
                    f"Server sent two extension responses that use the RSV{bit} bit: "
                    f'"{other}" and "{name}"'
                )
            if any(session is chosen for _, chosen in active):
                raise ValueError(f'Server sent two extension responses for "{name}"')
            if session.activate(params) is not True:
                raise ValueError(
                    "Server sent unacceptable extension parameters: "
                    + serialize_params(name, params)
                )
            _reserve(extension, reserved)
            active.append((extension, session))
        for _, session in self._offered.values():
            if not any(session is chosen for _, chosen in active):
                _close_quietly(session)
        self._offered = MappingProxyType({})
        self._set_active(active)

    # ------------------------------------------------------------ server side

    def generate_response(self, header: str) -> str | None:
        """Negotiate with a client's offer and build the response header.

        Extensions are tried in registration order. One the client did not
        offer, or that needs an RSV bit an accepted one already uses, is
        skipped; an extension whose session is None declines, leaving its bits
        free. The pipeline, like the response, follows registration order.

        Returns:
            The header value, or None when nothing was accepted.

        Raises:
            ValueError: the header does not parse.
        """
        offers: dict[str, list[Params]] = {}
        for name, params in _parse_offer(header):
            offers.setdefault(name, []).append(params)
        active: list[tuple[Extension, Session]] = []
        reserved: dict[int, str] = {}
        response: list[str] = []
        for extension in self._registered.values():
            offered = offers.get(extension.name)
            if not offered or _clash(extension, reserved) is not None:
                continue
            session = extension.create_server_session(offered, max_length=self.max_length)
            if session is None:
                continue
            _reserve(extension, reserved)
            active.append((extension, session))
            response.append(serialize_params(extension.name, session.generate_response()))
        self._set_active(active)
        return ", ".join(response) or None

    # ------------------------------------------------------------ frame layer

    def valid_frame_rsv(self, opcode: int, rsv1: bool, rsv2: bool, rsv3: bool) -> bool:
        """Whether a frame's RSV bits are allowed.

        A bit may be set only on a text or binary frame (never a continuation
        or control frame), and only if an active extension uses it.
        """
        if not (rsv1 or rsv2 or rsv3):
            return True
        if opcode not in (1, 2):
            return False
        allow1, allow2, allow3 = self._rsv_allowed
        return (allow1 or not rsv1) and (allow2 or not rsv2) and (allow3 or not rsv3)

    def process_incoming_message(self, message: ExtensionMessage) -> ExtensionMessage:
        """Run a received message through the sessions, last to first.

        Raises:
            ProtocolError: a session failed, now or on an earlier message.
        """
        if self._incoming_error is not None:
            raise _copy(self._incoming_error)
        for extension, session in reversed(self._active):
            try:
                message = session.process_incoming_message(message)
            except Exception as exc:
                # Keep a copy that is never raised: a raised one would hold, through its
                # traceback, the session's frame and the data it was working on.
                self._incoming_error = _wrap(extension, exc)
                raise _copy(self._incoming_error) from exc
        return message

    def process_outgoing_message(self, message: ExtensionMessage) -> ExtensionMessage:
        """Run a message to send through the sessions, first to last.

        Raises:
            ProtocolError: a session failed, now or on an earlier message.
        """
        if self._outgoing_error is not None:
            raise _copy(self._outgoing_error)
        for extension, session in self._active:
            try:
                message = session.process_outgoing_message(message)
            except Exception as exc:
                # Keep a copy that is never raised: a raised one would hold, through its
                # traceback, the session's frame and the data it was working on.
                self._outgoing_error = _wrap(extension, exc)
                raise _copy(self._outgoing_error) from exc
        return message

    def close(self) -> None:
        """Close every session; a session's error on closing is ignored."""
        for _, session in self._active:
            _close_quietly(session)

    def _set_active(self, active: list[tuple[Extension, Session]]) -> None:
        self._active = active
        # On the instance from here on: every message reads them.
        self._incoming_error = self._outgoing_error = None
        rsv1 = rsv2 = rsv3 = False  # one pass, not three generators (add() checked the bools)
        for extension, _ in active:
            rsv1 = rsv1 or extension.rsv1
            rsv2 = rsv2 or extension.rsv2
            rsv3 = rsv3 or extension.rsv3
        self._rsv_allowed = (rsv1, rsv2, rsv3)


# Browsers send one of a handful of offers ("permessage-deflate; client_max_window_bits"):
# each is parsed once (3 µs a handshake otherwise). Short headers only, so that what
# the cache holds stays small whatever clients send; failures are not kept.
_CACHED_OFFER_LENGTH = 256


@lru_cache(maxsize=64)
def _parsed_offer(header: str) -> tuple[tuple[str, Params], ...]:
    return tuple(parse_header(header))


def _parse_offer(header: str) -> list[tuple[str, Params]]:
    """``parse_header(header)``, each pair's parameters a fresh copy (sessions own them)."""
    if len(header) > _CACHED_OFFER_LENGTH:
        return parse_header(header)
    return [
        (name, {key: value[:] if type(value) is list else value for key, value in params.items()})
        for name, params in _parsed_offer(header)
    ]


def _clash(extension: Extension, reserved: dict[int, str]) -> tuple[int, str] | None:
    for bit, uses in enumerate((extension.rsv1, extension.rsv2, extension.rsv3), 1):
        if uses and bit in reserved:
            return bit, reserved[bit]
    return None


def _reserve(extension: Extension, reserved: dict[int, str]) -> None:
    for bit, uses in enumerate((extension.rsv1, extension.rsv2, extension.rsv3), 1):
        if uses:
            reserved[bit] = extension.name


def _wrap(extension: Extension, exc: Exception) -> ProtocolError:
    # Any other exception is a fault of ours, not the peer's: 1011, internal error
    # (RFC 6455 §7.4.1). faye sends 1010, which RFC 6455 reserves for a client whose
    # server did not accept an extension it needs.
    code = exc.code if isinstance(exc, ProtocolError) else 1011
    return ProtocolError(f"{extension.name}: {exc}", code)


def _copy(error: ProtocolError) -> ProtocolError:
    # A fresh exception each time, so tracebacks do not pile up on one object.
    return ProtocolError(str(error), error.code)


def _close_quietly(session: Session) -> None:
    try:
        session.close()
    except Exception:  # faye ignores errors from closing (websocket-extensions 0.1.1)
        pass


def _usual_name(extension: Extension) -> str | None:
    """The name of the usual extension (a valid name seen before, the type and bools), or None.

    None means "not sure": :meth:`Extensions.add` then makes each check in turn.
    """
    try:
        name = extension.name
        if (
            type(name) is str
            and name in _VALID_NAMES
            and extension.type == "permessage"
            and type(extension.rsv1) is bool
            and type(extension.rsv2) is bool
            and type(extension.rsv3) is bool
        ):
            return name
    except AttributeError:  # the checks of _add_checked say which
        pass
    return None


def accepted_before(extensions: Iterable[Extension], max_length: int) -> bool:
    """True if ``Extensions(extensions, max_length=max_length)`` surely accepts these.

    A server that is offered no extension needs no pipeline, only its checks: this
    makes the cheap ones, for a list like those accepted before. False means "not
    sure": build the pipeline, whose checks raise what they always have.
    """
    if type(extensions) is not list or type(max_length) is not int or max_length < 0:
        return False
    names: set[str] = set()
    for extension in extensions:
        name = _usual_name(extension)
        if name is None or name in names:
            return False
        names.add(name)
    return True
