"""Events and the handler registry (paper §3.2).

An event is either a message-passing event ("a message of type X arrived") or a
condition-checking event ("all updates of the round are in"). Each event has at most one
handler; registering another overwrites it with a warning naming both, as the paper specifies.
Handlers declare the message types they emit, which is what the completeness check is built on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import structlog

log = structlog.get_logger("fscore.events")

EventKind = Literal["start", "message", "condition"]


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    name: str

    def __str__(self) -> str:
        return self.name if self.kind == "start" else f"{self.kind}:{self.name}"

    @staticmethod
    def parse(text: str) -> Event:
        """``start``, ``message:TYPE`` or ``condition:NAME``, as written in configs."""
        if text == "start":
            return START
        kind, _, name = text.partition(":")
        if kind not in ("message", "condition") or not name:
            raise ValueError(f"event {text!r} must be 'start', 'message:<type>' or 'condition:<name>'")
        return Event(kind, name)  # type: ignore[arg-type]


START = Event("start", "start")


def on_message(type_name: str) -> Event:
    return Event("message", type_name)


def on_condition(name: str) -> Event:
    return Event("condition", name)


class HandlerOverwriteWarning(UserWarning):
    """A second handler was registered for an event; the first no longer runs."""


Handler = Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class HandlerEntry:
    event: Event
    handler: Handler
    emits: frozenset[str]

    @property
    def handler_name(self) -> str:
        target = getattr(self.handler, "func", self.handler)  # functools.partial of a user handler
        owner = getattr(target, "__self__", None)
        if owner is not None and hasattr(target, "__name__"):  # a bound method: named by its worker's class,
            return f"{type(owner).__name__}.{target.__name__}"  # not the part of it that defines the method
        return getattr(target, "__qualname__", repr(target))


class HandlerRegistry:
    """One handler per event, in registration order."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._entries: dict[Event, HandlerEntry] = {}
        #: bumped by every change, so a worker may keep what it looked up until the next one
        self.version = 0

    def register(self, event: Event, handler: Handler, emits: Iterable[str] = ()) -> HandlerEntry:
        entry = HandlerEntry(event, handler, frozenset(emits))
        previous = self._entries.get(event)
        if previous is not None:
            text = (f"{self.owner}: handler {entry.handler_name} for {event} overwrites "
                    f"{previous.handler_name}")
            warnings.warn(text, HandlerOverwriteWarning, stacklevel=2)
            log.warning("handler_overwritten", worker=self.owner, on=str(event),
                        old=previous.handler_name, new=entry.handler_name)
        self._entries[event] = entry
        self.version += 1
        return entry

    def extend(self, event: Event, handler: Handler, emits: Iterable[str] = ()) -> HandlerEntry:
        """Run ``handler`` right after the handler in effect for ``event`` (alone if there is none).

        What a plug-in uses to add to a default instead of replacing it: nothing is lost, so there is
        no overwrite warning. The entry emits what both declare; it is named after both.
        """
        previous = self._entries.get(event)
        if previous is None:
            return self.register(event, handler, emits)
        first = previous.handler

        def both(message: Any) -> None:
            first(message)
            handler(message)

        added = HandlerEntry(event, handler, frozenset(emits))
        both.__qualname__ = f"{previous.handler_name} + {added.handler_name}"
        entry = HandlerEntry(event, both, previous.emits | added.emits)
        log.debug("handler_extended", worker=self.owner, on=str(event), handler=both.__qualname__)
        self._entries[event] = entry
        self.version += 1
        return entry

    def get(self, event: Event) -> HandlerEntry | None:
        return self._entries.get(event)

    def entries(self) -> list[HandlerEntry]:
        return list(self._entries.values())

    def describe(self) -> list[str]:
        """One line per handler in effect, for the start-up log and ``fscope check``."""
        return [f"{e.event} -> {e.handler_name} emits [{', '.join(sorted(e.emits))}]" for e in self._entries.values()]
