"""BaseWorker: the event loop every role shares (paper §3.2, "participant's view").

A worker never runs a script. It reacts: to its start, to each message it receives, and after
every message to each condition that now holds. Which handler runs for which event is data in a
:class:`HandlerRegistry`, so users replace or add behaviour without touching this loop.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, ClassVar, Protocol

import structlog

from fscore.conditions import Condition
from fscore.dedupe import FORGOTTEN, SeenIds
from fscore.errors import FscoreError, RejectedMessage, ReplayedMessage, UndeclaredEmitError
from fscore.events import START, Event, Handler, HandlerEntry, HandlerRegistry, on_condition, on_message
from fscore.message import Message, MessageCatalog

log = structlog.get_logger("fscore.worker")

#: a condition handler that never changes the state would fire forever; this bounds one settle()
MAX_CONDITION_FIRINGS = 10_000


class Outbox:
    """Where a worker's messages go; the communicator in a course, a list in tests."""

    def send(self, message: Message) -> int:  # pragma: no cover - interface
        raise NotImplementedError


class Extension(Protocol):
    """What a worker asks of a plug-in (:class:`fscore.plugins.Plugin` is the one to subclass)."""

    roles: frozenset[str]

    @property
    def label(self) -> str: ...

    def summary(self) -> dict[str, Any]: ...

    def install(self, worker: BaseWorker) -> None: ...

    def outgoing(self, worker: BaseWorker, message: Message) -> Message: ...

    def incoming(self, worker: BaseWorker, message: Message) -> Message: ...


