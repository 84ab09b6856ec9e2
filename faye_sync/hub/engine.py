"""What the hub needs from a message store: one small class per engine.

An engine keeps, per channel, the messages of a bounded retention window in id
order, stamps ids from one clock for all channels (so that one id is a resume
point for a multi-channel subscription), and knows the state a gap is judged
from: the epoch start (ids before it come from a store that has since been
emptied) and, per channel, the highest id deleted by trimming.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .message import ZERO, HubMessage, IdKey, before, id_key

__all__ = ["Batches", "Engine", "State", "gaps"]


@dataclass(frozen=True)
class State:
    """The engine's clock and gap markers, read together.

    Attributes:
        epoch: ids at or below it come from before the store was last emptied.
        last: the highest id stamped so far (every later message is above it).
        trimmed: per channel asked about, the highest id deleted from it.
    """

    epoch: IdKey
    last: IdKey
    trimmed: Mapping[str, IdKey]


Batches = tuple[dict[str, list[HubMessage]], State]
"""Messages per channel (channels with none may be left out), and the state read with them."""


def gaps(
    afters: Mapping[str, IdKey], state: State, batches: Mapping[str, Sequence[HubMessage]]
) -> list[tuple[str, IdKey, str]]:
    """The channels whose messages after their id are (or may be) gone.

    A channel lost messages when its id is below the epoch (or above the clock:
    an id from another store) or below its trim mark. The answer per channel is
    ``(channel, resume, reason)``: ``resume`` is the id after which nothing is
    missing, kept below the first message read with the state, which the
    subscriber still gets (trimming may have gone past it since the read).
    """
    found = []
    for channel, after in afters.items():
        if after < state.epoch:
            resume, reason = state.epoch, "epoch"
        elif after > state.last:
            resume, reason = state.last, "epoch"
        elif after < state.trimmed.get(channel, ZERO):
            resume, reason = state.trimmed[channel], "trimmed"
        else:
            continue
        messages = batches.get(channel)
        if messages:
            first = id_key(messages[0].id)
            if resume >= first:
                resume = before(first)
                if resume <= after:
                    continue  # nothing can be missing between the id and the first
        found.append((channel, resume, reason))
    return found


class Engine:
    """The interface; see :mod:`faye_sync.hub.memory` and :mod:`faye_sync.hub.redis_streams`."""

    def publish(self, channel: str, data: str, event: str | None) -> str:
        """Store one message; return its id. Raises HubUnavailable when unreachable."""
        raise NotImplementedError

    def read(self, positions: Mapping[str, str], *, count: int, block: float) -> Batches:
        """Messages after each channel's position, at most ``count`` per channel.

        Waits up to ``block`` seconds when there are none (then no messages).
        The state comes from right after the read, for :func:`gaps`.
        """
        raise NotImplementedError

    def history(self, afters: Mapping[str, str], count: int) -> Batches:
        """Per channel, up to ``count`` retained messages after its id, oldest first.

        One snapshot of all the channels and the state (a transaction): read one
        by one, a later channel could show a message newer than one an earlier
        channel did not show yet, and the join's dedupe by id would skip it.
        """
        raise NotImplementedError

    def state(self, channels: Iterable[str]) -> State:
        """The epoch, the clock, and the trim marks of ``channels``.

        Starts an epoch when there is none yet, so that any id a client holds
        from an earlier store is known to be older than it.
        """
        raise NotImplementedError

    def interrupt(self) -> None:
        """Wake a ``read`` that is blocked, if the engine can (the reader's channels changed)."""

    def close(self) -> None:
        """Release connections; later calls may fail."""
