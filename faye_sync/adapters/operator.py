"""Telling the operator: messages that must reach whoever runs the server.

The package logger has only a ``NullHandler`` (a library must not configure
logging), and gunicorn, wsgiref and gevent.pywsgi leave the root logger alone, so a
``log.warning`` vanishes on them. :func:`tell_operator` logs through ``faye_sync``
when the application has configured logging (a handler somewhere above it), and
otherwise writes to the server's own error log, ``environ["wsgi.errors"]`` (gunicorn's
``--error-logfile``, stderr on the others).
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from typing import IO, Any

from faye_sync.adapters.base import Environ

__all__ = ["tell_operator"]

log = logging.getLogger("faye_sync")

_said: set[str] = set()
_said_lock = threading.Lock()


def _logging_configured(logger: logging.Logger) -> bool:
    """Whether a record from ``logger`` reaches a handler that writes somewhere."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(h, logging.NullHandler) for h in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False


def tell_operator(
    environ: Environ,
    message: str,
    *,
    level: int = logging.WARNING,
    exc: BaseException | None = None,
    once: bool = False,
) -> None:
    """Report ``message`` (with ``exc``'s traceback) where the operator reads the server's log.

    Args:
        environ: the request's environ, for ``wsgi.errors``.
        message: one line saying what happened and what to do.
        level: the logging level, also named in the written line.
        exc: an exception whose traceback follows the line.
        once: report this message once per process (later ones go to debug).
    """
    if once:
        with _said_lock:
            if message in _said:
                log.debug("%s", message)
                return
            _said.add(message)
    if _logging_configured(log):
        log.log(level, "%s", message, exc_info=exc)
        return
    stream: IO[str] | Any = environ.get("wsgi.errors") or sys.stderr
    text = f"faye_sync {logging.getLevelName(level)}: {message}\n"
    if exc is not None:
        text += "".join(traceback.format_exception(exc))
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # a closed or broken error stream: nowhere left to say it
        pass
