"""The EventSource wire format (faye_sync.protocol.sse): bytes in, bytes out."""

from __future__ import annotations

import pytest

from faye_sync.protocol import sse


def parse(stream: bytes) -> list[dict[str, str]]:
    """A spec parser (HTML "interpret an event stream"), to check round trips."""
    events: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in sse.split_lines(stream.decode("utf-8")):
        if line == "":
            if data or fields:
                events.append({**fields, "data": "\n".join(data)})
            fields, data = {}, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
    return events


# -- faye's framing ---------------------------------------------------------


def test_faye_example_byte_exact() -> None:
    # faye-behaviour §1.12, with one deliberate difference: faye keeps the
    # caller's "\n" after "line one"; every data line here ends with CRLF.
    assert sse.encode_event("line one\nline two", event="greeting", id="1") == (
        b"event: greeting\r\nid: 1\r\ndata: line one\r\ndata: line two\r\n\r\n"
    )


def test_plain_message() -> None:
    assert sse.encode_event("plain message") == b"data: plain message\r\n\r\n"


def test_ping_and_retry() -> None:
    assert sse.PING == b":\r\n\r\n"
    assert sse.encode_retry(5) == b"retry: 5000\r\n\r\n"
    assert sse.encode_retry(10) == b"retry: 10000\r\n\r\n"
    assert sse.encode_retry(0) == b"retry: 0\r\n\r\n"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0.5, 500), (0.57, 570), (1.2345, 1234), (0.0019, 1), (0.0001, 0), (3, 3000)],
)
def test_retry_is_whole_milliseconds_rounded_down(seconds: float, expected: int) -> None:
    assert sse.encode_retry(seconds) == b"retry: %d\r\n\r\n" % expected


@pytest.mark.parametrize("bad", [-1, -0.001, float("inf"), float("nan")])
def test_retry_refuses_bad_numbers(bad: float) -> None:
    with pytest.raises(ValueError):
        sse.encode_retry(bad)


@pytest.mark.parametrize("bad", ["5", None, True])
def test_retry_refuses_non_numbers(bad: object) -> None:
    with pytest.raises(TypeError):
        sse.encode_retry(bad)  # type: ignore[arg-type]


# -- data lines ---------------------------------------------------------------


def test_mixed_line_breaks_each_start_a_data_line() -> None:
    assert sse.encode_event("a\r\nb\rc\nd") == (b"data: a\r\ndata: b\r\ndata: c\r\ndata: d\r\n\r\n")


def test_crlf_is_one_break_not_two() -> None:
    assert sse.split_lines("a\r\nb") == ["a", "b"]
    assert sse.split_lines("a\n\rb") == ["a", "", "b"]  # LF then CR: two breaks


def test_only_cr_lf_crlf_split() -> None:
    # str.splitlines() would split on every one of these (the flask-sse bug).
    others = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    text = f"x{others}y"
    assert sse.split_lines(text) == [text]
    assert sse.encode_event(text) == f"data: {text}\r\n\r\n".encode()


def test_empty_and_trailing_lines_round_trip() -> None:
    assert sse.encode_event("") == b"data: \r\n\r\n"
    assert sse.encode_event("a\n") == b"data: a\r\ndata: \r\n\r\n"
    for text in ["", "a\n", "\n\n", "a\r\n\r\nb", " leading space", "x\ry\r\n"]:
        expected = text.replace("\r\n", "\n").replace("\r", "\n")
        assert parse(sse.encode_event(text)) == [{"data": expected}]


def test_unicode_is_utf8() -> None:
    text = "héllo ☃ 𝄞\u2028end"
    assert sse.encode_event(text, event="ünï", id="ïd") == (
        f"event: ünï\r\nid: ïd\r\ndata: {text}\r\n\r\n".encode()
    )
    assert parse(sse.encode_event(text, event="ünï", id="ïd")) == [
        {"event": "ünï", "id": "ïd", "data": text}
    ]


