"""Real WSGI servers for tests: each in its own process on 127.0.0.1, port 0.

::

    with serve("gunicorn-gthread", "tests.apps.raw_echo:app", timeout=2) as server:
        sock = server.connect()
        ...
        assert "Traceback" not in server.log()

``kind`` is one of :data:`KINDS`. Keyword options (JSON-serialisable) go to the
server: gunicorn settings for the ``gunicorn-*`` kinds (``timeout=2``, ``threads=4``),
Django settings for ``django`` (unless ``env`` sets ``DJANGO_SETTINGS_MODULE``), the
server's constructor keywords otherwise, and ``debugger=True`` for werkzeug (wraps the
app in ``DebuggedApplication``). eventlet is not a test dependency: that kind is
skipped unless it is importable (``is_available``).
``env`` adds environment variables to the server process. The process runs in its
own session and its whole group is terminated and reaped on exit, with bounded waits.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.serve import HOST, READY

__all__ = [
    "ACCESS_STATUS",
    "HIJACKABLE_KINDS",
    "KINDS",
    "Server",
    "ServerError",
    "is_available",
    "serve",
]

ROOT = Path(__file__).resolve().parent.parent

#: Every server kind :func:`serve` can start.
KINDS = (
    "werkzeug",
    "gevent",
    "gunicorn-sync",
    "gunicorn-gthread",
    "gunicorn-gevent",
    "gunicorn-gevent_pywsgi",
    "wsgiref",
    "django",
    "waitress",
    "eventlet",
)

#: The kinds where faye_sync can take the connection over.
HIJACKABLE_KINDS = tuple(kind for kind in KINDS if kind != "waitress")

#: The status each server's access log shows for a hijacked connection (a WebSocket);
#: None where the server logs nothing: wsgiref's BaseHandler.run returns quietly on
#: BrokenPipeError before its log call (Django's runserver inherits it). gunicorn's
#: pywsgi worker logs pywsgi's status string, which pywsgi overwrites with "socket
#: error: …" when the late header write meets the shut socket (standalone pywsgi logs
#: its saved "101").
ACCESS_STATUS: dict[str, str | None] = {
    "werkzeug": "101",
    "gevent": "101",
    "gunicorn-sync": "101",
    "gunicorn-gthread": "101",
    "gunicorn-gevent": "101",
    "gunicorn-gevent_pywsgi": "socket",
    "wsgiref": None,
    "django": None,
    "eventlet": "101",
}

# The package each kind needs; eventlet is deprecated and usually not installed.
_PACKAGES = {"gevent": "gevent", "django": "django", "waitress": "waitress", "eventlet": "eventlet"}


def is_available(kind: str) -> bool:
    """Whether the packages ``kind`` needs are importable (without importing them)."""
    package = _PACKAGES.get(kind) or kind.partition("-")[0]
    needed = [package, "gevent"] if "gevent" in kind else [package]
    return all(importlib.util.find_spec(name) is not None for name in needed)


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

STARTUP_TIMEOUT = 15.0  # seconds; typical startup is well under 1 s
STOP_TIMEOUT = 3.0  # per signal; gunicorn is given graceful_timeout=1


class ServerError(RuntimeError):
    """The server did not start, or died; the message carries its log."""


@dataclass
class Server:
    """A running server process."""

    kind: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def log(self) -> str:
        """The server process's stdout and stderr so far, without ANSI colour codes.

        werkzeug colours its access lines even when not writing to a terminal.
        """
        return _ANSI_ESCAPE.sub("", self.log_path.read_bytes().decode("utf-8", "replace"))

    def wait_for_log(self, pattern: str, timeout: float = 2.0, start: int = 0) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) appears in the log after offset ``start``.

        Servers write their access line after the application returns, which can be
        just after the client has seen the connection close.
        """
        deadline = time.monotonic() + timeout
        while True:
            match = re.compile(pattern, re.MULTILINE).search(self.log(), start)
            if match is not None:
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in the {self.kind} log:\n{self.log()}")
            time.sleep(0.02)

    def connect(self, timeout: float = 5.0) -> socket.socket:
        """A TCP connection to the server with ``timeout`` on every operation."""
        return socket.create_connection((self.host, self.port), timeout=timeout)


def _command(kind: str, app: str, options: dict[str, object]) -> list[str]:
    return [sys.executable, "-u", "-m", "tests.serve", kind, app, json.dumps(options)]


def _wait_for_port(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> int:
    pattern = re.compile(re.escape(READY) + r"(\d+)")
    deadline = time.monotonic() + timeout
    while True:
        match = pattern.search(log_path.read_bytes().decode("utf-8", "replace"))
        if match is not None:
            return int(match.group(1))
        if process.poll() is not None:
            raise ServerError(f"exited with {process.returncode} before serving")
        if time.monotonic() > deadline:
            raise ServerError(f"not serving after {timeout} s")
        time.sleep(0.01)


def _stop(kind: str, process: subprocess.Popen[bytes]) -> None:
    """Stop the process group, then kill it; reap the leader; never wait unbounded."""
    # SIGQUIT is gunicorn's immediate shutdown; on SIGTERM its workers finish their
    # requests and the gevent worker notices only on its next one-second tick.
    first = signal.SIGQUIT if kind.startswith("gunicorn-") else signal.SIGTERM
    for sig in (first, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            continue
        break
    # gunicorn workers outliving their arbiter (they are in the same group).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def serve(
    kind: str,
    app: str,
    *,
    env: dict[str, str] | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
    **options: object,
) -> Iterator[Server]:
    """Run ``app`` ("module:attr") on a ``kind`` server for the duration of the block.

    Raises:
        ServerError: The server did not announce its port within ``startup_timeout``
            or exited first; the message includes everything it wrote.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown server kind {kind!r}; expected one of {KINDS}")
    fd, name = tempfile.mkstemp(prefix=f"faye_sync-{kind}-", suffix=".log")
    log_path = Path(name)
    process_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    python_path = [str(ROOT), *filter(None, [process_env.get("PYTHONPATH")])]
    process_env["PYTHONPATH"] = os.pathsep.join(python_path)
    try:
        with os.fdopen(fd, "wb") as log_file:
            process = subprocess.Popen(
                _command(kind, app, options),
                cwd=ROOT,
                env=process_env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            try:
                port = _wait_for_port(process, log_path, startup_timeout)
            except ServerError as error:
                _stop(kind, process)
                log = log_path.read_bytes().decode("utf-8", "replace")
                raise ServerError(f"{kind} server for {app}: {error}; its log:\n{log}") from None
            yield Server(kind=kind, host=HOST, port=port, process=process, log_path=log_path)
        finally:
            _stop(kind, process)
    finally:
        log_path.unlink(missing_ok=True)