class BaseWorker:
    role: ClassVar[str] = ""
    #: what the course builds and wires, never a snapshot's state (fscore.snapshot.state)
    snapshot_exclude: ClassVar[tuple[str, ...]] = ("handlers", "conditions", "outbox", "catalog", "_active",
                                                   "_companions", "_settling")

    def __init__(self, address: str, course: str, catalog: MessageCatalog, outbox: Outbox,
                 incarnation: str = "0") -> None:
        if not self.role:
            raise NotImplementedError(f"{type(self).__name__} must set the class attribute 'role'")
        self.address = address
        self.course = course
        self.catalog = catalog
        self.outbox = outbox
        self.handlers = HandlerRegistry(owner=address)
        self.conditions: dict[str, Condition] = {}
        self.now = 0.0  # virtual time of the latest event this worker handled
        self._seen = SeenIds()  # accepted message ids, bounded (fscore.dedupe)
        self._sequence = 0
        # Message ids must stay unique when a process restarts and its sequence starts again.
        self.incarnation = incarnation
        self._active: HandlerEntry | None = None
        self._companions: frozenset[str] = frozenset()  # what the running outgoing transform may send too
        #: the plug-ins in effect, in config order; their transforms run in this order on every message
        self.plugins: list[Extension] = []
        #: (what it was built from, the conditions with a handler, in order): settle() runs after every message
        self._settling: tuple[tuple[Any, ...], list[tuple[Condition, HandlerEntry]]] | None = None
        self.install_default_handlers()

    # -- extension points -----------------------------------------------------------------

    def install_default_handlers(self) -> None:
        """Register the role's default handlers; subclasses override."""

    def register(self, event: Event, handler: Handler, emits: Iterable[str] = ()) -> None:
        self.handlers.register(event, handler, emits)

    def extend(self, event: Event, handler: Handler, emits: Iterable[str] = ()) -> None:
        """Run ``handler`` after the handler in effect for ``event``, keeping it (see HandlerRegistry.extend)."""
        self.handlers.extend(event, handler, emits)

    def add_condition(self, condition: Condition) -> None:
        self.conditions[condition.name] = condition

    def use(self, plugin: Extension) -> None:
        """Give this worker a plug-in: its handlers and conditions now, its transforms on every later message."""
        if self.role not in plugin.roles:
            raise FscoreError(f"plug-in {plugin.label} cannot be given to a {self.role} (only to "
                              f"{' or '.join(sorted(plugin.roles))})")
        self.plugins.append(plugin)
        plugin.install(self)

    def log_handlers(self) -> None:
        log.info("handlers_in_effect", worker=self.address, role=self.role, handlers=self.handlers.describe(),
                 plugins=[p.label for p in self.plugins])

    # -- the event loop -------------------------------------------------------------------

    def start(self) -> None:
        entry = self.handlers.get(START)
        if entry is not None:
            self._run(entry, None)
        self.settle()

    def handle(self, message: Message, where: str = "") -> bool:
        """Handle one message and then every condition it makes true. Returns False for a duplicate.

        ``where`` is the place in the log it was read from (``topic/partition/offset``), if any.
        Handlers are idempotent by message id: the same record delivered twice changes nothing. Raises
        :class:`RejectedMessage` when the envelope names another course, an id that is not its sender's
        or a time that is not finite, when no handler takes the message type, or when the handler
        refuses the message; :class:`ReplayedMessage` for a copy of an accepted message read from
        another place. A message that is not handled leaves no trace: its id is not remembered (a
        forged copy cannot pre-empt the real one) and the worker's clock does not move.
        """
        if message.course != self.course:
            raise RejectedMessage(f"{_what(message)} is for course {message.course!r}, not {self.course!r}")
        if not message.id.startswith(f"{message.sender}/"):
            raise RejectedMessage(f"{_what(message)}: the id is not one of {message.sender!r}'s (ids are "
                                  f"'<sender>/<incarnation>/<n>')")
        first = self._seen.lookup(message.id)
        if first is not None:
            if first == FORGOTTEN:
                raise ReplayedMessage(f"{_what(message)} is older than the {self._seen.capacity} messages "
                                      "remembered, so it cannot be told from a replayed copy")
            if not where or not first or where == first:
                log.debug("duplicate_ignored", worker=self.address, msg_id=message.id)
                return False
            raise ReplayedMessage(f"{_what(message)} is a copy of a message already handled (read from {first}), "
                                  f"replayed at {where}")
        entry = self.handlers.get(on_message(message.type))
        if entry is None:
            raise RejectedMessage(f"{self.address} ({self.role}) has no handler for message type "
                                  f"{message.type!r} (from {message.sender!r}, id {message.id})")
        if not math.isfinite(message.timestamp):
            raise RejectedMessage(f"{_what(message)} has timestamp {message.timestamp}, which is not a finite time")
        clock = self.now
        self.now = max(self.now, message.timestamp)
        try:
            self._run(entry, self._transformed(message, "incoming"))
        except BaseException:
            self.now = clock
            raise
        self._seen.add(message.id, where)
        self.settle()
        return True

    def settle(self) -> None:
        """Fire condition handlers until no condition holds (a fixpoint)."""
        for _ in range(MAX_CONDITION_FIRINGS):
            fired = False
            for condition, entry in self._condition_entries():
                if condition.holds(self):
                    self._run(entry, None)
                    fired = True
                    break  # re-check from the first condition: earlier ones take precedence
            if not fired:
                return
        raise FscoreError(f"{self.address}: conditions still hold after {MAX_CONDITION_FIRINGS} firings; "
                          "a condition handler does not change the state its condition checks")

    def _condition_entries(self) -> list[tuple[Condition, HandlerEntry]]:
        """The conditions that have a handler, with it, in the conditions' order; looked up again only when a
        handler or a condition changed (plug-ins may replace ``conditions`` entries directly)."""
        key = (self.handlers, self.handlers.version, tuple(self.conditions.items()))
        if self._settling is None or self._settling[0] != key:
            entries = [(c, self.handlers.get(on_condition(name))) for name, c in self.conditions.items()]
            self._settling = (key, [(c, e) for c, e in entries if e is not None])
        return self._settling[1]

    def _run(self, entry: HandlerEntry, message: Message | None) -> None:
        self._active = entry
        try:
            entry.handler(message)
        finally:
            self._active = None

    # -- sending --------------------------------------------------------------------------

    def send(self, type_name: str, receivers: Iterable[str], round: int, payload: dict[str, Any],
             *, timestamp: float | None = None) -> Message:
        """Send a message from the running handler, which must have declared ``type_name`` in its emits."""
        active = self._active
        if active is not None and type_name not in active.emits and type_name not in self._companions:
            raise UndeclaredEmitError(f"{self.address}: handler {active.handler_name} for {active.event} sent "
                                      f"{type_name!r} but declares emits {sorted(active.emits)}")
        self._sequence += 1
        message = Message(type=type_name, receivers=tuple(receivers), round=round, payload=payload,
                          sender=self.address, timestamp=self.now if timestamp is None else timestamp,
                          id=f"{self.address}/{self.incarnation}/{self._sequence}", course=self.course)
        message = self._transformed(message, "outgoing")
        self.outbox.send(message)
        return message

    def companions_of(self, type_name: str) -> set[str]:
        """The message types this worker's plug-ins send alongside a ``type_name`` they see leave (the flow graph
        draws them as the sending handler's)."""
        return {c for plugin in self.plugins for c in getattr(plugin, "companions", {}).get(type_name, ())}

    def _transformed(self, message: Message, direction: str) -> Message:
        """``message`` through the plug-ins' transforms of ``direction``; they may change the payload only. An
        outgoing transform may also send the companion types its plug-in declares for this type (sent first)."""
        for plugin in self.plugins:
            allowed = getattr(plugin, "companions", {}).get(message.type, ()) if direction == "outgoing" else ()
            outer, self._companions = self._companions, frozenset(allowed)
            try:
                changed = getattr(plugin, direction)(self, message)
            finally:
                self._companions = outer
            if dataclasses.replace(changed, payload=message.payload) != message:
                raise FscoreError(f"{self.address}: plug-in {plugin.label}'s {direction} transform changed the "
                                  f"envelope of {message.type} {message.id} (a transform may change the payload only)")
            message = changed
        return message


def _what(message: Message) -> str:
    """How a refusal names a message (built only when one is refused: handle() is on the hot path)."""
    return f"{message.type} from {message.sender!r} (id {message.id})"
