"""What every step of opening a client connection shares: deadlines, error wording.

A step's OS and TLS errors become :class:`~faye_sync.exceptions.NetworkError`
(:class:`~faye_sync.exceptions.NetworkTimeoutError` for a deadline), worded as
Node words them (``connect ECONNREFUSED 127.0.0.1:80``), naming the URL without
its credentials.
"""

from __future__ import annotations

import contextlib
import errno
import os
import ssl
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ..exceptions import FayeSyncError, NetworkError, NetworkTimeoutError

__all__ = [
    "RECV_SIZE",
    "check_keys",
    "deadline_after",
    "describe_os_error",
    "network_error",
    "network_errors",
    "remaining",
]

#: The most bytes one ``recv`` asks for.
RECV_SIZE = 64 * 1024


def deadline_after(timeout: float | None) -> float | None:
    """The ``time.monotonic()`` value ``timeout`` seconds from now (``None``: never)."""
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline``; raises ``TimeoutError`` once it has passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def network_error(url: str | None, detail: str, *, timeout: bool = False) -> NetworkError:
    message = f"Network error: {url}: {detail}" if url else f"Network error: {detail}"
    cls = NetworkTimeoutError if timeout else NetworkError
    return cls(message, url=url)


def describe_os_error(exc: OSError, where: str = "") -> str:
    # Node spells these "connect ECONNREFUSED 127.0.0.1:80"; keep the errno's name first.
    at = f" {where}" if where else ""
    if exc.errno is not None and exc.errno in errno.errorcode:
        reason = exc.strerror or os.strerror(exc.errno)
        return f"{errno.errorcode[exc.errno]}{at} ({reason})"
    return f"{exc or type(exc).__name__}{at}"


def _describe_tls_error(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    return exc.reason or str(exc) or type(exc).__name__


@contextlib.contextmanager
def network_errors(url: str | None, step: str = "", *, timed_out: str = "") -> Iterator[None]:
    """Turn the OS and TLS errors of one step into ours; our own errors pass through.

    Args:
        url: the URL being opened, already without credentials.
        step: the step's name, put before the detail of a failure
            (``"TLS handshake with proxy http://p:3128 failed: ..."``).
        timed_out: the detail when the deadline passed (default: ``"<step> timed out"``).
    """
    failed = f"{step} failed: " if step else ""
    try:
        yield
    except FayeSyncError:
        raise
    except TimeoutError as exc:
        raise network_error(url, timed_out or f"{step} timed out", timeout=True) from exc
    except ssl.SSLError as exc:
        raise network_error(url, failed + _describe_tls_error(exc)) from exc
    except OSError as exc:
        raise network_error(url, failed + describe_os_error(exc)) from exc


def check_keys(kind: str, options: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """Refuse an option dict's unknown key, in faye's words."""
    for name in options:
        if name not in allowed:
            raise TypeError(f"Unrecognized option: {name} (in {kind})")
