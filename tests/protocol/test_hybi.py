"""The RFC 6455 frame layer against faye's hybi driver spec (faye-behaviour.md §2.1).

Ported: every box of "in the open state: parse", "frame / ping / pong / close",
"when masking is required", "in the closing state" and "in the closed state",
plus the probes of §5.3 (close codes, reserved bits, fragmented control frames).
The "connecting state" boxes belong to the handshake (test_handshake.py): a
hybi frame layer is only made once the 101 is written. Node-only boxes
(``frame(50)`` sends "50", byte arrays as binary) are replaced by Python's
rule: ``str`` is text, bytes-like is binary, anything else is a TypeError at
the API (tests/blocking). Ruby's encoding boxes map to str/bytes results.
"""

from __future__ import annotations

import struct

import pytest

from faye_sync.exceptions import ProtocolError
from faye_sync.extensions.base import ExtensionMessage
from faye_sync.protocol.base import CLOSED, CLOSING, OPEN
from faye_sync.protocol.events import Close, Error, Message, Ping, Pong
from faye_sync.protocol.hybi import HybiProtocol

from .feeding import each_feed, feed

MASK = bytes([0x01, 0x02, 0x03, 0x04])


def masked(first: int, payload: bytes, mask: bytes = MASK) -> bytes:
    """A masked frame as a client sends it."""
    out = bytearray([first])
    n = len(payload)
    if n <= 125:
        out.append(0x80 | n)
    elif n <= 0xFFFF:
        out += bytes([0xFE]) + struct.pack("!H", n)
    else:
        out += bytes([0xFF]) + struct.pack("!Q", n)
    out += mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(out)


def server(**options: object) -> HybiProtocol:
    """faye's spec driver: a server that accepts unmasked frames."""
    options.setdefault("require_masking", False)
    return HybiProtocol(is_client=False, **options)  # type: ignore[arg-type]


# --------------------------------------------------------------- parsing


@each_feed
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x81\x05Hello", ["Hello"]),
        (b"\x81\x05Hello\x81\x05Hello", ["Hello", "Hello"]),
        (b"\x81\x00", [""]),
        (b"\x01\x03Hel\x80\x02lo", ["Hello"]),
        (masked(0x81, b"Hello"), ["Hello"]),
        (masked(0x81, b""), [""]),
        (masked(0x01, b"Hel") + masked(0x80, b"lo"), ["Hello"]),
        (b"\x81\x0b" + "Apple = \uf8ff".encode(), ["Apple = \uf8ff"]),
        (masked(0x81, "Apple = \uf8ff".encode()), ["Apple = \uf8ff"]),
        (b"\x82\x03\x00\xff\x10", [b"\x00\xff\x10"]),
        (b"\x02\x01\x00\x00\x01\x01\x80\x01\x02", [b"\x00\x01\x02"]),
    ],
)
def test_parses_messages(data: bytes, expected: list[object], how: str) -> None:
    protocol = server()
    feed(protocol, data, how)
    assert protocol.events_received() == [Message(m) for m in expected]
    assert protocol.state == OPEN


@each_feed
def test_multibyte_character_split_across_fragments(how: str) -> None:
    text = "Apple = \uf8ff"
    raw = text.encode("utf-8")
    data = masked(0x01, raw[:9]) + masked(0x80, raw[9:])  # splits the 3-byte character
    protocol = server()
    feed(protocol, data, how)
    assert protocol.events_received() == [Message(text)]


@each_feed
def test_medium_and_long_lengths(how: str) -> None:
    medium = b"x" * 200
    long = b"y" * 70000
    protocol = server()
    feed(protocol, masked(0x82, medium) + b"\x82\x7e\x00\xc8" + medium + masked(0x82, long), how)
    assert protocol.events_received() == [Message(medium), Message(medium), Message(long)]


@each_feed
def test_ping_gets_pong_with_same_payload(how: str) -> None:
    protocol = server()
    feed(protocol, b"\x89\x04OHAI", how)
    assert protocol.events_received() == [Ping(b"OHAI")]
    assert protocol.data_to_send() == b"\x8a\x04OHAI"


