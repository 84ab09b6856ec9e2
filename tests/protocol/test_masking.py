"""Masking (RFC 6455 §5.3): the pure-Python path and the accelerated one agree
with a plain per-byte XOR, on both sides of the size where the method changes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faye_sync.protocol import masking


def reference(data: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 2047, 2048, 2049, 4096, 65537])
@pytest.mark.parametrize("implementation", ["python", "selected"])
def test_matches_per_byte_xor(size: int, implementation: str) -> None:
    apply = masking.python_apply_mask if implementation == "python" else masking.apply_mask
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    mask = b"\x01\x80\xfe\x37"
    assert apply(data, mask) == reference(data, mask)


@given(st.binary(max_size=5000), st.binary(min_size=4, max_size=4))
def test_python_path_round_trips_and_leaves_input_alone(data: bytes, mask: bytes) -> None:
    buffer = bytearray(data)
    masked = masking.python_apply_mask(buffer, mask)
    assert buffer == data
    assert masked == reference(data, mask)
    assert masking.python_apply_mask(masked, mask) == data


def test_accepts_memoryview_slices() -> None:
    data = bytearray(b"xxHello worldxx")
    view = memoryview(data)[2:-2]
    assert masking.python_apply_mask(view, b"abcd") == reference(b"Hello world", b"abcd")
