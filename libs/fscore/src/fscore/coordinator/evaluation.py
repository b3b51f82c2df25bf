"""Evaluation: asking participants to evaluate the global model, the held-out evaluation, and early stopping."""

from __future__ import annotations

from typing import Any

import structlog

from fscore.content import check_after, check_finite
from fscore.coordinator.state import CoordinatorState, CoursePlan, Evaluation
from fscore.errors import RejectedMessage
from fscore.message import Message

log = structlog.get_logger("fscore.coordinator")


class Evaluating:
    """The coordinator's evaluation handlers (a part of :class:`~fscore.coordinator.Coordinator`)."""

    state: CoordinatorState
    plan: CoursePlan
    params: Any
    evaluator: Any
    on_evaluation: Any
    course: str
    now: float

    def on_metrics(self, msg: Message) -> None:
        s = self.state
        if msg.sender not in s.membership.participants:
            raise RejectedMessage(f"metrics from unknown sender {msg.sender!r}")
        asked = msg.sender in s.evaluation.asked()
        if not asked and s.membership.unresponsive.pop(msg.sender, None) is not None:
            raise RejectedMessage(f"metrics from {msg.sender!r} for round {msg.round} came after its reply deadline "
                                  f"(id {msg.id})")
        if s.phase != "evaluating" or msg.round != s.round or not asked:
            raise RejectedMessage(f"metrics from {msg.sender!r} are for round {msg.round}, but the course is at "
                                  f"round {s.round} ({s.phase})")
        p = msg.payload
        declared = s.membership.participants[msg.sender].num_test_samples
        if not 0 <= p["num_samples"] <= declared * self.plan.max_samples_factor:
            raise RejectedMessage(f"metrics from {msg.sender!r} claim num_samples {p['num_samples']}; it declared "
                                  f"{declared} test samples at join")
        check_finite(f"metrics from {msg.sender!r}", {}, p["values"])
        check_after(msg, s.evaluation.sent_at, "the evaluate request it answers")
        s.evaluation.replies[msg.sender] = (p["num_samples"], dict(p["values"]))
        s.membership.unresponsive.pop(msg.sender, None)  # heard from (it may have missed a training deadline meanwhile)

    def record_evaluation(self, _: Message | None = None) -> None:
        replies = self.state.evaluation.replies
        self._record(_weighted_metrics(replies.values(), prefix=f"{self.plan.client_metrics}."),
                     {address: dict(values) for address, (n, values) in sorted(replies.items()) if n > 0})

    def _record(self, metrics: dict[str, float], clients: dict[str, dict[str, float]] | None = None) -> None:
        s = self.state
        if self.evaluator is not None:
            metrics.update({f"heldout.{k}": v for k, v in self.evaluator(self.params).items()})
        evaluation = Evaluation(s.round, self.now, metrics, s.last_aggregated, clients or {})
        s.history.append(evaluation)
        self._track_progress(metrics)
        s.phase = "round_done"
        log.info("evaluated", course=self.course, round=s.round, virtual_time=round(self.now, 3),
                 **{k: round(v, 4) for k, v in metrics.items()})
        if self.on_evaluation is not None:
            self.on_evaluation(evaluation)

    def _track_progress(self, metrics: dict[str, float]) -> None:
        plan = self.plan
        value = metrics.get(f"heldout.{plan.metric}", metrics.get(f"{plan.client_metrics}.{plan.metric}"))
        if value is not None:
            self.state.progress.track(value, plan)


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