def test_pong_reported_without_reply() -> None:
    protocol = server()
    protocol.receive_data(b"\x8a\x02Hi")
    assert protocol.events_received() == [Pong(b"Hi")]
    assert protocol.data_to_send() == b""


def test_control_frame_between_fragments() -> None:
    protocol = server()
    protocol.receive_data(b"\x01\x03Hel\x89\x00\x80\x02lo")
    assert protocol.events_received() == [Ping(b""), Message("Hello")]


def test_listener_failure_loses_no_input() -> None:
    # faye: state is updated before events are handed out, so an exception
    # while handling one message does not lose the next.
    protocol = server()
    protocol.receive_data(b"\x81\x05Hello")
    events = protocol.events_received()
    with pytest.raises(RuntimeError):
        for _ in events:
            raise RuntimeError("listener failed")
    protocol.receive_data(b"\x81\x05World")
    assert protocol.events_received() == [Message("World")]


# --------------------------------------------------------------- failures


FAILURES = [
    (b"\x83\x00", 1002, "Unrecognized frame opcode: 3"),
    (
        b"\xc1\x00",
        1002,
        "One or more reserved bits are on: reserved1 = 1, reserved2 = 0, reserved3 = 0",
    ),
    (
        b"\x91\x00",
        1002,
        "One or more reserved bits are on: reserved1 = 0, reserved2 = 0, reserved3 = 1",
    ),
    (b"\x09\x00", 1002, "Received fragmented control frame: opcode = 9"),
    (b"\x80\x00", 1002, "Received unexpected continuation frame"),
    (
        b"\x01\x01a\x81\x01b",
        1002,
        "Received new data frame but previous continuous frame is unfinished",
    ),
    (b"\x89\x7e\x00\x7e" + b"x" * 126, 1002, "Received control frame having too long payload: 126"),
    (b"\x81\x7f" + struct.pack("!Q", 2**30), 1009, "WebSocket frame length too large"),
    (b"\x81\x7f" + struct.pack("!Q", 2**63), 1002, "Frame length has its most significant bit set"),
    (b"\x81\x02\xc3\x28", 1007, "Could not decode a text frame as UTF-8"),
    (b"\x01\x01\xff\x80\x01a", 1007, "Could not decode a text frame as UTF-8"),
]


@each_feed
@pytest.mark.parametrize(("data", "code", "message"), FAILURES)
def test_violations_fail_with_faye_codes(data: bytes, code: int, message: str, how: str) -> None:
    protocol = server()
    feed(protocol, data, how)
    assert protocol.events_received() == [Error(message, code), Close(code, message)]
    assert protocol.state == CLOSED
    reason = message.encode("utf-8")
    assert (
        protocol.data_to_send() == bytes([0x88, 2 + len(reason)]) + struct.pack("!H", code) + reason
    )
    protocol.receive_data(b"\x81\x05Hello")  # nothing after a failure
    assert protocol.events_received() == []


def test_unrecognized_opcode_close_frame_starts_as_faye_writes_it() -> None:
    protocol = server()
    protocol.receive_data(b"\x83\x00")
    assert protocol.data_to_send().startswith(b"\x88\x1e\x03\xea")


def test_utf8_fails_fast_on_the_first_bad_fragment() -> None:
    protocol = server()
    protocol.receive_data(b"\x01\x02\xc3\x28")  # no FIN: the message is not complete
    assert protocol.events_received()[-1] == Close(1007, "Could not decode a text frame as UTF-8")


@each_feed
def test_unmasked_frame_refused_when_masking_required(how: str) -> None:
    protocol = HybiProtocol(is_client=False)
    feed(protocol, b"\x81\x05Hello", how)
    message = "Received unmasked frame but masking is required"
    # faye's box says 1003 ("unacceptable"); RFC 6455 §7.4.1 names 1002 for a protocol error.
    assert protocol.events_received() == [Error(message, 1002), Close(1002, message)]
    assert protocol.data_to_send() == b"\x88\x31\x03\xea" + message.encode()


