"""XOR masking of frame payloads (RFC 6455 §5.3), never byte by byte.

The pure-Python path picks the faster of two vectorised methods by size: one
big-integer XOR for small payloads, ``bytes.translate`` on the four strided
slices for large ones (measured crossover near 2 KiB on CPython 3.11). When the
``websockets`` package is installed, its C ``apply_mask`` (SIMD, memcpy speed)
is used instead: install ``faye_sync[speedups]``.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["apply_mask", "python_apply_mask", "ACCELERATED"]

_INT_LIMIT = 2048
_XOR_TABLES = [bytes(b ^ k for b in range(256)) for k in range(256)]


def python_apply_mask(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes:
    """Return ``data`` XORed with the 4-byte ``mask``; ``data`` is not modified."""
    size = len(data)
    if size <= _INT_LIMIT:
        reps, rest = divmod(size, 4)
        key = int.from_bytes(mask * reps + mask[:rest], "little")
        return (int.from_bytes(data, "little") ^ key).to_bytes(size, "little")
    data = bytes(data)
    out = bytearray(data)
    for i in range(4):
        out[i::4] = data[i::4].translate(_XOR_TABLES[mask[i]])
    return bytes(out)


apply_mask: Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes]
try:  # optional accelerator: a well-kept C implementation
    from websockets.speedups import apply_mask as _c_apply_mask
except ImportError:  # pragma: no cover - depends on the environment
    apply_mask = python_apply_mask
    ACCELERATED = False
else:
    apply_mask = _c_apply_mask
    ACCELERATED = True
