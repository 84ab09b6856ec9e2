"""Bounded waits and delivery checks shared by the hub's tests."""

from __future__ import annotations

import time
from collections.abc import Callable

from faye_sync.hub import RESET, HubMessage, Subscription

WAIT = 10.0  # seconds for anything that should be immediate


def take(sub: Subscription, n: int, timeout: float = WAIT) -> list[HubMessage]:
    """Exactly ``n`` messages (fails if they do not come within ``timeout``)."""
    got: list[HubMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"got {len(got)} of {n}: {got[-3:]}"
        batch = sub.get_batch(n - len(got), remaining)
        assert batch or not sub.ended, f"ended after {len(got)} of {n}"
        got += batch
    return got


def assert_no_silent_loss(published: list[str], received: list[HubMessage]) -> int:
    """Each message once, in order, and every gap announced by a reset; returns the resets."""
    position, announced, resets = -1, False, 0
    index = {message_id: i for i, message_id in enumerate(published)}
    for message in received:
        if message.event == RESET:
            announced, resets = True, resets + 1
            continue
        i = index[message.id]
        assert i > position, f"{message.id} again or out of order"
        assert i == position + 1 or announced, f"{i - position - 1} lost before {message.id}"
        position, announced = i, False
    assert position == len(published) - 1 or announced, "the last ones lost silently"
    return resets


def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
