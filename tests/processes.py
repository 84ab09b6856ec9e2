"""A server started as a user starts it: a command line, its output in a file.

tests/servers.py runs servers through tests/serve.py, which configures logging and
picks the port; here the command is the user's own (``python -m gunicorn ...``),
and the port is read from what the server prints.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.servers import ROOT

__all__ = ["Process", "free_port", "run"]

_COLOURS = re.compile(r"\x1b\[[0-9;]*m")


def free_port() -> int:
    """A port no one listens on now, for a command that takes ``--port`` and cannot say 0.

    Another process may take it before the command binds it: a rare, loud failure.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Process:
    """A running command; ``port`` is the one it said it listens on."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.port = 0

    def log(self) -> str:
        """What the command printed, without terminal colours (flask's banner has them)."""
        return _COLOURS.sub("", self.log_path.read_text(encoding="utf-8", errors="replace"))

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """The first match of ``pattern`` (``^`` and ``$`` match at each line)."""
        deadline = time.monotonic() + timeout
        while (match := re.search(pattern, self.log(), re.MULTILINE)) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in the log:\n{self.log()}")
            time.sleep(0.05)
        return match


@contextlib.contextmanager
def run(
    command: list[str],
    port_pattern: str | None,
    *,
    cwd: Path = ROOT,
    env: dict[str, str | None] | None = None,
) -> Iterator[Process]:
    """Run ``command`` (its stderr and stdout to a file) until the block ends.

    ``port_pattern``'s first group is the port the server says it listens on (None:
    the caller chose the port and waits itself). ``env`` adds to (or, for
    ``PYTHONPATH``, replaces) the environment, which puts this tree first on the
    path; a None value removes the variable. The command runs in a process group of
    its own, so that a reloader's child is stopped with it.
    """
    merged = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
    with tempfile.NamedTemporaryFile(suffix=".log", delete=False) as log_file:
        log_path = Path(log_file.name)
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={name: value for name, value in merged.items() if value is not None},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        running = Process(process, log_path)
        if port_pattern is not None:
            running.port = int(running.wait_for(port_pattern).group(1))
        yield running
    finally:
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
                break
        log_path.unlink(missing_ok=True)
