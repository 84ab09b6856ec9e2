"""An environ and a ``start_response`` for calling an EventSource in process, with no server."""

from __future__ import annotations

from typing import Any

__all__ = ["StartResponse", "make_environ"]


def make_environ(**extra: Any) -> dict[str, Any]:
    """A GET of ``http://example.org/events`` that asks for an event stream."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/events",
        "QUERY_STRING": "",
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "80",
        "HTTP_HOST": "example.org",
        "HTTP_ACCEPT": "text/event-stream",
        "wsgi.url_scheme": "http",
    }
    environ.update(extra)
    return environ


class StartResponse:
    """Records each call: ``calls`` holds ``(status, headers)`` pairs."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]]]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.calls.append((status, headers))
        return lambda data: None
