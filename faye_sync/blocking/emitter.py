"""faye's EventTarget, for Python: ``on(name, fn)``, ``off``, and ``onopen``-style attributes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["NO_LISTENERS", "Event", "EventEmitter", "Listener"]


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
NO_LISTENERS: dict[str, list[Listener]] = {}


class EventEmitter:
    """Listeners by event name; the ``on<type>`` attribute runs first, as in faye."""

    EVENTS: tuple[str, ...] = ("open", "message", "error", "close")

    # The on<type> attributes live in ``_listeners`` too, under "on<type>" (a list of
    # one): four slots less on every idle connection, and one dict that is empty for
    # most (a handler that iterates never adds a listener).
    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        # Shared and empty until on() gives this emitter its own: most connections
        # only use ``for message in ws`` and never add a listener.
        self._listeners: dict[str, list[Listener]] = NO_LISTENERS

    def on(self, name: str, listener: Listener) -> None:
        """Call ``listener(event)`` for each ``name`` event (open, message, error, close)."""
        if name not in self.EVENTS:
            raise ValueError(f"unknown event {name!r}: expected one of {', '.join(self.EVENTS)}")
        self._own_listeners().setdefault(name, []).append(listener)

    add_event_listener = on

    def off(self, name: str, listener: Listener) -> None:
        """Remove a listener added with :meth:`on`; unknown listeners are ignored."""
        listeners = self._listeners.get(name, [])
        if listener in listeners:
            listeners.remove(listener)

    remove_event_listener = off

    def has_listeners(self, name: str) -> bool:
        listeners = self._listeners
        return bool(listeners.get(name) or listeners.get("on" + name))

    def emit(self, event: Event) -> None:
        listeners = self._listeners
        handler = listeners.get("on" + event.type)
        if handler:
            handler[0](event)
        listeners_of_type = listeners.get(event.type)
        if listeners_of_type:
            for listener in list(listeners_of_type):  # a copy: a listener may add or remove some
                listener(event)

    def _own_listeners(self) -> dict[str, list[Listener]]:
        if self._listeners is NO_LISTENERS:
            self._listeners = {}
        return self._listeners

    def _handler(self, name: str) -> Listener | None:
        handler = self._listeners.get(name)
        return handler[0] if handler else None

    def _set_handler(self, name: str, handler: Listener | None) -> None:
        if handler is not None:
            self._own_listeners()[name] = [handler]
        elif name in self._listeners:
            del self._listeners[name]

    # Four properties written out, one per faye attribute: a factory would hide their
    # types from mypy and their docstrings from help().

    @property
    def onopen(self) -> Listener | None:
        """Called with the ``open`` event before the listeners added with :meth:`on`."""
        return self._handler("onopen")

    @onopen.setter
    def onopen(self, handler: Listener | None) -> None:
        self._set_handler("onopen", handler)

    @property
    def onmessage(self) -> Listener | None:
        """Called with each ``message`` event before the listeners added with :meth:`on`."""
        return self._handler("onmessage")

    @onmessage.setter
    def onmessage(self, handler: Listener | None) -> None:
        self._set_handler("onmessage", handler)

    @property
    def onerror(self) -> Listener | None:
        """Called with the ``error`` event before the listeners added with :meth:`on`."""
        return self._handler("onerror")

    @onerror.setter
    def onerror(self, handler: Listener | None) -> None:
        self._set_handler("onerror", handler)

    @property
    def onclose(self) -> Listener | None:
        """Called with the ``close`` event before the listeners added with :meth:`on`."""
        return self._handler("onclose")

    @onclose.setter
    def onclose(self, handler: Listener | None) -> None:
        self._set_handler("onclose", handler)
