"""Properties of the sans-I/O core, checked by Hypothesis.

* Any message sequence survives the wire in both directions, with and without
  permessage-deflate, however the bytes are split on the way.
* Fragmented messages with control frames between the fragments arrive whole.
* Arbitrary bytes into a protocol give only documented events and close codes,
  and never an exception (the fuzz targets' oracles, run here on Hypothesis's
  inputs; ``tests/fuzz`` runs the same oracles coverage-guided).
* A state machine drives a server and a client protocol through sends, pings,
  closes, partial deliveries and dropped connections, checking after every step
  that each side reports at most one close, that states only move forward, and
  that nothing but pongs follows a close frame.

``FAYE_SYNC_EXAMPLES`` scales the number of examples (default 100, kept small
so the default run stays fast).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from faye_sync.protocol.events import Close, Error, Message, Ping, Pong
from faye_sync.protocol.handshake import Rejection, Request, server_handshake
from faye_sync.protocol.hybi import CLOSED, OPEN, HybiProtocol
from tests.fuzz import targets
from tests.wire import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, Frame, FrameReader, frame

from .helpers import feed, negotiated_pair

EXAMPLES = int(os.environ.get("FAYE_SYNC_EXAMPLES", "100"))
FAST = settings(
    max_examples=EXAMPLES,
)

messages = st.lists(
    st.one_of(st.text(max_size=300), st.binary(max_size=300)),
    min_size=1,
    max_size=8,
)
# Some large messages too: the 16-bit and 64-bit length forms, and deflate blocks.
big_messages = st.one_of(
    messages,
    st.lists(
        st.one_of(
            st.integers(126, 70_000).map(lambda n: "é" * (n // 2)),
            st.integers(126, 70_000).map(lambda n: bytes(range(256)) * (n // 256)),
        ),
        min_size=1,
        max_size=3,
    ),
)
cuts = st.lists(st.integers(1, 70_000), max_size=12)


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` in pieces of the given sizes (the rest in one piece)."""
    pieces, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        pieces.append(data[pos : pos + size])
        pos += size
    if pos < len(data):
        pieces.append(data[pos:])
    return pieces


def deliver(sender: HybiProtocol, receiver: HybiProtocol, sizes: list[int]) -> list[object]:
    events: list[object] = []
    for piece in split(sender.data_to_send(), sizes):
        feed(receiver, piece)
        events += receiver.events_received()
    return events


@FAST
@given(sent=big_messages, sizes=cuts, deflate=st.booleans(), to_server=st.booleans())
def test_messages_round_trip_under_any_split(
    sent: list[str | bytes], sizes: list[int], deflate: bool, to_server: bool
) -> None:
    server, client = negotiated_pair(deflate=deflate)
    sender, receiver = (client, server) if to_server else (server, client)
    for message in sent:
        ok = sender.send_text(message) if isinstance(message, str) else sender.send_binary(message)
        assert ok
    events = deliver(sender, receiver, sizes)
    assert events == [Message(m) for m in sent]
    assert receiver.data_to_send() == b""  # nothing to answer
    assert server.state == client.state == OPEN


@st.composite
def fragmented(draw: st.DrawFn) -> tuple[bytes, list[object]]:
    """Client frames: messages cut in fragments, pings and pongs between them."""
    wire = bytearray()
    expected: list[object] = []
    for _ in range(draw(st.integers(1, 4))):
        text = draw(st.booleans())
        message: str | bytes = (
            draw(st.text(max_size=200)) if text else draw(st.binary(max_size=200))
        )
        raw = message.encode("utf-8") if isinstance(message, str) else message
        cuts_at = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=5)))
        pieces = [raw[a:b] for a, b in zip([0, *cuts_at], [*cuts_at, len(raw)], strict=True)]
        for index, piece in enumerate(pieces):
            opcode = (TEXT if text else BINARY) if index == 0 else CONTINUATION
            mask = draw(st.binary(min_size=4, max_size=4))
            last = index == len(pieces) - 1
            wire += frame(opcode, piece, fin=last, mask=mask)
            if last:  # complete now, before any control frame that follows
                expected.append(Message(message))
            if draw(st.booleans()):
                payload = draw(st.binary(max_size=125))
                if draw(st.booleans()):
                    wire += frame(PING, payload, mask=mask)
                    expected.append(Ping(payload))
                else:
                    wire += frame(PONG, payload, mask=mask)
                    expected.append(Pong(payload))
    return bytes(wire), expected


