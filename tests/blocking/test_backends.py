"""The backends' socket poll: ``Backend.wait_readable(sock, timeout)``.

With a timeout of 0 it is one call to the operating system's poll that answers
at once, on both backends, also where gevent has patched ``select`` (no switch
to the hub): the EventSource's disconnect check relies on that.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

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
