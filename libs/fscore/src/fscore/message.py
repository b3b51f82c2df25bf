"""Messages and the catalog of message types.

A message is the unit of the paper's message-passing events (§3.2): who sent what to whom, in
which round, at which (virtual) time. The catalog says, for each message type, which role
receives it and which Avro schema its payload has; users add types without touching the
envelope.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fstranslation import DEFAULT_LIMITS, SchemaStore, TensorLimits, WireCodec, default_store

Role = Literal["coordinator", "participant"]
COORDINATOR = "coordinator"
PARTICIPANT = "participant"

# Built-in message types of a FedAvg course.
JOIN_IN = "join_in"
ASSIGN_ID = "assign_id"
MODEL_PARAMETERS = "model_parameters"
MODEL_UPDATE = "model_update"
EVALUATE = "evaluate"
METRICS = "metrics"
FINISH = "finish"
ALARM = "alarm"  # the coordinator's own time_up timer, sent to itself through its inbox
REFUSE = "refuse"  # a participant whose model does not fit the agreed layout is turned away
# Not sent between workers: the coordinator writes these to the course's meta topic.
COURSE_MANIFEST = "course_manifest"
COURSE_FINISHED = "course_finished"
COORDINATOR_STARTED = "coordinator_started"
COORDINATOR_SNAPSHOT = "coordinator_snapshot"  # a deployed coordinator's state, every N rounds (issue 17)

_BUILTIN_ROLES: dict[str, Role] = {
    JOIN_IN: "coordinator",
    ASSIGN_ID: "participant",
    MODEL_PARAMETERS: "participant",
    MODEL_UPDATE: "coordinator",
    EVALUATE: "participant",
    METRICS: "coordinator",
    FINISH: "participant",
    ALARM: "coordinator",
    REFUSE: "participant",
}


class Verdicts:
    """The checks a decoded record's content has passed, kept with the record (``fscore.intake``), so the workers
    of one process that share its decoded message (a broadcast) check it once per key: a participant keys its
    model check by its layout. A verdict holds for the very object it was reached on; a message built in Python
    carries none, and is checked every time."""

    __slots__ = ("_passed",)

    def __init__(self) -> None:
        self._passed: dict[Hashable, object] = {}

    def passed(self, key: Hashable, subject: object) -> bool:
        """Whether the check ``key`` passed on ``subject`` (this object, not an equal one)."""
        return self._passed.get(key) is subject

    def add(self, key: Hashable, subject: object) -> None:
        self._passed[key] = subject


@dataclass(frozen=True, slots=True)
class Message:
    """One message. ``id``, ``course`` and ``timestamp`` are stamped by the sending worker. ``verdicts`` is set
    only on a message decoded from a record (never part of the message: not sent, not compared)."""

    type: str
    receivers: tuple[str, ...]
    round: int
    payload: Mapping[str, Any]
    sender: str = ""
    timestamp: float = 0.0
    id: str = ""
    course: str = ""
    verdicts: Verdicts | None = field(default=None, compare=False, repr=False)


@dataclass
class MessageCatalog:
    """Message type -> receiving role and payload schema, shared by every worker of a course."""

    store: SchemaStore = field(default_factory=default_store)
    roles: dict[str, Role] = field(default_factory=lambda: dict(_BUILTIN_ROLES))
    limits: TensorLimits = DEFAULT_LIMITS  # what a tensor off the wire may declare (rank, bytes)

    def __post_init__(self) -> None:
        self.codec = WireCodec(self.store, self.limits)

    def register(self, type_name: str, receiver_role: Role, schema: dict[str, Any]) -> None:
        """Add a message type with its own payload schema; the envelope is unchanged."""
        if receiver_role not in (COORDINATOR, PARTICIPANT):
            raise ValueError(f"message type {type_name!r}: receiver role must be 'coordinator' or "
                             f"'participant', not {receiver_role!r}")
        self.store.register(type_name, schema)
        self.roles[type_name] = receiver_role

    def receiver_role(self, type_name: str) -> Role:
        try:
            return self.roles[type_name]
        except KeyError:
            raise KeyError(f"unknown message type {type_name!r}; known: {', '.join(sorted(self.roles))}") from None