@FAST
@given(case=fragmented(), sizes=st.lists(st.integers(1, 64), max_size=40))
def test_fragmented_messages_with_control_frames_between(
    case: tuple[bytes, list[object]], sizes: list[int]
) -> None:
    wire, expected = case
    server = HybiProtocol(is_client=False)
    events: list[object] = []
    for piece in split(wire, sizes):
        feed(server, piece)
        events += server.events_received()
    assert events == expected
    pongs = FrameReader().feed(server.data_to_send())
    assert [f.payload for f in pongs] == [e.data for e in expected if isinstance(e, Ping)]


# Hypothesis runs the fuzz targets' oracles: the cheap half of tests/fuzz.
fuzz_settings = settings(
    max_examples=EXAMPLES * 2,
)


@fuzz_settings
@given(data=st.one_of(st.binary(max_size=2048), st.sampled_from(targets.SEEDS["frames"])))
def test_random_bytes_give_only_documented_events_and_codes(data: bytes) -> None:
    events = targets.frame_parser(data)  # the oracle checks the events and codes
    assert all(event.message for event in events if isinstance(event, Error))  # says why


@fuzz_settings
@given(
    head=st.integers(0, 255),
    data=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    b"\x81\x85",  # a masked text frame's header (server input)
                    b"\x89\x80",
                    b"\x88\x82",
                    b"\x01\x83",
                    b"\x80\x81",
                    b"\xc1\x85",  # RSV1: deflate
                    b"\x82\xff\x00\x00\x01\x00\x00\x00\x00\x00",  # 2^40 bytes declared
                    b"\x82\xfe\xff\xff",
                    b"\x00\x00\x00\x00",
                    b"\xff\xfe\xfd",
                    b"\x03\xe8",
                    b"\xce\xbb",
                    b"\xed\xa0\x80",  # a UTF-16 surrogate in UTF-8: invalid
                ]
            ),
            st.binary(max_size=16),
        ),
        max_size=30,
    ),
)
def test_frame_shaped_noise_gives_only_documented_events(head: int, data: list[bytes]) -> None:
    events = targets.frame_parser(bytes([head, head * 7 % 256]) + b"".join(data))
    assert all(event.message for event in events if isinstance(event, Error))  # says why


@fuzz_settings
@given(data=st.one_of(st.binary(max_size=512), st.sampled_from(targets.SEEDS["handshake"])))
def test_server_handshake_never_raises_on_any_request(data: bytes) -> None:
    outcome = targets.server_handshake_target(data)  # the oracle checks the response
    assert not isinstance(outcome, Rejection) or outcome.message  # a refusal says why


@fuzz_settings
@given(
    data=st.one_of(
        st.binary(max_size=512),
        st.text(alphabet=' \t\r\n,;="\\abcz019-', max_size=80).map(str.encode),
        st.sampled_from(targets.SEEDS["extensions"]),
    )
)
@example(data=targets.SEEDS["extensions"][0])  # one the server answers
def test_extension_header_parses_round_trips_or_raises_value_error(data: bytes) -> None:
    answer = targets.extension_header(data)
    # The server answers only with the one extension it has.
    assert answer is None or answer.split(";")[0] == "permessage-deflate"


SSE_PIECES = [b"data", b"event", b"id", b"retry", b":", b": ", b" ", b"\r", b"\n", b"\r\n"]
SSE_PIECES += [b"\xef\xbb\xbf", b"\x00", b"x", b"12", b"\xff", b"\xe2\x82"]


