"""Secure aggregation as a plug-in pair (Bonawitz et al. 2017; paper §4.1): the coordinator sees only masked
updates and their sum.

Given to every worker (``role: all``) of a synchronous course (``all_received``). Each round:

1. a participant trains as usual; its ``model_update`` leaves with zero tensors (only ``num_samples`` is
   real), and it keeps ``x = num_samples * (trained - received)`` to itself; then it advertises two fresh
   X25519 keys (``secagg_keys``);
2. once every participant that sent an update advertised, the coordinator broadcasts the roster
   (``secagg_roster``); each member Shamir-shares its self-mask seed and mask key, sealed for each holder
   (``secagg_shares``); the coordinator relays the sealed boxes it cannot open (``secagg_boxes``);
3. each member sends its masked ``x`` (``secagg_masked``); the coordinator asks for the unmasking shares
   (``secagg_unmask``), and with ``roster - dropouts`` reveals (``secagg_reveal``) it removes the masks;
4. the course's ``all_received`` then holds, and the aggregator is handed one update: the global model plus
   the sample-weighted mean change. FedAvg applies it, a server optimizer takes it as its pseudo-gradient.

Up to ``dropouts`` roster members may stop after sending their masked input and the round still unmasks
(their self-masks are rebuilt from the others' shares). A participant that stops earlier in a round
stalls it: there are no per-step deadlines yet. Keys and seeds come from the operating system, so
masked updates differ from run to run; the unmasked sum does not (masks cancel exactly in the field),
so models, replay and recovery are bit-exact. ``crash_after_input`` injects a crash after the masked
input (the participant goes silent; a service also kills its process), for tests and demonstrations.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field

from fscore.aggregators.base import Aggregator, ClientUpdate, Params
from fscore.conditions import Condition
from fscore.errors import ConfigError, RejectedMessage
from fscore.events import on_condition, on_message
from fscore.message import COORDINATOR, MODEL_PARAMETERS, MODEL_UPDATE, PARTICIPANT, Message
from fscore.plugins import MessageType, Plugin, PluginContext, replace_payload
from fscore.secagg.field import FixedPoint
from fscore.secagg.protocol import (
    Advertisement,
    SecAggError,
    SecAggParticipant,
    SecAggServer,
    pack_share,
    unpack_share,
)
from fscore.worker import BaseWorker

log = structlog.get_logger("fscore.secagg")

KEYS, ROSTER, SHARES, BOXES = "secagg_keys", "secagg_roster", "secagg_shares", "secagg_boxes"
MASKED, UNMASK, REVEAL = "secagg_masked", "secagg_unmask", "secagg_reveal"


def _record(name: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "fscope.payload.secagg", "fields": fields}


_MEMBER = _record("Member", [{"name": "address", "type": "string"}, {"name": "c_public", "type": "bytes"},
                             {"name": "s_public", "type": "bytes"}])


class SecureAggregationOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dropouts: int = Field(1, ge=0, description="t: how many roster members may stop after their masked input")
    bound: float = Field(1000.0, gt=0, description="the largest |num_samples x change| a parameter may have")
    precision: int = Field(20, ge=0, le=40, description="fractional bits of the fixed-point encoding")
    crash_after_input: dict[int, int] = Field(default_factory=dict, description=(
        "participant index -> the round after whose masked input it crashes (fault injection)"))


def gate_all_received(worker: BaseWorker, ready: Callable[[Any], bool], watches: set[str]) -> None:
    """``all_received`` holds from now on only once ``ready(worker)`` also does: a round's sum is ready only when
    a plug-in's own exchange for it is done. The aggregate handler bound to it is left as it is."""
    inner = worker.conditions["all_received"]
    worker.conditions["all_received"] = Condition(inner.name, lambda w: inner.holds(w) and ready(w),
                                                  inner.watches | watches)


def _flat(tensors: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(tensors[k], np.float64).ravel() for k in sorted(tensors)])


