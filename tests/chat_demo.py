"""The chat demo as a user starts it: ``python -m wsgi_examples.chat --port 0`` in its own
process group (tests/test_chat.py and the browser test drive it)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 5.0  # seconds: every wait in these tests is bounded by it
STARTUP_TIMEOUT = 15.0


@dataclass
class Demo:
    """``python -m wsgi_examples.chat --port 0`` running in its own process group."""

    process: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def ws_url(self, name: str) -> str:
        return f"ws://127.0.0.1:{self.port}/chat?name={name}"

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def stop(self, timeout: float = TIMEOUT) -> int | None:
        """SIGTERM, as a user's Ctrl-C would; SIGKILL the group if that is not enough.

        Returns the exit status after SIGTERM, or None if it had to be killed.
        """
        status: int | None = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=timeout)
        return status


@contextlib.contextmanager
def run_demo(broker: str | None = None) -> Iterator[Demo]:
    """Start the demo's real command line on a free port; stop it at the end.

    ``broker`` is passed as ``--broker`` (else the demo's default, memory://).
    """
    fd, name = tempfile.mkstemp(prefix="faye_sync-chat-", suffix=".log")
    log_path = Path(name)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("CHAT_BROKER", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "wsgi_examples.chat", "--port", "0"]
    if broker is not None:
        command += ["--broker", broker]
    with os.fdopen(fd, "wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that stop() can signal the whole group
        )
    demo = Demo(process, log_path)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while (match := re.search(r"chat on http://127\.0\.0\.1:(\d+)/", demo.log())) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the chat demo did not start; its log:\n{demo.log()}")
            time.sleep(0.02)
        demo.port = int(match.group(1))
        yield demo
    finally:
        demo.stop()
        log_path.unlink(missing_ok=True)
