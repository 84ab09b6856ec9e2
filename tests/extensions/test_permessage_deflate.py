"""permessage-deflate: faye-behaviour.md §2.5, plus the codec against independent peers.

faye's specs inject a mock zlib and count the streams it creates; here the
``zlib_spy`` fixture wraps the real ``zlib.compressobj``/``decompressobj`` the
same way. "Uses context takeover" means one stream serves two messages; "no
context takeover" means two streams are made.

Ported: every ClientSession and ServerSession box.
Adapted: "errors thrown by zlib are caught" tested faye's swallowing of errors
from closing Node zlib streams, which Python's zlib objects do not have (they
are never closed, only dropped): it becomes "zlib's errors become a
ProtocolError", checked for garbage input. "Invalid maxWindowBits /
requestMaxWindowBits throws when the offer is generated" becomes a ValueError
at construction, as the design asks.
Added (§2.7 and the brief): compression bombs, exact ``max_length`` limits,
final-block messages, RFC 7692 §7.2.3 examples, interop with the ``websockets``
and ``wsproto`` implementations (negotiation and codec, both directions),
a Hypothesis round-trip, and the frame layer end to end.
"""

from __future__ import annotations

import random
import tracemalloc
import types
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.extensions import permessage_deflate as ws_pmd
from websockets.frames import Frame, Opcode
from websockets.headers import build_extension, parse_extension
from wsproto.extensions import PerMessageDeflate as WsprotoDeflate
from wsproto.frame_protocol import Opcode as WsprotoOpcode
from wsproto.frame_protocol import RsvBits

from faye_sync.exceptions import ProtocolError
from faye_sync.extensions import ExtensionMessage, Extensions, PerMessageDeflate
from faye_sync.extensions import permessage_deflate as pmd
from faye_sync.extensions.base import Params
from faye_sync.extensions.permessage_deflate import DeflateClientSession, DeflateServerSession
from tests.wire import read_frames

MAX = 2**26 - 1
TAIL = b"\x00\x00\xff\xff"


