"""The Extensions framework: faye-behaviour.md §2.4, all boxes but the parser's.

Fakes stand for faye's stubs: ``deflate`` (RSV1), ``tar`` (RSV1, clashes with
deflate) and ``reverse`` (RSV2). Sessions tag the messages they process.

Ported: Extensions.add; generateOffer; activate; processIncomingMessage;
processOutgoingMessage (order, server's order, errors, later sessions skipped);
generateResponse (every box).
Adapted to a synchronous pipeline: faye's "error handling" example (three
outgoing messages, three incoming ones, the fifth failing) keeps its meaning
(the message before the error gets through, the error reaches the caller, the
message after it does not, the other direction is unaffected, close comes
last), with the error raised as ProtocolError instead of yielded.
Dropped, because they test faye's asynchronous re-ordering and deferred close,
which a synchronous pipeline does not have (each call returns its result before
the next starts, and close() closes at once): "async processors: output order
equals input order", "closing waits until the extension has finished
processing", "each session is closed as soon as its own work is done", and
"close(cb) on a closed pipeline calls cb at once" (kept only as: closing twice
is harmless).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from faye_sync.exceptions import ProtocolError
from faye_sync.extensions import ExtensionMessage, Extensions
from faye_sync.extensions.base import Params


@dataclass
class FakeSession:
    tag: bytes
    offer: Params | list[Params] | None = field(default_factory=dict)
    response: Params = field(default_factory=dict)
    accept: object = True
    incoming_error: Exception | None = None
    outgoing_error: Exception | None = None
    close_error: Exception | None = None
    calls: list[object] = field(default_factory=list)

    def generate_offer(self) -> Params | list[Params] | None:
        self.calls.append("generate_offer")
        return self.offer

    def activate(self, params: Params) -> bool:
        self.calls.append(("activate", params))
        return self.accept  # type: ignore[return-value]  # faye checks for exactly True

    def generate_response(self) -> Params:
        self.calls.append("generate_response")
        return self.response

    def process_incoming_message(self, message: ExtensionMessage) -> ExtensionMessage:
        self.calls.append(("incoming", message.data))
        if self.incoming_error is not None and message.data.startswith(b"5"):
            raise self.incoming_error
        return replace(message, data=message.data + self.tag)

    def process_outgoing_message(self, message: ExtensionMessage) -> ExtensionMessage:
        self.calls.append(("outgoing", message.data))
        if self.outgoing_error is not None:
            raise self.outgoing_error
        return replace(message, data=message.data + self.tag)

    def close(self) -> None:
        self.calls.append("close")
        if self.close_error is not None:
            raise self.close_error


@dataclass
class FakeExtension:
    name: str
    session: FakeSession | None
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False
    type: str = "permessage"
    calls: list[object] = field(default_factory=list)

    def create_client_session(self, *, max_length: int) -> FakeSession | None:
        self.calls.append(("client", max_length))
        return self.session

    def create_server_session(self, offers: list[Params], *, max_length: int) -> FakeSession | None:
        self.calls.append(("server", offers, max_length))
        return self.session


def message(data: bytes = b"", rsv1: bool = False) -> ExtensionMessage:
    return ExtensionMessage(rsv1, False, False, 1, data)


@pytest.fixture
def session() -> FakeSession:
    return FakeSession(b"d", offer={"mode": "compress"}, response={"mode": "compress"})


@pytest.fixture
def ext(session: FakeSession) -> FakeExtension:
    return FakeExtension("deflate", session, rsv1=True)


@pytest.fixture
def conflict_session() -> FakeSession:
    return FakeSession(b"t", offer={"gzip": True}, response={"gzip": True})


@pytest.fixture
def conflict(conflict_session: FakeSession) -> FakeExtension:
    return FakeExtension("tar", conflict_session, rsv1=True)


@pytest.fixture
def nonconflict_session() -> FakeSession:
    return FakeSession(b"r", offer={"utf8": True}, response={"utf8": True})


@pytest.fixture
def nonconflict(nonconflict_session: FakeSession) -> FakeExtension:
    return FakeExtension("reverse", nonconflict_session, rsv2=True)


class TestAdd:
    def test_accepts_a_valid_extension(self, ext: FakeExtension) -> None:
        extensions = Extensions()
        extensions.add(ext)
        assert extensions.generate_offer() == "deflate; mode=compress"

    def test_constructor_adds_in_order(
        self, ext: FakeExtension, nonconflict: FakeExtension
    ) -> None:
        extensions = Extensions([nonconflict, ext])
        assert extensions.generate_offer() == "reverse; utf8, deflate; mode=compress"

    @pytest.mark.parametrize(
        ("attribute", "value", "error"),
        [
            ("name", 42, "extension.name must be a string"),
            ("name", "not a token", "extension.name must be a header token"),
            ("type", "perframe", 'extension.type must be "permessage"'),
            ("rsv1", 42, "extension.rsv1 must be True or False"),
            ("rsv2", 42, "extension.rsv2 must be True or False"),
            ("rsv3", None, "extension.rsv3 must be True or False"),
        ],
    )
    def test_rejects_invalid_fields(
        self, ext: FakeExtension, attribute: str, value: object, error: str
    ) -> None:
        setattr(ext, attribute, value)
        with pytest.raises(TypeError, match=error):
            Extensions().add(ext)

    def test_rejects_a_missing_field(self) -> None:
        class NoRsv:
            name = "x"
            type = "permessage"

        with pytest.raises(TypeError, match="rsv1"):
            Extensions().add(NoRsv())  # type: ignore[arg-type]

    def test_rejects_a_duplicate_name(self, ext: FakeExtension) -> None:
        extensions = Extensions([ext])
        with pytest.raises(
            TypeError, match='An extension with name "deflate" is already registered'
        ):
            extensions.add(FakeExtension("deflate", None))

    @pytest.mark.parametrize("max_length", [-1, 1.5, "10"])
    def test_rejects_a_bad_max_length(self, max_length: object) -> None:
        with pytest.raises((TypeError, ValueError)):
            Extensions(max_length=max_length)  # type: ignore[arg-type]


class TestGenerateOffer:
    def test_creates_one_client_session_with_max_length(self, ext: FakeExtension) -> None:
        Extensions([ext], max_length=1234).generate_offer()
        assert ext.calls == [("client", 1234)]

    def test_asks_the_session_for_its_offer_once(
        self, ext: FakeExtension, session: FakeSession
    ) -> None:
        Extensions([ext]).generate_offer()
        assert session.calls == ["generate_offer"]

    def test_no_offer_without_a_session(self, ext: FakeExtension, session: FakeSession) -> None:
        ext.session = None
        assert Extensions([ext]).generate_offer() is None
        assert session.calls == []

    def test_serializes_the_offer(self, ext: FakeExtension) -> None:
        assert Extensions([ext]).generate_offer() == "deflate; mode=compress"

    def test_a_null_offer(self, ext: FakeExtension, session: FakeSession) -> None:
        session.offer = None
        assert Extensions([ext]).generate_offer() is None

    def test_several_offers_from_one_session(
        self, ext: FakeExtension, session: FakeSession
    ) -> None:
        session.offer = [{"mode": "compress"}, {}]
        assert Extensions([ext]).generate_offer() == "deflate; mode=compress, deflate"

    def test_offers_from_several_sessions(
        self, ext: FakeExtension, nonconflict: FakeExtension
    ) -> None:
        assert Extensions([ext, nonconflict]).generate_offer() == (
            "deflate; mode=compress, reverse; utf8"
        )

    def test_offers_potentially_conflicting_extensions(
        self, ext: FakeExtension, conflict: FakeExtension
    ) -> None:
        assert Extensions([ext, conflict]).generate_offer() == "deflate; mode=compress, tar; gzip"


@pytest.fixture
def client(ext: FakeExtension, conflict: FakeExtension, nonconflict: FakeExtension) -> Extensions:
    extensions = Extensions([ext, conflict, nonconflict])
    extensions.generate_offer()
    return extensions


class TestActivate:
    def test_rejects_an_unregistered_extension(self, client: Extensions) -> None:
        with pytest.raises(
            ValueError, match='Server sent an extension response for unknown extension "xml"'
        ):
            client.activate("xml")

    def test_rejects_an_extension_that_was_not_offered(self, ext: FakeExtension) -> None:
        extensions = Extensions([ext])  # generate_offer() never called
        with pytest.raises(ValueError, match="unknown extension"):
            extensions.activate("deflate")

    def test_accepts_a_registered_extension(self, client: Extensions) -> None:
        client.activate("deflate")
        assert client.active == ["deflate"]

    def test_accepts_one_potentially_conflicting_extension(self, client: Extensions) -> None:
        client.activate("tar")
        assert client.active == ["tar"]

    def test_rejects_two_extensions_on_the_same_rsv_bit(self, client: Extensions) -> None:
        with pytest.raises(
            ValueError,
            match='Server sent two extension responses that use the RSV1 bit: "deflate" and "tar"',
        ):
            client.activate("deflate, tar")

    def test_rejects_the_same_extension_twice(self, client: Extensions) -> None:
        with pytest.raises(ValueError, match="RSV1 bit"):
            client.activate("deflate, deflate")

    def test_accepts_non_conflicting_extensions(self, client: Extensions) -> None:
        client.activate("deflate, reverse")
        assert client.active == ["deflate", "reverse"]

    @pytest.mark.parametrize(
        ("header", "params"),
        [
            ("deflate", {}),
            ("deflate; gzip", {"gzip": True}),
            ("deflate; mode=compress", {"mode": "compress"}),
        ],
    )
    def test_passes_the_params_to_the_session(
        self, client: Extensions, session: FakeSession, header: str, params: Params
    ) -> None:
        client.activate(header)
        assert session.calls[-1] == ("activate", params)

    def test_activates_several_sessions(
        self, client: Extensions, session: FakeSession, nonconflict_session: FakeSession
    ) -> None:
        client.activate("deflate; a, reverse; b")
        assert ("activate", {"a": True}) in session.calls
        assert ("activate", {"b": True}) in nonconflict_session.calls

    def test_does_not_activate_sessions_not_named(
        self, client: Extensions, session: FakeSession, nonconflict_session: FakeSession
    ) -> None:
        client.activate("reverse")
        assert not any(isinstance(call, tuple) and call[0] == "activate" for call in session.calls)
        assert nonconflict_session.calls[-1] == ("activate", {})
        assert session.calls[-1] == "close"  # the unused session is released

    @pytest.mark.parametrize("result", [False, None, "yes", 1])
    def test_rejects_unless_the_session_returns_true(
        self, client: Extensions, session: FakeSession, result: object
    ) -> None:
        session.accept = result
        with pytest.raises(
            ValueError, match="Server sent unacceptable extension parameters: deflate; x=1"
        ):
            client.activate("deflate; x=1")

    def test_an_invalid_header(self, client: Extensions) -> None:
        with pytest.raises(ValueError, match="Invalid Sec-WebSocket-Extensions header"):
            client.activate("deflate;")

    def test_an_empty_response_activates_nothing(self, client: Extensions) -> None:
        client.activate("")
        assert client.active == []
        assert client.process_outgoing_message(message(b"x")) == message(b"x")


class TestProcessIncomingMessage:
    def test_runs_in_reverse_of_the_servers_order(self, client: Extensions) -> None:
        client.activate("deflate, reverse")
        assert client.process_incoming_message(message()).data == b"rd"

    def test_an_error_is_prefixed_with_the_extension_name(
        self, client: Extensions, session: FakeSession
    ) -> None:
        client.activate("deflate")
        session.incoming_error = OSError("ENOENT")
        with pytest.raises(ProtocolError, match=r"^deflate: ENOENT$") as info:
            client.process_incoming_message(message(b"5"))
        assert info.value.code == 1011  # our fault, internal error (faye: 1010)

    def test_sessions_after_an_error_are_not_called(
        self, client: Extensions, session: FakeSession, nonconflict_session: FakeSession
    ) -> None:
        client.activate("deflate, reverse")
        nonconflict_session.incoming_error = OSError("ENOENT")
        with pytest.raises(ProtocolError, match="reverse: ENOENT"):
            client.process_incoming_message(message(b"5"))
        assert not any(isinstance(call, tuple) and call[0] == "incoming" for call in session.calls)

    def test_a_protocol_error_keeps_its_code(
        self, client: Extensions, session: FakeSession
    ) -> None:
        client.activate("deflate")
        session.incoming_error = ProtocolError("WebSocket frame length too large", 1009)
        with pytest.raises(ProtocolError) as info:
            client.process_incoming_message(message(b"5"))
        assert (str(info.value), info.value.code) == (
            "deflate: WebSocket frame length too large",
            1009,
        )


class TestProcessOutgoingMessage:
    def test_runs_in_the_servers_order(self, client: Extensions) -> None:
        client.activate("deflate, reverse")
        assert client.process_outgoing_message(message()).data == b"dr"

    def test_runs_in_the_servers_order_not_the_clients(self, client: Extensions) -> None:
        client.activate("reverse, deflate")
        assert client.process_outgoing_message(message()).data == b"rd"

    def test_an_error_is_prefixed_with_the_extension_name(
        self, client: Extensions, session: FakeSession
    ) -> None:
        client.activate("deflate")
        session.outgoing_error = OSError("ENOENT")
        with pytest.raises(ProtocolError, match=r"^deflate: ENOENT$") as info:
            client.process_outgoing_message(message())
        assert info.value.code == 1011  # our fault, internal error (faye: 1010)

    def test_sessions_after_an_error_are_not_called(
        self, client: Extensions, session: FakeSession, nonconflict_session: FakeSession
    ) -> None:
        client.activate("deflate, reverse")
        session.outgoing_error = OSError("ENOENT")
        with pytest.raises(ProtocolError):
            client.process_outgoing_message(message())
        assert nonconflict_session.calls[-1] == ("activate", {})

    def test_error_handling_example(
        self, client: Extensions, session: FakeSession, nonconflict_session: FakeSession
    ) -> None:
        # faye's example: outgoing 1, 2, 3; incoming 4, 5, 6 with 5 failing in "reverse".
        client.activate("deflate, reverse")
        nonconflict_session.incoming_error = RuntimeError("sync error")
        log: list[object] = [client.process_outgoing_message(message(b"1")).data]
        log.append(client.process_incoming_message(message(b"4")).data)
        for data in (b"5", b"6"):
            try:
                log.append(client.process_incoming_message(message(data)).data)
            except ProtocolError as exc:
                log.append((str(exc), exc.code))
        log += [client.process_outgoing_message(message(n)).data for n in (b"2", b"3")]
        client.close()
        log.append("close")
        assert log == [
            b"1dr",
            b"4rd",  # the message before the error gets through
            # faye's example has 1010; a session's own exception is 1011 (RFC 6455 §7.4.1)
            ("reverse: sync error", 1011),  # the error reaches the caller
            ("reverse: sync error", 1011),  # that direction stays failed
            b"2dr",  # the other direction is unaffected
            b"3dr",
            "close",
        ]
        # Message 6 reached no session.
        assert ("incoming", b"6") not in nonconflict_session.calls + session.calls
        assert session.calls[-1] == nonconflict_session.calls[-1] == "close"


class TestClose:
    def test_closes_every_active_session(
        self, client: Extensions, session: FakeSession, nonconflict_session: FakeSession
    ) -> None:
        client.activate("deflate, reverse")
        client.close()
        assert session.calls[-1] == nonconflict_session.calls[-1] == "close"

    def test_errors_from_sessions_are_swallowed(
        self, client: Extensions, session: FakeSession, nonconflict_session: FakeSession
    ) -> None:
        client.activate("deflate, reverse")
        session.close_error = RuntimeError("zlib binding closed")
        client.close()
        assert nonconflict_session.calls[-1] == "close"

    def test_closing_twice_is_harmless(self, client: Extensions, session: FakeSession) -> None:
        client.activate("deflate")
        client.close()
        client.close()  # neither raises nor disturbs the session a second time
        assert session.calls.count("close") >= 1
        assert session.calls[-1] == "close"


class TestValidFrameRsv:
    def test_nothing_negotiated(self) -> None:
        extensions = Extensions()
        assert extensions.valid_frame_rsv(1, False, False, False)
        assert not extensions.valid_frame_rsv(1, True, False, False)

    @pytest.mark.parametrize(
        ("opcode", "bits", "allowed"),
        [
            (1, (True, False, False), True),
            (2, (True, False, False), True),
            (2, (False, True, False), True),
            (1, (True, True, False), True),
            (1, (False, False, True), False),
            (0, (True, False, False), False),
            (9, (True, False, False), False),
            (8, (False, True, False), False),
            (0, (False, False, False), True),
            (10, (False, False, False), True),
        ],
    )
    def test_only_data_frames_and_only_active_bits(
        self, client: Extensions, opcode: int, bits: tuple[bool, bool, bool], allowed: bool
    ) -> None:
        client.activate("deflate, reverse")
        assert client.valid_frame_rsv(opcode, *bits) is allowed

    def test_only_bits_of_active_extensions(self, client: Extensions) -> None:
        client.activate("reverse")  # deflate and tar were offered, not accepted
        assert not client.valid_frame_rsv(1, True, False, False)
        assert client.valid_frame_rsv(1, False, True, False)


@pytest.fixture
def server(ext: FakeExtension, conflict: FakeExtension, nonconflict: FakeExtension) -> Extensions:
    return Extensions([ext, conflict, nonconflict], max_length=99)


class TestGenerateResponse:
    def test_creates_a_server_session_with_the_offer(
        self, server: Extensions, ext: FakeExtension
    ) -> None:
        server.generate_response("deflate; flag")
        assert ext.calls == [("server", [{"flag": True}], 99)]

    def test_creates_a_server_session_with_several_offers(
        self, server: Extensions, ext: FakeExtension
    ) -> None:
        server.generate_response("deflate; a, deflate; b")
        assert ext.calls == [("server", [{"a": True}, {"b": True}], 99)]

    def test_each_negotiation_gets_its_own_parameters(
        self, ext: FakeExtension, conflict: FakeExtension, nonconflict: FakeExtension
    ) -> None:
        header = "deflate; a=1; b; a=2"  # a repeated parameter: a list
        Extensions([ext, conflict, nonconflict]).generate_response(header)
        first = ext.calls[0][1][0]  # type: ignore[index]
        assert first == {"a": [1, 2], "b": True}
        first["b"] = False  # a session that changes what it was given...
        first["a"].append(3)
        Extensions([ext, conflict, nonconflict]).generate_response(header)
        assert ext.calls[1][1] == [{"a": [1, 2], "b": True}]  # type: ignore[index]  # ...alone

    def test_asks_the_session_for_a_response(
        self, server: Extensions, session: FakeSession
    ) -> None:
        server.generate_response("deflate")
        assert session.calls == ["generate_response"]

    def test_asks_several_sessions_for_a_response(
        self, server: Extensions, session: FakeSession, nonconflict_session: FakeSession
    ) -> None:
        server.generate_response("deflate, reverse")
        assert session.calls == nonconflict_session.calls == ["generate_response"]

    def test_no_response_without_a_session(
        self, server: Extensions, ext: FakeExtension, session: FakeSession
    ) -> None:
        ext.session = None
        assert server.generate_response("deflate") is None
        assert session.calls == []

    def test_no_session_for_unoffered_extensions(
        self, server: Extensions, nonconflict: FakeExtension
    ) -> None:
        server.generate_response("deflate")
        assert nonconflict.calls == []

    def test_no_session_for_conflicting_extensions(
        self, server: Extensions, conflict: FakeExtension
    ) -> None:
        server.generate_response("deflate, tar")
        assert conflict.calls == []

    def test_serializes_the_response(self, server: Extensions) -> None:
        assert server.generate_response("deflate") == "deflate; mode=compress"

    def test_serializes_several_responses(self, server: Extensions) -> None:
        assert server.generate_response("deflate, reverse") == (
            "deflate; mode=compress, reverse; utf8"
        )

    def test_responds_in_registration_order(self, server: Extensions) -> None:
        assert server.generate_response("reverse, deflate") == (
            "deflate; mode=compress, reverse; utf8"
        )

    def test_leaves_out_unoffered_extensions(self, server: Extensions) -> None:
        assert server.generate_response("reverse") == "reverse; utf8"

    def test_leaves_out_conflicting_extensions(self, server: Extensions) -> None:
        assert server.generate_response("deflate, tar") == "deflate; mode=compress"

    def test_an_invalid_header(self, server: Extensions) -> None:
        with pytest.raises(ValueError, match="Invalid Sec-WebSocket-Extensions header"):
            server.generate_response("x-webkit- -frame")

    def test_an_empty_header(self, server: Extensions) -> None:
        assert server.generate_response("") is None
        assert not server.valid_frame_rsv(1, True, False, False)

    def test_a_conflicting_extension_when_the_earlier_one_declines(
        self, server: Extensions, ext: FakeExtension
    ) -> None:
        ext.session = None
        assert server.generate_response("deflate, tar") == "tar; gzip"
        assert server.active == ["tar"]

    def test_pipeline_follows_registration_order(self, server: Extensions) -> None:
        server.generate_response("reverse, deflate")
        assert server.process_outgoing_message(message()).data == b"dr"
        assert server.process_incoming_message(message()).data == b"rd"
