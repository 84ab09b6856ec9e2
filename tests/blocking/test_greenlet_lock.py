"""gevent's lock (``GeventBackend.lock()``): a flag while free, FIFO hand-over when not."""

from __future__ import annotations

import gevent
import greenlet
import pytest

from faye_sync.blocking.backends import get_backend
from faye_sync.blocking.greenlet_lock import GreenletLock


def new_lock() -> GreenletLock:
    lock = get_backend("gevent").lock()
    assert isinstance(lock, GreenletLock)
    return lock


def test_free_lock_is_taken_at_once_and_refused_while_held() -> None:
    lock = new_lock()
    assert lock.acquire(False) is True
    assert lock.locked()
    assert lock.acquire(False) is False
    assert lock.acquire(timeout=0.01) is False
    lock.release()
    assert not lock.locked()
    with lock:
        assert lock.locked()
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()


def test_waiters_get_the_lock_in_turn() -> None:
    lock = new_lock()
    order: list[int] = []

    def worker(n: int) -> None:
        with lock:
            order.append(n)
            gevent.sleep(0.01)  # block while holding it: the others wait

    lock.acquire()
    workers = [gevent.spawn(worker, n) for n in range(3)]
    gevent.sleep(0.01)
    assert order == []
    lock.release()
    assert gevent.joinall(workers, timeout=10) and len(order) == 3
    assert order == [0, 1, 2]
    assert not lock.locked()


def test_a_waiter_that_times_out_leaves_no_trace() -> None:
    lock = new_lock()
    lock.acquire()
    assert gevent.spawn(lock.acquire, True, 0.01).get(timeout=10) is False
    lock.release()
    assert not lock.locked()  # the timed-out waiter was not handed the lock


def test_a_waiter_killed_after_the_hand_over_passes_it_on() -> None:
    lock = new_lock()
    lock.acquire()
    doomed = gevent.spawn(lock.acquire)
    nxt = gevent.spawn(lock.acquire, True, 10)
    gevent.sleep(0.01)  # both wait, doomed first

    def release_then_kill() -> None:
        lock.release()  # handed to doomed, which has not run yet
        # Killed before it runs again: greenlet's throw switches into it at once
        # (doomed's death returns to the hub, not here).
        greenlet.greenlet.throw(doomed, gevent.GreenletExit)

    gevent.spawn(release_then_kill)
    assert nxt.get(timeout=10) is True  # doomed passed it on
    assert doomed.dead and isinstance(doomed.value, gevent.GreenletExit)
    assert lock.locked()
    lock.release()
    assert not lock.locked()