def deflate(data: bytes, wbits: int = 15) -> bytes:
    """One message compressed on its own, as a peer would send it."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -wbits)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def inflate(payload: bytes, wbits: int = 15) -> bytes:
    return zlib.decompressobj(-wbits).decompress(payload + TAIL)


def text(data: bytes, rsv1: bool = False) -> ExtensionMessage:
    return ExtensionMessage(rsv1, False, False, 1, data)


class ZlibSpy:
    """Records every stream the sessions make, with its settings."""

    def __init__(self) -> None:
        self.deflates: list[dict[str, int]] = []
        self.inflates: list[int] = []

    def compressobj(
        self, level: int, method: int, wbits: int, mem_level: int, strategy: int
    ) -> Any:
        self.deflates.append(
            {"wbits": -wbits, "level": level, "mem_level": mem_level, "strategy": strategy}
        )
        return zlib.compressobj(level, method, wbits, mem_level, strategy)

    def decompressobj(self, wbits: int) -> Any:
        self.inflates.append(-wbits)
        return zlib.decompressobj(wbits)


@pytest.fixture
def zlib_spy(monkeypatch: pytest.MonkeyPatch) -> ZlibSpy:
    spy = ZlibSpy()
    fake = types.SimpleNamespace(**{k: getattr(zlib, k) for k in dir(zlib) if k[0] != "_"})
    fake.compressobj = spy.compressobj
    fake.decompressobj = spy.decompressobj
    monkeypatch.setattr(pmd, "zlib", fake)
    return spy


def send_two(session: DeflateClientSession | DeflateServerSession) -> None:
    for _ in range(2):
        out = session.process_outgoing_message(text(b"hello"))
        assert out.rsv1


def receive_two(session: DeflateClientSession | DeflateServerSession, wbits: int = 15) -> None:
    for _ in range(2):
        assert session.process_incoming_message(text(deflate(b"hello", wbits), True)).data == (
            b"hello"
        )


DEFAULTS = {"level": zlib.Z_DEFAULT_COMPRESSION, "mem_level": 5, "strategy": 0}


def streams(wbits: int, **overrides: int) -> dict[str, int]:
    return {"wbits": wbits, **DEFAULTS, **overrides}


# ---------------------------------------------------------------- options


class TestOptions:
    def test_extension_fields(self) -> None:
        ext = PerMessageDeflate()
        assert (ext.name, ext.type, ext.rsv1, ext.rsv2, ext.rsv3) == (
            "permessage-deflate",
            "permessage",
            True,
            False,
            False,
        )
        Extensions().add(ext)

    def test_unknown_option(self) -> None:
        with pytest.raises(TypeError):
            PerMessageDeflate(zlib=zlib)  # type: ignore[call-arg]

    def test_options_are_keyword_only(self) -> None:
        with pytest.raises(TypeError):
            PerMessageDeflate(9)  # type: ignore[call-arg]

    @pytest.mark.parametrize("option", ["max_window_bits", "request_max_window_bits"])
    @pytest.mark.parametrize("value", [7, 16, 20, 0, True, 12.0, "12"])
    def test_invalid_window_bits(self, option: str, value: object) -> None:
        with pytest.raises(ValueError, match=option):
            PerMessageDeflate(**{option: value})  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "options", [{"level": 10}, {"level": -2}, {"mem_level": 0}, {"strategy": 99}]
    )
    def test_invalid_zlib_settings(self, options: dict[str, int]) -> None:
        with pytest.raises(ValueError):
            PerMessageDeflate(**options)  # type: ignore[arg-type]

    def test_repr(self) -> None:
        assert "max_window_bits=10" in repr(PerMessageDeflate(max_window_bits=10))


# ---------------------------------------------------------------- client session


def client(**options: Any) -> DeflateClientSession:
    return PerMessageDeflate(**options).create_client_session(max_length=MAX)


class TestClientSessionDefaults:
    def test_offer(self) -> None:
        assert client().generate_offer() == {"client_max_window_bits": True}

    def test_default_header(self) -> None:
        assert Extensions([PerMessageDeflate()]).generate_offer() == (
            "permessage-deflate; client_max_window_bits"
        )

    def test_empty_response_inflates_15_with_takeover(self, zlib_spy: ZlibSpy) -> None:
        session = client()
        assert session.activate({}) is True
        receive_two(session)
        assert zlib_spy.inflates == [15]

    def test_empty_response_deflates_15_with_takeover(self, zlib_spy: ZlibSpy) -> None:
        session = client()
        assert session.activate({}) is True
        send_two(session)
        assert zlib_spy.deflates == [streams(15)]

    def test_server_no_context_takeover(self, zlib_spy: ZlibSpy) -> None:
        session = client()
        assert session.activate({"server_no_context_takeover": True}) is True
        receive_two(session)
        assert zlib_spy.inflates == [15, 15]

    def test_client_no_context_takeover(self, zlib_spy: ZlibSpy) -> None:
        session = client()
        assert session.activate({"client_no_context_takeover": True}) is True
        send_two(session)
        assert zlib_spy.deflates == [streams(15), streams(15)]

    def test_server_max_window_bits_8_inflates_with_9(self, zlib_spy: ZlibSpy) -> None:
        session = client()
        assert session.activate({"server_max_window_bits": 8}) is True
        receive_two(session, wbits=9)
        assert zlib_spy.inflates == [9]

    def test_client_max_window_bits_8_deflates_with_9(self, zlib_spy: ZlibSpy) -> None:
        session = client()
        assert session.activate({"client_max_window_bits": 8}) is True
        send_two(session)
        assert zlib_spy.deflates == [streams(9)]

    @pytest.mark.parametrize(
        "params",
        [
            {"server_max_window_bits": 20},
            {"client_max_window_bits": 20},
            {"client_max_window_bits": True},  # a response must give a value
            {"server_max_window_bits": True},
            {"server_max_window_bits": "10"},
            {"server_no_context_takeover": 1},  # a flag with a value
            {"client_no_context_takeover": "yes"},
            {"server_max_window_bits": [10, 11]},  # repeated
            {"client_no_context_takeover": [True, True]},
            {"unknown": True},
        ],
    )
    def test_rejected_responses(self, params: Params) -> None:
        assert client().activate(params) is False


class TestClientSessionOptions:
    def test_no_context_takeover(self, zlib_spy: ZlibSpy) -> None:
        session = client(no_context_takeover=True)
        assert session.generate_offer() == {
            "client_no_context_takeover": True,
            "client_max_window_bits": True,
        }
        assert session.activate({}) is True
        send_two(session)
        assert zlib_spy.deflates == [streams(15), streams(15)]

    def test_max_window_bits(self, zlib_spy: ZlibSpy) -> None:
        session = client(max_window_bits=9)
        assert session.generate_offer() == {"client_max_window_bits": 9}
        assert session.activate({}) is True
        send_two(session)
        assert zlib_spy.deflates == [streams(9)]

    def test_max_window_bits_rejects_a_larger_window(self) -> None:
        assert client(max_window_bits=9).activate({"client_max_window_bits": 10}) is False

    def test_max_window_bits_accepts_a_smaller_window(self, zlib_spy: ZlibSpy) -> None:
        session = client(max_window_bits=9)
        assert session.activate({"client_max_window_bits": 8}) is True
        send_two(session)
        assert zlib_spy.deflates == [streams(9)]

    def test_request_no_context_takeover(self, zlib_spy: ZlibSpy) -> None:
        session = client(request_no_context_takeover=True)
        assert session.generate_offer() == {
            "client_max_window_bits": True,
            "server_no_context_takeover": True,
        }
        assert client(request_no_context_takeover=True).activate({}) is False
        assert session.activate({"server_no_context_takeover": True}) is True
        receive_two(session)
        assert zlib_spy.inflates == [15, 15]

    def test_request_max_window_bits(self, zlib_spy: ZlibSpy) -> None:
        options = {"request_max_window_bits": 12}
        assert client(**options).generate_offer() == {
            "client_max_window_bits": True,
            "server_max_window_bits": 12,
        }
        assert client(**options).activate({}) is False
        assert client(**options).activate({"server_max_window_bits": 13}) is False
        session = client(**options)
        assert session.activate({"server_max_window_bits": 11}) is True
        receive_two(session, wbits=11)
        assert zlib_spy.inflates == [11]

    @pytest.mark.parametrize(
        ("option", "value"),
        [("level", zlib.Z_BEST_SPEED), ("mem_level", 9), ("strategy", zlib.Z_FILTERED)],
    )
    def test_zlib_settings_are_passed_on(self, zlib_spy: ZlibSpy, option: str, value: int) -> None:
        session = client(**{option: value})
        session.activate({})
        session.process_outgoing_message(text(b"x"))
        assert zlib_spy.deflates == [streams(15, **{option: value})]

    def test_offer_and_activate_through_the_framework(self) -> None:
        extensions = Extensions(
            [PerMessageDeflate(max_window_bits=10, request_no_context_takeover=True)]
        )
        assert extensions.generate_offer() == (
            "permessage-deflate; client_max_window_bits=10; server_no_context_takeover"
        )
        with pytest.raises(ValueError, match="unacceptable extension parameters"):
            extensions.activate("permessage-deflate")
        extensions.generate_offer()
        extensions.activate("permessage-deflate; server_no_context_takeover")
        assert extensions.active == ["permessage-deflate"]


# ---------------------------------------------------------------- server session


def server(offer: Params | None = None, **options: Any) -> DeflateServerSession | None:
    return PerMessageDeflate(**options).create_server_session([offer or {}], max_length=MAX)


def response(offer: Params | None = None, **options: Any) -> Params:
    session = server(offer, **options)
    assert session is not None
    return session.generate_response()


class TestServerSessionDefaults:
    def test_empty_offer(self, zlib_spy: ZlibSpy) -> None:
        session = server()
        assert session is not None
        assert session.generate_response() == {}
        receive_two(session)
        send_two(session)
        assert zlib_spy.inflates == [15]
        assert zlib_spy.deflates == [streams(15)]

    def test_default_header(self) -> None:
        extensions = Extensions([PerMessageDeflate()])
        assert extensions.generate_response("permessage-deflate; client_max_window_bits") == (
            "permessage-deflate"
        )

    def test_server_no_context_takeover(self, zlib_spy: ZlibSpy) -> None:
        session = server({"server_no_context_takeover": True})
        assert session is not None
        assert session.generate_response() == {"server_no_context_takeover": True}
        send_two(session)
        assert zlib_spy.deflates == [streams(15), streams(15)]

    def test_client_no_context_takeover(self, zlib_spy: ZlibSpy) -> None:
        session = server({"client_no_context_takeover": True})
        assert session is not None
        assert session.generate_response() == {"client_no_context_takeover": True}
        receive_two(session)
        assert zlib_spy.inflates == [15, 15]

    def test_server_max_window_bits(self, zlib_spy: ZlibSpy) -> None:
        session = server({"server_max_window_bits": 13})
        assert session is not None
        assert session.generate_response() == {"server_max_window_bits": 13}
        send_two(session)
        assert zlib_spy.deflates == [streams(13)]

    def test_server_max_window_bits_15_is_not_echoed(self) -> None:
        assert response({"server_max_window_bits": 15}) == {}

    @pytest.mark.parametrize(
        "offer",
        [
            {"server_max_window_bits": 20},
            {"client_max_window_bits": 20},
            {"server_max_window_bits": True},
            {"client_max_window_bits": 7},
            {"client_max_window_bits": "13"},
            {"server_no_context_takeover": 1},
            {"client_max_window_bits": [10, 11]},
            {"x": True},
        ],
    )
    def test_invalid_offers_make_no_session(self, offer: Params) -> None:
        assert server(offer) is None

    def test_client_max_window_bits_flag(self, zlib_spy: ZlibSpy) -> None:
        session = server({"client_max_window_bits": True})
        assert session is not None
        assert session.generate_response() == {}
        receive_two(session)
        assert zlib_spy.inflates == [15]

    def test_client_max_window_bits_hint(self, zlib_spy: ZlibSpy) -> None:
        session = server({"client_max_window_bits": 13})
        assert session is not None
        assert session.generate_response() == {"client_max_window_bits": 13}
        receive_two(session, wbits=13)
        assert zlib_spy.inflates == [13]

    def test_takes_the_first_valid_offer(self) -> None:
        session = PerMessageDeflate().create_server_session(
            [{"server_max_window_bits": 20}, {"server_max_window_bits": 10}, {"x": True}],
            max_length=MAX,
        )
        assert session is not None
        assert session.generate_response() == {"server_max_window_bits": 10}

    def test_declines_when_no_offer_is_valid(self) -> None:
        extensions = Extensions([PerMessageDeflate()])
        assert extensions.generate_response("permessage-deflate; x, permessage-deflate; y") is None
        assert extensions.active == []


class TestServerSessionOptions:
    def test_no_context_takeover(self, zlib_spy: ZlibSpy) -> None:
        session = server(no_context_takeover=True)
        assert session is not None
        assert session.generate_response() == {"server_no_context_takeover": True}
        send_two(session)
        assert zlib_spy.deflates == [streams(15), streams(15)]

    @pytest.mark.parametrize(
        ("offer", "expected", "wbits"),
        [
            ({}, {}, 12),
            ({"server_max_window_bits": 13}, {"server_max_window_bits": 12}, 12),
            ({"server_max_window_bits": 11}, {"server_max_window_bits": 11}, 11),
        ],
    )
    def test_max_window_bits(
        self, zlib_spy: ZlibSpy, offer: Params, expected: Params, wbits: int
    ) -> None:
        session = server(offer, max_window_bits=12)
        assert session is not None
        assert session.generate_response() == expected
        send_two(session)
        assert zlib_spy.deflates == [streams(wbits)]

    def test_request_no_context_takeover(self, zlib_spy: ZlibSpy) -> None:
        session = server(request_no_context_takeover=True)
        assert session is not None
        assert session.generate_response() == {"client_no_context_takeover": True}
        receive_two(session)
        assert zlib_spy.inflates == [15, 15]

    @pytest.mark.parametrize(
        ("offer", "expected", "wbits"),
        [
            ({}, {}, 15),
            ({"client_max_window_bits": True}, {"client_max_window_bits": 11}, 11),
            ({"client_max_window_bits": 12}, {"client_max_window_bits": 11}, 11),
            ({"client_max_window_bits": 10}, {"client_max_window_bits": 10}, 10),
        ],
    )
    def test_request_max_window_bits(
        self, zlib_spy: ZlibSpy, offer: Params, expected: Params, wbits: int
    ) -> None:
        session = server(offer, request_max_window_bits=11)
        assert session is not None
        assert session.generate_response() == expected
        receive_two(session, wbits=wbits)
        assert zlib_spy.inflates == [wbits]

    @pytest.mark.parametrize(
        ("option", "value"),
        [("level", zlib.Z_BEST_SPEED), ("mem_level", 9), ("strategy", zlib.Z_FILTERED)],
    )
    def test_zlib_settings_are_passed_on(self, zlib_spy: ZlibSpy, option: str, value: int) -> None:
        options: dict[str, Any] = {option: value}
        session = PerMessageDeflate(**options).create_server_session([{}], max_length=MAX)
        assert session is not None
        session.process_outgoing_message(text(b"x"))
        assert zlib_spy.deflates == [streams(15, **{option: value})]


# ---------------------------------------------------------------- codec


def pair(
    client_options: dict[str, Any], server_options: dict[str, Any]
) -> tuple[Extensions, Extensions]:
    """A client and a server pipeline, negotiated through real headers."""
    ours = Extensions([PerMessageDeflate(**client_options)])
    theirs = Extensions([PerMessageDeflate(**server_options)], max_length=1 << 20)
    ours.activate(theirs.generate_response(ours.generate_offer() or "") or "")
    assert ours.active == theirs.active == ["permessage-deflate"]
    return ours, theirs


class TestCodec:
    def test_outgoing_messages_are_compressed_with_rsv1(self) -> None:
        session = server()
        assert session is not None
        out = session.process_outgoing_message(ExtensionMessage(False, False, False, 2, b"x" * 100))
        assert (out.rsv1, out.opcode) == (True, 2)
        assert not out.data.endswith(TAIL)
        assert len(out.data) < 10
        assert inflate(out.data) == b"x" * 100

    def test_rfc7692_example_hello(self) -> None:
        # RFC 7692 §7.2.3.1: "Hello" compressed without a preset window.
        session = server()
        assert session is not None
        assert session.process_outgoing_message(text(b"Hello")).data == bytes.fromhex(
            "f248cdc9c90700"
        )
        assert (
            session.process_incoming_message(text(bytes.fromhex("f248cdc9c90700"), True)).data
            == b"Hello"
        )

    def test_rfc7692_example_shared_window(self) -> None:
        # RFC 7692 §7.2.3.2: the second "Hello" refers back to the first.
        session = server()
        assert session is not None
        for payload in ("f248cdc9c90700", "f200110000"):
            assert session.process_incoming_message(text(bytes.fromhex(payload), True)).data == (
                b"Hello"
            )

    def test_rfc7692_example_stored_block(self) -> None:
        # RFC 7692 §7.2.3.3: "Hello" in a stored (uncompressed) DEFLATE block.
        session = server()
        assert session is not None
        payload = bytes.fromhex("000500faff48656c6c6f00")
        assert session.process_incoming_message(text(payload, True)).data == b"Hello"

    def test_empty_messages(self) -> None:
        client_ext, server_ext = pair({}, {})
        out = client_ext.process_outgoing_message(text(b""))
        assert out.rsv1
        assert server_ext.process_incoming_message(out).data == b""

    def test_uncompressed_messages_pass_through(self) -> None:
        _, server_ext = pair({}, {})
        message = text(b"plain")
        assert server_ext.process_incoming_message(message) is message

    def test_context_takeover_shrinks_repeated_messages(self) -> None:
        client_ext, server_ext = pair({}, {})
        data = bytes(random.Random(1).randbytes(2000))
        first = client_ext.process_outgoing_message(text(data))
        second = client_ext.process_outgoing_message(text(data))
        assert len(second.data) < len(first.data) // 10
        assert server_ext.process_incoming_message(first).data == data
        assert server_ext.process_incoming_message(second).data == data

    def test_no_context_takeover_repeats_itself(self) -> None:
        client_ext, server_ext = pair({"no_context_takeover": True}, {})
        data = b"the same message, twice"
        first = client_ext.process_outgoing_message(text(data))
        second = client_ext.process_outgoing_message(text(data))
        assert first.data == second.data
        assert server_ext.process_incoming_message(second).data == data

    def test_context_is_lost_without_takeover(self) -> None:
        # A message that refers to the previous one cannot be read by a server
        # that was told the client would not do that.
        session = server({"client_no_context_takeover": True})
        assert session is not None
        session.process_incoming_message(text(bytes.fromhex("f248cdc9c90700"), True))
        with pytest.raises(ProtocolError) as info:
            session.process_incoming_message(text(bytes.fromhex("f200110000"), True))
        assert info.value.code == 1007  # invalid payload data (faye: 1010)
        assert "invalid distance too far back" in str(info.value)

    def test_garbage_is_a_1007_with_zlibs_message(self) -> None:
        # faye sends 1010 (extension error); RFC 6455 §7.4.1: 1010 is what a client
        # sends when the server refused an extension; data that does not decode is 1007.
        _, server_ext = pair({}, {})
        with pytest.raises(ProtocolError) as info:
            server_ext.process_incoming_message(text(b"\xff\xff\xff\xff", True))
        assert (str(info.value), info.value.code) == (
            "permessage-deflate: invalid block type",
            1007,
        )

    def test_a_direction_stays_failed(self) -> None:
        client_ext, server_ext = pair({}, {})
        with pytest.raises(ProtocolError):
            server_ext.process_incoming_message(text(b"\xff", True))
        with pytest.raises(ProtocolError, match="invalid block type"):
            server_ext.process_incoming_message(client_ext.process_outgoing_message(text(b"ok")))
        assert server_ext.process_outgoing_message(text(b"still")).rsv1

    def test_a_final_block_ends_the_stream(self) -> None:
        # RFC 7692 §7.2.3.4 allows a message that ends with BFINAL set; the next
        # message is then a new DEFLATE stream, even with context takeover.
        session = server()
        assert session is not None
        payload = bytes.fromhex("f348cdc9c90700")  # the RFC's example
        assert session.process_incoming_message(text(payload, True)).data == b"Hello"
        for data in (b"first message", b"second message"):
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = compressor.compress(data) + compressor.flush(zlib.Z_FINISH)
            assert session.process_incoming_message(text(payload, True)).data == data

    def test_close_releases_streams_and_is_idempotent(self) -> None:
        client_ext, server_ext = pair({}, {})
        message = server_ext.process_incoming_message(
            client_ext.process_outgoing_message(text(b"x"))
        )
        assert message.data == b"x"
        server_ext.close()
        server_ext.close()  # idempotent
        client_ext.close()
        for extensions in (server_ext, client_ext):
            for _, session in extensions._active:
                assert session._deflate is None and session._inflate is None  # type: ignore[attr-defined]


# ---------------------------------------------------------------- max_length and bombs


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return deflate(bytes(2**26), wbits=15)


class TestMaxLength:
    def test_bomb_fails_with_1009_without_inflating_it(self, bomb: bytes) -> None:
        session = PerMessageDeflate().create_server_session([{}], max_length=1 << 20)
        assert session is not None
        extensions = Extensions([PerMessageDeflate()], max_length=1 << 20)
        extensions.generate_response("permessage-deflate")
        tracemalloc.start()
        try:
            with pytest.raises(ProtocolError) as info:
                extensions.process_incoming_message(ExtensionMessage(True, False, False, 2, bomb))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert info.value.code == 1009
        assert str(info.value) == "permessage-deflate: WebSocket frame length too large"
        # 64 MiB inflated would be the whole bomb; we stop a little past 1 MiB.
        assert peak < 4 << 20

    @pytest.mark.parametrize("takeover", [True, False])
    def test_exactly_max_length_is_accepted(self, takeover: bool) -> None:
        offer: Params = {} if takeover else {"client_no_context_takeover": True}
        session = PerMessageDeflate().create_server_session([offer], max_length=1000)
        assert session is not None
        data = bytes(random.Random(2).randbytes(1000))
        # Twice: the stream must be intact after a message that hit the limit.
        for _ in range(2):
            assert session.process_incoming_message(text(deflate(data), True)).data == data

    def test_one_byte_over_max_length_is_refused(self) -> None:
        session = PerMessageDeflate().create_server_session([{}], max_length=1000)
        assert session is not None
        with pytest.raises(ProtocolError) as info:
            session.process_incoming_message(text(deflate(bytes(1001)), True))
        assert (str(info.value), info.value.code) == ("WebSocket frame length too large", 1009)

    def test_max_length_reaches_client_sessions(self) -> None:
        extensions = Extensions([PerMessageDeflate()], max_length=10)
        extensions.activate(
            Extensions([PerMessageDeflate()]).generate_response(extensions.generate_offer() or "")
            or ""
        )
        with pytest.raises(ProtocolError, match="too large"):
            extensions.process_incoming_message(text(deflate(b"x" * 11), True))

    def test_zero_max_length(self) -> None:
        session = PerMessageDeflate().create_server_session([{}], max_length=0)
        assert session is not None
        assert session.process_incoming_message(text(deflate(b""), True)).data == b""
        with pytest.raises(ProtocolError):
            session.process_incoming_message(text(deflate(b"x"), True))


# ---------------------------------------------------------------- interop

MESSAGES = [
    b"",
    b"a",
    b"Hello, world! " * 50,
    bytes(random.Random(3).randbytes(3000)),
    b"".join(str(i).encode() + b"," for i in range(30000)),  # ~170 KB, beyond a 32 KiB window
    b"Hello, world! " * 50,
]

CONFIGS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    # (our options, the peer's factory options)
    ({}, {}),
    ({"no_context_takeover": True}, {"client_no_context_takeover": True}),
    ({"request_no_context_takeover": True}, {"server_no_context_takeover": True}),
    ({"max_window_bits": 9}, {"client_max_window_bits": 9}),
    ({"max_window_bits": 12, "request_max_window_bits": 10}, {"server_max_window_bits": 10}),
    ({"request_max_window_bits": 12}, {"server_max_window_bits": 11}),
]


def ws_encode(ext: ws_pmd.PerMessageDeflate, data: bytes) -> ExtensionMessage:
    frame = ext.encode(Frame(Opcode.BINARY, data))
    return ExtensionMessage(frame.rsv1, False, False, 2, bytes(frame.data))


def ws_decode(ext: ws_pmd.PerMessageDeflate, message: ExtensionMessage) -> bytes:
    frame = ext.decode(Frame(Opcode.BINARY, message.data, rsv1=message.rsv1), max_size=None)
    return bytes(frame.data)


def exchange(
    ours: Extensions,
    send: Any,
    receive: Any,
) -> tuple[list[bytes], list[bytes]]:
    """Send MESSAGES each way, every one compressed; return what the peer and we decoded."""
    theirs_decoded, ours_decoded = [], []
    for data in MESSAGES:
        out = ours.process_outgoing_message(ExtensionMessage(False, False, False, 2, data))
        assert out.rsv1
        theirs_decoded.append(receive(out))
    for data in MESSAGES:
        incoming = send(data)
        assert incoming.rsv1
        ours_decoded.append(ours.process_incoming_message(incoming).data)
    return theirs_decoded, ours_decoded


class TestWebsocketsInterop:
    @pytest.mark.parametrize(("ours", "theirs"), CONFIGS)
    def test_our_client_with_their_server(
        self, ours: dict[str, Any], theirs: dict[str, Any]
    ) -> None:
        client_ext = Extensions([PerMessageDeflate(**ours)])
        [(name, params)] = parse_extension(client_ext.generate_offer() or "")
        factory = ws_pmd.ServerPerMessageDeflateFactory(**theirs)
        response, peer = factory.process_request_params(params, [])
        client_ext.activate(build_extension([(name, response)]))
        decoded = exchange(
            client_ext, lambda data: ws_encode(peer, data), lambda m: ws_decode(peer, m)
        )
        assert decoded == (MESSAGES, MESSAGES)

    @pytest.mark.parametrize(("ours", "theirs"), CONFIGS)
    def test_their_client_with_our_server(
        self, ours: dict[str, Any], theirs: dict[str, Any]
    ) -> None:
        # Mirror the roles: the peer's client makes the offer our server answers.
        mirrored = {
            key.replace("client_", "@").replace("server_", "client_").replace("@", "server_"): value
            for key, value in theirs.items()
        }
        factory = ws_pmd.ClientPerMessageDeflateFactory(**mirrored)
        server_ext = Extensions([PerMessageDeflate(**ours)])
        offer = build_extension([(factory.name, factory.get_request_params())])
        answer = server_ext.generate_response(offer)
        assert answer is not None
        [(_, params)] = parse_extension(answer)
        peer = factory.process_response_params(params, [])
        decoded = exchange(
            server_ext, lambda data: ws_encode(peer, data), lambda m: ws_decode(peer, m)
        )
        assert decoded == (MESSAGES, MESSAGES)


class _Proto:
    def __init__(self, client: bool) -> None:
        self.client = client


def wsproto_send(ext: WsprotoDeflate, proto: _Proto, data: bytes) -> ExtensionMessage:
    rsv, payload = ext.frame_outbound(
        proto,  # type: ignore[arg-type]
        WsprotoOpcode.BINARY,
        RsvBits(False, False, False),
        data,
        True,
    )
    return ExtensionMessage(rsv.rsv1, False, False, 2, bytes(payload))


def wsproto_receive(ext: WsprotoDeflate, proto: _Proto, message: ExtensionMessage) -> bytes:
    rsv = RsvBits(message.rsv1, False, False)
    ext.frame_inbound_header(proto, WsprotoOpcode.BINARY, rsv, len(message.data))  # type: ignore[arg-type]
    body = ext.frame_inbound_payload_data(proto, message.data)  # type: ignore[arg-type]
    tail = ext.frame_inbound_complete(proto, True)  # type: ignore[arg-type]
    assert isinstance(body, bytes)
    return body + (tail if isinstance(tail, bytes) else b"")


WSPROTO_CONFIGS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {}),
    ({"no_context_takeover": True}, {}),
    ({"request_no_context_takeover": True}, {"server_no_context_takeover": True}),
    ({"max_window_bits": 9}, {}),
    ({"max_window_bits": 12, "request_max_window_bits": 10}, {}),
]


class TestWsprotoInterop:
    @pytest.mark.parametrize(("ours", "theirs"), WSPROTO_CONFIGS)
    def test_our_client_with_their_server(
        self, ours: dict[str, Any], theirs: dict[str, Any]
    ) -> None:
        client_ext = Extensions([PerMessageDeflate(**ours)])
        offer = client_ext.generate_offer() or ""
        peer = WsprotoDeflate(**theirs)
        accepted = peer.accept(offer)
        assert isinstance(accepted, str)
        client_ext.activate("; ".join(filter(None, ["permessage-deflate", accepted])))
        proto = _Proto(client=False)
        decoded = exchange(
            client_ext,
            lambda data: wsproto_send(peer, proto, data),
            lambda m: wsproto_receive(peer, proto, m),
        )
        assert decoded == (MESSAGES, MESSAGES)

    @pytest.mark.parametrize(
        "theirs",
        [
            {},
            {"client_no_context_takeover": True},
            {"server_no_context_takeover": True},
            {"client_max_window_bits": 10, "server_max_window_bits": 12},
        ],
    )
    @pytest.mark.parametrize("ours", [{}, {"max_window_bits": 11}, {"no_context_takeover": True}])
    def test_their_client_with_our_server(
        self, ours: dict[str, Any], theirs: dict[str, Any]
    ) -> None:
        peer = WsprotoDeflate(**theirs)
        server_ext = Extensions([PerMessageDeflate(**ours)])
        answer = server_ext.generate_response(f"permessage-deflate; {peer.offer()}")
        assert answer is not None
        peer.finalize(answer)
        proto = _Proto(client=True)
        decoded = exchange(
            server_ext,
            lambda data: wsproto_send(peer, proto, data),
            lambda m: wsproto_receive(peer, proto, m),
        )
        assert decoded == (MESSAGES, MESSAGES)


# ---------------------------------------------------------------- properties

options = st.fixed_dictionaries(
    {},
    optional={
        "no_context_takeover": st.booleans(),
        "request_no_context_takeover": st.booleans(),
        "max_window_bits": st.integers(8, 15),
        "request_max_window_bits": st.integers(8, 15),
        "level": st.integers(-1, 9),
        "mem_level": st.integers(1, 9),
    },
)


@settings(max_examples=60)
@given(
    client_options=options,
    server_options=options,
    messages=st.lists(st.binary(max_size=3000) | st.text(max_size=500).map(str.encode), max_size=6),
)
def test_round_trip(
    client_options: dict[str, Any], server_options: dict[str, Any], messages: list[bytes]
) -> None:
    ours = Extensions([PerMessageDeflate(**client_options)])
    theirs = Extensions([PerMessageDeflate(**server_options)])
    try:
        ours.activate(theirs.generate_response(ours.generate_offer() or "") or "")
    except ValueError:
        # The server could not meet what the client required (a requested
        # window or no context takeover): a failed handshake, nothing to send.
        assert client_options.get("request_max_window_bits") or client_options.get(
            "request_no_context_takeover"
        )
        return
    for data in messages:
        out = ours.process_outgoing_message(text(data))
        assert theirs.process_incoming_message(out).data == data
        back = theirs.process_outgoing_message(text(data))
        assert ours.process_incoming_message(back).data == data


# ---------------------------------------------------------------- the frame layer


@pytest.fixture
def connection() -> Iterator[tuple[Any, Any]]:
    hybi = pytest.importorskip("faye_sync.protocol.hybi")
    client_ext, server_ext = pair({}, {})
    yield (
        hybi.HybiProtocol(is_client=True, extensions=client_ext),
        hybi.HybiProtocol(is_client=False, extensions=server_ext, max_length=1 << 20),
    )


class TestFrameLayer:
    def test_messages_cross_compressed(self, connection: tuple[Any, Any]) -> None:
        from faye_sync.protocol.events import Message

        client_proto, server_proto = connection
        for text_message in ["hello " * 1000, "", "é" * 10]:
            client_proto.send_text(text_message)
            wire = client_proto.data_to_send()
            assert wire[0] & 0x40  # RSV1
            assert len(wire) < len(text_message.encode()) + 14 or len(text_message) < 20
            server_proto.receive_data(wire)
            assert server_proto.events_received() == [Message(text_message)]
        server_proto.send_binary(b"\x00\x01" * 500)
        client_proto.receive_data(server_proto.data_to_send())
        assert client_proto.events_received() == [Message(b"\x00\x01" * 500)]

    def test_a_bomb_closes_with_1009(self, connection: tuple[Any, Any], bomb: bytes) -> None:
        from faye_sync.protocol.events import Close, Error

        _, server_proto = connection
        # A masked binary frame with RSV1, 64-bit length.
        header = bytes([0xC2, 0xFF]) + len(bomb).to_bytes(8, "big") + b"\x00\x00\x00\x00"
        server_proto.receive_data(header + bomb)
        events = server_proto.events_received()
        assert isinstance(events[0], Error)
        assert events[0].code == 1009
        assert events[-1] == Close(1009, events[0].message)

    @pytest.mark.parametrize("side", ["server", "client"])
    def test_data_that_is_not_deflate_closes_with_1007(
        self, connection: tuple[Any, Any], side: str
    ) -> None:
        # faye sends 1010 (its extension_error); RFC 6455 §7.4.1: 1007, invalid payload data.
        from faye_sync.protocol.events import Close, Error

        client_proto, server_proto = connection
        proto = server_proto if side == "server" else client_proto
        # a client masks what it sends (here with a zero key), a server does not
        masking = b"\x84\x00\x00\x00\x00" if side == "server" else b"\x04"
        proto.receive_data(b"\xc1" + masking + b"\xff\xff\xff\xff")
        message = "permessage-deflate: invalid block type"
        assert proto.events_received() == [Error(message, 1007), Close(1007, message)]
        (sent,) = read_frames(proto.data_to_send())
        assert (sent.opcode, sent.close_code, sent.masked) == (0x8, 1007, side == "client")
