"""Messages and the catalog of message types.

A message is the unit of the paper's message-passing events (§3.2): who sent what to whom, in
which round, at which (virtual) time. The catalog says, for each message type, which role
receives it and which Avro schema its payload has; users add types without touching the
envelope.
"""

from __future__ import annotations

from collections.abc import Mapping
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


@dataclass(frozen=True, slots=True)
class Message:
    """One message. ``id``, ``course`` and ``timestamp`` are stamped by the sending worker."""

    type: str
    receivers: tuple[str, ...]
    round: int
    payload: Mapping[str, Any]
    sender: str = ""
    timestamp: float = 0.0
    id: str = ""
    course: str = ""


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
