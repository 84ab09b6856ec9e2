"""The EventSource (server-sent events) wire format: pure functions, no I/O.

Everything here turns values into the bytes faye's ``EventSource`` writes
(faye-websocket ``lib/faye/eventsource.js``), or reads the few request values an
event stream depends on. Nothing touches a socket, a thread or a clock.

Framing, as in faye::

    retry: 5000\\r\\n\\r\\n                          once, first
    [event: E\\r\\n][id: I\\r\\n]data: L1\\r\\n(data: Ln\\r\\n)*\\r\\n   one per event
    :\\r\\n\\r\\n                                    a ping (a comment line)

Deliberate differences from faye, each allowed by the HTML event-stream grammar
(https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream):

* Every ``data:`` line ends with CRLF. faye keeps the caller's own line break
  (``data: one\\ndata: two``); a client sees the same data either way, and one
  terminator makes the output independent of how the caller wrote its lines.
* ``event`` and ``id`` holding CR, LF or NUL are refused (``ValueError``): faye
  writes them as given, which lets a value inject further fields or events.
* ``id=""`` is written (``id: ``), because an empty id is how a server resets
  the client's last event id; faye drops every falsy id, so it cannot.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs

from .http import check_header
from .options import seconds

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_MAX_BUFFERED",
    "DEFAULT_PING",
    "DEFAULT_RETRY",
    "EVENT_STREAM",
    "PING",
    "accepts_event_stream",
    "encode_event",
    "encode_retry",
    "parse_last_event_id",
    "response_headers",
    "split_lines",
]

EVENT_STREAM = "text/event-stream"

# The charset parameter changes nothing for browsers (the stream is always
# UTF-8) but tells proxies and debugging tools how to show it.
CONTENT_TYPE = f"{EVENT_STREAM}; charset=utf-8"

DEFAULT_RETRY = 5
"""Seconds a client waits before reconnecting (faye's ``DEFAULT_RETRY``)."""

DEFAULT_PING = 10
"""Seconds between keep-alive comments (faye Node's ``DEFAULT_PING``)."""

DEFAULT_MAX_BUFFERED = 1024 * 1024
"""Bytes an EventSource holds for a client that does not read before it ends the stream.

1 MiB: thousands of ordinary events, and the ``max_length`` the websockets package
chooses for one message. faye has no limit.
"""

PING = b":\r\n\r\n"
"""faye's ping: an empty comment, which every client ignores."""

# https://html.spec.whatwg.org/multipage/server-sent-events.html: "end-of-line =
# ( cr lf / cr / lf )". Nothing else is a line break: str.splitlines() would
# also split on VT, FF, FS..RS, NEL, U+2028 and U+2029 (the flask-sse bug).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# Fields a value must not hold: CR and LF end the field early (and could start
# another one), and a client ignores an id that contains NUL.
_FORBIDDEN_IN_FIELD = re.compile(r"[\r\n\0]")

# PEP 3333 forbids applications from setting hop-by-hop headers (RFC 2616
# §13.5.1); wsgiref's validator asserts on them. Content-Length would end the
# stream after that many bytes.
_REFUSED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)

_DEFAULT_HEADERS = (
    ("Content-Type", CONTENT_TYPE),
    ("Cache-Control", "no-cache, no-store"),
    # nginx buffers proxied responses unless told not to, which would hold
    # events back until its buffer fills.
    ("X-Accel-Buffering", "no"),
)


