"""protocol/base.py: the interface and the rules every frame layer shares, in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from faye_sync.protocol import base
from faye_sync.protocol.base import (
    CLOSED,
    CLOSING,
    CONNECTING,
    OPEN,
    FailedProtocol,
    ReadyState,
    validate_close_arguments,
)
from faye_sync.protocol.drafts import Draft75Protocol
from faye_sync.protocol.hybi import HybiProtocol


def test_states_keep_the_browsers_numbers() -> None:
    assert [CONNECTING, OPEN, CLOSING, CLOSED] == [0, 1, 2, 3]
    assert all(isinstance(state, ReadyState) for state in (CONNECTING, OPEN, CLOSING, CLOSED))
    assert f"{OPEN}" == "1" and OPEN.name == "OPEN"


def test_every_frame_layer_reports_the_same_states() -> None:
    assert HybiProtocol(is_client=False).state is OPEN
    assert Draft75Protocol().state is OPEN
    assert FailedProtocol("refused").state is CLOSED


def test_the_interface_does_not_import_its_implementations() -> None:
    # The source beside the module: base.__file__ is its .so when compiled (mypyc).
    tree = ast.parse((Path(base.__file__).parent / "base.py").read_text(encoding="utf-8"))
    imported = {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not {name for name in imported if "hybi" in name or "drafts" in name}, imported


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2999, 5000])
def test_close_codes_that_may_not_be_sent(code: int) -> None:
    with pytest.raises(ValueError, match="close code"):
        validate_close_arguments(code, "", strict=False)


def test_close_rules() -> None:
    assert validate_close_arguments(1000, "é") == "é".encode()
    assert validate_close_arguments(1001, "", strict=False) == b""
    with pytest.raises(ValueError, match="1000, or between 3000 and 4999"):
        validate_close_arguments(1001, "")
    with pytest.raises(ValueError, match="limit is 123"):
        validate_close_arguments(1000, "x" * 124)


def test_failed_and_draft_protocols_refuse_binary_and_pings() -> None:
    for protocol in (FailedProtocol("refused"), Draft75Protocol()):
        assert protocol.send_binary(b"x") is False
        assert protocol.send_ping(b"") is False
        assert protocol.send_pong(b"") is False
    assert FailedProtocol("refused").send_text("x") is False