@each_feed
@pytest.mark.parametrize("first", [0x81, 0x89, 0x88], ids=["text", "ping", "close"])
def test_client_fails_on_masked_frames_from_server(first: int, how: str) -> None:
    # faye's client accepts them; RFC 6455 §5.1: the client MUST fail the connection.
    protocol = HybiProtocol(is_client=True, mask_key=lambda: b"\x00\x00\x00\x00")
    feed(protocol, masked(first, b"\x03\xe8Hi"), how)
    message = "Received masked frame from the server"
    assert protocol.events_received() == [Error(message, 1002), Close(1002, message)]
    # the client's own close frame (masked, with a zero key here), and no pong
    assert protocol.data_to_send() == b"\x88\xa7\x00\x00\x00\x00\x03\xea" + message.encode()


@each_feed
def test_max_length_checked_on_declared_length_before_payload(how: str) -> None:
    protocol = server(max_length=10)
    # Only the header of an 11-byte frame arrives: the failure must not wait.
    feed(protocol, b"\x82\x0b", how)
    assert protocol.events_received()[-1] == Close(1009, "WebSocket frame length too large")


def test_max_length_bounds_the_whole_fragmented_message() -> None:
    protocol = server(max_length=10)
    protocol.receive_data(b"\x02\x06abcdef")
    assert protocol.events_received() == []
    protocol.receive_data(b"\x80\x05ghijk")
    assert protocol.events_received()[-1] == Close(1009, "WebSocket frame length too large")


# ----------------------------------------------------------- close frames


@each_feed
@pytest.mark.parametrize(
    ("payload", "code", "reason"),
    [
        (b"\x03\xe8Hello", 1000, "Hello"),
        (b"", 1000, ""),
        (b"\x03", 1002, ""),
        (b"\x03\xedx", 1002, "x"),  # 1005 may not be sent
        (b"\x03\xeerestart", 1002, "restart"),  # 1006 neither
        (b"\x03\xf4restart", 1012, "restart"),  # 1012-1014 are valid here (faye: 1002)
        (b"\x0b\xb8bye", 3000, "bye"),
        (b"\x03\xe8\xc3\x28", 1007, ""),  # reason not UTF-8: RFC 6455 §8.1 (faye: 1002)
        (b"\x03\xed\xc3\x28", 1002, ""),  # a code that may not be sent comes first
        (b"\x13\x88", 1002, ""),  # 5000 is out of range
    ],
)
def test_peer_close_is_echoed_with_the_validated_code(
    payload: bytes, code: int, reason: str, how: str
) -> None:
    protocol = server()
    feed(protocol, bytes([0x88, len(payload)]) + payload, how)
    assert protocol.events_received() == [Close(code, reason)]
    reply = struct.pack("!H", code) + reason.encode()
    assert protocol.data_to_send() == bytes([0x88, len(reply)]) + reply
    assert protocol.state == CLOSED
    assert protocol.close_expected()


def test_close_frame_echoed_byte_for_byte() -> None:
    protocol = server()
    protocol.receive_data(b"\x88\x07\x03\xe8Hello")
    assert protocol.data_to_send() == b"\x88\x07\x03\xe8Hello"


def test_eof_reports_1006() -> None:
    protocol = server()
    protocol.receive_eof()
    assert protocol.events_received() == [Close(1006, "")]
    protocol.receive_eof()
    assert protocol.events_received() == []


# ---------------------------------------------------------------- sending


def test_frames_for_text_binary_and_lengths() -> None:
    protocol = server()
    assert protocol.send_text("Hello")
    assert protocol.data_to_send() == b"\x81\x05Hello"
    protocol.send_binary(bytes([0x48, 0x65, 0x6C]))
    assert protocol.data_to_send() == b"\x82\x03Hel"
    protocol.send_text("Apple = \uf8ff")
    assert protocol.data_to_send() == b"\x81\x0bApple = \xef\xa3\xbf"
    protocol.send_text("x" * 200)
    assert protocol.data_to_send() == b"\x81\x7e\x00\xc8" + b"x" * 200
    protocol.send_binary(b"y" * 70000)
    assert protocol.data_to_send() == b"\x82\x7f" + struct.pack("!Q", 70000) + b"y" * 70000


