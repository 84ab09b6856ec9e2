"""The registry of open connections (close_all's): weak, shared references, swept as it grows."""

from __future__ import annotations

import gc

from faye_sync.blocking import live


class Goes:
    """Stands for a connection: what close_all calls."""

    def __init__(self) -> None:
        self.codes: list[int] = []

    def go_away(self, code: int, reason: str) -> None:
        self.codes.append(code)


def test_dropped_connections_leave_and_the_registry_stays_bounded() -> None:
    before = len(live._live)  # other tests' connections may still be registered
    kept = Goes()
    live.add(kept)
    for _ in range(1000):
        live.add(Goes())  # dropped at once, never discarded
    gc.collect()
    assert [c for c in live.live_connections() if isinstance(c, Goes)] == [kept]
    assert len(live._live) < before + 200  # dead references were swept out as it grew
    live.close_all(1001)
    assert kept.codes == [1001]
    live.discard(kept)
    live.discard(kept)  # twice: no error
    assert kept not in live.live_connections()
