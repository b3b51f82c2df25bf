"""Plug-ins (paper §3.6, Figures 5 and 6): new behaviour added to a worker without touching coordination code.

A plug-in is one small class. Given to a worker (the coordinator, every participant, or chosen
participants: the ``plugins:`` config section), it can

- register handlers and conditions in :meth:`Plugin.install` (replacing a default gives the usual
  overwrite warning, naming both handlers);
- bring message types with their own Avro payload schemas (:meth:`Plugin.message_types`);
- transform the payloads its worker sends and receives (:meth:`Plugin.outgoing`,
  :meth:`Plugin.incoming`), and send its own messages alongside one leaving (:attr:`Plugin.companions`).
  The worker runs its plug-ins' transforms in the order the config lists them, on every message, after
  the handler that sent it and before the handler that takes it: DP noise, masking, encryption and poisoning
  are all such transforms;
- keep state. A plug-in's state must be a function of the course config and of the messages its
  worker handled, and its randomness drawn from :meth:`Plugin.rng` (seeded by course, plug-in,
  participant and the caller's stream). Then a restarted coordinator that re-feeds its inbox, and
  ``fscope replay``, rebuild the state exactly, as they do the coordinator's own.

Plug-ins are found like every other extension (:mod:`fscore.registry`): registered here by name,
declared by an installed package as an entry point of group ``fscope.plugins``, or named in the
config as ``module:attr``. Their options are a pydantic model, so a bad or unknown option is
refused before the course starts with one line naming the key.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from fscore.message import COORDINATOR, MODEL_PARAMETERS, MODEL_UPDATE, PARTICIPANT, Message, Role
from fscore.registry import Registry
from fscore.worker import BaseWorker

#: the stream of plug-in randomness, beside the course's own (fscore.course)
_STREAM_PLUGINS = 6


@dataclass(frozen=True)
class PluginContext:
    """What a plug-in knows of where it runs: the course, its worker's role and (participants) index."""

    course: str
    seed: int
    role: Role
    index: int | None = None  # the participant's index; None at the coordinator
    #: the whole course config (a CourseConfig), for a plug-in whose options are checked against the course (its
    #: rounds, label set, aggregator); None when a plug-in is built outside a course
    config: Any = None