def test_client_masks_every_frame_and_never_changes_the_callers_buffer() -> None:
    protocol = HybiProtocol(is_client=True, mask_key=lambda: MASK)
    payload = bytearray(b"Hello")
    protocol.send_binary(payload)
    assert protocol.data_to_send() == masked(0x82, b"Hello")
    assert payload == b"Hello"


def test_ping_pong_frames() -> None:
    protocol = server()
    assert protocol.send_ping(b"mic check")
    assert protocol.data_to_send() == b"\x89\x09mic check"
    assert protocol.send_pong(b"mic check")
    assert protocol.data_to_send() == b"\x8a\x09mic check"
    assert protocol.send_pong()
    assert protocol.data_to_send() == b"\x8a\x00"
    with pytest.raises(ValueError, match="125 bytes"):
        protocol.send_ping(b"x" * 126)


def test_close_writes_frame_and_waits_for_the_peer() -> None:
    protocol = server()
    reason = "<%= reasons %>"
    assert protocol.send_close(3000, reason)
    assert protocol.data_to_send() == b"\x88\x10\x0b\xb8" + reason.encode()
    assert protocol.events_received() == []
    assert protocol.state == CLOSING


@pytest.mark.parametrize(
    ("code", "reason", "match"),
    [
        (1001, "", "1001 is neither"),
        (999, "", "999 is neither"),
        (5000, "", "5000 is neither"),
        (1000, "x" * 124, "124 bytes"),
    ],
)
def test_close_validates_its_arguments(code: int, reason: str, match: str) -> None:
    protocol = server()
    with pytest.raises(ValueError, match=match):
        protocol.send_close(code, reason)
    assert protocol.state == OPEN
    assert protocol.data_to_send() == b""


# ------------------------------------------------------- closing / closed


def closing() -> HybiProtocol:
    protocol = server()
    protocol.send_close()
    protocol.data_to_send()
    return protocol


def test_closing_refuses_to_send() -> None:
    protocol = closing()
    assert not protocol.send_text("Hi")
    assert not protocol.send_ping()
    assert not protocol.send_pong()
    assert not protocol.send_close()
    assert protocol.data_to_send() == b""


@pytest.mark.parametrize(
    ("frame", "code", "reason"),
    [(b"\x88\x04\x03\xe9OK", 1001, "OK"), (b"\x88\x01\x03", 1002, ""), (b"\x88\x00", 1000, "")],
)
def test_closing_receives_the_peers_close_without_replying(
    frame: bytes, code: int, reason: str
) -> None:
    protocol = closing()
    protocol.receive_data(frame)
    assert protocol.events_received() == [Close(code, reason)]
    assert protocol.data_to_send() == b""
    assert protocol.state == CLOSED


def test_closing_drops_messages_and_closes_at_once_on_a_violation() -> None:
    protocol = closing()
    protocol.receive_data(b"\x81\x02Hi")
    assert protocol.events_received() == []
    protocol.receive_data(b"\x83\x00\x88\x00")  # a violation: the rest is dropped
    # faye ignores a violation once it sent its close, and waits for its close timeout;
    # RFC 6455 §7.1.7 says to close the connection: no second close frame, closed now.
    message = "Unrecognized frame opcode: 3"
    assert protocol.events_received() == [Error(message, 1002), Close(1002, message)]
    assert protocol.data_to_send() == b""
    assert protocol.close_expected()
    protocol.receive_eof()
    assert protocol.events_received() == []


def test_closing_still_answers_pings() -> None:
    protocol = closing()
    protocol.receive_data(b"\x89\x02hi")
    assert protocol.data_to_send() == b"\x8a\x02hi"


