"""faye's EventTarget, for Python: ``on(name, fn)``, ``off``, and ``onopen``-style attributes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Event", "EventEmitter", "Listener"]


@dataclass(frozen=True, slots=True)
class Event:
    """What a listener receives; only the attributes of its ``type`` are set.

    ``message`` events carry ``data`` (``str`` or ``bytes``), ``close`` events
    ``code`` and ``reason``, ``error`` events ``message``.
    """

    type: str
    data: str | bytes | None = None
    code: int | None = None
    reason: str | None = None
    message: str | None = None


Listener = Callable[[Event], Any]

# Every emitter's listeners until its first on(): never written to.
_NO_LISTENERS: dict[str, list[Listener]] = {}


class EventEmitter:
    """Listeners by event name; the ``on<type>`` attribute runs first, as in faye."""

    EVENTS: tuple[str, ...] = ("open", "message", "error", "close")

    __slots__ = ("_listeners", "onclose", "onerror", "onmessage", "onopen")

    def __init__(self) -> None:
        # Shared and empty until on() gives this emitter its own: most connections
        # only use ``for message in ws`` and never add a listener.
        self._listeners: dict[str, list[Listener]] = _NO_LISTENERS
        self.onopen: Listener | None = None
        self.onmessage: Listener | None = None
        self.onerror: Listener | None = None
        self.onclose: Listener | None = None

    def on(self, name: str, listener: Listener) -> None:
        """Call ``listener(event)`` for each ``name`` event (open, message, error, close)."""
        if name not in self.EVENTS:
            raise ValueError(f"unknown event {name!r}: expected one of {', '.join(self.EVENTS)}")
        if self._listeners is _NO_LISTENERS:
            self._listeners = {}
        self._listeners.setdefault(name, []).append(listener)

    add_event_listener = on

    def off(self, name: str, listener: Listener) -> None:
        """Remove a listener added with :meth:`on`; unknown listeners are ignored."""
        listeners = self._listeners.get(name, [])
        if listener in listeners:
            listeners.remove(listener)

    remove_event_listener = off

    def has_listeners(self, name: str) -> bool:
        return bool(self._listeners.get(name)) or getattr(self, "on" + name) is not None

    def emit(self, event: Event) -> None:
        handler = getattr(self, "on" + event.type, None)
        if handler is not None:
            handler(event)
        listeners = self._listeners.get(event.type)
        if listeners:
            for listener in list(listeners):  # a copy: a listener may add or remove some
                listener(event)