def _unflat(vector: np.ndarray, like: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out, at = {}, 0
    for k in sorted(like):
        ref = like[k]
        out[k] = vector[at:at + ref.size].reshape(ref.shape).astype(ref.dtype)
        at += ref.size
    return out


class SecureAggregation(Plugin):
    snapshot_refusal = "its per-round X25519 keys and shares are not snapshot state yet"
    name = "secure_aggregation"
    roles = frozenset({COORDINATOR, PARTICIPANT})
    Options = SecureAggregationOptions

    def __init__(self, context: PluginContext, **options: Any) -> None:
        super().__init__(context, **options)
        config = context.config
        participants = config.participants if config is not None else 2
        if self.options.dropouts >= participants:
            raise ValueError(f"dropouts: {self.options.dropouts} dropouts of {participants} participants would leave "
                             "no one to unmask the sum; it must be below the number of participants")
        try:
            self.encoding = FixedPoint(self.options.bound, self.options.precision, participants)
        except ValueError as exc:
            raise ValueError(f"precision: {exc}") from None
        if config is not None:
            _check_course(config, "secure aggregation")
        self.summaries: list[dict[str, Any]] = []

    @classmethod
    def message_types(cls) -> Sequence[MessageType]:
        shares = {"type": "map", "values": "bytes"}
        return (
            MessageType(KEYS, COORDINATOR, _record("SecAggKeys", [{"name": "c_public", "type": "bytes"},
                                                                  {"name": "s_public", "type": "bytes"}])),
            MessageType(ROSTER, PARTICIPANT, _record("SecAggRoster", [
                {"name": "members", "type": {"type": "array", "items": _MEMBER}}])),
            MessageType(SHARES, COORDINATOR, _record("SecAggShares", [{"name": "boxes", "type": shares}])),
            MessageType(BOXES, PARTICIPANT, _record("SecAggBoxes", [
                {"name": "boxes", "type": {"type": "map", "values": shares}}])),
            MessageType(MASKED, COORDINATOR, _record("SecAggMasked", [{"name": "values", "type": "bytes"}])),
            MessageType(UNMASK, PARTICIPANT, _record("SecAggUnmask", [
                {"name": "survivors", "type": {"type": "array", "items": "string"}},
                {"name": "dropped", "type": {"type": "array", "items": "string"}}])),
            MessageType(REVEAL, COORDINATOR, _record("SecAggReveal", [{"name": "b", "type": shares},
                                                                      {"name": "s", "type": shares}])),
        )

    # -- both sides ------------------------------------------------------------------------

    def install(self, worker: BaseWorker) -> None:
        if worker.role == COORDINATOR:
            _CoordinatorSide(self).install(worker)
        else:
            _ParticipantSide(self).install(worker)

    def outgoing(self, worker: BaseWorker, message: Message) -> Message:
        if worker.role == PARTICIPANT and message.type == MODEL_UPDATE:
            return self._participant.hide(message)
        return message

    def incoming(self, worker: BaseWorker, message: Message) -> Message:
        if worker.role == PARTICIPANT and message.type == MODEL_PARAMETERS:
            self._participant.received[message.round] = message.payload["tensors"]
        return message

    def summary(self) -> dict[str, Any]:
        return {"rounds": self.summaries} if self.summaries else {}


def _check_course(config: Any, what: str) -> None:
    """``what`` hands the aggregator one sum per synchronous round: refuse a course that needs more."""
    from fscore.strategy import Strategy
    from fscore.validation import build_aggregator

    if build_aggregator(config).needs_individual_updates:
        raise ConfigError(f"aggregator.name: {config.aggregator.name} needs the individual updates, which {what} "
                          "hides from the coordinator; use fedavg or a server optimizer (fedadam, ...)")
    strategy = Strategy.from_config(config.strategy, config.sample_size or config.participants)
    if strategy.trigger != "all_received" or not strategy.synchronous:
        raise ConfigError(f"strategy.name: {what} sums one round at a time, so it needs a synchronous "
                          f"all_received course (sync_vanilla), not {config.strategy.name}")


class _ParticipantSide:
    def __init__(self, plugin: SecureAggregation) -> None:
        self.plugin = plugin
        plugin._participant = self  # type: ignore[attr-defined]
        self.received: dict[int, Mapping[str, np.ndarray]] = {}
        self.inputs: dict[int, np.ndarray] = {}
        self.sessions: dict[int, SecAggParticipant] = {}
        self.sharers: dict[int, list[str]] = {}
        self.silent_from: int | None = None

    def install(self, worker: BaseWorker) -> None:
        self.worker = worker
        worker.extend(on_message(MODEL_PARAMETERS), self.advertise, emits=[KEYS])
        worker.register(on_message(ROSTER), self.share, emits=[SHARES])
        worker.register(on_message(BOXES), self.mask, emits=[MASKED])
        worker.register(on_message(UNMASK), self.reveal, emits=[REVEAL])

    def hide(self, message: Message) -> Message:
        """The update leaves with zero tensors; its real change, weighted by its samples, stays here."""
        received = self.received.get(message.round)
        if received is None:
            return message
        trained = message.payload["tensors"]
        self.inputs[message.round] = message.payload["num_samples"] * (_flat(trained) - _flat(received))
        return replace_payload(message, tensors={k: np.zeros_like(v) for k, v in trained.items()})

    def advertise(self, msg: Message) -> None:
        if msg.round not in self.inputs or self._silent(msg.round):
            return
        session = SecAggParticipant(self.worker.address, self.plugin.encoding, 1)  # threshold set with the roster
        self.sessions = {msg.round: session}  # one round at a time; the earlier round's secrets are dropped
        advert = session.advertise()
        self.worker.send(KEYS, [COORDINATOR], msg.round, {"c_public": advert.c_public, "s_public": advert.s_public})

    def share(self, msg: Message) -> None:
        session = self.sessions.get(msg.round)
        members = [Advertisement(m["address"], m["c_public"], m["s_public"]) for m in msg.payload["members"]]
        if session is None or self.worker.address not in {m.address for m in members} or self._silent(msg.round):
            return
        session.threshold = len(members) - min(self.plugin.options.dropouts, len(members) - 1)
        self.worker.send(SHARES, [COORDINATOR], msg.round, {"boxes": session.share(members)})

    def mask(self, msg: Message) -> None:
        session, x = self.sessions.get(msg.round), self.inputs.get(msg.round)
        if session is None or x is None or self._silent(msg.round):
            return
        boxes = msg.payload["boxes"]
        try:
            session.receive({sender: box for sender, box in boxes.get(self.worker.address, {}).items()})
        except SecAggError as exc:
            raise RejectedMessage(f"{msg.type} of round {msg.round}: {exc}") from None
        sharers = sorted({self.worker.address, *boxes.get(self.worker.address, {})})
        self.worker.send(MASKED, [COORDINATOR], msg.round, {"values": session.masked_input(x, sharers).tobytes()})
        crash = self.plugin.options.crash_after_input.get(self.plugin.context.index)
        if crash is not None and msg.round >= crash:
            self._crash(msg.round)

    def reveal(self, msg: Message) -> None:
        session = self.sessions.get(msg.round)
        if session is None or self._silent(msg.round):
            return
        try:
            shown = session.reveal(msg.payload["survivors"], msg.payload["dropped"])
        except SecAggError as exc:
            raise RejectedMessage(f"{msg.type} of round {msg.round}: {exc}") from None
        self.worker.send(REVEAL, [COORDINATOR], msg.round, {k: {a: pack_share(v) for a, v in shares.items()}
                                                             for k, shares in shown.items()})
        self.inputs.pop(msg.round, None)

    def _silent(self, round_: int) -> bool:
        return self.silent_from is not None and round_ >= self.silent_from

    def _crash(self, round_: int) -> None:
        """Fault injection: silent from now on; a service also makes its masked input durable and dies."""
        self.silent_from = round_
        log.warning("secagg_crash_injected", participant=self.worker.address, round=round_)
        transport = getattr(self.worker.outbox, "transport", None)
        if transport is not None and type(transport).__name__ == "KafkaTransport":
            transport.flush()
            os.kill(os.getpid(), signal.SIGKILL)


class _CoordinatorSide:
    def __init__(self, plugin: SecureAggregation) -> None:
        self.plugin = plugin
        self.rounds: dict[int, dict[str, Any]] = {}

    def install(self, worker: BaseWorker) -> None:
        self.worker = worker
        worker.aggregator = _Unmasked(worker.aggregator, self)  # type: ignore[attr-defined]
        gate_all_received(worker, self.unmasked, {REVEAL})
        for name, check, watches in (("secagg_roster_due", self.roster_due, {KEYS, MODEL_UPDATE}),
                                     ("secagg_boxes_due", self.boxes_due, {SHARES}),
                                     ("secagg_unmask_due", self.unmask_due, {MASKED})):
            worker.add_condition(Condition.of(name, check, watches))
        worker.register(on_condition("secagg_roster_due"), self.send_roster, emits=[ROSTER])
        worker.register(on_condition("secagg_boxes_due"), self.send_boxes, emits=[BOXES])
        worker.register(on_condition("secagg_unmask_due"), self.send_unmask, emits=[UNMASK])
        for type_name, field in ((KEYS, "adverts"), (SHARES, "shares"), (MASKED, "masked"), (REVEAL, "reveals")):
            worker.register(on_message(type_name), self._collector(field))

    def _round(self, round_: int) -> dict[str, Any]:
        if round_ not in self.rounds:
            self.rounds = {round_: {"adverts": {}, "shares": {}, "masked": {}, "reveals": {}, "roster": None,
                                    "boxed": False, "asked": False, "result": None}}
        return self.rounds[round_]

    def _collector(self, field: str):
        def collect(msg: Message) -> None:
            s = self.worker.state  # type: ignore[attr-defined]
            if field == "reveals" and (msg.round < s.round or self.rounds.get(msg.round, {}).get("result") is not None):
                return  # a reveal that came after the sum had unmasked: asked for, and no longer needed
            if msg.round != s.round or s.phase != "training":
                raise RejectedMessage(f"{msg.type} from {msg.sender!r} is for round {msg.round}, but the course is "
                                      f"at round {s.round} ({s.phase})")
            r = self._round(msg.round)
            if field != "adverts" and (r["roster"] is None or msg.sender not in r["roster"]):
                raise RejectedMessage(f"{msg.type} from {msg.sender!r}, who is not on round {msg.round}'s roster")
            if msg.sender in r[field]:
                raise RejectedMessage(f"a second {msg.type} from {msg.sender!r} in round {msg.round}")
            r[field][msg.sender] = msg.payload
            if field == "reveals":
                self._try_unmask(msg.round)
        return collect

    def _senders(self) -> list[str]:
        return sorted({u.sender for u in self.worker.state.buffer.updates})  # type: ignore[attr-defined]

    def roster_due(self, worker: Any) -> bool:
        s = worker.state
        if s.phase != "training" or s.requests.busy or not s.buffer.updates:
            return False
        r = self._round(s.round)
        return r["roster"] is None and all(a in r["adverts"] for a in self._senders())

    def send_roster(self, _: Message | None = None) -> None:
        round_ = self.worker.state.round  # type: ignore[attr-defined]
        r = self._round(round_)
        r["roster"] = self._senders()
        members = [{"address": a, **{k: r["adverts"][a][k] for k in ("c_public", "s_public")}} for a in r["roster"]]
        self.worker.send(ROSTER, r["roster"], round_, {"members": members})

    def boxes_due(self, worker: Any) -> bool:
        r = self.rounds.get(worker.state.round)
        return bool(r) and r["roster"] is not None and not r["boxed"] and set(r["shares"]) == set(r["roster"])

    def send_boxes(self, _: Message | None = None) -> None:
        round_ = self.worker.state.round  # type: ignore[attr-defined]
        r = self.rounds[round_]
        r["boxed"] = True
        boxes: dict[str, dict[str, bytes]] = {a: {} for a in r["roster"]}
        for sender, payload in sorted(r["shares"].items()):
            for holder, box in payload["boxes"].items():
                if holder in boxes and holder != sender:
                    boxes[holder][sender] = box
        self.worker.send(BOXES, r["roster"], round_, {"boxes": boxes})

    def unmask_due(self, worker: Any) -> bool:
        r = self.rounds.get(worker.state.round)
        return bool(r) and r["boxed"] and not r["asked"] and set(r["masked"]) == set(r["roster"])

    def send_unmask(self, _: Message | None = None) -> None:
        round_ = self.worker.state.round  # type: ignore[attr-defined]
        r = self.rounds[round_]
        r["asked"] = True
        self.worker.send(UNMASK, r["roster"], round_, {"survivors": r["roster"], "dropped": []})

    def _try_unmask(self, round_: int) -> None:
        r = self.rounds[round_]
        roster = r["roster"]
        threshold = len(roster) - min(self.plugin.options.dropouts, len(roster) - 1)
        if r["result"] is not None or len(r["reveals"]) < threshold:
            return
        adverts = [Advertisement(a, r["adverts"][a]["c_public"], r["adverts"][a]["s_public"]) for a in roster]
        masked = {a: np.frombuffer(r["masked"][a]["values"], np.uint64) for a in roster}
        reveals = {a: {k: {u: unpack_share(v) for u, v in p[k].items()} for k in ("b", "s")}
                   for a, p in sorted(r["reveals"].items())[:threshold]}
        try:
            r["result"] = SecAggServer(self.plugin.encoding, threshold).unmask(adverts, roster, masked, reveals)
        except SecAggError as exc:
            raise RejectedMessage(f"{REVEAL} of round {round_}: the sum does not unmask: {exc}") from None
        silent = sorted(set(roster) - set(r["reveals"]))  # dropped, or only later than the threshold-th
        self.plugin.summaries.append({"round": round_, "roster": len(roster), "threshold": threshold,
                                      "unmasked_without": silent})
        log.info("secagg_unmasked", round=round_, roster=len(roster), reveals=len(r["reveals"]), without=silent)

    def unmasked(self, worker: Any) -> bool:
        s = worker.state
        if not s.buffer.updates:
            return True
        r = self.rounds.get(s.round)
        return bool(r) and r["result"] is not None

    def mean_change(self, round_: int, updates: Sequence[ClientUpdate]) -> np.ndarray:
        r = self.rounds[round_]
        if sorted(u.sender for u in updates) != r["roster"]:
            raise SecAggError(f"round {round_}'s updates are not its roster's")
        return r["result"] / sum(u.num_samples for u in updates)


class _Unmasked(Aggregator):
    """The course's aggregator behind secure aggregation: it is given one update, the unmasked mean."""

    def __init__(self, inner: Aggregator, side: _CoordinatorSide) -> None:
        self.inner, self.side = inner, side

    def aggregate(self, global_params: Params, updates: Sequence[ClientUpdate]) -> dict[str, np.ndarray]:
        if not updates:
            return self.inner.aggregate(global_params, updates)
        round_ = self.side.worker.state.round  # type: ignore[attr-defined]
        change = self.side.mean_change(round_, updates)
        model = _unflat(_flat(global_params) + change, global_params)
        return self.inner.aggregate(global_params, [ClientUpdate("secure_aggregation", model,
                                                                 sum(u.num_samples for u in updates), round_)])
