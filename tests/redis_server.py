"""A real ``redis-server`` for tests: on a free 127.0.0.1 port, in a temp dir, no persistence.

::

    with RedisServer() as server:
        hub = Hub.from_url(server.url)
        ...
        server.stop()      # an outage: the port stays reserved for...
        server.start()     # ...a restart on the same port, empty (a new epoch)

Debian's package (``apt-get install redis-server``; ``.ci/run`` installs it).
Every wait is bounded; the process is killed if it does not stop.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from types import TracebackType

__all__ = ["RedisServer", "RedisServerError", "redis_server_path"]

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class RedisServerError(RuntimeError):
    """redis-server did not start or answer; the message carries its log."""


def redis_server_path() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process; ``start``/``stop`` may repeat on the same port."""

    def __init__(self, *extra_args: str) -> None:
        path = redis_server_path()
        if path is None:
            raise RedisServerError("redis-server is not installed (apt-get install redis-server)")
        self._path = path
        self._extra = extra_args
        self._dir = tempfile.mkdtemp(prefix="faye_sync-redis-")
        self.port = _free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> str:
        return os.path.join(self._dir, "redis.log")

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as file:
                return file.read()
        except OSError:
            return ""

    def start(self) -> None:
        """Start (or restart, empty) on this server's port; wait until it answers PING."""
        if self._process is not None:
            raise RedisServerError("already running")
        command = [
            self._path,
            "--port", str(self.port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir,
            "--logfile", self.log_path,
            "--daemonize", "no",
            *self._extra,
        ]  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            # The port may still be in TIME_WAIT from the previous run for a moment.
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=self._dir
            )
            if self._wait_ping(deadline):
                return
            self._kill()
            if time.monotonic() >= deadline:
                raise RedisServerError(f"redis-server did not answer PING:\n{self.log()}")
            time.sleep(0.1)

    def _wait_ping(self, deadline: float) -> bool:
        assert self._process is not None
        while True:  # one try at least: a stalled machine may pass the deadline first
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection((HOST, self.port), timeout=1.0) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (an outage); its data is gone, as after a crash."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)  # in case it was paused
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._kill()
            self._process = None

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(STOP_TIMEOUT)
            self._process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open and nothing answers."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
