"""Large data frames read in place (protocol/large.py), sans I/O.

The caller's side of ``recv_into`` is played by writing into ``window()`` by
hand; frames are built here with an XOR written independently of the library.
"""

from __future__ import annotations

import os
import struct

import pytest

from faye_sync.protocol import large as large_module
from faye_sync.protocol.events import Close, Error, Message, Ping
from faye_sync.protocol.hybi import HybiProtocol
from faye_sync.protocol.large import LARGE_FRAME
from tests import wire

KEY = b"\x9a\x31\x07\xe4"


def frame(first: int, payload: bytes, key: bytes | None = KEY) -> bytes:
    """A frame from its first byte (FIN and opcode), masked with ``key`` (None: unmasked)."""
    return wire.frame(first & 0x0F, payload, fin=bool(first & 0x80), mask=key)


def read_in_place(protocol: HybiProtocol, data: bytes, step: int) -> None:
    """Feed ``data`` as the blocking layer does: recv_into the window while a frame wants it."""
    pos = 0
    while pos < len(data):
        large = protocol.large_frame
        if large is None:
            chunk = data[pos : pos + step]
            protocol.receive_data(chunk)
        else:
            window = large.window()
            count = min(step, len(window), len(data) - pos)
            window[:count] = data[pos : pos + count]
            del window
            protocol.receive_data(large.arrived(count))
        pos += count if large is not None else len(chunk)
        while protocol.paused:  # a read of over 1 MiB of messages: the rest waits
            protocol.receive_data(b"")


@pytest.mark.parametrize("step", [1000, 65536, 300_001, 2**21])
def test_masked_binary_and_text_arrive_exactly(step: int) -> None:
    binary = os.urandom(2**20 + 3)
    text = "aé€😀" * 100_000  # multi-byte characters cut at every chunk boundary
    protocol = HybiProtocol(is_client=False, max_length=2**26)
    read_in_place(protocol, frame(0x82, binary) + frame(0x81, text.encode()), step)
    assert protocol.events_received() == [Message(binary), Message(text)]
    assert protocol.large_frame is None


def test_unmasked_frames_to_a_client() -> None:
    payload = os.urandom(3 * LARGE_FRAME)
    protocol = HybiProtocol(is_client=True, max_length=2**26)
    read_in_place(protocol, frame(0x82, payload, key=None), 50_000)
    assert protocol.events_received() == [Message(payload)]


def test_arrived_bytes_are_not_copied_again() -> None:
    protocol = HybiProtocol(is_client=False, max_length=2**26)
    payload = os.urandom(2**20)
    data = frame(0x82, payload)
    protocol.receive_data(data[:1000])
    large = protocol.large_frame
    assert large is not None and large.needed == 2**20 - (1000 - 14)
    buffer = large.buffer
    window = large.window()
    window[: len(data) - 1000] = data[1000:]
    del window
    protocol.receive_data(large.arrived(len(data) - 1000))
    assert protocol.events_received() == [Message(payload)]
    assert large.buffer is buffer  # filled where it was, never grown or copied


def test_the_buffer_grows_with_what_arrives_not_with_the_declared_length() -> None:
    protocol = HybiProtocol(is_client=False, max_length=2**26)
    header = struct.pack("!BBQ", 0x82, 0xFF, 2**26 - 1) + KEY
    protocol.receive_data(header + bytes(10))
    large = protocol.large_frame
    assert large is not None
    assert len(large.buffer) == 2**20  # not 64 MiB
    protocol.receive_data(bytes(3 * 2**20))
    assert 3 * 2**20 < len(large.buffer) <= 2 * (3 * 2**20 + 10)
    assert protocol.events_received() == []


def test_invalid_utf8_fails_as_soon_as_it_arrives() -> None:
    protocol = HybiProtocol(is_client=False, max_length=2**26)
    data = frame(0x81, b"a" * 200_000 + b"\xff" + b"b" * 900_000)
    protocol.receive_data(data[:100_000])
    assert protocol.events_received() == []
    protocol.receive_data(data[100_000:250_000])  # the rest never comes
    events = protocol.events_received()
    assert events[0] == Error("Could not decode a text frame as UTF-8", 1007)
    assert events[-1] == Close(1007, "Could not decode a text frame as UTF-8")
    assert protocol.large_frame is None
    assert protocol.data_to_send()[:4] == b"\x88\x28\x03\xef"  # close 1007


