"""The Sec-WebSocket-Extensions grammar: faye-behaviour.md §2.4, Parser boxes.

Ported: every parseHeader and serializeParams box.
Adapted: "``undefined`` → []" has no Python counterpart (the argument is a str), so
only ``''`` is checked; "``hasOwnProperty`` works" becomes names that clash with
Python object attributes.
Added: linear whitespace (websocket-extensions 0.2.0), invalid headers, escaping
on output, a round-trip property, and a cross-check with the ``websockets`` parser.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.headers import parse_extension

from faye_sync.extensions import parse_header, serialize_params
from faye_sync.extensions.base import Params


class TestParseHeader:
    def test_empty_header(self) -> None:
        assert parse_header("") == []

    def test_trailing_comma(self) -> None:
        with pytest.raises(ValueError, match="Invalid Sec-WebSocket-Extensions header: a,"):
            parse_header("a,")

    def test_one_extension(self) -> None:
        assert parse_header("a") == [("a", {})]

    def test_two_extensions(self) -> None:
        assert parse_header("a, b") == [("a", {}), ("b", {})]

    def test_duplicate_names_are_kept(self) -> None:
        assert parse_header("a, a") == [("a", {}), ("a", {})]

    def test_flag(self) -> None:
        assert parse_header("a; b") == [("a", {"b": True})]

    def test_number(self) -> None:
        assert parse_header("a; b=1") == [("a", {"b": 1})]

    def test_quoted_string_with_escapes(self) -> None:
        assert parse_header('a; b="hi, \\"there"') == [("a", {"b": 'hi, "there'})]

    def test_several_params(self) -> None:
        assert parse_header('a; b; c=1; d="hi"') == [("a", {"b": True, "c": 1, "d": "hi"})]

    def test_repeated_params_become_lists(self) -> None:
        assert parse_header('a; b; c=1; b="hi"') == [("a", {"b": [True, "hi"], "c": 1})]

    def test_complex_list_in_order(self) -> None:
        assert parse_header('a; b=1, c, b; d, c; e="hi, there"; e, a; b') == [
            ("a", {"b": 1}),
            ("c", {}),
            ("b", {"d": True}),
            ("c", {"e": ["hi, there", True]}),
            ("a", {"b": True}),
        ]

    def test_names_that_clash_with_object_attributes(self) -> None:
        assert parse_header("hasOwnProperty, __class__; __dict__; keys=1") == [
            ("hasOwnProperty", {}),
            ("__class__", {"__dict__": True, "keys": 1}),
        ]

    def test_unclosed_quoted_string_of_escapes_fails_fast(self) -> None:
        # CVE-2020-7662: faye's old regular expression took exponential time here.
        header = 'a; b="' + "\\a" * 100_000
        start = time.perf_counter()
        with pytest.raises(ValueError):
            parse_header(header)
        assert time.perf_counter() - start < 0.5

    def test_long_quoted_string_of_escapes_is_unescaped(self) -> None:
        header = 'a; b="' + "\\a" * 100_000 + '"'
        start = time.perf_counter()
        assert parse_header(header) == [("a", {"b": "a" * 100_000})]
        assert time.perf_counter() - start < 0.5

    def test_escaped_backslash(self) -> None:
        assert parse_header('a; b="x\\\\y"') == [("a", {"b": "x\\y"})]

    @pytest.mark.parametrize(
        ("header", "value"),
        [
            ("a; b=0", 0),
            ("a; b=-3", -3),
            ('a; b="42"', 42),
            ("a; b=007", "007"),
            ("a; b=1.5", "1.5"),
            ("a; b=1e3", "1e3"),
            ("a; b=" + "9" * 5000, "9" * 5000),
        ],
    )
    def test_only_integers_become_numbers(self, header: str, value: object) -> None:
        assert parse_header(header) == [("a", {"b": value})]

    @pytest.mark.parametrize(
        "header",
        [
            "a ; b = 1 , c",
            "a;b=1,c",
            "\ta\t;\tb\t=\t1\t,\tc\t",
            "a\r\n ;\r\n\tb\r\n =\r\n 1\r\n ,\r\n c",
            "  a; b=1, c  ",
        ],
    )
    def test_linear_whitespace_around_separators(self, header: str) -> None:
        assert parse_header(header) == [("a", {"b": 1}), ("c", {})]

    def test_quoted_string_keeps_inner_whitespace_and_non_ascii(self) -> None:
        assert parse_header('a; b=" x\ty é "') == [("a", {"b": " x\ty é "})]

    @pytest.mark.parametrize(
        "header",
        [
            " ",
            ",",
            ",a",
            "a,,b",
            "a;",
            "a;;b",
            "a; b=",
            "a; =1",
            "a; b==1",
            "a b",
            "a; b c",
            '"a"',
            'a; b="x',
            'a; b="x"y',
            'a; b="\x01"',
            'a; b="x\\é"',
            "a\r\nb",
            "a\r\n; b",
            "a; b=c d",
            "x-webkit- -frame",
            "a/b",
        ],
    )
    def test_invalid_headers(self, header: str) -> None:
        with pytest.raises(ValueError, match="Invalid Sec-WebSocket-Extensions header"):
            parse_header(header)


class TestSerializeParams:
    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({}, "a"),
            ({"b": True}, "a; b"),
            ({"b": "42"}, "a; b=42"),
            ({"b": "hi, there"}, 'a; b="hi, there"'),
            ({"b": True, "c": 1, "d": "hi"}, "a; b; c=1; d=hi"),
            ({"b": [True, "hi"], "c": 1}, "a; b; b=hi; c=1"),
        ],
    )
    def test_faye_examples(self, params: Params, expected: str) -> None:
        assert serialize_params("a", params) == expected

    def test_quotes_and_backslashes_are_escaped(self) -> None:
        assert serialize_params("a", {"b": 'say "hi" \\o/'}) == 'a; b="say \\"hi\\" \\\\o/"'

    def test_empty_string_is_quoted(self) -> None:
        assert serialize_params("a", {"b": ""}) == 'a; b=""'

    def test_false_leaves_the_param_out(self) -> None:
        assert serialize_params("a", {"b": False, "c": True}) == "a; c"

    def test_negative_number(self) -> None:
        assert serialize_params("a", {"b": -1}) == "a; b=-1"

    @pytest.mark.parametrize("value", ["x\r\ny", "x\ny", "\x00", "\x7f"])
    def test_control_characters_are_refused(self, value: str) -> None:
        # They would end the header line: refusing them prevents header injection.
        with pytest.raises(ValueError, match="control characters"):
            serialize_params("a", {"b": value})

    @pytest.mark.parametrize(("name", "key"), [("a b", "c"), ("", "c"), ("a", "c=d"), ("a", "")])
    def test_names_and_keys_must_be_tokens(self, name: str, key: str) -> None:
        with pytest.raises(ValueError, match="not a valid header token"):
            serialize_params(name, {key: True})


_TOKEN_ALPHABET = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(_TOKEN_ALPHABET, min_size=1, max_size=12)
quotable = st.text(
    st.characters(codec="utf-8", exclude_characters="\x7f").filter(
        lambda char: char == "\t" or ord(char) >= 0x20
    ),
    max_size=12,
)


def _normal(value: str) -> str | int:
    """What a string value reads back as: integers come back as ints."""
    return parse_header(serialize_params("a", {"v": value}))[0][1]["v"]  # type: ignore[return-value]


scalars = st.one_of(st.just(True), st.integers(-(10**6), 10**6), quotable.map(_normal))
values = st.one_of(scalars, st.lists(scalars, min_size=2, max_size=3))


@given(name=tokens, params=st.dictionaries(tokens, values, max_size=4))
def test_parse_inverts_serialize(name: str, params: Params) -> None:
    assert parse_header(serialize_params(name, params)) == [(name, params)]


# "-0" would read back as the number 0.
plain = tokens.filter(lambda token: token != "-0")


@given(
    extensions=st.lists(
        st.tuples(tokens, st.dictionaries(tokens, st.one_of(st.just(True), plain), max_size=3)),
        min_size=1,
        max_size=3,
    )
)
def test_agrees_with_the_websockets_parser(extensions: list[tuple[str, Params]]) -> None:
    header = ", ".join(serialize_params(name, params) for name, params in extensions)
    theirs = [
        (name, {key: True if value is None else value for key, value in params})
        for name, params in parse_extension(header)
    ]
    ours = [
        (name, {key: value if value is True else str(value) for key, value in params.items()})
        for name, params in parse_header(header)
    ]
    assert ours == theirs
