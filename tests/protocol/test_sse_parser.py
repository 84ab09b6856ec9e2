"""The event-stream parser against the WHATWG standard's examples and rules.

Every stream is fed whole, one byte at a time, and in random pieces (Hypothesis):
the events must not depend on how the bytes arrive.
https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faye_sync.protocol import sse
from faye_sync.protocol.sse_parser import (
    DEFAULT_MAX_EVENT_SIZE,
    MAX_RETRY,
    EventStreamParser,
    EventTooLargeError,
    ServerSentEvent,
)

FEEDS = ("whole", "bytewise", "pairs")
each_feed = pytest.mark.parametrize("how", FEEDS)


def pieces(data: bytes, how: str) -> list[bytes]:
    if how == "whole":
        return [data]
    if how == "bytewise":
        return [data[i : i + 1] for i in range(len(data))]
    if how == "pairs":  # a different phase: splits every CRLF that starts at an odd offset
        return [b"", *(data[i : i + 2] for i in range(0, len(data), 2)), b""]
    raise ValueError(how)  # pragma: no cover


def parse(data: bytes, how: str = "whole", **options: object) -> list[ServerSentEvent]:
    parser = EventStreamParser(**options)  # type: ignore[arg-type]
    events: list[ServerSentEvent] = []
    for piece in pieces(data, how):
        parser.receive_data(piece)
        events += parser.events_received()
    parser.receive_eof()
    return events + parser.events_received()


def message(data: str, id: str = "", type: str = "message", retry: float | None = None) -> object:
    return ServerSentEvent(type=type, data=data, id=id, retry=retry)


# -- the standard's examples -------------------------------------------------------------


@each_feed
def test_stock_ticker_lines_are_joined_with_lf(how: str) -> None:
    stream = b"data: YHOO\ndata: +2\ndata: 10\n\n"
    assert parse(stream, how) == [message("YHOO\n+2\n10")]


@each_feed
def test_comment_id_reset_and_leading_space(how: str) -> None:
    stream = (
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
        b"data:  third event\n\n"
    )
    assert parse(stream, how) == [
        message("first event", id="1"),
        message("second event", id=""),  # "id" with no value resets the last event id
        message(" third event"),  # only one space after the colon is removed
    ]


@each_feed
def test_empty_data_and_the_unfinished_last_block(how: str) -> None:
    # "The first block fires events with the data set to the empty string [...]. The
    # middle block fires an event with the data set to a single newline character.
    # The last block is discarded because it is not followed by a blank line."
    assert parse(b"data\n\ndata\ndata\n\ndata:", how) == [message(""), message("\n")]


@each_feed
def test_a_space_after_the_colon_is_optional(how: str) -> None:
    assert parse(b"data:test\n\ndata: test\n\n", how) == [message("test"), message("test")]


# -- line endings and decoding ------------------------------------------------------------


@each_feed
@pytest.mark.parametrize(
    "stream",
    [
        b"data: a\r\ndata: b\r\n\r\n",
        b"data: a\rdata: b\r\r",
        b"data: a\ndata: b\n\n",
        b"data: a\r\ndata: b\rdata: c\n\r\n",
    ],
    ids=["crlf", "cr", "lf", "mixed"],
)
def test_every_line_ending(stream: bytes, how: str) -> None:
    expected = "a\nb\nc" if b"c" in stream else "a\nb"
    assert parse(stream, how) == [message(expected)]


@each_feed
def test_lf_cr_is_two_line_breaks_and_cr_cr_dispatches(how: str) -> None:
    # "\n\r" ends "data: a" and then an empty line; "\r\r" ends "data: b" and a blank one.
    assert parse(b"data: a\n\rdata: b\r\r", how) == [message("a"), message("b")]


def test_a_crlf_split_across_reads_is_one_line_break() -> None:
    parser = EventStreamParser()
    for piece in (b"data: a\r", b"", b"\n", b"data: b\r", b"\n\r", b"\n"):
        parser.receive_data(piece)
    assert parser.events_received() == [message("a\nb")]


@each_feed
def test_only_cr_and_lf_end_lines(how: str) -> None:
    # str.splitlines() would split on all of these (the flask-sse bug).
    data = "a\x0bb\x0cc\x1cd\x1de\x1ef\x85g\u2028h\u2029i"
    assert parse(f"data: {data}\n\n".encode(), how) == [message(data)]


@each_feed
def test_one_leading_bom_is_dropped(how: str) -> None:
    assert parse(b"\xef\xbb\xbfdata: x\n\n", how) == [message("x")]
    # A second BOM is part of the first field's name, so "\ufeffdata" is not "data".
    assert parse(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n", how) == [message("y")]
    # A BOM later in the stream is ordinary data.
    assert parse(b"data: \xef\xbb\xbfx\n\n", how) == [message("\ufeffx")]


@each_feed
def test_a_partial_bom_is_not_dropped(how: str) -> None:
    assert parse(b"\xef\xbb\ndata: x\n\n", how) == [message("x")]
    assert parse(b"\xef\xbbdata: x\n\n", how) == []  # the name is "\ufffddata"


@each_feed
def test_utf8_with_replacement(how: str) -> None:
    stream = "data: héllo €𝄞\n\n".encode() + b"data: a\xffb\xe2\x82\n\n"
    assert parse(stream, how) == [message("héllo €𝄞"), message("a\ufffdb\ufffd")]


# -- fields --------------------------------------------------------------------------------


@each_feed
def test_event_type(how: str) -> None:
    stream = (
        b"event: tick\ndata: 1\n\nevent:\ndata: 2\n\ndata: 3\n\nevent: a\nevent: b\ndata: 4\n\n"
    )
    assert [(e.type, e.data) for e in parse(stream, how)] == [
        ("tick", "1"),
        ("message", "2"),  # an empty type means "message"
        ("message", "3"),  # the type does not carry over to the next event
        ("b", "4"),  # the last one wins
    ]


@each_feed
def test_event_type_without_data_is_not_dispatched_nor_kept(how: str) -> None:
    assert parse(b"event: tick\n\ndata: x\n\n", how) == [message("x")]


@each_feed
def test_field_without_colon_has_an_empty_value(how: str) -> None:
    assert parse(b"data\ndata\n\n", how) == [message("\n")]
    assert parse(b"event\ndata: x\n\n", how) == [message("x")]


@each_feed
def test_field_names_are_exact_and_unknown_ones_ignored(how: str) -> None:
    stream = b"Data: no\nDATA: no\ndata : no\nfoo: bar\ndata: yes\n\n"
    assert parse(stream, how) == [message("yes")]


@each_feed
def test_only_one_space_is_removed_and_nothing_else(how: str) -> None:
    stream = b"data:  two\ndata:\ttab\ndata: trailing  \ndata::colon\n\n"
    assert parse(stream, how) == [message(" two\n\ttab\ntrailing  \n:colon")]


@each_feed
def test_comments_are_ignored_anywhere(how: str) -> None:
    stream = b":\n: ping\ndata: a\n:comment: with colon\ndata: b\n:\n\n:\r\n\r\n"
    assert parse(stream, how) == [message("a\nb")]


@each_feed
def test_id_persists_until_changed(how: str) -> None:
    stream = b"id: 7\ndata: a\n\ndata: b\n\nid: 8\ndata: c\n\nid:\ndata: d\n\n"
    assert [(e.data, e.id) for e in parse(stream, how)] == [
        ("a", "7"),
        ("b", "7"),
        ("c", "8"),
        ("d", ""),
    ]


@each_feed
def test_id_with_nul_is_ignored(how: str) -> None:
    stream = b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"
    assert [e.id for e in parse(stream, how)] == ["1", "1"]


def test_nul_in_data_and_event_is_kept() -> None:
    assert parse(b"event: a\x00b\ndata: c\x00d\n\n") == [message("c\x00d", type="a\x00b")]


def test_id_is_committed_at_the_blank_line_even_without_data() -> None:
    parser = EventStreamParser()
    parser.receive_data(b"id: 5\n")
    assert parser.last_event_id == ""  # not before the blank line
    parser.receive_data(b"\n")
    assert parser.last_event_id == "5"
    assert parser.events_received() == []
    parser.receive_data(b"id: 6\ndata: x\n")
    parser.receive_eof()  # the unfinished event and its id are discarded
    assert parser.last_event_id == "5"
    assert parser.events_received() == []


def test_last_event_id_carries_over_from_the_previous_stream() -> None:
    parser = EventStreamParser(last_event_id="41")
    parser.receive_data(b"data: x\n\nid: 42\ndata: y\n\n")
    assert [e.id for e in parser.events_received()] == ["41", "42"]
    assert parser.last_event_id == "42"


@each_feed
@pytest.mark.parametrize(
    ("line", "retry"),
    [
        (b"retry: 1000", 1000),
        (b"retry:0", 0),
        (b"retry: 0007", 7),
        (b"retry", None),  # empty: not digits
        (b"retry:", None),
        (b"retry: 10a", None),
        (b"retry: -1", None),
        (b"retry: 1.5", None),
        (b"retry: +5", None),
        (b"retry:  100", None),  # the second space is part of the value
        (b"retry: 100 ", None),
        ("retry: ١٢".encode(), None),  # Unicode digits are not ASCII digits
        ("retry: ²".encode(), None),
        (b"retry: " + b"9" * 5000, MAX_RETRY),  # int() would refuse > 4300 digits
        (b"retry: 99999999999999999999", MAX_RETRY),
    ],
)
def test_retry_takes_ascii_digits_only(line: bytes, retry: int | None, how: str) -> None:
    parser = EventStreamParser()
    for piece in pieces(line + b"\ndata: x\n\n", how):
        parser.receive_data(piece)
    seconds = None if retry is None else retry / 1000  # the field's ms, the API's seconds
    assert parser.retry == seconds
    assert parser.events_received() == [message("x", retry=seconds)]


def test_retry_applies_at_once_and_without_an_event() -> None:
    parser = EventStreamParser()
    parser.receive_data(b"retry: 5000\r\n")
    assert parser.retry == 5.0
    parser.receive_data(b"\r\ndata: a\r\n\r\nretry: oops\r\ndata: b\r\n\r\n")
    assert parser.events_received() == [message("a"), message("b")]  # retry is per block
    assert parser.retry == 5.0  # an invalid value changes nothing


def test_faye_server_output_parses() -> None:
    stream = (
        sse.encode_retry(5)
        + sse.PING
        + sse.encode_event("one\ntwo", event="tick", id=1)
        + sse.encode_event("three", id="")
    )
    parser = EventStreamParser()
    parser.receive_data(stream)
    assert parser.events_received() == [
        message("one\ntwo", id="1", type="tick"),
        message("three", id=""),
    ]
    assert parser.retry == 5.0  # what the server was given: encode_retry(5)


# -- end of stream, misuse --------------------------------------------------------------


def test_eof_discards_the_unfinished_event() -> None:
    parser = EventStreamParser()
    parser.receive_data(b"data: done\n\ndata: half")
    parser.receive_eof()
    assert parser.events_received() == [message("done")]
    with pytest.raises(RuntimeError, match="after receive_eof"):
        parser.receive_data(b"\n\n")


def test_empty_input_changes_nothing() -> None:
    parser = EventStreamParser()
    parser.receive_data(b"")
    parser.receive_data(b"data: x\r")
    parser.receive_data(b"")
    parser.receive_data(b"\n\n")
    assert parser.events_received() == [message("x")]


def test_input_buffers_are_not_kept_or_changed() -> None:
    parser = EventStreamParser()
    data = bytearray(b"data: abc")
    parser.receive_data(memoryview(data))
    data[:] = b"XXXXXXXXX"
    parser.receive_data(b"\n\n")
    assert parser.events_received() == [message("abc")]


# -- max_event_size ---------------------------------------------------------------------


@each_feed
def test_max_event_size_is_the_data_size_in_bytes(how: str) -> None:
    assert parse(b"data: " + b"x" * 100 + b"\n\n", how, max_event_size=100) == [message("x" * 100)]
    assert parse(b"data: " + b"x" * 49 + b"\ndata: " + b"y" * 50 + b"\n\n", how, max_event_size=100)
    assert parse("data: é\n\n".encode(), how, max_event_size=2) == [message("é")]
    with pytest.raises(EventTooLargeError, match=r"event data larger than max_event_size \(2 "):
        parse("data: é!\n\n".encode(), how, max_event_size=2)
    with pytest.raises(EventTooLargeError) as info:
        parse(b"data: " + b"x" * 50 + b"\ndata: " + b"y" * 50 + b"\n\n", how, max_event_size=100)
    assert info.value.limit == 100


def test_the_limit_is_per_event() -> None:
    parser = EventStreamParser(max_event_size=10)
    for _ in range(100):
        parser.receive_data(b"data: 0123456789\n\n")
    assert len(parser.events_received()) == 100


def test_a_long_line_fails_before_it_ends() -> None:
    # Memory stays bounded: the error comes as soon as the line cannot fit.
    parser = EventStreamParser(max_event_size=100)
    parser.receive_data(b"data: " + b"x" * 100)
    with pytest.raises(EventTooLargeError, match="line larger than max_event_size"):
        for _ in range(10):
            parser.receive_data(b"x")
    assert len(parser._partial) <= 107
    with pytest.raises(EventTooLargeError):  # the error sticks
        parser.receive_data(b"\n\n")


def test_comments_and_other_fields_count_as_lines_too() -> None:
    parser = EventStreamParser(max_event_size=10)
    parser.receive_data(b":" + b"p" * 16 + b"\n")  # up to 17 bytes fit a line
    with pytest.raises(EventTooLargeError):
        parser.receive_data(b":" + b"p" * 17 + b"\n")


def test_events_before_the_error_stay_available() -> None:
    parser = EventStreamParser(max_event_size=10)
    with pytest.raises(EventTooLargeError):
        parser.receive_data(b"data: ok\n\ndata: " + b"x" * 11 + b"\n\n")
    assert parser.events_received() == [message("ok")]


def test_default_limit_and_none() -> None:
    assert EventStreamParser().max_event_size == DEFAULT_MAX_EVENT_SIZE == 1024 * 1024
    big = b"x" * (DEFAULT_MAX_EVENT_SIZE + 1)
    with pytest.raises(EventTooLargeError):
        EventStreamParser().receive_data(b"data: " + big + b"\n\n")
    parser = EventStreamParser(max_event_size=None)
    parser.receive_data(b"data: " + big + b"\n\n")
    assert parser.events_received()[0].data == big.decode()
    with pytest.raises(ValueError, match="positive"):
        EventStreamParser(max_event_size=0)


# -- any split gives the same events ------------------------------------------------------

LINES = st.sampled_from(
    [
        b"data: x",
        b"data:",
        b"data",
        b"data:  spaced",
        b"event: e",
        b"event:",
        b"id: 1",
        b"id",
        b"id: a\x00b",
        b"retry: 10",
        b"retry: x",
        b":comment",
        b"",
        "data: é€𝄞".encode(),
        b"data: \xff\xe2\x82",
        b"\xef\xbb\xbf",
        b"foo: bar",
    ]
)
ENDINGS = st.sampled_from([b"\r\n", b"\n", b"\r"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(LINES, ENDINGS), max_size=30))
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    return bom + b"".join(line + end for line, end in lines)


@settings(max_examples=300)
@given(stream=streams(), cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_random_splits_give_the_same_events(stream: bytes, cuts: list[int]) -> None:
    expected = parse(stream)
    parser = EventStreamParser()
    events: list[ServerSentEvent] = []
    start = 0
    for cut in [*sorted(c for c in cuts if c <= len(stream)), len(stream)]:
        parser.receive_data(stream[start:cut])
        events += parser.events_received()
        start = cut
    parser.receive_eof()
    assert events == expected
    assert parse(stream, "bytewise") == expected


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=50)
NAME = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0"), max_size=10)


@settings(max_examples=200)
@given(
    events=st.lists(st.tuples(TEXT, NAME, st.none() | NAME), min_size=1, max_size=5),
    cut=st.integers(min_value=0, max_value=2000),
)
def test_what_our_server_writes_parses_back(
    events: list[tuple[str, str, str | None]], cut: int
) -> None:
    stream = sse.encode_retry(1) + b"".join(
        sse.encode_event(data, event=name, id=id) for data, name, id in events
    )
    parser = EventStreamParser()
    parser.receive_data(stream[:cut])
    parser.receive_data(stream[cut:])
    received = parser.events_received()
    last_id = ""
    for (data, name, id), event in zip(events, received, strict=True):
        last_id = last_id if id is None else id
        assert event == message(
            "\n".join(sse.split_lines(data)), id=last_id, type=name or "message"
        )


def test_many_short_data_lines_cost_about_their_size() -> None:
    # One buffer for the data lines, not an object per line (which held ~19x).
    import tracemalloc

    parser = EventStreamParser(max_event_size=1 << 20)
    chunks = 10  # 80,000 lines: under tracemalloc each costs microseconds
    tracemalloc.start()
    try:
        for _ in range(chunks):
            parser.receive_data(b"data:xy\n" * 8192)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    data_bytes = chunks * 8192 * 3
    assert held < 2 * data_bytes, held
    parser.receive_data(b"\n")
    (event,) = parser.events_received()
    assert event.data == "\n".join(["xy"] * (chunks * 8192))