def test_closed_does_nothing() -> None:
    protocol = server()
    protocol.receive_data(b"\x88\x00")
    protocol.data_to_send()
    protocol.events_received()
    assert not protocol.send_text("x")
    assert not protocol.send_ping()
    assert not protocol.send_pong()
    assert not protocol.send_close()
    protocol.receive_data(b"\x81\x02Hi")
    assert protocol.events_received() == []
    assert protocol.data_to_send() == b""
    assert protocol.state == CLOSED


def test_fail_closes_without_handshake() -> None:
    protocol = server()
    protocol.fail(1006, "")
    assert protocol.events_received() == [Close(1006, "")]
    assert protocol.data_to_send() == b""


# ------------------------------------------------------------- extensions


class Reverse:
    """An extension that reverses payloads and flags them with RSV1."""

    def __init__(self) -> None:
        self.closed = False

    def valid_frame_rsv(self, opcode: int, rsv1: bool, rsv2: bool, rsv3: bool) -> bool:
        return not (rsv2 or rsv3)

    def process_incoming_message(self, message: ExtensionMessage) -> ExtensionMessage:
        if message.data == b"boom":
            raise ProtocolError("reverse: boom", 1010)
        if message.rsv1:
            message.data = message.data[::-1]
        return message

    def process_outgoing_message(self, message: ExtensionMessage) -> ExtensionMessage:
        message.data = message.data[::-1]
        message.rsv1 = True
        return message

    def close(self) -> None:
        self.closed = True


def test_extension_pipeline_sees_messages_and_sets_rsv() -> None:
    reverse = Reverse()
    protocol = server(extensions=reverse)
    protocol.send_text("abc")
    assert protocol.data_to_send() == b"\xc1\x03cba"
    protocol.receive_data(b"\xc1\x03cba\x81\x03abc")
    assert protocol.events_received() == [Message("abc"), Message("abc")]
    protocol.receive_data(b"\x81\x04boom")
    assert protocol.events_received() == [
        Error("reverse: boom", 1010),
        Close(1010, "reverse: boom"),
    ]
    assert reverse.closed


def test_rsv_refused_on_continuation_and_control_frames_even_with_extensions() -> None:
    protocol = server(extensions=Reverse())
    protocol.receive_data(b"\x01\x01a\xc0\x01b")
    assert protocol.events_received()[-1].code == 1002  # type: ignore[union-attr]
    protocol = server(extensions=Reverse())
    protocol.receive_data(b"\xc9\x00")
    assert protocol.events_received()[-1].code == 1002  # type: ignore[union-attr]


def test_size_checked_again_after_extensions() -> None:
    class Inflate(Reverse):
        def process_incoming_message(self, message: ExtensionMessage) -> ExtensionMessage:
            message.data = message.data * 10
            return message

    protocol = server(extensions=Inflate(), max_length=20)
    protocol.receive_data(b"\xc2\x03abc")
    assert protocol.events_received()[-1] == Close(1009, "WebSocket frame length too large")


# ------------------------------------------- a message, then a failure, in one read


@pytest.mark.parametrize(
    ("bad", "events_after"),
    [
        (b"\x83\x00", [Error("Unrecognized frame opcode: 3", 1002)]),
        (b"\x88\x02\x03\xe8", []),  # a close frame: answered after the message
    ],
)
def test_pauses_before_a_failure_or_close_that_follows_a_message(
    bad: bytes, events_after: list[object]
) -> None:
    # faye hands each message to its listeners before it parses the next frame,
    # so an echo goes out before the connection fails (Autobahn 3.2, 4.1.3, 5.15).
    protocol = server()
    protocol.receive_data(b"\x81\x05Hello" + bad)
    assert protocol.events_received() == [Message("Hello")]
    assert protocol.paused
    assert protocol.send_text("Hello")
    assert protocol.data_to_send() == b"\x81\x05Hello"
    protocol.receive_data(b"")
    assert not protocol.paused
    events = protocol.events_received()
    assert events[:-1] == events_after
    assert type(events[-1]) is Close
    assert protocol.data_to_send().startswith(b"\x88")