@pytest.mark.skipif("sse" not in targets.TARGETS, reason="no EventSource parser yet")
@fuzz_settings
@given(
    data=st.one_of(
        st.binary(max_size=512),
        st.lists(
            st.sampled_from(SSE_PIECES),
            max_size=60,
        ).map(lambda parts: bytes([len(parts) % 256]) + b"".join(parts)),
    )
)
@example(data=b"\x05retry: 5000\ndata: x\n\nretry: -5\ndata: y\n\n")  # -5 is ignored
def test_event_stream_parser_matches_the_whatwg_algorithm(data: bytes) -> None:
    parser = targets.sse_stream(data)  # the oracle checks events and ids
    # A retry field counts only when it is all digits: never a negative time.
    assert parser is None or parser.retry is None or parser.retry >= 0


def test_non_ascii_key_is_rejected_not_raised() -> None:
    # A WSGI server hands over header bytes as latin-1 text: byte 0xE9 is "é".
    request = Request(
        "GET",
        "/",
        {
            "connection": "Upgrade",
            "upgrade": "websocket",
            "sec-websocket-version": "13",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ\u00e9=",
        },
    )
    outcome = server_handshake(request)
    # Either answer is acceptable; raising is not.
    assert isinstance(outcome, Rejection) or outcome.response.startswith(b"HTTP/1.1 101")


# ----------------------------------------------------------- the state machine


@dataclass
class Side:
    """One protocol and everything the machine saw it do."""

    name: str
    protocol: HybiProtocol
    wire: bytearray = field(default_factory=bytearray)  # written, not yet delivered
    reader: FrameReader = field(default_factory=FrameReader)  # every frame it wrote
    sent: list[str | bytes] = field(default_factory=list)  # messages accepted by send_*
    received: list[str | bytes] = field(default_factory=list)
    closes: list[Close] = field(default_factory=list)
    events_after_close: list[object] = field(default_factory=list)
    errors: list[Error] = field(default_factory=list)
    state: int = OPEN
    input_ended: bool = False  # receive_eof was called

    def collect(self, was_closed: bool) -> None:
        output = self.protocol.data_to_send()
        assert not (was_closed and output), f"{self.name} wrote after it was CLOSED"
        self.wire += output
        self.reader.feed(output)
        for event in self.protocol.events_received():
            if self.closes:
                self.events_after_close.append(event)
            if isinstance(event, Message):
                self.received.append(event.data)
            elif isinstance(event, Close):
                self.closes.append(event)
            elif isinstance(event, Error):
                self.errors.append(event)


close_codes = st.one_of(st.just(1000), st.integers(3000, 4999))
reasons = st.text(max_size=20)


