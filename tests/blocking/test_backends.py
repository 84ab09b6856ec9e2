"""The backends' socket poll, ``Backend.wait_readable(sock, timeout)``, and ``recv``.

With a timeout of 0 it is one call to the operating system's poll that answers
at once, on both backends, also where gevent has patched ``select`` (no switch
to the hub): the EventSource's disconnect check relies on that. gevent's
``recv`` waits before it reads, and ends as gevent's own recv does.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from faye_sync.blocking.backends import get_backend


@pytest.mark.parametrize("name", ["threads", "gevent"])
def test_wait_readable_now(name: str, pair: tuple[socket.socket, socket.socket]) -> None:
    backend = get_backend(name)
    a, b = pair
    assert backend.wait_readable(a, 0) is False
    b.sendall(b"x")
    assert backend.wait_readable(a, 5.0) is True
    assert a.recv(1) == b"x"
    assert backend.wait_readable(a, 0) is False
    b.close()  # end-of-file is readable: the next recv says so
    assert backend.wait_readable(a, 5.0) is True
    assert a.recv(1) == b""


def test_wait_readable_times_out(pair: tuple[socket.socket, socket.socket]) -> None:
    assert get_backend("threads").wait_readable(pair[0], 0.05) is False


def test_wait_readable_now_under_monkey_patching() -> None:
    # A fresh process: patching is for the whole process.
    script = textwrap.dedent(
        """
        from gevent import monkey
        monkey.patch_all()
        import socket
        from faye_sync.blocking.backends import detect_backend, get_backend

        a, b = socket.socketpair()
        b.sendall(b"x")
        for backend in (get_backend("gevent"), get_backend("threads"), detect_backend(a)):
            assert backend.wait_readable(a, 0) is True, backend.name
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


def _gevent_recv_outcome(read: Callable[[Any], bytes], event: str) -> object:
    """What a read of a gevent socket gives when ``event`` happens to it meanwhile."""
    import gevent
    import gevent.socket

    a, b = gevent.socket.socketpair()
    reader = gevent.getcurrent()
    try:

        def act() -> None:
            if event == "data":
                b.sendall(b"late")
            elif event == "eof":
                b.close()
            elif event == "shutdown":  # what a connection's _shutdown does to its reader
                a.shutdown(socket.SHUT_RDWR)
            elif event == "closed meanwhile":  # gevent throws EBADF into the sleeper
                a.close()
            elif event == "killed":
                reader.throw(gevent.GreenletExit)
            elif event == "switched into":  # not by the socket's watcher
                reader.switch("stray")
            elif event == "second reader":
                try:
                    read(a)
                except Exception as exc:
                    b.sendall(type(exc).__name__.encode())

        if event == "closed":
            a.close()
        else:
            gevent.spawn_later(0.05, act)
        try:
            with gevent.Timeout(10):
                return read(a)
        except (OSError, gevent.GreenletExit, gevent.exceptions.InvalidSwitchError) as exc:
            return type(exc)
        finally:  # the sleep's watcher is stopped however it ended: a new read may wait
            if a.fileno() >= 0:
                assert a._read_event.callback is None
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("data", b"late"),
        ("eof", b""),
        ("shutdown", OSError),
        ("closed", OSError),
        ("closed meanwhile", OSError),
        ("killed", "GreenletExit"),
        ("switched into", "InvalidSwitchError"),
        ("second reader", b"ConcurrentObjectUseError"),
    ],
)
def test_gevent_recv_waits_first_and_ends_as_gevents_recv(event: str, expected: object) -> None:
    # GeventBackend.recv waits on the socket's own watcher before it reads (no
    # EAGAIN raised per message), switching to the hub itself (backends.py,
    # _sleep_until): it returns or raises what gevent's recv does. A shutdown by
    # another greenlet wakes it with an OSError (the reader's EOF).
    backend = get_backend("gevent")
    ours = _gevent_recv_outcome(lambda sock: backend.recv(sock, 100), event)
    theirs = _gevent_recv_outcome(lambda sock: sock.recv(100), event)
    assert ours == theirs
    if isinstance(expected, bytes):
        assert ours == expected
    elif isinstance(expected, str):
        assert isinstance(ours, type) and ours.__name__ == expected
    else:
        assert isinstance(ours, type) and issubclass(ours, OSError)


@pytest.mark.parametrize("name", ["threads", "gevent"])
def test_recv_reads_what_is_there(name: str) -> None:
    import gevent.socket

    a, b = gevent.socket.socketpair()
    with a, b:
        b.sendall(b"ready")
        assert get_backend(name).recv(a, 100) == b"ready"
        b.close()
        assert get_backend(name).recv(a, 100) == b""