def test_a_frame_over_max_length_is_refused_on_its_header() -> None:
    protocol = HybiProtocol(is_client=False, max_length=2**20)
    protocol.receive_data(struct.pack("!BBQ", 0x82, 0xFF, 2**20 + 1) + KEY + bytes(100))
    assert protocol.large_frame is None
    assert protocol.events_received()[-1] == Close(1009, "WebSocket frame length too large")


def test_fragments_with_a_ping_between_them() -> None:
    parts = ["é" * 100_000, "x" * 70_000, "€" * 50_000]
    data = (
        frame(0x01, parts[0].encode())
        + frame(0x00, parts[1].encode())
        + frame(0x89, b"hi")
        + frame(0x80, parts[2].encode())
    )
    for step in (7_777, 2**22):
        protocol = HybiProtocol(is_client=False, max_length=2**26)
        read_in_place(protocol, data, step)
        assert protocol.events_received() == [Ping(b"hi"), Message("".join(parts))]
        assert protocol.data_to_send() == b"\x8a\x02hi"


def test_a_fragmented_message_over_max_length_is_refused_on_the_second_header() -> None:
    protocol = HybiProtocol(is_client=False, max_length=150_000)
    protocol.receive_data(frame(0x02, bytes(100_000)))
    protocol.receive_data(struct.pack("!BBQ", 0x80, 0xFF, 50_001) + KEY + bytes(10))
    assert protocol.large_frame is None
    assert protocol.events_received()[-1] == Close(1009, "WebSocket frame length too large")


def test_bytes_after_the_frame_are_parsed_as_usual() -> None:
    payload = os.urandom(LARGE_FRAME)
    protocol = HybiProtocol(is_client=False, max_length=2**26)
    data = frame(0x82, payload) + frame(0x89, b"p") + frame(0x88, struct.pack("!H", 1000))
    protocol.receive_data(data[:20])
    protocol.receive_data(data[20:])  # the rest of the frame and two more, in one go
    events = protocol.events_received()
    if protocol.paused:  # a close after a message waits for the message's answer
        protocol.receive_data(b"")
        events += protocol.events_received()
    assert events == [Message(payload), Ping(b"p"), Close(1000, "")]


def test_a_large_send_keeps_header_and_payload_apart() -> None:
    payload = os.urandom(LARGE_FRAME)
    server = HybiProtocol(is_client=False, max_length=2**26)
    assert server.send_binary(payload)
    header, body = server.frames_to_send()
    assert header == struct.pack("!BBQ", 0x82, 127, LARGE_FRAME)
    assert body is payload  # not copied
    client = HybiProtocol(is_client=True, mask_key=lambda: KEY)
    assert client.send_text("é" * LARGE_FRAME)
    assert client.data_to_send() == frame(0x81, ("é" * LARGE_FRAME).encode())
    small = HybiProtocol(is_client=False, max_length=2**26)
    assert small.send_binary(b"x" * (LARGE_FRAME - 1))
    assert len(small.frames_to_send()) == 1


def test_a_finished_frames_buffer_serves_the_next_frame() -> None:
    large_module._spares.clear()  # as in a fresh process
    protocol = HybiProtocol(is_client=False, max_length=2**26)
    first, second = os.urandom(2**20), os.urandom(100_000)
    protocol.receive_data(frame(0x82, first)[:100])
    large = protocol.large_frame
    assert large is not None
    buffer = large.buffer
    protocol.receive_data(frame(0x82, first)[100:])
    protocol.receive_data(frame(0x82, second)[:100])
    large = protocol.large_frame
    assert large is not None and large.buffer is buffer  # no new zero-filled buffer
    read_in_place(protocol, frame(0x82, second)[100:], 30_000)
    assert protocol.events_received() == [Message(first), Message(second)]  # nothing stale


@pytest.mark.parametrize("step", [50, 65536])  # 50: too many pieces, decoded whole at the end
def test_a_text_frame_ending_inside_a_character_fails_when_it_is_whole(step: int) -> None:
    protocol = HybiProtocol(is_client=False, max_length=2**26)
    read_in_place(protocol, frame(0x81, "é".encode() * 60_000 + b"\xc3"), step)
    events = protocol.events_received()
    assert events[0] == Error("Could not decode a text frame as UTF-8", 1007)
    assert events[-1].code == 1007
    assert protocol.large_frame is None


def test_a_message_after_our_close_is_dropped() -> None:
    protocol = HybiProtocol(is_client=False, max_length=2**26)
    assert protocol.send_close(1000)
    read_in_place(protocol, frame(0x81, b"x" * LARGE_FRAME) + frame(0x82, bytes(LARGE_FRAME)), 9000)
    assert protocol.events_received() == []  # faye drops them while CLOSING
