"""hixie-75/76 server drafts: faye's spec checklist (faye-behaviour.md §2.3) and driver 0.8.0 fixes.

Checklist boxes ported (faye-behaviour.md §2.3):

* Shared draft-75 examples, run against both drafts: every parse case (text, two
  frames in a packet, leading 0x00-0x7F, skipped length-prefixed frame,
  multibyte, several packets, fragmented), frame() bytes and multibyte, returns
  true, ping writes nothing and is false, close fires close / true / closed,
  close again writes nothing / false / stays closed.
* "A listener that throws": only its "no input lost" half. Events are returned
  by ``events_received()``, not dispatched to listeners, so there is nothing
  for the parser to trap; the test checks state carries over between calls.
* Draft-75: the 101 bytes, version, state. Draft-76: the 101 bytes and the MD5
  vector, open/state/version, the invalid-key 400 (Content-Length 45), frames
  queued before the signature, no body yet, a body that arrives later, ``FF 00``
  closes, close() writes ``FF 00``.
* Driver 0.8.0 (§3.1): skipped frames are never read as text (the injection
  vector gives only "A"); length-prefixed frames over max_length close; keys with
  no digits, no spaces or a quotient over 0xFFFFFFFF are refused.

Dropped, and why:

* "frame(50) converts numbers to strings": ``send_text`` takes ``str`` only (typed
  API); converting is the façade's job.
* Draft-75 "starts connecting" and "frame before start is queued": here the
  handshake is ``draft_handshake()`` and its protocol only exists once the 101
  is written, so a hixie-75 protocol starts OPEN. (Draft-76 keeps both, since
  it waits for key3.)
* "error event" on the invalid-key handshake: the :class:`Rejection` carries
  the message; the façade reports error and close from it.
* [R] ``rack.input.read`` returning a frozen string: Ruby only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faye_sync.protocol.base import CLOSED, CONNECTING, OPEN
from faye_sync.protocol.drafts import (
    Draft75Protocol,
    Draft76Protocol,
    draft_handshake,
    key_value,
)
from faye_sync.protocol.events import Close, Event, Message, Open
from faye_sync.protocol.handshake import Acceptance, Rejection, Request

Factory = Callable[[], Draft75Protocol]

KEY1 = "1   38 wZ3f9 23O0 3l 0r"
KEY2 = "27   0E 6 2  1665:< ;U 1H"
BODY = bytes.fromhex("91 25 3e d3 a9 e7 6a 88")
SIGNATURE = bytes.fromhex("b4 9c 6e 40 53 04 04 26 e5 1b bf 6c b7 9f 1d f9")
URL = "ws://www.example.com/socket"
HELLO = b"\x00Hello\xff"
APPLE = bytes([0x00, 0x41, 0x70, 0x70, 0x6C, 0x65, 0x20, 0x3D, 0x20, 0xEF, 0xA3, 0xBF, 0xFF])
# Appended to complete inputs: the start of a frame that never ends must change nothing.
TRAILING = b"\x00tail"

RESPONSE_75 = (
    b"HTTP/1.1 101 Web Socket Protocol Handshake\r\n"
    b"Upgrade: WebSocket\r\n"
    b"Connection: Upgrade\r\n"
    b"WebSocket-Origin: http://www.example.com\r\n"
    b"WebSocket-Location: ws://www.example.com/socket\r\n"
    b"\r\n"
)
RESPONSE_76 = (
    b"HTTP/1.1 101 WebSocket Protocol Handshake\r\n"
    b"Upgrade: WebSocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Origin: http://www.example.com\r\n"
    b"Sec-WebSocket-Location: ws://www.example.com/socket\r\n"
    b"\r\n"
)


def request(**extra: str | None) -> Request:
    """A hixie-75 request; keyword arguments add (or, with None, remove) headers."""
    headers: dict[str, str | None] = {
        "connection": "Upgrade",
        "upgrade": "WebSocket",
        "origin": "http://www.example.com",
    }
    headers.update({name.replace("_", "-"): value for name, value in extra.items()})
    present = {name: value for name, value in headers.items() if value is not None}
    return Request("GET", "/socket", present, URL)


def request76(**extra: str | None) -> Request:
    return request(**{"sec_websocket_key1": KEY1, "sec_websocket_key2": KEY2, **extra})


def accept(req: Request, **options: object) -> Acceptance:
    result = draft_handshake(req, **options)  # type: ignore[arg-type]
    assert isinstance(result, Acceptance), result
    return result


def reject(req: Request) -> Rejection:
    result = draft_handshake(req)
    assert isinstance(result, Rejection), result
    return result


def connecting76(max_length: int | None = None) -> Draft76Protocol:
    options = {} if max_length is None else {"max_length": max_length}
    protocol = accept(request76(), **options).protocol
    assert isinstance(protocol, Draft76Protocol)
    return protocol


def open75(max_length: int | None = None) -> Draft75Protocol:
    options = {} if max_length is None else {"max_length": max_length}
    protocol = accept(request(), **options).protocol
    assert isinstance(protocol, Draft75Protocol)
    assert protocol.events_received() == []
    assert protocol.data_to_send() == b""
    return protocol


def open76(max_length: int | None = None) -> Draft75Protocol:
    protocol = connecting76(max_length)
    protocol.receive_data(BODY)
    assert protocol.events_received() == [Open()]
    assert protocol.data_to_send() == SIGNATURE
    return protocol


def run(factory: Factory, data: bytes) -> tuple[list[Event], bytes, int]:
    """Feed ``data`` whole, a byte at a time, then with trailing bytes: same result each way."""
    results = []
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))], [data + TRAILING]):
        protocol = factory()
        for chunk in chunks:
            protocol.receive_data(chunk)
        results.append((protocol.events_received(), protocol.data_to_send(), protocol.state))
    assert results[1] == results[0], "fed a byte at a time"
    assert results[2] == results[0], "fed with trailing bytes"
    return results[0]


def messages(factory: Factory, data: bytes) -> list[Event]:
    events, output, state = run(factory, data)
    assert output == b""
    assert state == OPEN
    return events


both = pytest.mark.parametrize("factory", [open75, open76], ids=["draft75", "draft76"])


# ---------------------------------------------------------------- shared draft-75 examples


@both
def test_parses_text_frames(factory: Factory) -> None:
    assert messages(factory, HELLO) == [Message("Hello")]


@both
def test_parses_multiple_frames_from_the_same_packet(factory: Factory) -> None:
    assert messages(factory, HELLO + HELLO) == [Message("Hello"), Message("Hello")]


@both
def test_parses_text_frames_beginning_0x00_to_0x7f(factory: Factory) -> None:
    assert messages(factory, b"\x66Hello\xff") == [Message("Hello")]
    assert messages(factory, b"\x7fHi\xff") == [Message("Hi")]


@both
def test_ignores_frames_with_a_length_header(factory: Factory) -> None:
    assert messages(factory, b"\x80\x02He" + HELLO) == [Message("Hello")]


@both
def test_parses_multibyte_text_frames(factory: Factory) -> None:
    assert messages(factory, APPLE) == [Message("Apple = \uf8ff")]


@both
def test_parses_frames_received_in_several_packets(factory: Factory) -> None:
    protocol = factory()
    protocol.receive_data(APPLE[:6])
    assert protocol.events_received() == []
    protocol.receive_data(APPLE[6:])
    assert protocol.events_received() == [Message("Apple = \uf8ff")]


@both
def test_parses_fragmented_frames(factory: Factory) -> None:
    protocol = factory()
    protocol.receive_data(b"\x00Hel")
    protocol.receive_data(b"lo\xff")
    assert protocol.events_received() == [Message("Hello")]
    assert protocol.data_to_send() == b""


@both
def test_no_input_lost_when_the_caller_stops_between_events(factory: Factory) -> None:
    protocol = factory()
    protocol.receive_data(HELLO + b"\x00W")
    assert protocol.events_received() == [Message("Hello")]
    protocol.receive_data(b"orld\xff")
    assert protocol.events_received() == [Message("World")]


@both
def test_send_text_formats_a_frame(factory: Factory) -> None:
    protocol = factory()
    assert protocol.send_text("Hello") is True
    assert protocol.data_to_send() == HELLO


@both
def test_send_text_encodes_multibyte_characters(factory: Factory) -> None:
    protocol = factory()
    assert protocol.send_text("Apple = \uf8ff") is True
    assert protocol.data_to_send() == APPLE


@both
def test_ping_pong_and_binary_write_nothing_and_return_false(factory: Factory) -> None:
    protocol = factory()
    assert protocol.send_ping() is False
    assert protocol.send_ping(b"hi") is False
    assert protocol.send_pong(b"hi") is False
    assert protocol.send_binary(b"\x01\x02") is False
    assert protocol.data_to_send() == b""
    assert protocol.state == OPEN


@both
def test_close_reports_close_and_returns_true(factory: Factory) -> None:
    protocol = factory()
    assert protocol.send_close() is True
    assert protocol.events_received() == [Close(None, None)]
    assert protocol.state == CLOSED
    assert protocol.close_expected() is True


@both
def test_close_again_when_closed_writes_nothing_and_returns_false(factory: Factory) -> None:
    protocol = factory()
    protocol.send_close()
    protocol.data_to_send()
    protocol.events_received()
    assert protocol.send_close() is False
    assert protocol.data_to_send() == b""
    assert protocol.events_received() == []
    assert protocol.state == CLOSED


@both
def test_close_arguments_are_checked_as_for_rfc6455(factory: Factory) -> None:
    protocol = factory()
    with pytest.raises(ValueError, match="1005 is neither"):
        protocol.send_close(1005)
    with pytest.raises(ValueError, match="123"):
        protocol.send_close(1000, "x" * 124)
    assert protocol.state == OPEN
    assert protocol.send_close(4000, "custom") is True
    assert protocol.events_received() == [Close(None, None)]


# ------------------------------------------------------- driver 0.8.0 and other shared rules


@both
def test_0xff_inside_a_skipped_frame_injects_nothing(factory: Factory) -> None:
    # websocket-driver 0.7.5 emitted ["A", "A", "B"] here: the FF ended the skip,
    # replayed the last text and parsed "00 42 FF" as a new message.
    data = b"\x00A\xff" + b"\x80\x04\xff\x00B\xff"
    assert messages(factory, data) == [Message("A")]
    assert messages(factory, data + b"\x00C\xff") == [Message("A"), Message("C")]


@both
def test_skips_a_frame_with_a_multibyte_length(factory: Factory) -> None:
    skipped = b"\x80\x81\x00" + b"\xff\x00" * 64  # length 128, full of would-be frame bytes
    assert messages(factory, skipped + HELLO) == [Message("Hello")]


@both
def test_a_zero_length_prefixed_frame_is_skipped(factory: Factory) -> None:
    assert messages(factory, b"\x80\x00" + HELLO) == [Message("Hello")]


@both
def test_text_up_to_max_length_is_delivered(factory: Callable[[int], Draft75Protocol]) -> None:
    assert messages(lambda: factory(5), HELLO) == [Message("Hello")]


@both
def test_text_over_max_length_closes_silently(factory: Callable[[int], Draft75Protocol]) -> None:
    events, output, state = run(lambda: factory(4), HELLO + HELLO)
    assert events == [Close(None, None)]
    assert output == (b"\xff\x00" if factory is open76 else b"")
    assert state == CLOSED


@both
def test_skipped_frame_over_max_length_closes(factory: Callable[[int], Draft75Protocol]) -> None:
    events, output, state = run(lambda: factory(127), b"\x80\x81\x00" + HELLO)
    assert events == [Close(None, None)]
    assert output == (b"\xff\x00" if factory is open76 else b"")
    assert state == CLOSED
    assert messages(lambda: factory(128), b"\x80\x81\x00" + b"x" * 128 + HELLO) == [
        Message("Hello")
    ]


@both
def test_a_huge_varint_closes_before_it_is_read(factory: Callable[[int], Draft75Protocol]) -> None:
    events, _, state = run(lambda: factory(1000), b"\x80" + b"\xff" * 1000)
    assert events == [Close(None, None)]
    assert state == CLOSED


@both
def test_invalid_utf8_is_replaced_not_refused(factory: Factory) -> None:
    # faye decodes with Buffer.toString('utf8'): no validation, U+FFFD instead.
    assert messages(factory, b"\x00a\xc3(\xed\xa0\x80b\xff") == [
        Message("a\ufffd(\ufffd\ufffd\ufffdb")
    ]


@both
def test_eof_reports_an_abnormal_close(factory: Factory) -> None:
    protocol = factory()
    protocol.receive_data(b"\x00unfinished")
    protocol.receive_eof()
    assert protocol.events_received() == [Close(1006, "")]
    assert protocol.data_to_send() == b""
    assert protocol.close_expected() is True
    protocol.receive_eof()
    assert protocol.events_received() == []


@both
def test_fail_closes_with_the_code_and_writes_nothing(factory: Factory) -> None:
    protocol = factory()
    protocol.fail(1006, "")
    assert protocol.events_received() == [Close(1006, "")]
    assert protocol.data_to_send() == b""
    protocol.fail(1006, "")
    assert protocol.events_received() == []


@both
def test_nothing_is_parsed_or_sent_once_closed(factory: Factory) -> None:
    protocol = factory()
    protocol.send_close()
    protocol.events_received()
    protocol.data_to_send()
    protocol.receive_data(HELLO)
    assert protocol.events_received() == []
    assert protocol.send_text("late") is False
    assert protocol.data_to_send() == b""


@both
def test_is_a_server(factory: Factory) -> None:
    assert factory().is_client is False


@given(
    frames=st.lists(st.one_of(st.text(max_size=20), st.binary(max_size=300)), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=10),
)
def test_any_split_gives_the_same_messages(frames: list[str | bytes], cuts: list[int]) -> None:
    data = b""
    expected = []
    for value in frames:
        if isinstance(value, str):  # a text frame; lone surrogates make invalid UTF-8
            encoded = value.encode("utf-8", "surrogatepass")
            data += b"\x00" + encoded + b"\xff"
            expected.append(Message(encoded.decode("utf-8", "replace")))
        else:  # a skipped frame: type 0x80, then the length as a big-endian 7-bit varint
            length, varint = len(value), bytearray([len(value) & 0x7F])
            while length > 0x7F:
                length >>= 7
                varint.insert(0, 0x80 | length & 0x7F)
            data += b"\x80" + bytes(varint) + value
    for factory in (open75, open76):
        protocol = factory()
        points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
        for start, end in itertools.pairwise(points):
            protocol.receive_data(data[start:end])
        assert protocol.events_received() == expected
        assert protocol.data_to_send() == b""


# ---------------------------------------------------------------------------- draft-75


def test_draft75_handshake_response() -> None:
    acceptance = accept(request())
    assert acceptance.response == RESPONSE_75
    assert acceptance.version == "hixie-75"
    assert acceptance.subprotocol == ""
    assert isinstance(acceptance.protocol, Draft75Protocol)
    assert not isinstance(acceptance.protocol, Draft76Protocol)
    assert acceptance.protocol.version == "hixie-75"


def test_draft75_starts_open_and_reports_no_open_event() -> None:
    # The façade writes the 101 and fires open, as for RFC 6455.
    protocol = accept(request()).protocol
    assert protocol.state == OPEN
    assert protocol.events_received() == []
    assert protocol.close_expected() is False


def test_draft75_close_writes_nothing() -> None:
    protocol = open75()
    protocol.send_close()
    assert protocol.data_to_send() == b""


def test_draft75_ff_is_a_length_prefixed_frame_not_a_close() -> None:
    assert messages(open75, b"\xff\x00" + HELLO) == [Message("Hello")]


def test_draft75_without_origin_leaves_the_header_out() -> None:
    assert accept(request(origin=None)).response == (
        b"HTTP/1.1 101 Web Socket Protocol Handshake\r\n"
        b"Upgrade: WebSocket\r\n"
        b"Connection: Upgrade\r\n"
        b"WebSocket-Location: ws://www.example.com/socket\r\n"
        b"\r\n"
    )


def test_custom_headers_follow_the_built_in_ones_which_win() -> None:
    acceptance = accept(
        request(), headers=[("Upgrade", "nope"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    )
    assert acceptance.response == RESPONSE_75[:-2] + b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"
    acceptance = accept(request76(), headers={"X-Server": " faye "})
    assert acceptance.response == RESPONSE_76[:-2] + b"X-Server: faye\r\n\r\n"


def test_custom_headers_cannot_inject_lines() -> None:
    with pytest.raises(ValueError, match="CR, LF"):
        draft_handshake(request(), headers={"X-Evil": "a\r\nInjected: yes"})


@pytest.mark.parametrize(
    "changes",
    [{"upgrade": "h2c"}, {"connection": "keep-alive"}, {"upgrade": None}],
    ids=["upgrade-h2c", "no-upgrade-token", "no-upgrade-header"],
)
def test_not_a_websocket_request(changes: dict[str, str | None]) -> None:
    for make in (request, request76):
        rejection = reject(make(**changes))
        assert (rejection.status, rejection.message) == (
            "400 Bad Request",
            "Not a WebSocket request",
        )
    assert isinstance(draft_handshake(Request("POST", "/", request().headers, URL)), Rejection)


# ---------------------------------------------------------------------------- draft-76


def test_draft76_handshake_writes_headers_then_signature_when_key3_arrives() -> None:
    acceptance = accept(request76())
    assert acceptance.response == RESPONSE_76
    assert acceptance.version == "hixie-76"
    protocol = acceptance.protocol
    assert isinstance(protocol, Draft76Protocol)
    assert protocol.version == "hixie-76"
    assert protocol.state == CONNECTING
    protocol.receive_data(BODY)
    assert protocol.data_to_send() == SIGNATURE
    assert protocol.events_received() == [Open()]
    assert protocol.state == OPEN


def test_draft76_key_values() -> None:
    assert key_value(KEY1) == 1_383_923_030 // 7 == 197_703_290
    assert key_value(KEY2) == 2_706_216_651 // 9 == 300_690_739


def test_draft76_with_no_body_yet_stays_connecting() -> None:
    protocol = connecting76()
    assert protocol.events_received() == []
    assert protocol.data_to_send() == b""
    assert protocol.close_expected() is False
    protocol.receive_data(BODY[:7])
    assert protocol.events_received() == []
    assert protocol.data_to_send() == b""
    assert protocol.state == CONNECTING


def test_draft76_body_arriving_later_opens_and_flushes_queued_frames() -> None:
    def queued() -> Draft75Protocol:
        protocol = connecting76()
        assert protocol.send_text("hello") is True
        assert protocol.data_to_send() == b""
        return protocol

    events, output, state = run(queued, BODY)
    assert events == [Open()]
    assert output == SIGNATURE + b"\x00hello\xff"
    assert state == OPEN


def test_draft76_frames_queued_before_the_signature_keep_their_order() -> None:
    protocol = connecting76()
    protocol.send_text("Hi")
    protocol.send_text("there")
    protocol.receive_data(BODY)
    protocol.send_text("after")
    assert protocol.data_to_send() == SIGNATURE + b"\x00Hi\xff\x00there\xff\x00after\xff"


def test_draft76_frames_in_the_same_chunk_as_key3_follow_the_open() -> None:
    events, output, state = run(connecting76, BODY + HELLO)
    assert events == [Open(), Message("Hello")]
    assert output == SIGNATURE
    assert state == OPEN


def test_draft76_close_frame_closes_and_is_answered() -> None:
    events, output, state = run(open76, b"\xff\x00")
    assert events == [Close(None, None)]
    assert output == b"\xff\x00"
    assert state == CLOSED


def test_draft76_nothing_after_the_close_frame_is_parsed() -> None:
    events, _, _ = run(open76, HELLO + b"\xff\x00" + HELLO)
    assert events == [Message("Hello"), Close(None, None)]


def test_draft76_ff_with_a_length_is_skipped() -> None:
    assert messages(open76, b"\xff\x02\xff\x00" + HELLO) == [Message("Hello")]
    # Per frame: a skipped FF frame does not make a later 80 00 a close (it does in faye).
    assert messages(open76, b"\xff\x01x\x80\x00" + HELLO) == [Message("Hello")]


def test_draft76_close_writes_ff_00() -> None:
    protocol = open76()
    assert protocol.send_close() is True
    assert protocol.data_to_send() == b"\xff\x00"
    assert protocol.events_received() == [Close(None, None)]


def test_draft76_close_while_connecting_writes_nothing_and_drops_the_queue() -> None:
    protocol = connecting76()
    protocol.send_text("never")
    assert protocol.send_close() is True
    assert protocol.events_received() == [Close(None, None)]
    assert protocol.state == CLOSED
    protocol.receive_data(BODY)
    assert protocol.data_to_send() == b""
    assert protocol.events_received() == []


def test_draft76_eof_while_connecting() -> None:
    protocol = connecting76()
    protocol.receive_data(BODY[:3])
    protocol.receive_eof()
    assert protocol.events_received() == [Close(1006, "")]
    assert protocol.data_to_send() == b""


def test_draft76_without_origin_leaves_the_header_out() -> None:
    assert b"Origin" not in accept(request76(origin=None)).response


def test_draft76_invalid_key_is_refused_with_400() -> None:
    rejection = reject(request76(sec_websocket_key1="2 L785 8o% s9Sy9@V. 4<1P5"))
    assert rejection.status == "400 Bad Request"
    assert rejection.message == "Client sent invalid Sec-WebSocket-Key headers"
    assert rejection.response_headers() == [
        ("Content-Type", "text/plain"),
        ("Content-Length", "45"),
    ]
    assert rejection.body == b"Client sent invalid Sec-WebSocket-Key headers"


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ({"sec_websocket_key1": KEY1}, "Sec-WebSocket-Key2"),
        ({"sec_websocket_key2": KEY2}, "Sec-WebSocket-Key1"),
        ({"sec_websocket_key1": "", "sec_websocket_key2": KEY2}, "Sec-WebSocket-Key1"),
    ],
)
def test_draft76_missing_key(present: dict[str, str], missing: str) -> None:
    rejection = reject(request(**present))
    assert rejection.status == "400 Bad Request"
    assert rejection.message == f"Missing required header: {missing}"


@pytest.mark.parametrize(
    "key",
    [
        "no digits at all",  # 0.8.0: no digits
        "0 0 0",  # 0.8.0: the number is 0
        "12345",  # 0.8.0: no spaces
        "4294967296 ",  # 0.8.0: quotient 2**32 > 0xFFFFFFFF
        "8589934594  ",  # 0.8.0: quotient 2**32 + 1
        "3  ",  # 0.6.3: 3 is not divisible by 2 spaces
        "9" * 5000 + " ",  # far too long: refused before int() sees it
    ],
    ids=lambda key: key[:12],
)
def test_draft76_invalid_keys(key: str) -> None:
    with pytest.raises(ValueError, match=r"^Client sent invalid Sec-WebSocket-Key headers$"):
        key_value(key)
    rejection = reject(request76(sec_websocket_key2=key))
    assert rejection.message == "Client sent invalid Sec-WebSocket-Key headers"


def test_draft76_largest_valid_key() -> None:
    assert key_value("4294967295 ") == 0xFFFFFFFF
    assert key_value("8589934590  ") == 0xFFFFFFFF
    assert key_value(" 00042") == 42