def accepts_event_stream(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for ``text/event-stream``.

    faye's rule (the header, split on commas, holds exactly ``text/event-stream``)
    made tolerant of parameters: ``text/event-stream;q=0.9`` is accepted, and
    ``q=0`` means "not acceptable" (RFC 9110 §12.4.2). Wildcards such as ``*/*``
    do not count, as in faye: an ordinary page load must not become a stream.

    Args:
        accept: the header value, or None when absent.

    Returns:
        True when the media range is listed with a non-zero quality.
    """
    if not accept:
        return False
    for media_range in accept.split(","):
        media_type, *params = media_range.split(";")
        if media_type.strip().lower() != EVENT_STREAM:
            continue
        return _quality(params) > 0
    return False


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                # A malformed q is the client's mistake; being lenient keeps
                # faye's behaviour of accepting any listed text/event-stream.
                return 1.0
    return 1.0


def response_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """The response headers of an event stream, with the caller's added.

    A caller's header replaces a default of the same name (case-insensitively):
    a custom ``Content-Type`` replaces ours, where faye sent both.

    Args:
        headers: extra headers, as a mapping or as ``(name, value)`` pairs
            (pairs allow a name more than once, e.g. ``Set-Cookie``).

    Returns:
        The header list to pass to ``start_response``.

    Raises:
        ValueError: a name is not an HTTP token or is a hop-by-hop header (or
            ``Content-Length``), or a value holds CR, LF or NUL or is not
            latin-1 (PEP 3333 header values are latin-1 strings).
        TypeError: a name or value is not a ``str``.
    """
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
    extra: list[tuple[str, str]] = []
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values must be str: {name!r}: {value!r}")
        check_header(name, value)
        if name.lower() in _REFUSED_HEADERS:
            raise ValueError(f"an event stream may not set the {name} header")
        extra.append((name, value))
    replaced = {name.lower() for name, _ in extra}
    return [(n, v) for n, v in _DEFAULT_HEADERS if n.lower() not in replaced] + extra


def encode_retry(retry: float) -> bytes:
    """The ``retry:`` field that opens a stream: ``retry: <ms>\\r\\n\\r\\n``.

    Args:
        retry: seconds; written in whole milliseconds, rounded down as in faye
            (``floor(retry * 1000)``) but without binary float artefacts
            (0.57 s is 570 ms, not 569).

    Raises:
        TypeError: ``retry`` is not a number.
        ValueError: ``retry`` is negative, infinite or NaN.
    """
    milliseconds = math.floor(round(seconds("retry", retry, allow_zero=True) * 1000, 6))
    return b"retry: %d\r\n\r\n" % milliseconds


def split_lines(text: str) -> list[str]:
    """Split on CRLF, CR and LF only, as an event-stream parser does.

    A trailing break gives a trailing empty line, so ``"a\\n"`` round-trips.
    """
    return _LINE_BREAK.split(text)


def encode_event(
    data: str | bytes | bytearray | memoryview,
    *,
    event: str | None = None,
    id: str | int | None = None,
) -> bytes:
    """One event, ready to write.

    Args:
        data: the event's data: ``str``, or ``bytes`` of UTF-8 text. Each line
            becomes one ``data:`` line.
        event: the event type; omitted when None or empty (the client then
            dispatches a ``message`` event).
        id: the event id; omitted when None. ``""`` is written, which resets the
            client's last event id. An ``int`` is written in decimal.

    Returns:
        The UTF-8 bytes of the event, ending with the blank line that
        dispatches it.

    Raises:
        TypeError: ``data`` is neither text nor bytes. faye writes
            ``String(data)``, which for a dict or a list is rarely what the
            client expects: the caller converts (``str()``, ``json.dumps()``).
        ValueError: ``event`` or ``id`` holds CR, LF or NUL; ``data`` is bytes
            that are not UTF-8, or a str holding a lone surrogate.
    """
    if isinstance(data, str):
        text = data
    elif isinstance(data, bytes | bytearray | memoryview):
        text = bytes(data).decode("utf-8")
    else:
        raise TypeError(
            f"send() takes str or UTF-8 bytes, not {type(data).__name__}; "
            "convert it first, e.g. send(str(value)) or send(json.dumps(value))"
        )
    parts: list[str] = []
    if event:
        parts.append(f"event: {_field('event', event)}\r\n")
    if id is not None:
        parts.append(f"id: {_field('id', id)}\r\n")
    parts.extend(f"data: {line}\r\n" for line in split_lines(text))
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def _field(name: str, value: str | int) -> str:
    text = str(value)
    if _FORBIDDEN_IN_FIELD.search(text):
        raise ValueError(f"an event {name} may not hold CR, LF or NUL: {text!r}")
    return text


def parse_last_event_id(header: str | None, query_string: str | None = None) -> str:
    """The id a reconnecting client last saw, or ``""``.

    The ``Last-Event-ID`` request header wins (faye reads only that). When it is
    absent, a ``lastEventId`` query parameter is used: EventSource polyfills
    that cannot set headers on cross-origin requests put it there.

    Args:
        header: the header value as WSGI text (its bytes as latin-1), or None
            when absent. The client sent back the id it received, which was
            UTF-8: it is decoded so (a value that is not UTF-8 is kept as is).
        query_string: the raw query string (``QUERY_STRING``), or None.
    """
    if header is not None:
        try:
            return header.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return header
    if query_string:
        values = parse_qs(query_string, keep_blank_values=True).get("lastEventId")
        if values:
            return values[0]
    return ""
