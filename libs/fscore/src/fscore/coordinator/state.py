"""The coordinator's state, in parts with one job each: who is in the course, what was asked of whom, the
update buffer, the time budget, the evaluation in progress, and progress towards stopping.

Every part is a function of the config and of the inbox records handled, in order (event sourcing):
recovery and replay rebuild it by handling them again. A plug-in keeps its own state on itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fscore.aggregators.base import ClientUpdate

_last_set: list[tuple[tuple[str, ...], frozenset[str]]] = [((), frozenset())]


def _as_set(addresses: tuple[str, ...]) -> frozenset[str]:
    """``addresses`` as a frozenset, built once per tuple (kept for the last tuple asked about, by identity)."""
    last = _last_set[0]
    if last[0] is not addresses:
        last = _last_set[0] = (addresses, frozenset(addresses))
    return last[1]


Phase = Literal["joining", "training", "evaluating", "round_done", "finished"]


@dataclass(frozen=True)
class CoursePlan:
    participants: int
    rounds: int
    sample_size: int | None = None
    eval_every: int = 1
    patience: int = 0
    min_delta: float = 0.0
    metric: str = "accuracy"
    target: float | None = None  # the metric value time-to-target is measured against
    stop_at_target: bool = False
    join_timeout_s: float | None = None  # start with whoever joined this long after the coordinator started
    min_participants: int = 1  # ...if at least this many did
    max_samples_factor: float = 1.0  # an update may claim at most this x the samples its sender declared
    client_metrics: str = "clients"  # the participants' metrics' prefix: clients (test split) or validation
    private: tuple[str, ...] = ()  # parameters that never leave a participant (model.share, personalization)


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
    #: each participant's own metrics (client-wise accuracy, paper Figure 11), when participants evaluated
    clients: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Aggregation:
    """One aggregation: who contributed at which staleness, and which updates were dropped since the last one."""

    round: int  # the model version it produced
    virtual_time: float
    senders: tuple[str, ...]
    staleness: tuple[int, ...]
    dropped: tuple[tuple[str, int], ...] = ()  # (sender, staleness) of updates over the toleration
    update_bytes: int = 0  # tensor bytes of the updates aggregated (what participants sent)
    model_bytes: int = 0  # tensor bytes of the global model (what each participant is sent)


@dataclass
class Membership:
    """Who is in the course, who was refused, and who has gone quiet."""

    participants: dict[str, ParticipantInfo] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # address -> why its model does not fit the layout
    unresponsive: dict[str, int] = field(default_factory=dict)  # given up on (-> dispatch); not sampled
    timeouts: dict[str, int] = field(default_factory=dict)  # address -> requests it was given up on
    response_times: dict[str, float] = field(default_factory=dict)  # estimated, then observed
    join_closed: bool = False  # the join deadline passed: the course starts with min_participants


@dataclass
class Requests:
    """The models out for training: who has one, since when, and in which numbered dispatch it went."""

    busy: dict[str, int] = field(default_factory=dict)  # address -> round of the model it is training from
    sent_at: dict[str, float] = field(default_factory=dict)  # address -> virtual time its model was sent
    requested: dict[str, int] = field(default_factory=dict)  # busy address -> dispatch of its model
    sampled: tuple[str, ...] = ()  # the latest dispatch
    dispatch: int = 0  # numbers each batch of requests (models or evaluate); reply deadlines name one
    #: address -> models it was sent to train: each may come back as one update, so this bounds what a
    #: participant released (the privacy accountant counts its spend by it)
    trained: dict[str, int] = field(default_factory=dict)


@dataclass
class UpdateBuffer:
    updates: list[ClientUpdate] = field(default_factory=list)  # accepted since the last aggregation
    dropped: list[tuple[str, int]] = field(default_factory=list)  # (sender, staleness) since the last aggregation


@dataclass
class TimeBudget:
    """time_up: the current budget (numbered from 1; 0: none yet), when it ends, and whether its alarm rang."""

    number: int = 0
    deadline: float | None = None
    rang: bool = False


@dataclass
class EvaluationRound:
    """The participants asked to evaluate the current model, and what they answered."""

    evaluators: tuple[str, ...] = ()
    replies: dict[str, tuple[int, dict[str, float]]] = field(default_factory=dict)
    dispatch: int = 0  # the dispatch that asked them
    sent_at: float = 0.0  # virtual time the evaluate request went out

    def asked(self) -> frozenset[str]:
        """``evaluators`` as a set, for the membership test every reply makes (a tuple's is linear in the cohort)."""
        return _as_set(self.evaluators)


@dataclass
class Progress:
    """Towards early stopping and the target: the best score so far and how long since it improved."""

    best: float | None = None
    evals_without_improvement: int = 0
    target_reached: bool = False

    def track(self, value: float, plan: CoursePlan) -> None:
        score = value if plan.metric == "accuracy" else -value
        if plan.target is not None and score >= (plan.target if plan.metric == "accuracy" else -plan.target):
            self.target_reached = True
        if self.best is None or score > self.best + plan.min_delta:
            self.best = score
            self.evals_without_improvement = 0
        else:
            self.evals_without_improvement += 1


@dataclass
class CoordinatorState:
    phase: Phase = "joining"  # joining -> training <-> evaluating/round_done -> finished
    round: int = 0  # the global model's version: how many aggregations produced it
    membership: Membership = field(default_factory=Membership)
    requests: Requests = field(default_factory=Requests)
    buffer: UpdateBuffer = field(default_factory=UpdateBuffer)
    timer: TimeBudget = field(default_factory=TimeBudget)
    evaluation: EvaluationRound = field(default_factory=EvaluationRound)
    progress: Progress = field(default_factory=Progress)
    last_aggregated: tuple[str, ...] = ()
    history: list[Evaluation] = field(default_factory=list)
    aggregations: list[Aggregation] = field(default_factory=list)
    finish_reason: str = ""
