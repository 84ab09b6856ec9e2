"""``with thing:`` closes ``thing``: the context manager of the clients and the test client.

Layer L0, so that every layer may use it. The server ``WebSocket`` has its own
``__exit__`` (an exception in the block closes with 1011 and is logged).
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, TypeVar

__all__ = ["ClosedOnExit"]


class _Closeable(Protocol):
    def close(self) -> None: ...


_Self = TypeVar("_Self", bound="ClosedOnExit")


class ClosedOnExit:
    """A mixin: ``__enter__`` returns the object, ``__exit__`` calls its ``close()``.

    ``close()`` runs however the block ends; an exception in the block goes on.
    """

    __slots__ = ()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self: _Closeable,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