def test_data_types() -> None:
    assert sse.encode_event(b"caf\xc3\xa9") == "data: café\r\n\r\n".encode()
    assert (
        sse.encode_event(bytearray(b"a"))
        == sse.encode_event(memoryview(b"a"))
        == b"data: a\r\n\r\n"
    )
    for value in (42, {"a": 1}, ["a"], None):
        with pytest.raises(TypeError, match=r"send\(json\.dumps\(value\)\)"):
            sse.encode_event(value)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sse.encode_event(b"\xff")
    with pytest.raises(ValueError):
        sse.encode_event("\ud800")  # a lone surrogate has no UTF-8 form


# -- event and id -------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\r\nb", "a\0b", "\n"])
@pytest.mark.parametrize("field", ["event", "id"])
def test_fields_refuse_line_breaks_and_nul(field: str, bad: str) -> None:
    with pytest.raises(ValueError, match=field):
        sse.encode_event("x", **{field: bad})  # type: ignore[arg-type]


def test_optional_fields() -> None:
    assert sse.encode_event("x", event=None, id=None) == b"data: x\r\n\r\n"
    assert sse.encode_event("x", event="") == b"data: x\r\n\r\n"
    # An empty id is written: it resets the client's last event id.
    assert sse.encode_event("x", id="") == b"id: \r\ndata: x\r\n\r\n"
    # 0 is an id like any other (faye Node drops it as falsy).
    assert sse.encode_event("x", id=0) == b"id: 0\r\ndata: x\r\n\r\n"


# -- Accept -------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    [
        "text/event-stream",
        "TEXT/Event-Stream",
        "text/html, text/event-stream",
        "text/event-stream;q=0.9",
        "text/event-stream ; q=0.5, */*;q=0.1",
        "text/event-stream; charset=utf-8",
        "text/event-stream;q=bogus",
    ],
)
def test_accepts(accept: str) -> None:
    assert sse.accepts_event_stream(accept)


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "*/*",
        "text/*",
        "text/html",
        "text/event-stream;q=0",
        "text/event-stream; q=0.000",
        "text/event-streams",
    ],
)
def test_does_not_accept(accept: str | None) -> None:
    assert not sse.accepts_event_stream(accept)


# -- headers ------------------------------------------------------------------


def test_default_headers() -> None:
    assert sse.response_headers() == [
        ("Content-Type", "text/event-stream; charset=utf-8"),
        ("Cache-Control", "no-cache, no-store"),
        ("X-Accel-Buffering", "no"),
    ]


def test_user_headers_replace_defaults_and_add() -> None:
    headers = sse.response_headers(
        [("content-type", "text/event-stream"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    )
    assert headers == [
        ("Cache-Control", "no-cache, no-store"),
        ("X-Accel-Buffering", "no"),
        ("content-type", "text/event-stream"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    assert sse.response_headers({"Access-Control-Allow-Origin": "*"})[-1] == (
        "Access-Control-Allow-Origin",
        "*",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-A", "v\r\nSet-Cookie: x=1"),
        ("X-A", "v\nw"),
        ("X-A", "v\rw"),
        ("X-A", "v\0w"),
        ("X-A\r\n", "v"),
        ("X A", "v"),
        ("", "v"),
        ("X-A", "snow ☃"),
        ("Connection", "close"),
        ("Transfer-Encoding", "chunked"),
        ("content-length", "10"),
        ("Keep-Alive", "timeout=5"),
        ("Upgrade", "websocket"),
    ],
)
def test_unsafe_headers_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        sse.response_headers({name: value})


def test_header_types() -> None:
    with pytest.raises(TypeError):
        sse.response_headers({"X-A": 1})  # type: ignore[dict-item]


# -- Last-Event-ID --------------------------------------------------------------


def test_last_event_id() -> None:
    assert sse.parse_last_event_id(None) == ""
    assert sse.parse_last_event_id("41") == "41"
    assert sse.parse_last_event_id("", "lastEventId=7") == ""  # the header wins
    assert sse.parse_last_event_id("41", "lastEventId=7") == "41"
    assert sse.parse_last_event_id(None, "a=1&lastEventId=7") == "7"
    assert sse.parse_last_event_id(None, "lastEventId=caf%C3%A9") == "café"
    assert sse.parse_last_event_id(None, "other=1") == ""