def test_no_pause_without_a_message_in_the_same_read() -> None:
    protocol = server()
    protocol.receive_data(b"\x81\x05Hello")
    protocol.receive_data(b"\x83\x00")
    assert not protocol.paused
    assert protocol.events_received()[-1] == Close(1002, "Unrecognized frame opcode: 3")


def test_invalid_utf8_fails_before_the_frame_is_complete() -> None:
    # Autobahn 6.4.3: the bad byte arrives while most of the frame has not.
    protocol = server()
    payload = "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"x" * 100
    frame = masked(0x81, payload)
    protocol.receive_data(frame[:20])
    assert protocol.events_received()[-1] == Close(1007, "Could not decode a text frame as UTF-8")


@each_feed
def test_text_frame_checked_in_pieces_still_decodes(how: str) -> None:
    text = "Apple = \uf8ff " * 30
    protocol = server()
    feed(protocol, masked(0x01, text[:100].encode()) + masked(0x80, text[100:].encode()), how)
    assert protocol.events_received() == [Message(text)]


def test_continuation_checked_in_pieces_from_the_messages_state() -> None:
    protocol = server()
    raw = "é".encode()
    protocol.receive_data(masked(0x01, b"ab" + raw[:1]))  # ends mid-character
    rest = masked(0x80, raw[1:] + b"cd" + b"\xff")
    protocol.receive_data(rest[:9])  # up to "cd": valid so far
    assert protocol.events_received() == []
    protocol.receive_data(rest[9:])
    assert protocol.events_received()[-1].code == 1007  # type: ignore[union-attr]


CLOSE_READS = [
    masked(0x88, b""),
    masked(0x88, b"\x03"),  # one byte: 1002
    masked(0x88, struct.pack("!H", 1000)),
    masked(0x88, struct.pack("!H", 4001) + "bye é".encode()),
    masked(0x88, struct.pack("!H", 1005)),  # not a code that may be sent: 1002
    masked(0x88, struct.pack("!H", 1000) + b"\xff\xfe"),  # not UTF-8: 1007
    masked(0x88, struct.pack("!H", 1000) + b"r" * 123),  # the longest close frame
    masked(0x88, b"x" * 126),  # too long for a control frame: 1002
    masked(0x88, struct.pack("!H", 1001)) + masked(0x81, b"after"),  # dropped
    masked(0x88, struct.pack("!H", 1000))[:5],  # not all there yet
    bytes([0x88, 0x02]) + struct.pack("!H", 1000),  # unmasked: 1002
]


@pytest.mark.parametrize("data", CLOSE_READS, ids=range(len(CLOSE_READS)))
@pytest.mark.parametrize("shape", [bytes, bytearray, memoryview])
def test_a_close_as_the_first_read_is_parsed_as_after_other_frames(
    data: bytes, shape: type
) -> None:
    # The first read of a server's protocol makes no input buffer for a close frame
    # alone (receive_data's short path); after a message the buffer exists and the
    # frame goes through the loop. Both give the same events, reply and state.
    first, after = HybiProtocol(is_client=False), HybiProtocol(is_client=False)
    after.receive_data(masked(0x81, b"hi"))
    assert after.events_received() == [Message("hi")]
    assert after.data_to_send() == b""
    first.receive_data(shape(data))
    after.receive_data(shape(data))
    assert first.events_received() == after.events_received()
    assert first.data_to_send() == after.data_to_send()
    assert first.state == after.state
    first.receive_data(masked(0x88, b""))  # the rest of a partial frame, or nothing
    after.receive_data(masked(0x88, b""))
    assert first.events_received() == after.events_received()
    assert first.data_to_send() == after.data_to_send()
    assert first.state == after.state == CLOSED


def test_a_close_alone_is_answered_with_its_own_payload_and_reported() -> None:
    protocol = HybiProtocol(is_client=False)
    protocol.receive_data(masked(0x88, struct.pack("!H", 4001) + b"bye"))
    assert protocol.events_received() == [Close(4001, "bye")]
    assert protocol.data_to_send() == bytes([0x88, 5]) + struct.pack("!H", 4001) + b"bye"
    assert protocol.state == CLOSED
