"""The coordinator (FL server) and its default handlers: a FedAvg course as <event, handler> pairs.

    message:join_in          -> on_join_in            emits assign_id
    condition:all_joined_in  -> begin_round           emits model_parameters
    message:model_update     -> on_model_update       (validates and stores)
    condition:all_received   -> aggregate_round       emits evaluate
    message:metrics          -> on_metrics            (stores)
    condition:all_evaluated  -> record_evaluation
    condition:max_rounds_reached, condition:early_stopped -> finish_course   emits finish
    condition:next_round_due -> begin_round           emits model_parameters

Works on numpy arrays decoded from the wire and imports no ML framework.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import structlog

from fscore.aggregators.base import Aggregator, ClientUpdate
from fscore.conditions import Condition
from fscore.errors import RejectedMessage
from fscore.events import on_condition, on_message
from fscore.message import (
    ASSIGN_ID,
    COORDINATOR,
    EVALUATE,
    FINISH,
    JOIN_IN,
    METRICS,
    MODEL_PARAMETERS,
    MODEL_UPDATE,
    Message,
    MessageCatalog,
)
from fscore.samplers import Sampler
from fscore.worker import BaseWorker, Outbox

log = structlog.get_logger("fscore.coordinator")


@dataclass(frozen=True)
class CoursePlan:
    participants: int
    rounds: int
    sample_size: int | None = None
    eval_every: int = 1
    patience: int = 0
    min_delta: float = 0.0
    metric: str = "accuracy"


@dataclass(frozen=True)
class ParticipantInfo:
    address: str
    id: int
    num_train_samples: int
    num_test_samples: int
    backend: str


@dataclass(frozen=True)
class Evaluation:
    round: int
    virtual_time: float
    metrics: dict[str, float]
    aggregated: tuple[str, ...]


class Evaluator(Protocol):
    """Evaluates the global model on the coordinator's held-out set; optional, and framework-specific."""

    def __call__(self, params: Mapping[str, np.ndarray]) -> dict[str, float]: ...


@dataclass
class CoordinatorState:
    phase: str = "joining"  # joining -> training <-> evaluating/round_done -> finished
    round: int = 0
    participants: dict[str, ParticipantInfo] = field(default_factory=dict)
    sampled: tuple[str, ...] = ()
    updates: dict[str, ClientUpdate] = field(default_factory=dict)
    eval_replies: dict[str, tuple[int, dict[str, float]]] = field(default_factory=dict)
    last_aggregated: tuple[str, ...] = ()
    history: list[Evaluation] = field(default_factory=list)
    best: float | None = None
    evals_without_improvement: int = 0
    finish_reason: str = ""


