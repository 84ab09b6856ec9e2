"""The ``Sec-WebSocket-Extensions`` header grammar, as websocket-extensions 0.2.0 reads it.

::

    header    = LWS? extension (LWS? "," LWS? extension)* LWS?
    extension = token (LWS? ";" LWS? param)*
    param     = token (LWS? "=" LWS? (token | quoted-string))?
    LWS       = [ \\t]* (CRLF [ \\t]+)*           (folded lines included)

The parser walks the header token by token, matching small regular expressions
at fixed positions. None of them can fail after a partial match, so there is no
backtracking: parsing is linear in the header's length, whatever the input
(faye's regular-expression parser was exponential before 0.1.4, CVE-2020-7662).
"""

from __future__ import annotations

import re

from ..protocol.http import TOKEN as _TOKEN
from .base import Params

__all__ = ["is_token", "parse_header", "serialize_params"]

_Scalar = bool | int | str

# Always matches (possibly empty), so the engine never backtracks into it.
_LWS = re.compile(r"[ \t]*(?:\r\n[ \t]+)*")
# The inside of a quoted string: ordinary characters (no CTL but tab, no `"`,
# no backslash) or a backslash and any ASCII character. It always matches too;
# the caller checks for the closing quote itself.
_QUOTED_BODY = re.compile(r'(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x7f])*')
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
# What a serialized quoted string may not contain: it would end the header.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def parse_header(header: str) -> list[tuple[str, Params]]:
    """Parse a ``Sec-WebSocket-Extensions`` value into ``(name, params)`` pairs.

    Pairs keep the header's order, and a name may appear more than once (a
    client may offer one extension with several sets of parameters). A
    parameter without a value is ``True``; a value that looks like an integer
    (``-?(0|[1-9][0-9]*)``, quoted or not) becomes an ``int``; a repeated
    parameter becomes a list of its values; quoted strings are unescaped.

    Args:
        header: the header's value; ``""`` means no extensions.

    Returns:
        The extensions in header order.

    Raises:
        ValueError: the header does not follow the grammar.
    """
    if header == "":
        return []
    result: list[tuple[str, Params]] = []
    end = len(header)
    pos = _skip_lws(header, 0)
    while True:
        name, pos = _expect_token(header, pos)
        params: Params = {}
        pos = _skip_lws(header, pos)
        while header.startswith(";", pos):
            key, pos = _expect_token(header, _skip_lws(header, pos + 1))
            value: _Scalar = True
            after = _skip_lws(header, pos)
            if header.startswith("=", after):
                value, pos = _parse_value(header, _skip_lws(header, after + 1))
                after = _skip_lws(header, pos)
            _add_param(params, key, value)
            pos = after
        result.append((name, params))
        if pos == end:
            return result
        if not header.startswith(",", pos):
            raise _invalid(header)
        pos = _skip_lws(header, pos + 1)


def serialize_params(name: str, params: Params) -> str:
    """Format one extension and its parameters, the inverse of :func:`parse_header`.

    ``True`` gives a bare ``key``, ``False`` leaves the parameter out, an
    ``int`` gives ``key=N``, a string is written as a token when it is one and
    as a quoted string (``"`` and ``\\`` escaped) otherwise, and a list repeats
    the parameter once per value.

    Args:
        name: the extension's name.
        params: its parameters, written in their order.

    Returns:
        For example ``permessage-deflate; client_max_window_bits=10``.

    Raises:
        ValueError: a name or key is not a token, or a string holds a control
            character (it would break the header).
    """
    _check_token(name)
    parts = [name]
    for key, value in params.items():
        _check_token(key)
        for item in value if isinstance(value, list) else [value]:
            if item is True:
                parts.append(key)
            elif isinstance(item, int):
                if item is not False:
                    parts.append(f"{key}={item}")
            else:
                parts.append(f"{key}={_format_string(item)}")
    return "; ".join(parts)


def _skip_lws(header: str, pos: int) -> int:
    match = _LWS.match(header, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _expect_token(header: str, pos: int) -> tuple[str, int]:
    match = _TOKEN.match(header, pos)
    if match is None:
        raise _invalid(header)
    return match.group(), match.end()


def _parse_value(header: str, pos: int) -> tuple[_Scalar, int]:
    if header.startswith('"', pos):
        body = _QUOTED_BODY.match(header, pos + 1)
        assert body is not None  # the pattern matches the empty string
        if not header.startswith('"', body.end()):
            raise _invalid(header)
        text = body.group()
        if "\\" in text:
            text = _ESCAPE.sub(r"\1", text)
        return _number_or_string(text), body.end() + 1
    token, pos = _expect_token(header, pos)
    return _number_or_string(token), pos


def _number_or_string(text: str) -> int | str:
    if _INTEGER.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # more digits than int() accepts from a string
            pass
    return text


def _add_param(params: Params, key: str, value: _Scalar) -> None:
    previous = params.get(key)
    if previous is None:
        params[key] = value
    elif isinstance(previous, list):
        previous.append(value)
    else:
        params[key] = [previous, value]


def _format_string(value: str) -> str:
    if _TOKEN.fullmatch(value):
        return value
    if _CONTROL.search(value):
        raise ValueError(f"a header parameter cannot hold control characters: {value!r}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def is_token(text: str) -> bool:
    """Whether ``text`` is an RFC 9110 token (an extension or parameter name)."""
    return _TOKEN.fullmatch(text) is not None


def _check_token(text: str) -> None:
    if _TOKEN.fullmatch(text) is None:
        raise ValueError(f"not a valid header token: {text!r}")


def _invalid(header: str) -> ValueError:
    return ValueError(f"Invalid Sec-WebSocket-Extensions header: {header}")
