"""The upgrade request as a server reads it from a WSGI environ, and its checks.

:class:`EnvironHeaders` reads the ``HTTP_*`` headers when asked, instead of
copying them; :func:`request_from_environ` makes the handshake's
:class:`~faye_sync.protocol.handshake.Request`; :func:`origin_allowed` is the
``allowed_origins`` rule. :mod:`faye_sync.websocket` uses them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from .protocol.handshake import Request

__all__ = ["EnvironHeaders", "Origins", "origin_allowed", "request_from_environ"]

Origins = Sequence["str | re.Pattern[str] | None"]


class _EnvironKeys(dict[str, str]):
    """Header name -> environ key ("sec-websocket-key" -> "HTTP_SEC_WEBSOCKET_KEY").

    Made once per name (a handshake looks up a dozen), in ``__missing__``: a known
    name is then one subscript, done in C.
    """

    def __missing__(self, name: str) -> str:
        key = "HTTP_" + name.upper().replace("-", "_")
        if len(self) < 256:  # the names code asks for: a handful
            self[name] = key
        return key


_ENVIRON_KEYS = _EnvironKeys()
_new = object.__new__  # see _request
_new_tuple = tuple.__new__


class EnvironHeaders(Mapping[str, str]):
    """The ``HTTP_*`` headers of a WSGI environ by lower-case name, read when asked.

    A handshake looks up a handful of headers: this saves copying all of environ.
    """

    __slots__ = ("_environ",)

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self._environ = environ

    def get(self, name: str, default: Any = None) -> Any:
        value = self._environ.get(_ENVIRON_KEYS[name])
        if type(value) is str:
            return value
        return default if value is None else str(value)

    def __getitem__(self, name: str) -> str:
        value: str | None = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return (key[5:].replace("_", "-").lower() for key in self._environ if key[:5] == "HTTP_")

    def __len__(self) -> int:
        return sum(1 for _ in self)


# What quote() below leaves alone: a path made only of these needs no quoting.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/;=,@:!$&'()*+~._-]*")


def request_from_environ(environ: Mapping[str, Any], scheme: str = "ws") -> Request:
    """The upgrade request a WSGI server received, as the handshake sees it."""
    return _request(environ, scheme)


def _request(environ: Mapping[str, Any], scheme: str | None) -> Request:
    """The request; without its ``url`` if ``scheme`` is None (only the drafts need it)."""
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    if not _PLAIN_PATH.fullmatch(path):
        path = quote(path, safe="/;=,@:!$&'()*+~")
    query = environ.get("QUERY_STRING", "")
    target = path + (f"?{query}" if query else "")
    url = ""
    if scheme is not None:
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        url = f"{scheme}{'s' if _is_secure(environ) else ''}://{host}{target}"
    headers: EnvironHeaders = _new(EnvironHeaders)  # a class call enters __init__ from C
    headers._environ = environ
    # Request's fields in order. Not Request(...): the named tuple's __new__ is Python,
    # entered from C (about 1,500 instructions a handshake).
    request: Request = _new_tuple(
        Request, (environ.get("REQUEST_METHOD", "GET"), target, headers, url)
    )
    return request


def _is_secure(environ: Mapping[str, Any]) -> bool:
    # faye's isSecureRequest: a TLS socket or one of the proxies' headers.
    return (
        environ.get("wsgi.url_scheme") == "https"
        or environ.get("HTTPS") == "on"
        or environ.get("HTTP_X_FORWARDED_SSL") == "on"
        or environ.get("HTTP_X_FORWARDED_SCHEME") == "https"
        or environ.get("HTTP_X_FORWARDED_PROTO") == "https"
    )


def origin_allowed(origin: str | None, allowed: Origins) -> bool:
    """True if ``origin`` matches an exact string or a regex; None admits no Origin."""
    for entry in allowed:
        if entry is None:
            if origin is None:
                return True
        elif origin is not None:
            if isinstance(entry, str):
                if entry == origin:
                    return True
            elif entry.fullmatch(origin):
                return True
    return False
