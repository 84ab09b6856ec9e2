"""The registry of open connections (close_all's): weak, shared references, swept as it grows."""

from __future__ import annotations

import gc
import threading

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


def test_threads_adding_dropping_and_discarding_at_once_lose_no_live_entry() -> None:
    # add and discard take no lock (each is one set operation); the sweeps that
    # adds start while others add must not drop a live connection.
    kept: list[Goes] = []
    kept_lock = threading.Lock()

    def churn() -> None:
        mine = [Goes() for _ in range(200)]
        for goes in mine:
            live.add(goes)
            live.add(Goes())  # dropped at once: dead references for the sweeps
        for goes in mine[::2]:
            live.discard(goes)
        with kept_lock:
            kept.extend(mine[1::2])

    threads = [threading.Thread(target=churn) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    registered = {id(c) for c in live.live_connections() if isinstance(c, Goes)}
    assert len(kept) == 800
    assert all(id(goes) in registered for goes in kept)  # every live one is still there
    for goes in kept:
        live.discard(goes)
    gc.collect()
    assert not [c for c in live.live_connections() if isinstance(c, Goes)]
