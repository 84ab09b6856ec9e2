"""The EventSource client's HTTP rules, sans I/O: the request and the checks of the answer.

Beside :class:`~faye_sync.protocol.handshake.ClientHandshake`, which does the same
for the WebSocket client. The request is what a browser sends (``Accept:
text/event-stream``, ``Cache-Control: no-cache``, ``Last-Event-ID`` once an id
is known); the answer must be ``200`` with ``Content-Type: text/event-stream``,
else the client stops (a ``204`` is how a server says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..exceptions import HandshakeError
from .http import DEFAULT_PORTS, authority, basic_auth, check_header, redact_url, split_url
from .sse import EVENT_STREAM

__all__ = ["EventSourceRequest", "check_last_event_id"]

# Request headers the client manages itself or that would give the GET a body.
_REFUSED_HEADERS = {
    "last-event-id": "pass last_event_id= instead of a Last-Event-ID header",
    "content-length": "an EventSource request has no body",
    "transfer-encoding": "an EventSource request has no body",
}


class EventSourceRequest:
    """The GET an EventSource client sends, and the checks of the response head.

    Args:
        url: an ``http://`` or ``https://`` URL; ``user:password@`` becomes Basic
            authorization.
        headers: extra request headers; one named like a default (``Accept``,
            ``Cache-Control``, ``Host``) replaces it.

    Raises:
        ValueError: the URL is not ``http(s)://``, or a header is invalid.
    """

    def __init__(
        self, url: str, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None
    ) -> None:
        parts = split_url(url, ("http", "https"), expected="an http:// or https:// URL")
        self.url = url
        self.safe_url = redact_url(url)
        self.secure = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or DEFAULT_PORTS[parts.scheme]
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        defaults: dict[str, tuple[str, str]] = {
            "host": ("Host", authority(parts)),
            "accept": ("Accept", EVENT_STREAM),
            # Browsers send this: no cache or proxy may answer with a stored stream.
            "cache-control": ("Cache-Control", "no-cache"),
        }
        authorization = basic_auth(parts)
        if authorization is not None:
            defaults["authorization"] = ("Authorization", authorization)
        added = _checked(headers)
        for name, _ in added:
            defaults.pop(name.lower(), None)
        self.headers = [*defaults.values(), *added]

    def request_bytes(self, last_event_id: str = "") -> bytes:
        lines = [f"GET {self.target} HTTP/1.1".encode("latin-1")]
        lines += [f"{name}: {value}".encode("latin-1") for name, value in self.headers]
        if last_event_id:
            # Browsers send the id as UTF-8; it may hold any character but CR, LF and NUL.
            lines.append(b"Last-Event-ID: " + last_event_id.encode("utf-8"))
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def check_response(self, status: int, reason: str, headers: Mapping[str, str]) -> None:
        """Refuse a response that is not an event stream.

        Raises:
            HandshakeError: with ``status`` and ``headers``; the client must not
                reconnect.
        """
        shown = f"{status} {reason}".rstrip()
        if status == 204:
            why = f"answered {shown}: the server asks the client to stop reconnecting"
        elif status != 200:
            why = f"answered {shown}; an event stream needs 200"
        else:
            content_type = headers.get("content-type")
            if (content_type or "").partition(";")[0].strip().lower() == EVENT_STREAM:
                return
            why = f"answered with Content-Type {content_type!r}, not {EVENT_STREAM}"
        raise HandshakeError(
            f"EventSource: {self.safe_url} {why}", status=status, headers=dict(headers)
        )


def check_last_event_id(last_event_id: str) -> str:
    """Refuse an id a request cannot carry; return it."""
    if any(c in last_event_id for c in "\r\n\0"):
        raise ValueError(f"last_event_id may not hold CR, LF or NUL: {last_event_id!r}")
    return last_event_id


def _checked(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> list[tuple[str, str]]:
    items = list(headers.items() if isinstance(headers, Mapping) else headers or ())
    checked: list[tuple[str, str]] = []
    for name, value in items:
        name, value = str(name), str(value).strip()
        check_header(name, value)
        why = _REFUSED_HEADERS.get(name.lower())
        if why is not None:
            raise ValueError(f"header {name}: {why}")
        checked.append((name, value))
    return checked