@dataclass(frozen=True)
class MessageType:
    """A message type a plug-in brings: its name, the role that receives it, and its payload's Avro schema."""

    name: str
    receiver: Role
    schema: dict[str, Any]

    @staticmethod
    def from_file(name: str, receiver: Role, path: str | Path) -> MessageType:
        """The schema read from an ``.avsc`` file (give ``Path(__file__).with_name(...)`` for one beside the code)."""
        return MessageType(name, receiver, json.loads(Path(path).read_text()))


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Plugin:
    """Base class of plug-ins; override what the plug-in does, leave the rest."""

    #: the name it is registered under (also used in logs and to seed its randomness)
    name: ClassVar[str] = ""
    #: the roles it may be given to; the course refuses a config that gives it to another
    roles: ClassVar[frozenset[str]] = frozenset({COORDINATOR, PARTICIPANT})
    #: its options (``plugins[i].options``), as a pydantic model; unknown keys are refused
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: attributes a snapshot leaves out: they come from the config (its other plain-data attributes are kept,
    #: fscore.snapshot.state; a plug-in with other state defines snapshot_state() and restore_state())
    snapshot_exclude: ClassVar[tuple[str, ...]] = ("context", "options")
    #: why a course with this plug-in cannot be snapshotted, or "" when it can
    snapshot_refusal: ClassVar[str] = ""
    #: message type -> the plug-in's own message types its outgoing transform may send (``worker.send``) when it
    #: sees one of that type leave; they are sent before it, so a receiver has them first (FedEx's configs)
    companions: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    @classmethod
    def snapshot_fixes_rounds(cls, options: BaseModel) -> str:
        """Why a course restored from a snapshot must keep its rounds with these options (its state was derived from
        them, e.g. noise calibrated to a privacy target over the rounds), or "" when it may run longer."""
        return ""

    def __init__(self, context: PluginContext, **options: Any) -> None:
        self.context = context
        self.options = self.Options(**options)

    @property
    def label(self) -> str:
        return self.name or type(self).__name__

    @classmethod
    def message_types(cls) -> Sequence[MessageType]:
        """Message types this plug-in adds to the course's catalog (every worker can then decode them)."""
        return ()

    def install(self, worker: BaseWorker) -> None:
        """Register handlers and conditions on ``worker`` (``worker.register``, ``worker.add_condition``)."""

    def outgoing(self, worker: BaseWorker, message: Message) -> Message:
        """The message ``worker`` sends instead of ``message`` (same type; return it unchanged to pass)."""
        return message

    def incoming(self, worker: BaseWorker, message: Message) -> Message:
        """The message ``worker``'s handler is given instead of ``message``. It runs before the handler's own
        checks, so it also sees messages the handler then refuses: keep no state from one that may be forged. Raise
        :class:`~fscore.errors.RejectedMessage` to refuse it: it is dead-lettered like any refused record."""
        return message

    def summary(self) -> dict[str, Any]:
        """What the plug-in reports at the end of a course (JSON-able): a coordinator's plug-ins go into
        ``summary.json`` under ``plugins``, keyed by their label."""
        return {}

    def rng(self, *stream: int) -> np.random.Generator:
        """A generator for one stream of this plug-in's draws (e.g. ``self.rng(round)``): the same in every
        run, process, recovery and replay of the course, and independent of every other stream."""
        c = self.context
        where = 0 if c.index is None else c.index + 1
        return np.random.default_rng([c.seed, _STREAM_PLUGINS, zlib.crc32(self.label.encode()), where, *stream])


class UpdateRewriter(Plugin):
    """A participant plug-in that rewrites the update it sends, knowing the model it trained from: it notes the
    model of each round on the way in, and :meth:`rewrite` turns the trained model into what is sent (DP noise,
    poisoning, model replacement)."""

    roles = frozenset({PARTICIPANT})

    def __init__(self, context: PluginContext, **options: Any) -> None:
        super().__init__(context, **options)
        self._received: dict[int, Mapping[str, np.ndarray]] = {}  # round -> the model it was sent (the latest)

    def incoming(self, worker: BaseWorker, message: Message) -> Message:
        if message.type == MODEL_PARAMETERS:
            self._received = {message.round: message.payload["tensors"]}
        return message

    def outgoing(self, worker: BaseWorker, message: Message) -> Message:
        received = self._received.get(message.round)
        if message.type != MODEL_UPDATE or received is None:
            return message
        return replace_payload(message, tensors=self.rewrite(worker, message, received, message.payload["tensors"]))

    def rewrite(self, worker: BaseWorker, message: Message, received: Mapping[str, np.ndarray],
                trained: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        """The tensors to send instead of ``trained``, the model trained from ``received`` in ``message.round``."""
        return trained


def replace_payload(message: Message, **changes: Any) -> Message:
    """``message`` with some payload fields replaced: what a transform usually returns."""
    return dataclasses.replace(message, payload={**message.payload, **changes})


PLUGINS: Registry[Plugin] = Registry("plugin", {
    "model_poisoning": "fscore.attacks.poisoning:ModelPoisoning",
    "client_dp": "fscore.privacy.client:ClientDP",
    "central_dp": "fscore.privacy.central:CentralDP",
    "nbafl": "fscore.privacy.nbafl:NbAFL",
    "dp_sgd": "fscore.privacy.dpsgd:DPSGD",
    "gradient_inversion": "fscore.attacks.inversion:GradientInversion",
    "backdoor": "fscore.attacks.backdoor:Backdoor",
    "membership_inference": "fscore.attacks.inference:MembershipInference",
    "property_inference": "fscore.attacks.inference:PropertyInference",
    "secure_aggregation": "fscore.secagg.plugin:SecureAggregation",
    "paillier": "fscore.secagg.paillier:PaillierAggregation",
    "fedex": "fscore.tune.fedex:FedEx",
})


def register_plugin(name: str, plugin: type[Plugin] | str) -> None:
    """Make ``plugin`` (a class, or its ``module:attr``) available to configs as ``name``."""
    PLUGINS.register(name, plugin)


def plugin_names() -> list[str]:
    return PLUGINS.names()