class Coordinator(BaseWorker):
    role = COORDINATOR

    def __init__(self, address: str, course: str, catalog: MessageCatalog, outbox: Outbox, *, plan: CoursePlan,
                 initial_params: Mapping[str, np.ndarray], aggregator: Aggregator, sampler: Sampler,
                 rng: np.random.Generator, evaluator: Evaluator | None = None,
                 on_evaluation: Callable[[Evaluation], None] | None = None, incarnation: str = "0") -> None:
        self.plan = plan
        self.params: dict[str, np.ndarray] = dict(initial_params)
        self.aggregator = aggregator
        self.sampler = sampler
        self.rng = rng
        self.evaluator = evaluator
        self.on_evaluation = on_evaluation
        self.state = CoordinatorState()
        super().__init__(address, course, catalog, outbox, incarnation)

    @property
    def finished(self) -> bool:
        return self.state.phase == "finished"

    def install_default_handlers(self) -> None:
        s = self.state
        self.add_condition(Condition.of("all_joined_in", lambda w: s.phase == "joining"
                                        and len(s.participants) == self.plan.participants, [JOIN_IN]))
        self.add_condition(Condition.of("all_received", lambda w: s.phase == "training"
                                        and len(s.updates) == len(s.sampled), [MODEL_UPDATE]))
        self.add_condition(Condition.of("all_evaluated", lambda w: s.phase == "evaluating"
                                        and len(s.eval_replies) == len(s.participants), [METRICS]))
        self.add_condition(Condition.of("max_rounds_reached", lambda w: s.phase == "round_done"
                                        and s.round >= self.plan.rounds, [MODEL_UPDATE, METRICS]))
        self.add_condition(Condition.of("early_stopped", lambda w: s.phase == "round_done" and self.plan.patience > 0
                                        and s.evals_without_improvement >= self.plan.patience, [METRICS]))
        self.add_condition(Condition.of("next_round_due", lambda w: s.phase == "round_done", [MODEL_UPDATE, METRICS]))
        self.register(on_message(JOIN_IN), self.on_join_in, emits=[ASSIGN_ID])
        self.register(on_condition("all_joined_in"), self.begin_round, emits=[MODEL_PARAMETERS])
        self.register(on_message(MODEL_UPDATE), self.on_model_update)
        self.register(on_condition("all_received"), self.aggregate_round, emits=[EVALUATE])
        self.register(on_message(METRICS), self.on_metrics)
        self.register(on_condition("all_evaluated"), self.record_evaluation)
        self.register(on_condition("max_rounds_reached"), self.finish_course, emits=[FINISH])
        self.register(on_condition("early_stopped"), self.finish_course, emits=[FINISH])
        self.register(on_condition("next_round_due"), self.begin_round, emits=[MODEL_PARAMETERS])

    # -- joining --------------------------------------------------------------------------

    def on_join_in(self, msg: Message) -> None:
        s = self.state
        p = msg.payload
        if p["address"] != msg.sender:
            raise RejectedMessage(f"join_in from {msg.sender!r} claims address {p['address']!r}")
        info = s.participants.get(msg.sender)
        if info is None:
            if s.phase != "joining":
                raise RejectedMessage(f"join_in from {msg.sender!r} after the course started (round {s.round})")
            if len(s.participants) >= self.plan.participants:
                raise RejectedMessage(f"join_in from {msg.sender!r}: the course is full "
                                      f"({self.plan.participants} participants)")
            info = ParticipantInfo(msg.sender, len(s.participants), p["num_train_samples"], p["num_test_samples"],
                                   p["backend"])
            s.participants[msg.sender] = info
            log.debug("joined", course=self.course, participant=msg.sender, id=info.id)
        # A participant that joins again (e.g. after a restart) gets its id again.
        self.send(ASSIGN_ID, [msg.sender], s.round, {"participant_id": info.id, "address": msg.sender})

    # -- training rounds ------------------------------------------------------------------

    def begin_round(self, _: Message | None = None) -> None:
        s = self.state
        candidates = list(s.participants)
        k = self.plan.sample_size or len(candidates)
        s.sampled = tuple(self.sampler.sample(candidates, k, self.rng))
        s.updates = {}
        s.phase = "training"
        log.debug("round_started", course=self.course, round=s.round, sampled=len(s.sampled))
        self.send(MODEL_PARAMETERS, s.sampled, s.round, {"tensors": self.params})

    def on_model_update(self, msg: Message) -> None:
        s = self.state
        if msg.sender not in s.participants:
            raise RejectedMessage(f"model_update from unknown sender {msg.sender!r}")
        if s.phase != "training" or msg.round != s.round:
            raise RejectedMessage(f"model_update from {msg.sender!r} is for round {msg.round}, but the course is "
                                  f"at round {s.round} ({s.phase})")
        if msg.sender not in s.sampled:
            raise RejectedMessage(f"model_update from {msg.sender!r}, which was not sampled in round {s.round}")
        if msg.sender in s.updates:
            raise RejectedMessage(f"second model_update from {msg.sender!r} in round {s.round} (id {msg.id})")
        p = msg.payload
        self._check_tensors(msg.sender, p["tensors"])
        if p["num_samples"] <= 0:
            raise RejectedMessage(f"model_update from {msg.sender!r} has num_samples {p['num_samples']}")
        s.updates[msg.sender] = ClientUpdate(msg.sender, p["tensors"], p["num_samples"], p["base_round"],
                                             s.round - p["base_round"])

    def _check_tensors(self, sender: str, tensors: Mapping[str, np.ndarray]) -> None:
        expected = self.params
        missing = sorted(set(expected) - set(tensors))
        extra = sorted(set(tensors) - set(expected))
        if missing or extra:
            raise RejectedMessage(f"participant {sender} sent tensors that do not match the course model: "
                                  f"missing {missing}, unexpected {extra}")
        for name, ref in expected.items():
            got = tensors[name]
            if got.shape != ref.shape:
                raise RejectedMessage(f"participant {sender} sent tensor `{name}` with shape {got.shape}; "
                                      f"the course expects {ref.shape}")
            if got.dtype != ref.dtype:
                raise RejectedMessage(f"participant {sender} sent tensor `{name}` as {got.dtype}; "
                                      f"the course expects {ref.dtype}")

    def aggregate_round(self, _: Message | None = None) -> None:
        s = self.state
        updates = [s.updates[a] for a in sorted(s.updates)]
        self.params = self.aggregator.aggregate(self.params, updates)
        s.last_aggregated = tuple(u.sender for u in updates)
        s.updates = {}
        s.round += 1
        log.debug("aggregated", course=self.course, round=s.round, updates=len(updates))
        if s.round % self.plan.eval_every == 0 or s.round >= self.plan.rounds:
            s.eval_replies = {}
            s.phase = "evaluating"
            self.send(EVALUATE, list(s.participants), s.round, {"tensors": self.params})
        else:
            s.phase = "round_done"

    # -- evaluation -----------------------------------------------------------------------

    def on_metrics(self, msg: Message) -> None:
        s = self.state
        if msg.sender not in s.participants:
            raise RejectedMessage(f"metrics from unknown sender {msg.sender!r}")
        if s.phase != "evaluating" or msg.round != s.round:
            raise RejectedMessage(f"metrics from {msg.sender!r} are for round {msg.round}, but the course is at "
                                  f"round {s.round} ({s.phase})")
        s.eval_replies[msg.sender] = (msg.payload["num_samples"], dict(msg.payload["values"]))

    def record_evaluation(self, _: Message | None = None) -> None:
        s = self.state
        metrics = _weighted_metrics(s.eval_replies.values(), prefix="clients.")
        if self.evaluator is not None:
            metrics.update({f"heldout.{k}": v for k, v in self.evaluator(self.params).items()})
        evaluation = Evaluation(s.round, self.now, metrics, s.last_aggregated)
        s.history.append(evaluation)
        self._track_progress(metrics)
        s.phase = "round_done"
        log.info("evaluated", course=self.course, round=s.round, virtual_time=round(self.now, 3),
                 **{k: round(v, 4) for k, v in metrics.items()})
        if self.on_evaluation is not None:
            self.on_evaluation(evaluation)

    def _track_progress(self, metrics: dict[str, float]) -> None:
        s = self.state
        metric = self.plan.metric
        value = metrics.get(f"heldout.{metric}", metrics.get(f"clients.{metric}"))
        if value is None:
            return
        score = value if metric == "accuracy" else -value
        if s.best is None or score > s.best + self.plan.min_delta:
            s.best = score
            s.evals_without_improvement = 0
        else:
            s.evals_without_improvement += 1

    def finish_course(self, _: Message | None = None) -> None:
        s = self.state
        s.finish_reason = "max_rounds_reached" if s.round >= self.plan.rounds else "early_stopped"
        s.phase = "finished"
        log.info("course_finished", course=self.course, round=s.round, reason=s.finish_reason)
        self.send(FINISH, list(s.participants), s.round, {"reason": s.finish_reason, "tensors": self.params})


def _weighted_metrics(replies: Any, prefix: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    weights: dict[str, int] = {}
    for n, values in replies:
        if n <= 0:
            continue
        for k, v in values.items():
            totals[k] = totals.get(k, 0.0) + v * n
            weights[k] = weights.get(k, 0) + n
    return {f"{prefix}{k}": totals[k] / weights[k] for k in sorted(totals)}