class ProtocolPair(RuleBasedStateMachine):
    """A server and a client protocol joined by two in-memory wires."""

    def __init__(self) -> None:
        super().__init__()
        self.sides: dict[str, Side] = {}

    @initialize(deflate=st.booleans())
    def connect(self, deflate: bool) -> None:
        server, client = negotiated_pair(deflate=deflate)
        self.sides = {"server": Side("server", server), "client": Side("client", client)}

    def other(self, name: str) -> Side:
        return self.sides["client" if name == "server" else "server"]

    def act(self, name: str, action: str, *args: object) -> bool:
        side = self.sides[name]
        was_open = side.protocol.state == OPEN
        was_closed = side.protocol.state == CLOSED
        result = getattr(side.protocol, action)(*args)
        assert result is was_open, f"{action} returned {result} in state {side.state}"
        side.collect(was_closed)
        return bool(result)

    @rule(name=st.sampled_from(["server", "client"]), text=st.text(max_size=40))
    def send_text(self, name: str, text: str) -> None:
        if self.act(name, "send_text", text):
            self.sides[name].sent.append(text)

    @rule(name=st.sampled_from(["server", "client"]), data=st.binary(max_size=300))
    def send_binary(self, name: str, data: bytes) -> None:
        if self.act(name, "send_binary", data):
            self.sides[name].sent.append(data)

    @rule(name=st.sampled_from(["server", "client"]), payload=st.binary(max_size=125))
    def send_ping(self, name: str, payload: bytes) -> None:
        self.act(name, "send_ping", payload)

    @rule(name=st.sampled_from(["server", "client"]), code=close_codes, reason=reasons)
    def send_close(self, name: str, code: int, reason: str) -> None:
        assume(len(reason.encode("utf-8")) <= 123)
        self.act(name, "send_close", code, reason)

    @rule(name=st.sampled_from(["server", "client"]), size=st.integers(1, 400))
    def deliver(self, name: str, size: int) -> None:
        """Move up to ``size`` bytes from ``name``'s wire into its peer."""
        sender, receiver = self.sides[name], self.other(name)
        if not sender.wire or receiver.input_ended:
            return
        piece = bytes(sender.wire[:size])
        del sender.wire[:size]
        was_closed = receiver.protocol.state == CLOSED
        receiver.protocol.receive_data(piece)
        receiver.collect(was_closed)

    @rule(name=st.sampled_from(["server", "client"]))
    def resume(self, name: str) -> None:
        """The engine's next read: a protocol paused before a close goes on.

        Sends may come in between (the app answering the message before it).
        """
        side = self.sides[name]
        if side.protocol.paused:
            was_closed = side.protocol.state == CLOSED
            side.protocol.receive_data(b"")
            side.collect(was_closed)

    @precondition(lambda self: bool(self.sides))
    @rule(name=st.sampled_from(["server", "client"]))
    def connection_drops(self, name: str) -> None:
        """``name``'s input ends (the TCP connection broke), bytes in flight lost."""
        side = self.sides[name]
        if side.input_ended:
            return
        was_closed = side.protocol.state == CLOSED
        side.input_ended = True
        self.other(name).wire.clear()
        side.protocol.receive_eof()
        side.collect(was_closed)
        assert len(side.closes) == 1
        if not was_closed:
            assert side.closes[0].code == 1006

    @invariant()
    def each_side_keeps_the_rules(self) -> None:
        for side in self.sides.values():
            state = side.protocol.state
            assert state >= side.state, f"{side.name} went from {side.state} to {state}"
            side.state = state
            assert len(side.closes) <= 1, f"{side.name}: {side.closes}"
            assert not side.events_after_close, f"{side.name}: {side.events_after_close}"
            assert not side.errors, f"{side.name} failed a correct peer: {side.errors}"
            assert (state == CLOSED) == bool(side.closes)
            _check_frames_after_close(side.name, side.reader.frames)
            peer = self.other(side.name)
            assert side.received == peer.sent[: len(side.received)], (
                f"{side.name} received {side.received!r}, peer sent {peer.sent!r}"
            )
            expected = _first_close_from(peer.reader.frames)
            if side.closes and side.closes[0].code != 1006:
                assert expected is not None
                assert (side.closes[0].code, side.closes[0].reason) == expected

    def teardown(self) -> None:
        if not self.sides:
            return
        # Deliver everything still in flight, until neither side writes more.
        for _ in range(10):
            moved = False
            for name in ("server", "client"):
                if self.sides[name].protocol.paused:
                    self.resume(name)
                    moved = True
                if self.sides[name].wire and not self.other(name).input_ended:
                    self.deliver(name, 1 << 30)
                    moved = True
            if not moved:
                break
        self.each_side_keeps_the_rules()
        server, client = self.sides["server"], self.sides["client"]
        dropped = server.input_ended or client.input_ended
        started = any(f.opcode == CLOSE for s in (server, client) for f in s.reader.frames)
        if started and not dropped:
            # A closing handshake with a working connection always completes.
            assert server.protocol.state == client.protocol.state == CLOSED
            assert len(server.closes) == len(client.closes) == 1
        if not started and not dropped:
            assert server.received == client.sent and client.received == server.sent


def _check_frames_after_close(name: str, frames: list[Frame]) -> None:
    seen_close = False
    for item in frames:
        if seen_close:
            assert item.opcode == PONG, f"{name} wrote opcode {item.opcode} after its close"
        seen_close |= item.opcode == CLOSE


def _first_close_from(frames: list[Frame]) -> tuple[int, str] | None:
    for item in frames:
        if item.opcode == CLOSE:
            code = item.close_code
            assert code is not None
            return code, item.payload[2:].decode("utf-8")
    return None


ProtocolPair.TestCase.settings = settings(
    max_examples=EXAMPLES // 2,
    stateful_step_count=40,
)
test_protocol_pair_state_machine = ProtocolPair.TestCase
